"""Moving one plot file's bytes from the cluster: over the Livy session, or by HTTP.

Over the session (works on every cluster, no open port) the file comes in chunks of
:data:`CHUNK` bytes, each one statement whose text output is base64, zlib-compressed on the
cluster when that pays (see ``hail_emr_lab/remote/plots.py``); :data:`PIPELINE` statements
are queued at once, so Livy reads the next chunk while the notebook takes the last one. By
HTTP (``--plots-url``, clusters that serve the plot directory like the Quick Start) it is a
plain GET. Either way the caller verifies the copy against the cluster's sha256.
"""

from __future__ import annotations

from typing import Any, Iterator, Optional
from urllib.parse import quote

from ..livy.protocol import RSC_DEFAULTS
from .errors import Changed, PlotError
from .helpers import RemoteHelpers

#: The largest chunk, in raw bytes: 3/8 of Livy's limit on one statement's output
#: (``livy.rsc.rpc.max.size``, 50 MB by default), so even incompressible bytes in base64 (4/3 as
#: many characters) stay at half the limit.
MAX_CHUNK = RSC_DEFAULTS["livy.rsc.rpc.max.size"] * 3 // 8
#: Raw bytes per chunk statement. Measured with benchmarks/bench_plots.py on the embedded server:
#: 2 MiB chunks with 6 queued pull a 9.7 MB plot ~1.9x faster than one statement of MAX_CHUNK
#: (the cluster encodes one chunk while Livy relays another and the notebook decodes a third),
#: and Livy keeps the outputs of a session's last 100 statements (``livy.rsc.retained-statements``)
#: in its memory, which small chunks keep small. Measured again once the embedded server stopped
#: re-encoding outputs (one run, loaded 2-core machine): 4 MiB x 3 ties with 2 MiB x 6, while
#: 8 MiB x 2 and 16 MiB x 1 are ~1.4x slower (less overlap between the three processes).
CHUNK = min(2 * 1024 * 1024, MAX_CHUNK)
#: Chunk statements queued at once (Livy runs a session's statements in order).
PIPELINE = 6


class SessionPuller:
    """Chunks of plot files (and of the cluster's BokehJS) through the helpers' session."""

    def __init__(self, helpers: RemoteHelpers, chunk_size: int = CHUNK, pipeline: int = PIPELINE):
        if not 0 < chunk_size <= MAX_CHUNK:
            raise ValueError(f"chunk_size must be 1 to {MAX_CHUNK} bytes (Livy's output limit), not {chunk_size}")
        self.helpers = helpers
        self.chunk_size = chunk_size
        self.pipeline = pipeline

    def first(self, name: str) -> tuple[dict[str, Any], bytes]:
        """The header (``size``, ``mtime_ns``, ``sha256``) and the first chunk of plot ``name``."""
        what = f"reading plot {name!r}"
        return self.helpers.chunk_result(self.helpers.run(self._read(name, 0), what), what)

    def rest(self, name: str, header: dict[str, Any]) -> Iterator[bytes]:
        """The chunks after the first; :class:`Changed` if the file changes meanwhile.

        The first :data:`PIPELINE` statements are queued now, not when iteration starts, so the
        cluster reads the next chunks while the caller still writes the first.
        """
        size, mtime_ns = int(header["size"]), header["mtime_ns"]
        offsets = list(range(self.chunk_size, size, self.chunk_size))
        session = self.helpers.session
        queue = [session.submit(self._read(name, offsets.pop(0))) for _ in range(min(self.pipeline, len(offsets)))]
        return self._take(name, size, mtime_ns, offsets, queue)

    def _take(self, name: str, size: int, mtime_ns: Any, offsets: list[int], queue: list[Any]) -> Iterator[bytes]:
        session = self.helpers.session
        while queue:
            statement = session.wait(queue.pop(0))
            if offsets:
                queue.append(session.submit(self._read(name, offsets.pop(0))))
            if statement.output is None:
                raise PlotError(f"reading {name!r}: statement {statement.id} ended without output")
            part, data = self.helpers.chunk_result(statement.output, f"reading plot {name!r}")
            if int(part["size"]) != size or part["mtime_ns"] != mtime_ns:
                for pending in queue:
                    session.wait(pending)  # drain: the session stays in order for the retry
                raise Changed(f"{name!r}: size or modification time changed")
            yield data

    def _read(self, name: str, offset: int) -> str:
        return self.helpers.text_code(f"read({name!r}, {int(offset)}, {int(self.chunk_size)})")

    def bokehjs(self, bundle: str, version: str) -> bytes:
        """The cluster's BokehJS ``bundle`` at ``version`` (:class:`PlotError` if it has another)."""
        parts, offset = [], 0
        what = f"reading BokehJS {bundle}-{version} from the cluster"
        while True:
            code = self.helpers.text_code(
                f"read_bokehjs({bundle!r}, {version!r}, {offset}, {int(self.chunk_size)})"
            )
            header, data = self.helpers.chunk_result(self.helpers.run(code, what), what)
            parts.append(data)
            offset += len(data)
            if not data or offset >= int(header["size"]):
                return b"".join(parts)


class HttpPuller:
    """GET ``<base_url><name>`` from a web server serving the plot directory."""

    def __init__(self, base_url: str):
        self.base_url = base_url.rstrip("/") + "/"
        self._http: Optional[Any] = None

    def chunks(self, name: str) -> Iterator[bytes]:
        """The file's bytes in 1 MiB pieces; :class:`PlotError` saying what to check if it fails."""
        import requests

        url = self.base_url + "/".join(quote(part) for part in name.split("/"))
        if self._http is None:
            self._http = requests.Session()
        try:
            response = self._http.get(url, stream=True, timeout=(5, 60), allow_redirects=False)
        except requests.RequestException as exc:
            raise PlotError(
                f"could not fetch {url}: {exc.__class__.__name__}. Is port 80 open from this notebook to the "
                "master? Without --plots-url plots are pulled over the Livy session instead."
            ) from None
        with response:
            if response.status_code != 200:
                raise PlotError(
                    f"GET {url} answered HTTP {response.status_code}: is {self.base_url} the plot directory?"
                )
            yield from response.iter_content(1 << 20)
