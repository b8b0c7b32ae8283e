"""Plot pull: a 10 MB bokeh HTML over the Livy session vs a plain HTTP GET of the same file.

The HTTP side is what the Quick Start did (``requests.get("http://<master>/plots/x.html")``
against the master's web server), here ``python -m http.server`` serving the plot directory
on loopback. The session side is ``PlotManager.pull`` (chunks of ``puller.CHUNK`` bytes as
base64 text output, zlib-compressed on the cluster when a sample shows it pays, ``puller.PIPELINE``
statements queued, sha256 verified, written atomically and indexed). Both run in one go against one embedded Livy
server, alternating, so machine load hits both alike. Also measured: the per-cell cost of
looking for new plots when there are none, and where a session pull's time goes: the driver's
share is the statements' own run time (Livy's ``started`` to ``completed``: read, encode, hand
the output to Livy), summed per pull.

The embedded Livy runs in a process of its own (``hail-emr-lab local-livy``), as Livy does on
EMR: in the benchmark's own process its threads would share one interpreter lock with the
notebook's decoding (``--livy in-process`` measures that too).

    .venv/bin/python benchmarks/bench_plots.py [--runs 5] [--mb 10] [--livy process|in-process]

Prints a Markdown table and writes benchmarks/results/plots.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any, Optional

import requests
from benchutil import machine  # also puts tests/ on sys.path for support
from support.net import free_port

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

MAKE_PLOT = """
import numpy as np
from bokeh.plotting import figure
rng = np.random.default_rng(1)
n = {n}
fig = figure(width=600, height=600, output_backend="webgl")
fig.scatter(rng.normal(size=n), rng.normal(size=n), size=2)
save_plot(fig, "bench-10mb")
import os
os.path.getsize(os.path.join(PLOTS_DIR, "bench-10mb.html"))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--mb", type=float, default=10.0, help="size of the bokeh HTML (approximate)")
    parser.add_argument(
        "--livy", choices=("process", "in-process"), default="process", help="where the embedded Livy runs"
    )
    args = parser.parse_args()

    from hail_emr_lab.embedded.server import EmbeddedLivy
    from hail_emr_lab.livy import LivyClient, LivySession
    from hail_emr_lab.plots.manager import PlotManager

    work = Path(tempfile.mkdtemp(prefix="bench-plots-"))
    plots_dir = str(work / "remote")
    server = LivyProcess(plots_dir) if args.livy == "process" else EmbeddedLivy(
        host="127.0.0.1", port=0, plots_dir=plots_dir, max_sessions=1
    )
    server.start()
    port = free_port()
    http = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", plots_dir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = LivyClient(server.url)
        session = LivySession.create(client, name="bench-plots")
        session.wait_ready(timeout=300)
        mgr = PlotManager(session, work / "plots", "/plots", warn=lambda m: print("warning:", m, file=sys.stderr))
        session.run(mgr.setup_code(), check=True)
        # bokeh stores the two float64 columns base64-encoded: ~21.3 bytes of HTML per point.
        size = int(session.run(MAKE_PLOT.format(n=int(args.mb * 1e6 / 21.3)), check=True).text.strip())
        remote = Path(plots_dir) / "bench-10mb.html"
        want = hashlib.sha256(remote.read_bytes()).hexdigest()
        url = f"http://127.0.0.1:{port}/bench-10mb.html"
        for _ in range(50):
            try:
                requests.get(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        http_session = requests.Session()

        ran: list[Any] = []  # the statements each pull waited for
        wait = session.wait
        session.wait = lambda statement, **kw: ran.append(wait(statement, **kw)) or ran[-1]  # type: ignore[method-assign]
        driver_ms: list[float] = []

        def via_session() -> None:
            del ran[:]
            plot = mgr.pull("bench-10mb.html")
            assert plot.sha256 == want
            driver_ms.append(sum(st.completed - st.started for st in ran if st.started and st.completed))

        def via_http() -> None:
            body = http_session.get(url, timeout=60).content
            assert hashlib.sha256(body).hexdigest() == want
            (work / "http-copy.html").write_bytes(body)

        def no_new_plots() -> None:
            assert mgr.after_cell() == []

        def pipelined_cell() -> None:
            cell = session.submit("x = 1")
            mgr.queue_scan()
            session.wait(cell)
            assert mgr.after_cell() == []

        def bare_cell() -> None:
            session.run("x = 1")

        cases = [
            ("pull over the Livy session (hail-emr-lab)", via_session),
            ("HTTP GET from the master's web server (Quick Start)", via_http),
            ("look for new plots after a cell, none new (separate statement)", no_new_plots),
            ("trivial cell + queued plot scan", pipelined_cell),
            ("trivial cell alone", bare_cell),
        ]
        for _, fn in cases:
            fn()  # warm up
        del driver_ms[:]
        times: dict[str, list[float]] = {label: [] for label, _ in cases}
        for _ in range(args.runs):
            for label, fn in cases:
                t0 = time.perf_counter()
                fn()
                times[label].append(time.perf_counter() - t0)
        session.delete()
    finally:
        http.terminate()
        http.wait(10)
        server.stop()

    rows = [
        {"case": label, "runs": args.runs, "median_s": statistics.median(ts), "all_s": ts}
        for label, ts in times.items()
    ]
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nPlot pull, {size / 1e6:.1f} MB bokeh HTML, {date.today()}, {machine()}, {args.runs} runs (medians)")
    print(f"load average (1/5/15 min) at the end: {load}\n")
    print("| case | median | throughput |")
    print("|---|---|---|")
    for r in rows[:2]:
        print(f"| {r['case']} | {r['median_s'] * 1000:.0f} ms | {size / 1e6 / r['median_s']:.0f} MB/s |")
    ratio = rows[1]["median_s"] / rows[0]["median_s"]
    # Each round pulls both ways back to back: the median of the rounds' own ratios holds still
    # when the machine's load drifts between rounds (other jobs on a shared machine).
    paired = statistics.median(h / s for s, h in zip(rows[0]["all_s"], rows[1]["all_s"]))
    for r in rows[2:]:
        print(f"| {r['case']} | {r['median_s'] * 1000:.1f} ms | - |")
    driver = statistics.median(driver_ms)
    print(f"\nsession throughput / HTTP throughput: {ratio:.2f}x (Livy {args.livy}; median of the rounds' ratios {paired:.2f}x)")
    print(
        f"session pull: {driver:.0f} ms of the {rows[0]['median_s'] * 1000:.0f} ms (medians) are the chunk statements "
        "running on the driver (read, encode, output to Livy); the rest is Livy relaying, polling, and the "
        "notebook's parse, decode and write"
    )
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "plots.json").write_text(
        json.dumps(
            {
                "date": str(date.today()),
                "machine": machine(),
                "load": load,
                "livy": args.livy,
                "bytes": size,
                "ratio": ratio,
                "paired_ratio": paired,
                "driver_ms_median": driver,
                "rows": rows,
            },
            indent=2,
        )
    )
    return 0


class LivyProcess:
    """``hail-emr-lab local-livy`` on a free loopback port, in its own process group."""

    def __init__(self, plots_dir: str) -> None:
        self.plots_dir = plots_dir
        self.url = f"http://127.0.0.1:{free_port()}"
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> None:
        port = self.url.rsplit(":", 1)[1]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hail_emr_lab.cli", "local-livy", "--port", port, "--plots-dir", self.plots_dir,
             "--max-sessions", "1"],
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hail-emr-lab local-livy exited with {self.proc.returncode}")
            try:
                requests.get(self.url + "/sessions", timeout=2)
                return
            except requests.ConnectionError:
                time.sleep(0.2)
        raise RuntimeError(f"hail-emr-lab local-livy did not answer at {self.url} within 120 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # it deletes its sessions (workers and JVMs) on the way out
            self.proc.wait(60)


if __name__ == "__main__":
    sys.exit(main())
