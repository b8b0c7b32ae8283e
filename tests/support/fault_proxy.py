"""A small fault-injecting HTTP proxy for the Livy client's tests.

A :class:`~support.proxy.RelayProxy` that relays HTTP/1.1 requests to a target server (one
request per connection: it answers with ``Connection: close``) and, for requests that match a
rule, injects a fault instead:

* ``drop_after``: forward the request, let the server act on it, then close the client's
  connection without an answer (the client cannot know whether the request took effect);
* ``drop_before``: close the connection without forwarding anything;
* ``502_after``: forward the request, then answer 502 Bad Gateway instead of the real answer;
* ``502``: answer 502 without forwarding.

Rules fire a given number of times (or, with ``for_seconds``, on every match until that many
seconds have passed since the rule was added), then the proxy relays normally. ``log`` records
(method, path, action, forwarded) for every request: ``forwarded`` says whether the request
reached the target server (so a test can compare a client's conclusion with what happened).
"""

from __future__ import annotations

import http.client
import re
import threading
import time
from dataclasses import dataclass
from typing import Optional

from support.proxy import Answer, RelayProxy, Request


@dataclass
class Rule:
    method: str
    path: str  # regex matched against the path (without query)
    action: str
    times: int = 1
    until: Optional[float] = None  # time.monotonic() deadline; when set, ``times`` is not used
    hits: int = 0


_GATEWAY_BODY = b"<h1>502 Bad Gateway</h1>"


def bad_gateway() -> Answer:
    """The answer of a gateway that lost its upstream."""
    return Answer(502, "Bad Gateway", [("Content-Type", "text/html")], _GATEWAY_BODY)


class FaultProxy(RelayProxy):
    """``FaultProxy(target_url).start()``; ``.url`` is what clients should use."""

    keep_alive = False
    upstream_timeout = 30.0

    def __init__(self, target_url: str):
        super().__init__(target_url)
        self.rules: list[Rule] = []
        self.log: list[tuple[str, str, str, bool]] = []
        self._rules_lock = threading.Lock()

    def add(
        self, method: str, path: str, action: str, times: int = 1, for_seconds: Optional[float] = None
    ) -> Rule:
        """Inject ``action`` into the next ``times`` requests matching method and path regex
        (or into every one for the next ``for_seconds``); the rule counts its ``hits``."""
        until = None if for_seconds is None else time.monotonic() + for_seconds
        rule = Rule(method, path, action, times, until)
        with self._rules_lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Drop every rule: relay normally from now on."""
        with self._rules_lock:
            self.rules.clear()

    def _match(self, method: str, path: str) -> str:
        with self._rules_lock:
            for rule in self.rules:
                active = time.monotonic() < rule.until if rule.until is not None else rule.times > 0
                if active and rule.method == method and re.fullmatch(rule.path, path):
                    if rule.until is None:
                        rule.times -= 1
                    rule.hits += 1
                    return rule.action
        return "pass"

    def relay(self, request: Request) -> Optional[Answer]:
        action = self._match(request.method, request.route)
        if action in ("drop_before", "502"):
            self.log.append((request.method, request.route, action, False))
            return bad_gateway() if action == "502" else None
        try:
            answer = self.forward(request)
        except (OSError, http.client.HTTPException):
            self.log.append((request.method, request.route, action, False))
            return None
        self.log.append((request.method, request.route, action, True))
        if action == "drop_after":
            return None
        return bad_gateway() if action == "502_after" else answer
