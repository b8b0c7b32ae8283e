"""Livy client round trips: hail-emr-lab's client vs sparkmagic's, side by side.

One run, one embedded Livy server, one session shared by both clients (statements run one
at a time, so they do not disturb each other); runs alternate between the clients so that
drift (JIT, caches, machine load) hits both equally.

    .venv/bin/python benchmarks/bench_livy.py [--runs 25]

Prints a Markdown table and writes benchmarks/results/livy.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import date
from pathlib import Path

from benchutil import machine

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

CASES = {
    "trivial statement (`1+1`)": "1+1",
    "1.0 s statement (`time.sleep(1.0)`)": "import time; time.sleep(1.0)",
}
TARGETS = {"trivial statement (`1+1`)": 0.4, "1.0 s statement (`time.sleep(1.0)`)": 0.9}


def sparkmagic_runner(url: str, session_id: int):
    """A function running code through sparkmagic's own Livy client classes."""
    import sparkmagic.utils.configuration as conf
    from hdijupyterutils.ipythondisplay import IpythonDisplay
    from sparkmagic.livyclientlib.command import Command
    from sparkmagic.livyclientlib.endpoint import Endpoint
    from sparkmagic.livyclientlib.livyreliablehttpclient import LivyReliableHttpClient
    from sparkmagic.livyclientlib.livysession import LivySession as SmSession

    # Livy's CSRF header, required by the embedded server: sparkmagic sends it when configured.
    conf.override(conf.custom_headers.__name__, {"X-Requested-By": "sparkmagic"})
    endpoint = Endpoint(url, None)  # what sparkmagic itself uses for auth "None"
    http = LivyReliableHttpClient.from_endpoint(endpoint)
    session = SmSession(http, {"kind": "pyspark"}, IpythonDisplay(), session_id=session_id)

    def run(code: str) -> str:
        ok, out, _mime = Command(code).execute(session)
        if not ok:
            raise RuntimeError(out)
        return out

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=25)
    args = parser.parse_args()

    from hail_emr_lab.embedded.server import EmbeddedLivy
    from hail_emr_lab.livy import LivyClient, LivySession

    server = EmbeddedLivy(host="127.0.0.1", port=0, max_sessions=2)
    server.start()
    try:
        client = LivyClient(server.url)
        ours = LivySession.create(client, name="bench-livy")
        ours.wait_ready(timeout=300)
        theirs = sparkmagic_runner(server.url, ours.id)
        for _ in range(3):  # warm up both paths
            ours.run("1+1")
            theirs("1+1")
        rows = []
        for label, code in CASES.items():
            times: dict[str, list[float]] = {"hail-emr-lab": [], "sparkmagic": []}
            for _ in range(args.runs):
                for name, fn in (
                    ("hail-emr-lab", lambda c=code: ours.run(c)),
                    ("sparkmagic", lambda c=code: theirs(c)),
                ):
                    t0 = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - t0)
            med_ours = statistics.median(times["hail-emr-lab"])
            med_theirs = statistics.median(times["sparkmagic"])
            rows.append(
                {
                    "case": label,
                    "runs": args.runs,
                    "hail_emr_lab_median_s": med_ours,
                    "sparkmagic_median_s": med_theirs,
                    "ratio": med_ours / med_theirs,
                    "target_ratio": TARGETS[label],
                }
            )
        ours.delete()
    finally:
        server.stop()

    print(f"\nLivy round trips, {date.today()}, {machine()}, {args.runs} runs each (medians)\n")
    print("| case | hail-emr-lab | sparkmagic | ratio | target |")
    print("|---|---|---|---|---|")
    for r in rows:
        ok = "met" if r["ratio"] <= r["target_ratio"] else "MISSED"
        print(
            f"| {r['case']} | {r['hail_emr_lab_median_s'] * 1000:.1f} ms | {r['sparkmagic_median_s'] * 1000:.1f} ms "
            f"| {r['ratio']:.2f}x | <= {r['target_ratio']}x ({ok}) |"
        )
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "livy.json").write_text(
        json.dumps({"date": str(date.today()), "machine": machine(), "rows": rows}, indent=2)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
