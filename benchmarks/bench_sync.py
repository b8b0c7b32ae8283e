"""Home-directory sync vs the Quick Start's ``aws s3 sync`` / ``aws s3 cp --recursive``.

One run, one moto server (started here), both tools side by side, on plain loopback and
through a proxy adding 50 ms to every request (S3 as seen from a notebook instance):

* initial backup of 2,000 files / 25 MB;
* backup with nothing changed (requests counted at the proxy, wall time);
* backup after one file changed (upload requests);
* restore of the 2,000 files into an empty directory;
* CPU seconds (user + system of the tool's process) per file.

Prints a Markdown table and writes ``benchmarks/results/bench_sync.json``.
Usage: ``.venv/bin/python benchmarks/bench_sync.py [--files 2000] [--mb 25] [--delay 0.05]``
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchutil import free_port

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from latency_proxy import LatencyProxy  # noqa: E402

BIN = Path(sys.executable).parent
AWS = str(BIN / "aws")
OURS = [sys.executable, "-m", "hail_emr_lab", "sync"]
BUCKET = "bench-sync"
QS_EXCLUDES = ["--exclude", "bin/*", "--exclude", ".sparkmagic/*", "--exclude", "*.ipynb_checkpoints/*"]


def make_tree(root: Path, files: int, total_mb: float, seed: int = 7) -> int:
    """``files`` files in nested folders, ``total_mb`` MB in all (a few larger ones)."""
    rng = random.Random(seed)
    total = int(total_mb * 1e6)
    big = max(files // 200, 1)  # 1 in 200 files is 20 % of the bytes
    big_size = int(total * 0.2 / big)
    small_avg = (total - big * big_size) / (files - big)
    written = 0
    for i in range(files):
        size = big_size if i < big else max(int(rng.uniform(0.2, 1.8) * small_avg), 1)
        rel = Path(f"project{i % 10}", f"sub{i % 7}", f"file {i:05d}.ipynb" if i % 3 else f"data_{i:05d}.csv")
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(rng.randbytes(size))
        written += size
    return written


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall seconds, CPU seconds of the child, process)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return wall, cpu, proc


def scenario(name: str, endpoint: str, proxy: LatencyProxy, data: Path, work: Path, n: int) -> dict:
    env = dict(os.environ, AWS_ENDPOINT_URL=endpoint)
    env.pop("HAIL_EMR_LAB_BUCKET", None)
    ours_home, aws_home = work / f"{name}-ours", work / f"{name}-aws"
    shutil.copytree(data, ours_home)
    shutil.copytree(data, aws_home)
    ours_args = ["--home", str(ours_home), "--bucket", BUCKET, "--prefix", f"ours-{name}", "--quiet"]
    aws_url = f"s3://{BUCKET}/aws-{name}/"
    res: dict[str, dict] = {}

    def run(label: str, ours_cmd: list[str], aws_cmd: list[str]) -> None:
        row = {}
        for tool, cmd in (("ours", ours_cmd), ("aws", aws_cmd)):
            proxy.reset()
            wall, cpu, _ = timed(cmd, env)
            row[tool] = {
                "wall": wall,
                "cpu": cpu,
                "requests": proxy.count(),
                "uploads": proxy.count("PUT") + proxy.count("POST"),
            }
        res[label] = row
        print(f"  {name:9s} {label:15s} ours {row['ours']['wall']:6.2f}s  aws {row['aws']['wall']:6.2f}s", flush=True)

    run(
        "initial backup",
        [*OURS, "backup", *ours_args],
        [AWS, "s3", "sync", str(aws_home), aws_url, *QS_EXCLUDES, "--quiet"],
    )
    run(
        "no change", [*OURS, "backup", *ours_args], [AWS, "s3", "sync", str(aws_home), aws_url, *QS_EXCLUDES, "--quiet"]
    )
    for home in (ours_home, aws_home):
        target = home / "project3/sub3/data_00003.csv"
        target.write_bytes(target.read_bytes() + b" edited")
    run(
        "one changed",
        [*OURS, "backup", *ours_args],
        [AWS, "s3", "sync", str(aws_home), aws_url, *QS_EXCLUDES, "--quiet"],
    )
    ours_dest, aws_dest = work / f"{name}-ours-restore", work / f"{name}-aws-restore"
    ours_dest.mkdir()
    aws_dest.mkdir()
    run(
        "restore",
        [*OURS, "restore", "--home", str(ours_dest), "--bucket", BUCKET, "--prefix", f"ours-{name}", "--quiet"],
        [AWS, "s3", "cp", "--recursive", aws_url, str(aws_dest), "--quiet"],
    )
    restored = sum(1 for p in ours_dest.rglob("*") if p.is_file() and ".hail-emr-lab-sync" not in p.parts)
    if restored != n:
        raise SystemExit(f"restore brought back {restored} files, expected {n}")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--mb", type=float, default=25.0)
    ap.add_argument("--delay", type=float, default=0.05)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    port = free_port()
    creds = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
    os.environ.update(creds)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(key, None)
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    moto_url = f"http://127.0.0.1:{port}"
    try:
        import boto3

        for _ in range(100):
            try:
                boto3.client("s3", endpoint_url=moto_url).create_bucket(Bucket=BUCKET)
                break
            except Exception:  # noqa: BLE001 - server still starting
                time.sleep(0.1)
        data = work / "data"
        nbytes = make_tree(data, args.files, args.mb)
        print(f"data set: {args.files} files, {nbytes / 1e6:.1f} MB", flush=True)
        results = {}
        with LatencyProxy(moto_url, delay=0.0) as counting:
            results["loopback"] = scenario("loopback", counting.url, counting, data, work, args.files)
        with LatencyProxy(moto_url, delay=args.delay) as slow:
            results[f"{int(args.delay * 1000)}ms"] = scenario(
                f"{int(args.delay * 1000)}ms", slow.url, slow, data, work, args.files
            )
    finally:
        moto.terminate()
        moto.wait(10)
        shutil.rmtree(work, ignore_errors=True)

    table = render(results, args.files)
    print()
    print(table)
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "bench_sync.json").write_text(
        json.dumps({"files": args.files, "bytes": nbytes, "delay": args.delay, "results": results}, indent=2)
    )


def render(results: dict, files: int) -> str:
    lines = [
        "| network | step | hail-emr-lab sync | aws s3 sync / cp | speed-up | requests (ours / aws) | "
        "CPU s per file (ours / aws) |",
        "|---|---|---|---|---|---|---|",
    ]
    for net, steps in results.items():
        for step, row in steps.items():
            o, a = row["ours"], row["aws"]
            per = files if step in ("initial backup", "restore") else 1
            cpu = f"{o['cpu'] / per * 1000:.2f} ms / {a['cpu'] / per * 1000:.2f} ms"
            if per == 1:
                cpu = f"{o['cpu']:.2f} s / {a['cpu']:.2f} s (whole run)"
            reqs = f"{o['requests']} / {a['requests']}"
            if step == "one changed":
                reqs += f" (uploads {o['uploads']} / {a['uploads']})"
            lines.append(
                f"| {net} | {step} | {o['wall']:.2f} s | {a['wall']:.2f} s | {a['wall'] / o['wall']:.1f}x | "
                f"{reqs} | {cpu} |"
            )
    lines.append("")
    lines.append("Requests are counted at a proxy in front of the moto server (with 0 ms added on loopback).")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
