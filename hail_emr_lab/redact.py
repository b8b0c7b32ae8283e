"""Credentials out of what we show: the ``user:password@`` part of URLs.

One helper for every surface that shows or logs a URL (the connect status line, ``%hail info``,
Livy client errors, ``repr`` of a session, the sidebar's error texts, lifecycle refusals).
A URL may carry basic-auth credentials in its userinfo (RFC 3986, section 3.2.1); they are
replaced by ``***`` so the reader still sees that credentials were given. Standard library only:
the configuration module imports this.
"""

from __future__ import annotations

import re
from typing import Optional
from urllib.parse import unquote, urlsplit, urlunsplit

#: ``scheme://`` then everything up to the last ``@`` before the path (the userinfo).
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s'\"<>@]*(?:@[^/\s'\"<>@]*)*@")
MASK = "***"


def redact_text(text: str) -> str:
    """``text`` with the userinfo of every URL in it replaced by ``***``.

    Works on free text (error messages, JSON answers): ``"at http://u:pw@h:1/x"`` becomes
    ``"at http://***@h:1/x"``. Text without credentials is returned unchanged.
    """
    if "@" not in text:
        return text
    return _USERINFO.sub(lambda m: m.group(1) + MASK + "@", text)


def redact_url(url: Optional[str]) -> Optional[str]:
    """``url`` with its ``user:password@`` replaced by ``***@`` (None stays None).

    Also for a URL typed without its scheme (``user:pw@host:8998``), as a malformed-URL
    message would echo it.
    """
    if url is None:
        return None
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
