"""``%%hail`` vs sparkmagic's ``%%spark``, side by side in one IPython shell on one embedded Livy.

1. A trivial cell (``1+1``): median wall time over ``--runs`` runs of each magic, alternating.
2. Pulling 200,000 rows x 8 mixed columns into pandas: ``%%hail -o`` vs ``%%spark -o -n -1``;
   values and dtypes compared with the expected frame (built locally from the same formulas),
   peak extra resident memory of this process sampled during each pull.

    .venv/bin/python benchmarks/bench_magics.py [--runs 21] [--pull-runs 3]

Prints a Markdown table and writes benchmarks/results/magics.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchutil import private_magics_config, stop_magics

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
ROWS = 200_000

MAKE_FRAME = f"""
from pyspark.sql import functions as F
bigdf = spark.range({ROWS}).select(
    'id',
    (F.col('id') * 0.5).alias('x'),
    F.when(F.col('id') % 7 == 0, None).otherwise(F.col('id') * 3).alias('maybe'),
    F.concat(F.lit('name-'), F.col('id').cast('string')).alias('s'),
    (F.col('id') % 2 == 0).alias('even'),
    F.expr('date_add(date"2020-01-01", cast(id % 1000 as int))').alias('day'),
    F.expr('timestamp_seconds(1600000000 + id)').alias('ts'),
    (F.col('id') % 100).cast('int').alias('small'),
).cache()
bigdf.count()
"""


def expected_frame(session_tz: str):
    """The frame the remote code makes, built locally (the reference for values and dtypes)."""
    import datetime

    import numpy as np
    import pandas as pd

    ids = np.arange(ROWS, dtype="int64")
    maybe = pd.array(ids * 3, dtype="Int64")
    maybe[ids % 7 == 0] = pd.NA
    ts = pd.to_datetime(1600000000 + ids, unit="s").tz_localize("UTC").tz_convert(session_tz).tz_localize(None)
    return pd.DataFrame(
        {
            "id": ids,
            "x": ids * 0.5,
            "maybe": maybe,
            "s": pd.Series([f"name-{i}" for i in ids], dtype=object),
            "even": ids % 2 == 0,
            "day": pd.Series([datetime.date(2020, 1, 1) + datetime.timedelta(days=int(i % 1000)) for i in ids],
                             dtype=object),
            "ts": ts.astype("datetime64[ns]"),
            "small": (ids % 100).astype("int32"),
        }
    )


def compare(got, exp) -> dict:
    """Which columns have the expected dtype, and which the expected values."""
    import pandas as pd

    dtypes_ok, values_ok = {}, {}
    for col in exp.columns:
        if col not in got.columns:
            dtypes_ok[col] = values_ok[col] = False
            continue
        dtypes_ok[col] = str(got[col].dtype) == str(exp[col].dtype)
        try:
            pd.testing.assert_series_equal(got[col].reset_index(drop=True), exp[col], check_dtype=False,
                                           check_names=False)
            values_ok[col] = True
        except (AssertionError, TypeError, ValueError):
            values_ok[col] = False
    return {"dtypes_ok": dtypes_ok, "values_ok": values_ok,
            "dtypes": {c: str(got[c].dtype) for c in got.columns}}


class RssPeak:
    """Samples this process's resident memory every 5 ms; ``peak`` is the most above the start."""

    def __enter__(self):
        self.base = self._rss()
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _run(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._rss() - self.base)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss() - self.base)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--pull-runs", type=int, default=3)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-magics-"))
    private_magics_config(tmp)

    from IPython.testing.globalipapp import start_ipython
    from IPython.utils.capture import capture_output

    from hail_emr_lab.embedded.server import EmbeddedLivy

    server = EmbeddedLivy(host="127.0.0.1", port=0, plots_dir=str(tmp / "plots"), max_sessions=3)
    server.start()
    ip = start_ipython()
    try:
        ip.run_line_magic("load_ext", "hail_emr_lab")
        ip.run_line_magic("load_ext", "sparkmagic.magics")
        t0 = time.monotonic()
        ip.run_line_magic("hail", f"connect --url {server.url} --name bench-hail --no-plots --wait")
        hail_start = time.monotonic() - t0
        t0 = time.monotonic()
        with capture_output():
            ip.run_line_magic("spark", f"add -s bench -l python -u {server.url}")
        # Same state on both sides: sparkmagic users on EMR run hl.init(sc) themselves.
        with capture_output():
            ip.run_cell_magic("spark", "-s bench", "import hail as hl\nhl.init(sc)")
        spark_start = time.monotonic() - t0
        print(f"sessions ready incl. hl.init: hail {hail_start:.1f} s, sparkmagic {spark_start:.1f} s", flush=True)

        # 1. trivial cell, alternating so load drift hits both equally
        hail_t, spark_t = [], []
        with capture_output() as cap:
            for _ in range(2):  # warm-up
                ip.run_cell_magic("hail", "", "1+1")
                ip.run_cell_magic("spark", "-s bench", "1+1")
            for _ in range(args.runs):
                t = time.perf_counter()
                ip.run_cell_magic("hail", "", "1+1")
                hail_t.append(time.perf_counter() - t)
                t = time.perf_counter()
                ip.run_cell_magic("spark", "-s bench", "1+1")
                spark_t.append(time.perf_counter() - t)
        assert "2" in cap.stdout, cap.stdout[-500:]

        # 2. pull 200k x 8
        with capture_output():
            ip.run_cell_magic("hail", "-q", MAKE_FRAME)
            ip.run_cell_magic("spark", "-s bench", MAKE_FRAME)
            ip.run_cell_magic("hail", "-q -o _tz", "_tz = spark.conf.get('spark.sql.session.timeZone')")
        exp = expected_frame(ip.user_ns["_tz"])
        hail_pull, spark_pull, hail_mem, spark_mem = [], [], [], []
        for _ in range(args.pull_runs):
            ip.user_ns.pop("bigdf", None)
            with capture_output(), RssPeak() as mem:
                t = time.perf_counter()
                ip.run_cell_magic("hail", "-o bigdf", "bigdf")
                hail_pull.append(time.perf_counter() - t)
            hail_mem.append(mem.peak)
            hail_df = ip.user_ns.pop("bigdf")
            with capture_output(), RssPeak() as mem:
                t = time.perf_counter()
                ip.run_cell_magic("spark", "-s bench -o bigdf -n -1", "bigdf")
                spark_pull.append(time.perf_counter() - t)
            spark_mem.append(mem.peak)
            spark_df = ip.user_ns.pop("bigdf")
        hail_cmp, spark_cmp = compare(hail_df, exp), compare(spark_df, exp)
        assert len(hail_df) == ROWS and all(hail_cmp["dtypes_ok"].values()) and all(hail_cmp["values_ok"].values()), \
            hail_cmp
    finally:
        stop_magics(ip, server)

    med = statistics.median
    trivial_ratio = med(hail_t) / med(spark_t)
    pull_speedup = med(spark_pull) / med(hail_pull)
    bad_sm = [c for c in exp.columns if not (spark_cmp["dtypes_ok"][c] and spark_cmp["values_ok"][c])]
    rows = [
        (f"trivial cell `1+1` (median of {args.runs})", f"{med(hail_t) * 1000:.0f} ms",
         f"{med(spark_t) * 1000:.0f} ms", f"{trivial_ratio:.2f}x the time", "<= 0.4x",
         "met" if trivial_ratio <= 0.4 else "NOT met"),
        (f"pull {ROWS:,} rows x 8 cols (median of {args.pull_runs})", f"{med(hail_pull):.2f} s",
         f"{med(spark_pull):.2f} s", f"{pull_speedup:.1f}x faster", ">= 5x", "met" if pull_speedup >= 5 else "NOT met"),
        ("peak extra local memory during the pull", f"{max(hail_mem) / 1e6:.0f} MB", f"{max(spark_mem) / 1e6:.0f} MB",
         "", "", ""),
        ("columns with exact values and dtypes", "8 / 8", f"{8 - len(bad_sm)} / 8 (wrong: {', '.join(bad_sm) or '-'})",
         "", "", ""),
    ]
    print()
    print("| case | `%%hail` | sparkmagic `%%spark` | ratio | target | |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()
    print("sparkmagic dtypes:", spark_cmp["dtypes"])
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "magics.json").write_text(json.dumps({
        "trivial_hail_s": hail_t, "trivial_sparkmagic_s": spark_t, "pull_hail_s": hail_pull,
        "pull_sparkmagic_s": spark_pull, "pull_hail_peak_rss_bytes": hail_mem, "pull_sparkmagic_peak_rss_bytes": spark_mem,
        "hail_compare": hail_cmp, "sparkmagic_compare": spark_cmp, "trivial_ratio": trivial_ratio,
        "pull_speedup": pull_speedup, "cpu_count": os.cpu_count(),
    }, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
