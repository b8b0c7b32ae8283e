"""Who may talk to the embedded Livy: the checks a request passes before its body is read.

A server that runs code for whoever asks must tell our user's own clients from a web page
that a browser on the same machine happens to show. ``AccessPolicy.check`` refuses, in order:

* a ``Host`` header that names neither a loopback address nor this server's own host
  (403; DNS rebinding: a page of ``attacker.example`` whose name now resolves to 127.0.0.1);
* an ``Origin`` (or a browser's ``Sec-Fetch-Site``) other than the server's own (403: a page
  of another site or another local port);
* a missing or wrong shared-secret token, when the server has one (401);
* a non-GET request without ``X-Requested-By`` (400, Apache Livy's CSRF protection and its
  wording) or with a body that is not declared JSON (415: ``text/plain`` is what a no-cors
  ``fetch`` may send without the browser asking the server first).

Each check can be relaxed (``allowed_hosts``/``allowed_origins`` ``"*"``, ``csrf=False``) for
people who know why. The token is sent as ``Authorization: Bearer TOKEN`` or as the password
of HTTP basic auth (any user name), which sparkmagic and pylivy can send as they are.
Token files hold the token alone and must be private to the user (mode 0600).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import os
import re
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional
from urllib.parse import urlsplit

from ..livy.protocol import CSRF_HEADER
from .common import ApiError, bad_request

#: Methods that change nothing (Livy's CSRF filter lets these through without the header).
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Fresh tokens: 32 random bytes, URL-safe base64 (43 characters).
TOKEN_BYTES = 32
_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})


def is_loopback_host(name: str) -> bool:
    """True for ``localhost``, ``127.0.0.0/8`` and ``::1`` (the name, without port or brackets)."""
    name = name.strip().lower().rstrip(".")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _split_host(value: str) -> Optional[str]:
    """The host name of a ``Host`` header value (``name``, ``name:port``, ``[v6]:port``)."""
    value = value.strip()
    if not value:
        return None
    try:
        parsed = urlsplit("//" + value)
        host = parsed.hostname
        parsed.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return None
    return host or None


def _machine_names() -> set[str]:
    """The names and addresses clients may use for this machine (for a wildcard bind)."""
    names: set[str] = set()
    for name in {socket.gethostname(), socket.getfqdn()}:
        if not name:
            continue
        names.add(name.lower())
        try:
            _, aliases, addresses = socket.gethostbyname_ex(name)
        except OSError:
            continue
        names.update(a.lower() for a in aliases)
        names.update(addresses)
    return names


@dataclass
class AccessPolicy:
    """The admission rules of one server (see the module docstring).

    ``host`` is the bound address; ``port`` the listening port (set once bound). ``token``
    None means no token is required. ``allowed_hosts``/``allowed_origins`` add names/origins
    to the server's own; ``"*"`` in either switches that check off. ``token_hint`` says in
    401 answers where the token is kept (a path, never the token).
    """

    host: str = "127.0.0.1"
    port: int = 0
    token: Optional[str] = None
    csrf: bool = True
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    token_hint: Optional[str] = None
    _names: set[str] = field(default_factory=set, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.token is not None and not self.token.strip():
            raise ValueError("the token must not be empty")
        names = {h.strip().lower().strip("[]") for h in self.allowed_hosts if h.strip()}
        host = self.host.strip().lower().strip("[]")
        if host in _WILDCARD_HOSTS:
            names |= _machine_names()  # listening everywhere: the machine's own names are ours
        else:
            names.add(host)
        self._names = names

    @property
    def binds_beyond_loopback(self) -> bool:
        """True when other machines can reach the port."""
        host = self.host.strip().strip("[]")
        return host in _WILDCARD_HOSTS or not is_loopback_host(host)

    # -- the checks ---------------------------------------------------------------------------

    def host_allowed(self, name: str) -> bool:
        """Whether ``name`` (a host, no port) is one this server answers to."""
        return "*" in self.allowed_hosts or is_loopback_host(name) or name.lower().rstrip(".") in self._names

    def origin_allowed(self, origin: str) -> bool:
        """The server's own origin (http, one of its host names, its port) or an allowed one."""
        origin = origin.strip()
        if "*" in self.allowed_origins or origin in self.allowed_origins:
            return True
        try:
            parts = urlsplit(origin)
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return False
        return (
            parts.scheme == "http"
            and bool(parts.hostname)
            and self.host_allowed(parts.hostname or "")
            and port == self.port
            and parts.path in ("", "/")
        )

    def check(self, method: str, headers: Mapping[str, Any], body_length: int) -> None:
        """Raise :class:`ApiError` (403, 401, 400 or 415) unless the request may proceed."""
        hosts = headers.get_all("Host") if hasattr(headers, "get_all") else [headers.get("Host")]
        raw_host = (hosts or [None])[0]
        if raw_host is None:
            raise bad_request("the request has no Host header; HTTP/1.1 requires one")
        if len(hosts) > 1:
            raise bad_request("the request has more than one Host header")
        name = _split_host(str(raw_host))
        if name is None or not self.host_allowed(name):
            raise ApiError(
                403,
                f"refused: this embedded Livy answers to loopback addresses and its own host only, not to "
                f"Host {str(raw_host)[:100]!r} (a guard against DNS rebinding); connect to "
                f"http://127.0.0.1:{self.port}, or start the server with --allow-host NAME",
            )
        origin = headers.get("Origin")
        if origin is not None and not self.origin_allowed(str(origin)):
            raise ApiError(
                403,
                f"refused: a request from the web page at {str(origin)[:200]!r} (Origin) may not use this "
                "embedded Livy; only its own clients may. Start the server with --allow-origin ORIGIN to "
                "allow that page",
            )
        fetch_site = str(headers.get("Sec-Fetch-Site") or "").strip().lower()
        if origin is None and fetch_site in ("cross-site", "same-site") and "*" not in self.allowed_origins:
            raise ApiError(
                403,
                f"refused: a browser request from another site (Sec-Fetch-Site: {fetch_site}) may not use this "
                "embedded Livy",
            )
        # A CORS preflight (OPTIONS) never carries credentials, and runs nothing.
        if self.token is not None and method != "OPTIONS" and not self._token_matches(headers.get("Authorization")):
            where = f" (it is in {self.token_hint})" if self.token_hint else ""
            raise ApiError(
                401,
                "this embedded Livy requires its token: send the header 'Authorization: Bearer TOKEN', or the "
                f"token as the password of basic auth{where}",
                headers={"WWW-Authenticate": 'Bearer realm="hail-emr-lab livy"'},
            )
        if self.csrf and method not in SAFE_METHODS:
            if not headers.get(CSRF_HEADER):
                # Livy's own wording first: clients that recognise it keep working.
                raise bad_request(
                    f"Missing Required Header for CSRF protection. Send the header '{CSRF_HEADER}' (any value) "
                    "with every request that is not a GET"
                )
            content_type = str(headers.get("Content-Type") or "")
            if body_length > 0 and not is_json_media_type(content_type):
                raise ApiError(
                    415,
                    f"the request body must be JSON: send 'Content-Type: application/json', not "
                    f"{content_type[:100] or 'no Content-Type'!r}",
                )

    def cors_headers(self, method: str, headers: Mapping[str, Any]) -> dict[str, str]:
        """CORS answer headers for a page whose origin was explicitly allowed (--allow-origin),
        so that a browser lets it send Livy's headers and read the answers; ``{}`` otherwise."""
        origin = headers.get("Origin")
        if origin is None or not self.allowed_origins or not self.origin_allowed(str(origin)):
            return {}
        out = {"Access-Control-Allow-Origin": str(origin), "Vary": "Origin"}
        if method == "OPTIONS":
            out["Access-Control-Allow-Methods"] = "GET, HEAD, POST, DELETE, OPTIONS"
            out["Access-Control-Allow-Headers"] = f"Content-Type, {CSRF_HEADER}, Authorization"
            out["Access-Control-Max-Age"] = "600"
        return out

    def _token_matches(self, authorization: Any) -> bool:
        assert self.token is not None
        scheme, _, value = str(authorization or "").strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer":
            offered = value
        elif scheme.lower() == "basic":
            try:
                offered = base64.b64decode(value, validate=True).decode("utf-8").partition(":")[2]
            except (binascii.Error, UnicodeDecodeError):
                return False
        else:
            return False
        return hmac.compare_digest(offered.encode("utf-8"), self.token.encode("utf-8"))


def is_json_media_type(content_type: str) -> bool:
    """``application/json`` or ``application/*+json``, parameters (charset) ignored."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


# -- token files -------------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"^[\x21-\x7e]{16,512}$")


class TokenFileError(Exception):
    """A token file that cannot be used (unreadable, shared with others, malformed)."""


def read_token(path: Path) -> str:
    """The token in ``path`` (raises FileNotFoundError if absent, TokenFileError if unsafe/bad).

    The file must belong to this user and be readable by nobody else: a token others can read
    protects nothing.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "r", encoding="utf-8") as fh:
        st = os.fstat(fh.fileno())
        if hasattr(os, "getuid") and st.st_uid != os.getuid():
            raise TokenFileError(f"the token file {path} belongs to another user (uid {st.st_uid}); remove it")
        if st.st_mode & 0o077:
            raise TokenFileError(
                f"the token file {path} can be read by others (mode {st.st_mode & 0o777:04o}): "
                f"run  chmod 600 {path}  (or delete it to get a new token)"
            )
        token = fh.read().strip()
    if not _TOKEN_RE.match(token):
        raise TokenFileError(
            f"the token file {path} does not hold a token (16-512 printable characters without spaces); "
            "delete it to get a new one"
        )
    return token


def ensure_token(path: Path) -> str:
    """The token in ``path``, creating the file (mode 0600, a fresh random token) if absent.

    Safe against concurrent callers: the file appears complete or not at all, and the first
    writer wins (the others read its token).
    """
    try:
        return read_token(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(secrets.token_urlsafe(TOKEN_BYTES) + "\n")
        try:
            os.link(tmp, path)  # fails if another caller got there first: then use theirs
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)
    return read_token(path)
