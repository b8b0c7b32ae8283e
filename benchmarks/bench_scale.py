"""GWAS-shaped results at scale: ``-o`` (automatic transport), ``-o --via livy`` and sparkmagic, side by side.

One IPython shell with both magics on one embedded Livy (as benchmarks/bench_magics.py). For each
size, a cached Spark DataFrame of GWAS summary statistics (variant string, int64 position,
p-value, beta, se, allele frequency) is pulled into pandas by:

* ``%%hail -o gwas`` (automatic: staged as Parquet above ``transfer_inline_max``),
* ``%%hail -o gwas --via livy`` (inline through Livy's text channel),
* sparkmagic ``%%spark -o gwas -n -1``, stopped after ``--cap`` seconds ("did not finish"),

and, as the reference the issue names, the driver's own Arrow ``toPandas()`` of the same frame
(timed inside the session). Reported per pull: wall time, rows/s, peak extra resident memory of
this (the kernel's) process and of the embedded server's process tree (driver JVM + Python),
the final frame's size, and whether values and dtypes equal the expected frame (built here from
the same formulas).

    .venv/bin/python benchmarks/bench_scale.py [--sizes 1000000,5000000] [--cap 600] [--push-sizes 1000000]

Then ``%hail push`` of a local GWAS frame of ``--push-sizes`` rows, ``--via livy`` vs ``--via
staged`` (wall time, rows/s, and whether both give the same Spark DataFrame).

Prints a Markdown table and writes benchmarks/results/scale.json.
"""

from __future__ import annotations

import _thread
import argparse
import gc
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench_magics import RssPeak
from benchutil import machine, private_magics_config, stop_magics

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

MAKE = """
from pyspark.sql import functions as F
gwas = spark.range({n}, numPartitions=8).select(
    F.concat(F.lit('1:'), (F.col('id') * 37 + 10000).cast('string'), F.lit(':A:G')).alias('variant'),
    (F.col('id') * 37 + 10000).alias('position'),
    ((F.col('id') % 9973 + 1) / 9974.0).alias('pvalue'),
    (((F.col('id') % 2001) - 1000) / 10000.0).alias('beta'),
    (F.lit(0.01) + (F.col('id') % 97) / 1000.0).alias('se'),
    ((F.col('id') % 499 + 1) / 1000.0).alias('af'),
).cache()
print(gwas.count())
"""

TO_PANDAS = """
import time as _t
spark.conf.set('spark.sql.execution.arrow.pyspark.enabled', 'true')
_t0 = _t.perf_counter()
_ref = gwas.toPandas()
print('toPandas %.3f' % (_t.perf_counter() - _t0))
del _ref
"""


def expected(n: int):
    """The frame MAKE builds, computed here with numpy (the same IEEE operations, in the same order)."""
    import numpy as np
    import pandas as pd

    ids = np.arange(n, dtype="int64")
    pos = ids * 37 + 10000
    return pd.DataFrame({
        "variant": ("1:" + pd.Series(pos).astype(str) + ":A:G").astype(object),
        "position": pos,
        "pvalue": (ids % 9973 + 1) / 9974.0,
        "beta": ((ids % 2001) - 1000) / 10000.0,
        "se": 0.01 + (ids % 97) / 1000.0,
        "af": (ids % 499 + 1) / 1000.0,
    })


def check(got, exp) -> dict:
    """Exact equality of values, and the dtypes each side has."""
    import pandas as pd

    try:
        pd.testing.assert_frame_equal(got.reset_index(drop=True), exp, check_exact=True)
        equal = True
    except AssertionError as exc:
        equal = str(exc).splitlines()[0][:200]
    return {"equal": equal, "dtypes": {c: str(t) for c, t in got.dtypes.items()}}


class TreeRssPeak(RssPeak):
    """Peak extra resident memory of this process's children (the embedded server's sessions)."""

    @staticmethod
    def _rss() -> int:
        import psutil

        total = 0
        for child in psutil.Process().children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                continue  # ended while we looked
        return total


def release_memory() -> None:
    """Free what the last pull left (Python garbage, pyarrow's pool) so each pull starts level."""
    gc.collect()
    try:
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    except (ImportError, AttributeError):
        pass


def timed_pull(ip, magic: str, line: str, cap: float):
    """``(seconds or None, frame or None, kernel peak, server peak, error)``; None: did not finish in ``cap``."""
    from IPython.utils.capture import capture_output

    ip.user_ns.pop("gwas", None)
    release_memory()
    timer = threading.Timer(cap, _thread.interrupt_main)
    err = None
    with TreeRssPeak() as server, RssPeak() as kernel, capture_output() as cap_out:
        t = time.perf_counter()
        timer.start()
        try:
            ip.run_cell_magic(magic, line, "gwas")
            took = time.perf_counter() - t
        except KeyboardInterrupt:
            took = None
        finally:
            timer.cancel()
    frame = ip.user_ns.get("gwas")
    if took is not None and frame is None:
        err = (cap_out.stdout + cap_out.stderr)[-400:]
        took = None
    return took, frame, kernel.peak, server.peak, err or (None if took is not None else "did not finish")


PUSH_CHECK = """
import json as _j
_a, _b = gwas_pushed_livy, gwas_pushed_staged
print('PUSHCHECK ' + _j.dumps({{'schema_equal': _a.schema == _b.schema, 'rows': [_a.count(), _b.count()],
    'rows_differing': _a.exceptAll(_b).count() + _b.exceptAll(_a).count(),
    'types': [f.dataType.simpleString() for f in _b.schema.fields]}}))
"""


def push_case(ip, n: int, cap: float) -> dict:
    """``%hail push`` of an n-row GWAS frame, ``--via livy`` and ``--via staged`` alternating, twice.

    The first round includes each path's first use in the session (the staged one's first Parquet
    read loads Spark's reader); the second is the steady state. Both results of the first round
    must be the same Spark DataFrame (schema, row count, no row in one but not the other).
    """
    from IPython.utils.capture import capture_output

    ip.user_ns["gwas_local"] = expected(n)
    row: dict = {"rows": n, "load_1min": os.getloadavg()[0]}
    for key, via in (("livy", "livy"), ("staged", "staged"), ("livy_again", "livy"), ("staged_again", "staged")):
        release_memory()
        timer = threading.Timer(cap, _thread.interrupt_main)
        with RssPeak() as kernel, capture_output() as out:
            t = time.perf_counter()
            timer.start()
            try:
                ip.run_line_magic("hail", f"push gwas_local --as gwas_pushed_{key} --via {via}")
                took = time.perf_counter() - t
            except KeyboardInterrupt:
                took = None
            finally:
                timer.cancel()
        pushed = "pushed (" in out.stdout
        row[key] = {"seconds": took if pushed else None, "rows_per_s": n / took if pushed and took else None,
                    "kernel_peak_bytes": kernel.peak, "said": (out.stdout + out.stderr).strip()[-300:]}
        print(f"  push {key}: {json.dumps({k: v for k, v in row[key].items() if k != 'said'})}", flush=True)
    with capture_output() as out:
        ip.run_cell_magic("hail", "", PUSH_CHECK.format())
        ip.run_cell_magic("hail", "", "del gwas_pushed_livy, gwas_pushed_staged, gwas_pushed_livy_again, "
                                      "gwas_pushed_staged_again")
    if "PUSHCHECK " in out.stdout:
        row["check"] = json.loads(out.stdout.split("PUSHCHECK ")[-1].splitlines()[0])
    else:
        row["check"] = {"error": (out.stdout + out.stderr)[-300:]}
    print(f"  push check: {json.dumps(row['check'])}", flush=True)
    ip.user_ns.pop("gwas_local", None)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,5000000")
    parser.add_argument("--cap", type=float, default=600.0, help="seconds before a pull counts as 'did not finish'")
    parser.add_argument("--driver-memory", default="4g")
    parser.add_argument("--push-sizes", default="1000000", help="rows pushed with %%hail push ('' for none)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    push_sizes = [int(s) for s in args.push_sizes.split(",") if s]

    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    private_magics_config(tmp, {"driverMemory": args.driver_memory})
    os.environ["HAIL_EMR_LAB_LOCAL_DIR"] = str(tmp / "local")

    from IPython.testing.globalipapp import start_ipython
    from IPython.utils.capture import capture_output

    from hail_emr_lab.embedded.server import EmbeddedLivy

    server = EmbeddedLivy(host="127.0.0.1", port=0, plots_dir=str(tmp / "plots"), max_sessions=3)
    server.start()
    ip = start_ipython()
    results = []
    pushes: list[dict] = []
    load = []
    sparkmagic_gave_up = False
    try:
        ip.run_line_magic("load_ext", "hail_emr_lab")
        ip.run_line_magic("load_ext", "sparkmagic.magics")
        ip.run_line_magic("hail", f"connect --url {server.url} --name bench-scale --no-plots --wait "
                                  f"--driver-memory {args.driver_memory}")
        if sizes:  # pushes alone need no sparkmagic session (one Spark JVM less)
            with capture_output():
                ip.run_line_magic("spark", f"add -s bench -l python -u {server.url}")
        for n in sizes:
            load.append(os.getloadavg()[0])
            with capture_output() as out:
                ip.run_cell_magic("hail", "", MAKE.format(n=n))
                ip.run_cell_magic("spark", "-s bench", MAKE.format(n=n))
                ip.run_cell_magic("hail", "", TO_PANDAS)
            to_pandas = float(out.stdout.split("toPandas ")[-1].split()[0])
            print(f"{n:,} rows cached on both sessions; driver toPandas {to_pandas:.1f} s", flush=True)
            exp = expected(n)
            frames = {}
            row = {"rows": n, "driver_to_pandas_s": to_pandas, "load_1min": os.getloadavg()[0]}
            for label, magic, line in [("auto", "hail", "-o gwas -q"), ("livy", "hail", "-o gwas -q --via livy"),
                                       ("sparkmagic", "spark", "-s bench -o gwas -n -1")]:
                if label == "sparkmagic" and sparkmagic_gave_up:
                    row[label] = {"seconds": None, "error": "not run: failed or did not finish at a smaller size"}
                    continue
                took, frame, kpeak, speak, err = timed_pull(ip, magic, line, args.cap)
                entry = {"seconds": took, "kernel_peak_bytes": kpeak, "server_peak_bytes": speak, "error": err}
                if frame is not None and took is not None:
                    size = int(frame.memory_usage(index=True, deep=True).sum())
                    entry.update(rows_per_s=n / took, frame_bytes=size, kernel_peak_ratio=kpeak / size,
                                 **check(frame, exp))
                if label == "sparkmagic" and took is None:
                    sparkmagic_gave_up = True
                    with capture_output():  # the interrupted statement may still run: end its session
                        ip.run_line_magic("spark", "cleanup")
                row[label] = entry
                print(f"  {label}: {json.dumps({k: v for k, v in entry.items() if k != 'dtypes'}, default=str)}",
                      flush=True)
                frames[label] = frame
                ip.user_ns.pop("gwas", None)
                del frame
            frames.clear()
            del exp
            results.append(row)
            save({"machine": machine(), "load": load, "results": results, "push": pushes})  # kept if a bigger size fails
            with capture_output():
                ip.run_cell_magic("hail", "", "gwas.unpersist(); del gwas")
                if not sparkmagic_gave_up:
                    ip.run_cell_magic("spark", "-s bench", "gwas.unpersist(); del gwas")
        for n in push_sizes:
            pushes.append(push_case(ip, n, args.cap))
            save({"machine": machine(), "load": load, "results": results, "push": pushes})
    finally:
        stop_magics(ip, server)

    def cell(entry: dict) -> str:
        if entry.get("seconds") is None:
            return entry.get("error") or "did not finish"
        ok = "equal" if entry.get("equal") is True else "NOT equal"
        return (f"{entry['seconds']:.1f} s, {entry['rows_per_s'] / 1e3:.0f}k rows/s, kernel +"
                f"{entry['kernel_peak_bytes'] / 1e6:.0f} MB ({entry['kernel_peak_ratio']:.2f}x the frame), "
                f"server +{entry['server_peak_bytes'] / 1e6:.0f} MB, {ok}")

    print()
    print(f"{time.strftime('%Y-%m-%d')}, {machine()}, load average at start of each size: "
          + ", ".join(f"{x:.1f}" for x in load))
    print()
    print("| rows | `-o` (auto) | `-o --via livy` | sparkmagic `-o -n -1` | driver `toPandas()` | auto / toPandas |")
    print("|---|---|---|---|---|---|")
    for row in results:
        auto = row["auto"].get("seconds")
        ratio = f"{auto / row['driver_to_pandas_s']:.2f}x" if auto else "-"
        print(f"| {row['rows']:,} | {cell(row['auto'])} | {cell(row['livy'])} | {cell(row['sparkmagic'])} | "
              f"{row['driver_to_pandas_s']:.1f} s | {ratio} |")
    print()
    for row in results:
        for label in ("auto", "livy", "sparkmagic"):
            if row[label].get("dtypes"):
                print(f"{row['rows']:,} {label} dtypes: {row[label]['dtypes']}")
    print_push_table(pushes)
    save({"machine": machine(), "load": load, "results": results, "push": pushes})
    return 0


def print_push_table(pushes: list[dict]) -> None:
    """The push rows as a Markdown table (nothing when no push ran)."""
    if not pushes:
        return

    def pcell(entry: dict) -> str:
        if entry.get("seconds") is None:
            return entry.get("said") or "did not finish"
        return f"{entry['seconds']:.1f} s, {entry['rows_per_s'] / 1e3:.0f}k rows/s"

    print()
    print("| rows pushed | `%hail push --via livy` | `--via staged` | staged / livy | "
          "second round: livy | staged | staged / livy | same frame |")
    print("|---|---|---|---|---|---|---|---|")
    for row in pushes:
        verdict = row.get("check", {})
        same = (verdict.get("schema_equal") and verdict.get("rows_differing") == 0
                and len(set(verdict.get("rows", [0, 1]))) == 1)
        cells = []
        for livy_key, staged_key in (("livy", "staged"), ("livy_again", "staged_again")):
            livy, staged = row[livy_key].get("seconds"), row[staged_key].get("seconds")
            ratio = f"{staged / livy:.2f}x" if livy and staged else "-"
            cells += [pcell(row[livy_key]), pcell(row[staged_key]), ratio]
        print(f"| {row['rows']:,} | " + " | ".join(cells) + f" | {'yes' if same else 'NO'} |")


def save(data: dict) -> None:
    """Write benchmarks/results/scale.json."""
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "scale.json").write_text(json.dumps(data, indent=2, default=str))


if __name__ == "__main__":
    sys.exit(main())
