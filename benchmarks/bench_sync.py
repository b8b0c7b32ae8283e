"""Home-directory sync vs ``aws s3 sync`` / ``aws s3 cp --recursive`` and ``rclone sync`` / ``rclone copy``.

One run, two S3 servers started here (moto in memory; ``hail-emr-lab local-s3``, i.e. rclone
serve s3 on disk, the lab's default), the three tools side by side, on plain loopback and
through a proxy adding 50 ms to every request (S3 as seen from a notebook instance):

* initial backup of 2,000 files / 25 MB;
* backup with nothing changed (requests counted at the proxy, wall time);
* backup after one file changed (upload requests);
* restore of the 2,000 files into an empty directory;
* CPU seconds (user + system of the tool's process) per file, and of the server process and
  the proxy in the same step, with the most requests the proxy saw in flight at once: what
  bounds a step that misses its target.

Prints a Markdown table and writes ``benchmarks/results/bench_sync.json``.
Usage: ``.venv/bin/python benchmarks/bench_sync.py [--files 2000] [--mb 25] [--delay 0.05]``
"""

from __future__ import annotations

import argparse
import datetime as dt
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

import benchutil  # noqa: F401 - puts tests/ on sys.path for support
from support.net import free_port
from support.proxy import RelayProxy

HERE = Path(__file__).resolve().parent

BIN = Path(sys.executable).parent
AWS = str(BIN / "aws")
OURS = [sys.executable, "-m", "hail_emr_lab", "sync"]
RCLONE = str(BIN / "rclone")
TOOLS = ("ours", "aws", "rclone")
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


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process (the S3 server) has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def self_cpu() -> float:
    """CPU seconds of this process: the proxy's threads (nothing else runs here during a step)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def rclone_env(env: dict[str, str], endpoint: str) -> dict[str, str]:
    """rclone's client configuration for the remote ``bench:``, from the environment only."""
    return dict(env, RCLONE_CONFIG=os.devnull, RCLONE_CONFIG_BENCH_TYPE="s3", RCLONE_CONFIG_BENCH_PROVIDER="Other",
                RCLONE_CONFIG_BENCH_ENDPOINT=endpoint, RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=env["AWS_ACCESS_KEY_ID"],
                RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=env["AWS_SECRET_ACCESS_KEY"],
                RCLONE_CONFIG_BENCH_REGION="us-east-1", RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE="true")


def scenario(name: str, endpoint: str, proxy: RelayProxy, server_pid: int, data: Path, work: Path, n: int,
             env_extra: dict[str, str]) -> dict:
    env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, **env_extra)
    env.pop("HAIL_EMR_LAB_BUCKET", None)
    renv = rclone_env(env, endpoint)
    homes = {tool: work / f"{name}-{tool}" for tool in TOOLS}
    for home in homes.values():
        shutil.copytree(data, home)
    ours_args = ["--home", str(homes["ours"]), "--bucket", BUCKET, "--prefix", f"ours-{name}", "--quiet"]
    aws_url = f"s3://{BUCKET}/aws-{name}/"
    rclone_url = f"bench:{BUCKET}/rclone-{name}"
    res: dict[str, dict] = {}

    def run(label: str, cmds: dict[str, list[str]]) -> None:
        row = {}
        for tool, cmd in cmds.items():
            proxy.reset()
            server0, proxy0 = process_cpu(server_pid), self_cpu()
            wall, cpu, _ = timed(cmd, renv if tool == "rclone" else env)
            row[tool] = {
                "wall": wall,
                "cpu": cpu,
                "server_cpu": process_cpu(server_pid) - server0,
                "proxy_cpu": self_cpu() - proxy0,
                "requests": proxy.count(),
                "uploads": proxy.count("PUT") + proxy.count("POST"),
                "max_in_flight": proxy.max_in_flight,
            }
        res[label] = row
        print(f"  {name:16s} {label:15s} " + "  ".join(f"{t} {row[t]['wall']:6.2f}s" for t in row), flush=True)

    def backups() -> dict[str, list[str]]:
        return {
            "ours": [*OURS, "backup", *ours_args],
            "aws": [AWS, "s3", "sync", str(homes["aws"]), aws_url, *QS_EXCLUDES, "--quiet"],
            "rclone": [RCLONE, "sync", str(homes["rclone"]), rclone_url],
        }

    run("initial backup", backups())
    run("no change", backups())
    for home in homes.values():
        target = home / "project3/sub3/data_00003.csv"
        target.write_bytes(target.read_bytes() + b" edited")
    run("one changed", backups())
    dests = {tool: work / f"{name}-{tool}-restore" for tool in TOOLS}
    for dest in dests.values():
        dest.mkdir()
    run("restore", {
        "ours": [*OURS, "restore", "--home", str(dests["ours"]), "--bucket", BUCKET, "--prefix", f"ours-{name}",
                 "--quiet"],
        "aws": [AWS, "s3", "cp", "--recursive", aws_url, str(dests["aws"]), "--quiet"],
        "rclone": [RCLONE, "copy", rclone_url, str(dests["rclone"])],
    })
    for tool, dest in dests.items():
        restored = sum(1 for p in dest.rglob("*") if p.is_file() and ".hail-emr-lab-sync" not in p.parts)
        if restored != n:
            raise SystemExit(f"{tool}: restore brought back {restored} files, expected {n}")
    return res


def start_moto(work: Path) -> tuple[subprocess.Popen, str, dict[str, str]]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, f"http://127.0.0.1:{port}", {}


def start_local_s3(work: Path) -> tuple[subprocess.Popen, str, dict[str, str]]:
    """``rclone serve s3`` as ``hail-emr-lab lab`` runs it (the command line of hail_emr_lab.embedded.s3)."""
    from hail_emr_lab.embedded import s3 as local_s3

    port = free_port()
    cmd = local_s3.server_command(work / "local-s3", "127.0.0.1", port)
    (work / "local-s3").mkdir()
    env = local_s3.server_environment(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, f"http://127.0.0.1:{port}", {"HAIL_EMR_LAB_S3_PROBE": "1"}  # as the lab sets it


BACKENDS = {"moto": start_moto, "local-s3": start_local_s3}  # local-s3: rclone serve s3 on disk


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--mb", type=float, default=25.0)
    ap.add_argument("--delay", type=float, default=0.05)
    ap.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated, of: " + ", ".join(BACKENDS))
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    creds = {"AWS_ACCESS_KEY_ID": "BENCHKEY0123456789AB", "AWS_SECRET_ACCESS_KEY": "bench-secret-0123456789abcdef",
             "AWS_DEFAULT_REGION": "us-east-1"}
    os.environ.update(creds)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(key, None)
    results: dict[str, dict] = {}
    try:
        import boto3

        data = work / "data"
        nbytes = make_tree(data, args.files, args.mb)
        print(f"data set: {args.files} files, {nbytes / 1e6:.1f} MB", flush=True)
        for backend in args.backends.split(","):
            server, url, env_extra = BACKENDS[backend](work)
            try:
                for _ in range(200):
                    try:
                        boto3.client("s3", endpoint_url=url).create_bucket(Bucket=BUCKET)
                        break
                    except Exception:  # noqa: BLE001 - server still starting
                        time.sleep(0.1)
                for delay in (0.0, args.delay):
                    net = "loopback" if not delay else f"+{int(delay * 1000)} ms/request"
                    with RelayProxy(url, delay=delay) as proxy:
                        tag = f"{backend.split()[0]}-{int(delay * 1000)}ms"
                        results[f"{backend} | {net}"] = scenario(tag, proxy.url, proxy, server.pid, data, work,
                                                                 args.files, env_extra)
            finally:
                server.terminate()
                server.wait(10)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    table = render(results, args.files)
    print()
    print(table)
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "bench_sync.json").write_text(json.dumps(
        {"date": dt.date.today().isoformat(), "files": args.files, "bytes": nbytes, "delay": args.delay,
         "results": results}, indent=2))


def render(results: dict, files: int) -> str:
    lines = [
        "| server | network | step | hail-emr-lab sync | aws s3 sync / cp | rclone sync / copy | speed-up vs aws / rclone "
        "| requests (ours / aws / rclone) | CPU per file, client (ours / aws / rclone) | server CPU (ours / aws / rclone) "
        "| most in flight (ours / aws / rclone) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for where, steps in results.items():
        server, net = where.split(" | ")
        for step, row in steps.items():
            o, a, r = row["ours"], row["aws"], row["rclone"]
            whole = step not in ("initial backup", "restore")
            if whole:
                cpu = " / ".join(f"{t['cpu']:.2f} s" for t in (o, a, r)) + " (whole run)"
            else:
                cpu = " / ".join(f"{t['cpu'] / files * 1000:.2f} ms" for t in (o, a, r))
            reqs = " / ".join(str(t["requests"]) for t in (o, a, r))
            if step == "one changed":
                reqs += " (uploads " + " / ".join(str(t["uploads"]) for t in (o, a, r)) + ")"
            lines.append(
                f"| {server.split()[0]} | {net} | {step} | {o['wall']:.2f} s | {a['wall']:.2f} s | {r['wall']:.2f} s | "
                f"{a['wall'] / o['wall']:.1f}x / {r['wall'] / o['wall']:.1f}x | {reqs} | {cpu} | "
                + " / ".join(f"{t['server_cpu']:.1f} s" for t in (o, a, r)) + " | "
                + " / ".join(str(t["max_in_flight"]) for t in (o, a, r)) + " |"
            )
    lines.append("")
    lines.append("Requests are counted at a proxy in front of each server (with 0 ms added on loopback).")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
