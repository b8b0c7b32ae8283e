"""Make bokeh's standalone HTML render without internet.

``bokeh.io.save`` / ``file_html(..., CDN)`` write ``<script src="https://cdn.bokeh.org/bokeh/
release/bokeh-X.Y.Z.min.js">`` tags. Notebook instances often have no internet, and the plot
is shown in a sandboxed iframe anyway, so we replace each tag by the same BokehJS bundle of
the same version, inlined: from the local bokeh package when its version matches, else from
a cache under ``~/.hail-emr-lab/bokehjs/<version>/`` that the plot manager fills once from
the cluster's own bokeh installation (:meth:`hail_emr_lab.plots.puller.SessionPuller.bokehjs`).
"""

from __future__ import annotations

import base64
import functools
import gzip
import os
import re
import tempfile
from pathlib import Path
from typing import Callable, Optional

#: BokehJS bundles published on the CDN (the only file names we ever read or write).
BUNDLES = ("bokeh", "bokeh-widgets", "bokeh-tables", "bokeh-gl", "bokeh-mathjax", "bokeh-api")
VERSION_RE = re.compile(r"^\d{1,3}\.\d{1,3}\.\d{1,3}(?:[.-]?(?:dev|rc)\.?\d{1,4})?$")
CDN_SCRIPT_RE = re.compile(
    r"""<script\b[^>]*?\bsrc\s*=\s*["']?https?://cdn\.bokeh\.org/bokeh/(?:release|dev)/"""
    r"""(?P<bundle>bokeh(?:-[a-z]+)?)-(?P<version>[0-9][0-9A-Za-z.\-]*?)(?:\.min)?\.js["']?[^>]*>\s*</script\s*>""",
    re.IGNORECASE,
)

Fetcher = Callable[[str, str], bytes]


def cache_root() -> Path:
    """Where BokehJS fetched from clusters is kept (``HAIL_EMR_LAB_BOKEHJS_DIR`` overrides)."""
    return Path(os.environ.get("HAIL_EMR_LAB_BOKEHJS_DIR") or "~/.hail-emr-lab/bokehjs").expanduser()


def cdn_bundles(html: str) -> list[tuple[str, str]]:
    """The (bundle, version) pairs an HTML page loads from bokeh's CDN, in order."""
    found = []
    for m in CDN_SCRIPT_RE.finditer(html):
        pair = (m.group("bundle").lower(), m.group("version"))
        if pair not in found:
            found.append(pair)
    return found


def _valid(bundle: str, version: str) -> bool:
    return bundle in BUNDLES and bool(VERSION_RE.match(version))


class BokehJS:
    """Finds BokehJS bundles by version: local package, then the cache, then ``fetch``."""

    def __init__(self, cache_dir: Optional[Path] = None, fetch: Optional[Fetcher] = None, use_package: bool = True):
        self.cache_dir = Path(cache_dir) if cache_dir else cache_root()
        self.fetch = fetch
        self.use_package = use_package

    def _package_file(self, bundle: str, version: str) -> Optional[Path]:
        if not self.use_package:
            return None
        try:
            import bokeh
        except ImportError:
            return None
        if bokeh.__version__ != version:
            return None
        path = Path(bokeh.__file__).parent / "server" / "static" / "js" / f"{bundle}.min.js"
        return path if path.is_file() else None

    def cached_path(self, bundle: str, version: str) -> Path:
        """The cache file for ``bundle`` at ``version`` (may not exist)."""
        if not _valid(bundle, version):
            raise ValueError(f"not a BokehJS bundle/version: {bundle!r} {version!r}")
        return self.cache_dir / version / f"{bundle}.min.js"

    def available(self, bundle: str, version: str) -> bool:
        """True if the bundle can be inlined without asking the cluster."""
        if not _valid(bundle, version):
            return False
        return self._package_file(bundle, version) is not None or self.cached_path(bundle, version).is_file()

    def get(self, bundle: str, version: str) -> Optional[bytes]:
        """The bundle's bytes, fetching (and caching) it with ``fetch`` if needed; None if unavailable."""
        if not _valid(bundle, version):
            return None
        local = self._package_file(bundle, version)
        if local is not None:
            return local.read_bytes()
        cached = self.cached_path(bundle, version)
        if cached.is_file():
            return cached.read_bytes()
        if self.fetch is None:
            return None
        data = self.fetch(bundle, version)
        cached.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cached.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, cached)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return data

    def ensure(self, html: str) -> list[tuple[str, str]]:
        """Make every bundle ``html`` needs available (fetching once); returns the missing ones."""
        missing = []
        for bundle, version in cdn_bundles(html):
            if self.available(bundle, version):
                continue
            try:
                if self.get(bundle, version) is None:
                    missing.append((bundle, version))
            except Exception as exc:  # noqa: BLE001 - reported to the user by the caller
                missing.append((bundle, version))
                self.last_error = exc
        return missing

    last_error: Optional[Exception] = None


def _script_tag(bundle: str, version: str, js: bytes) -> str:
    text = js.decode("utf-8", errors="replace")
    lowered = text.lower()
    if "</script" in lowered or "<!--" in lowered:
        # Such text could end or confuse an inline <script>; a data: URL needs no escaping.
        b64 = base64.b64encode(js).decode("ascii")
        return f'<script data-bokehjs="{bundle}-{version}" src="data:text/javascript;base64,{b64}"></script>'
    return f'<script data-bokehjs="{bundle}-{version}">\n{text}\n</script>'


def inline_bokehjs(html: str, provider: Optional[BokehJS] = None) -> tuple[str, list[tuple[str, str]]]:
    """``html`` with bokeh CDN script tags replaced by inlined BokehJS; also the bundles left on the CDN."""
    provider = provider or BokehJS()
    missing: list[tuple[str, str]] = []
    memo: dict[tuple[str, str], Optional[str]] = {}

    def replace(m: re.Match) -> str:
        pair = (m.group("bundle").lower(), m.group("version"))
        if pair not in memo:
            js = provider.get(*pair)
            memo[pair] = _script_tag(pair[0], pair[1], js) if js is not None else None
        if memo[pair] is None:
            if pair not in missing:
                missing.append(pair)
            return m.group(0)
        return memo[pair]

    return CDN_SCRIPT_RE.sub(replace, html), missing


# Inline scripts that run as the page is parsed (bokeh's own: set_log_level, the embed call).
_INLINE_SCRIPT_RE = re.compile(
    r"""<script\b(?P<attrs>(?:(?!\bsrc\s*=)[^>])*?)>(?P<body>.*?)</script\s*>""", re.IGNORECASE | re.DOTALL
)
_JS_TYPE_RE = re.compile(r"""\btype\s*=\s*["']?(?P<type>[^"'\s>]+)""", re.IGNORECASE)
_JS_TYPES = ("text/javascript", "application/javascript", "module")
GZIP_TYPE = "application/x-hail-emr-lab-gzip-js"
DEFERRED_TYPE = "application/x-hail-emr-lab-deferred-js"
#: Unpacks the gzipped bundles in order, then runs the page's deferred inline scripts in order.
_LOADER = (
    "<script>(async () => {"
    "const run = (code) => { const s = document.createElement('script'); s.textContent = code;"
    " document.head.appendChild(s); };"
    "try {"
    f"for (const el of document.querySelectorAll('script[type=\"{GZIP_TYPE}\"]')) {{"
    " const bytes = Uint8Array.from(atob(el.textContent.trim()), (c) => c.charCodeAt(0));"
    " const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'));"
    " run(await new Response(stream).text()); }"
    f"for (const el of document.querySelectorAll('script[type=\"{DEFERRED_TYPE}\"]')) run(el.textContent);"
    "} catch (e) { document.body.insertAdjacentText('afterbegin', 'This plot could not be shown: ' + e); }"
    "})();</script>"
)


@functools.lru_cache(maxsize=8)
def _gzip_base64(js: bytes) -> str:
    """A bundle gzipped and base64'd, once per bundle (~70 ms each; a notebook shows many plots)."""
    return base64.b64encode(gzip.compress(js, 9, mtime=0)).decode("ascii")


def compressed_bokehjs(html: str, provider: Optional[BokehJS] = None) -> tuple[str, list[tuple[str, str]]]:
    """Like :func:`inline_bokehjs`, a third of the size: for plots saved inside notebooks.

    Each bundle is inlined gzipped (base64) and unpacked by the browser (``DecompressionStream``);
    the page's inline scripts, which need BokehJS, are deferred until it is loaded. When any
    bundle is not available offline the page is left to :func:`inline_bokehjs` (CDN and inlined
    scripts could not be ordered).
    """
    provider = provider or BokehJS()
    pairs = cdn_bundles(html)
    bundles = {pair: provider.get(*pair) for pair in pairs}
    if not pairs or any(js is None for js in bundles.values()):
        return inline_bokehjs(html, provider)

    def defer(m: re.Match) -> str:
        kind = _JS_TYPE_RE.search(m.group("attrs"))
        if kind is not None and kind.group("type").lower() not in _JS_TYPES:
            return m.group(0)  # data (bokeh's docs JSON), not code
        attrs = _JS_TYPE_RE.sub("", m.group("attrs"))
        return f'<script type="{DEFERRED_TYPE}"{attrs}>{m.group("body")}</script>'

    def pack(m: re.Match) -> str:
        pair = (m.group("bundle").lower(), m.group("version"))
        return f'<script type="{GZIP_TYPE}" data-bokehjs="{pair[0]}-{pair[1]}">{_gzip_base64(bundles[pair])}</script>'

    text = CDN_SCRIPT_RE.sub(pack, _INLINE_SCRIPT_RE.sub(defer, html))
    end = text.lower().rfind("</body")
    text = text[:end] + _LOADER + text[end:] if end >= 0 else text + _LOADER
    return text, []
