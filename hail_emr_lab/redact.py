"""Credentials out of what we show: the ``user:password@`` part of URLs.

One helper for every surface that shows or logs a URL (the connect status line, ``%hail info``,
Livy client errors, ``repr`` of a session, the sidebar's error texts, lifecycle refusals).
A URL may carry basic-auth credentials in its userinfo (RFC 3986, section 3.2.1); they are
replaced by ``***`` so the reader still sees that credentials were given. Standard library only:
the configuration module imports this.
"""

from __future__ import annotations

import re
from typing import Any, Optional
from urllib.parse import unquote, urlsplit, urlunsplit

#: ``scheme://`` then everything up to the last ``@`` before the path (the userinfo).
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s'\"<>@]*(?:@[^/\s'\"<>@]*)*@")
#: For http(s), where basic-auth credentials are sent, a password may hold anything but
#: whitespace (quotes, ``/``, ``<``...: ``split_userinfo`` accepts them): up to the last ``@`` of
#: the word. A path holding an ``@`` is masked too: shown less, never a secret shown. (For
#: structured data, redact each string: :func:`redact_values`, not its JSON text.)
_HTTP_USERINFO = re.compile(r"(?i)\b(https?://)\S*@")
MASK = "***"


def redact_text(text: str) -> str:
    """``text`` with the userinfo of every URL in it replaced by ``***``.

    Works on free text (error messages): ``"at http://u:pw@h:1/x"`` becomes
    ``"at http://***@h:1/x"``; whitespace ends a URL there (a surface holding one URL uses
    :func:`redact_url`, which also masks a password with spaces). Text without credentials is
    returned unchanged.
    """
    if "@" not in text:
        return text
    text = _HTTP_USERINFO.sub(lambda m: m.group(1) + MASK + "@", text)
    return _USERINFO.sub(lambda m: m.group(1) + MASK + "@", text)


def redact_values(data: Any) -> Any:
    """``data`` (JSON-like: dicts, lists, strings...) with :func:`redact_text` applied to every
    string in it, keys included; numbers, booleans and None are kept, anything else becomes its
    redacted ``str`` (as ``json.dumps(default=str)`` would show it)."""
    if data is None or isinstance(data, (bool, int, float)):
        return data
    if isinstance(data, dict):
        return {redact_values(k): redact_values(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [redact_values(v) for v in data]
    return redact_text(str(data))


def redact_url(url: Optional[str]) -> Optional[str]:
    """``url`` with its ``user:password@`` replaced by ``***@`` (None stays None).

    Also for a URL typed without its scheme (``user:pw@host:8998``), as a malformed-URL
    message would echo it.
    """
    if url is None:
        return None
    scheme, sep, rest = str(url).partition("://")
    if sep and "@" in rest:  # one URL: whatever precedes its last "@" may be the password
        return f"{scheme}://{MASK}@{rest.rpartition('@')[2]}"
    text = redact_text(str(url))
    if "://" not in text and "@" in text.split("/", 1)[0]:
        text = MASK + "@" + text.split("/", 1)[0].rpartition("@")[2] + text[len(text.split("/", 1)[0]):]
    return text


def split_userinfo(url: str) -> tuple[str, Optional[tuple[str, str]]]:
    """``(url without userinfo, (user, password) or None)``; percent-escapes are decoded.

    A client given ``http://alice:pw@host:8998`` keeps only ``http://host:8998`` and sends the
    credentials as HTTP basic auth, as ``requests`` would, so the URL it shows holds no secret.
    """
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    bare = urlunsplit((parts.scheme, hostport, parts.path, parts.query, parts.fragment))
    return bare, (unquote(user), unquote(password))


def dataclass_repr(obj: Any, hidden: tuple[str, ...] = ("password",)) -> str:
    """``repr`` of dataclass instance ``obj`` as the generated one, with the fields named in
    ``hidden`` shown as ``***`` when set and every URL's userinfo masked: for objects a notebook
    may display (the kernel's context, the connect options)."""
    import dataclasses

    shown = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        shown.append(f"{f.name}={MASK if f.name in hidden and value else value!r}")
    return redact_text(f"{type(obj).__name__}({', '.join(shown)})")
