"""The notebook's end of the cluster-side plot helpers (``hail_emr_lab/remote/plots.py``).

They are installed in the session as the module object ``_hail_emr_lab_plots`` by
:func:`hail_emr_lab.remote.bootstrap_code`, the one installer of remote code. Small answers
come back through Livy's ``%json`` magic; file chunks as the statement's text output (a JSON
header and the bytes, both base64, one space between), which every hop passes on as one string.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

import pybase64

from ..remote import PLOTS_NAMESPACE, bootstrap_code
from .errors import PlotError

NS = PLOTS_NAMESPACE


class RemoteHelpers:
    """Calls the plot helpers in one Livy session (a :class:`hail_emr_lab.livy.LivySession`)."""

    def __init__(self, session: Any, plots_dir: str):
        self.session = session
        self.plots_dir = plots_dir

    def setup_code(self) -> str:
        """Run once in the session (after ``hl.init``): the helpers, ``PLOTS_DIR``, ``save_plot``,
        and ``show()`` routed to the plot directory."""
        return (
            bootstrap_code(NS)
            + f"PLOTS_DIR = {NS}.init({self.plots_dir!r})\n"
            + f"save_plot = {NS}.save_plot\n"
            + f"{NS}.route_shows()\n"  # hl.plot.show, bokeh's show, plt.show() save here
        )

    @staticmethod
    def json_code(call: str) -> str:
        """A statement answering ``NS.<call>`` as JSON (Livy's ``%json`` magic)."""
        return f"_hel_plots_out = {NS}.{call}\n%json _hel_plots_out"

    @staticmethod
    def text_code(call: str) -> str:
        """A statement printing ``NS.<call>`` (a chunk: base64 header, a space, base64 bytes)."""
        return f"print({NS}.{call})"

    @staticmethod
    def missing(output: Any) -> bool:
        """True if the statement failed because the session has no helpers (a new session)."""
        return not output.ok and output.ename == "NameError" and NS in (output.evalue or "")

    def run(self, code: str, what: str) -> Any:
        """Run ``code``, installing the helpers first if the session lacks them; its output."""
        output = self.session.run(code)
        if self.missing(output):
            self.session.run(self.setup_code(), check=True)
            output = self.session.run(code)
        if not output.ok:
            raise PlotError(f"{what} failed on the cluster: {output.error_text}")
        return output

    def call(self, call: str, what: str) -> Any:
        """The JSON answer of ``NS.<call>``; :class:`PlotError` if it fails or answers no JSON."""
        return self.json_result(self.run(self.json_code(call), what), what)

    @staticmethod
    def json_result(output: Any, what: str) -> Any:
        if not output.ok:
            raise PlotError(f"{what} failed on the cluster: {output.error_text}")
        result = output.json
        if result is None:
            raise PlotError(f"{what}: the session answered without JSON output ({output.text[:200]!r})")
        return result

    @staticmethod
    def chunk_result(output: Any, what: str) -> tuple[dict[str, Any], bytes]:
        """(header, bytes) of a chunk statement's text output (``<base64 JSON header> <base64
        bytes>``, see ``_chunk_text`` in ``hail_emr_lab/remote/plots.py``), inflated when it came
        compressed. :class:`PlotError` when the text is not such a chunk (cut, not base64, or
        fewer or more bytes than its header says)."""
        if not output.ok:
            raise PlotError(f"{what} failed on the cluster: {output.error_text}")
        head, _, body = (output.text or "").partition(" ")
        try:
            header = json.loads(pybase64.b64decode(head, validate=True))
            # pybase64 (SIMD): ~20x the standard library's speed, the same strict checks
            data = pybase64.b64decode(body, validate=True)
            if header.get("encoding") == "zlib":
                data = zlib.decompress(data)
            elif header.get("encoding") != "raw":
                raise ValueError(f"unknown encoding {header.get('encoding')!r}")
        except (ValueError, zlib.error, AttributeError) as exc:
            raise PlotError(f"{what}: the session's answer is not a plot chunk ({exc}; {head[:200]!r})") from None
        if len(data) != int(header.get("length", -1)):
            raise PlotError(f"{what}: got {len(data)} bytes, the cluster sent {header.get('length')}")
        return header, data
