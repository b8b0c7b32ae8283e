"""``kill -9`` at random moments never leaves a partial file or object; the next run converges.
Also: two syncs at once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_sync_support import BUCKET, PREFIX, cli, local_files, remote_objects, s3_fixture, sha  # noqa: F401

from hail_emr_lab.sync import SyncTarget, backup
from hail_emr_lab.sync.lock import SyncLock


def _populate(home: Path, rng: random.Random, n: int = 120) -> None:
    for i in range(n):
        p = home / f"d{i % 6}" / f"f{i:03d}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(rng.randbytes(rng.randint(0, 40_000)))
    (home / "big.bin").write_bytes(rng.randbytes(9 * 1024 * 1024))  # multipart


def _mutate(home: Path, rng: random.Random) -> None:
    files = sorted(p for p in home.rglob("*") if p.is_file() and ".hail-emr-lab-sync" not in p.parts)
    for p in rng.sample(files, 15):
        p.write_bytes(rng.randbytes(rng.randint(0, 40_000)))
    (home / "big.bin").write_bytes(rng.randbytes(9 * 1024 * 1024))
    new = home / "new" / f"n{rng.randint(0, 10**9)}.txt"
    new.parent.mkdir(exist_ok=True)
    new.write_bytes(rng.randbytes(1000))


def _spawn(home: Path, action: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "hail_emr_lab", "sync", action, "--quiet", "--home", str(home),
           "--bucket", BUCKET, "--prefix", PREFIX, "--wait", "30"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_kill9_backup_20_times_then_converges(s3, tmp_path):
    rng = random.Random(20261121)
    home = tmp_path / "home"
    _populate(home, rng)
    for _ in range(20):
        _mutate(home, rng)
        proc = _spawn(home, "backup")
        time.sleep(rng.uniform(0.05, 2.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    final = cli(home, "backup")
    assert final.returncode == 0, final.stderr
    local = local_files(home)
    remote = remote_objects(s3.client)
    assert {f"{PREFIX}/{r}": sha(d) for r, d in local.items()} == {k: sha(d) for k, d in remote.items()}
    assert not [r for r in local if "(conflict" in r]  # our own interrupted uploads are no conflict
    s3.proxy.reset()
    assert cli(home, "backup").returncode == 0
    assert s3.proxy.requests == []  # converged: nothing left to do


@pytest.mark.slow
def test_kill9_restore_leaves_no_partial_file(s3, tmp_path):
    rng = random.Random(5)
    src = tmp_path / "src"
    _populate(src, rng)
    assert backup(SyncTarget(src, BUCKET, PREFIX)).exit_code == 0
    remote = {k[len(PREFIX) + 1 :]: sha(d) for k, d in remote_objects(s3.client).items()}
    dest = tmp_path / "dest"
    dest.mkdir()
    for _ in range(6):
        proc = _spawn(dest, "restore")
        time.sleep(rng.uniform(0.3, 2.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for rel, data in local_files(dest).items():  # whatever is there is complete
            assert remote[rel] == sha(data), rel
    assert cli(dest, "restore").returncode == 0
    assert {r: sha(d) for r, d in local_files(dest).items()} == remote
    assert not list((dest / ".hail-emr-lab-sync").glob("tmp-*/*"))


def test_second_sync_waits_then_gives_up_clearly(s3, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "a.txt").write_text("a")
    target = SyncTarget(home, BUCKET, PREFIX)
    with SyncLock(target.lock_path, wait=0):
        start = time.monotonic()
        proc = cli(home, "backup", "--wait", "1")
        assert time.monotonic() - start >= 1.0
    assert proc.returncode == 75
    assert "another sync is running" in proc.stderr and str(os.getpid()) in proc.stderr
    assert "Traceback" not in proc.stderr
    assert cli(home, "backup").returncode == 0  # the lock is gone with its holder


def test_two_syncs_at_once_upload_each_file_once(s3, tmp_path):
    home = tmp_path / "home"
    rng = random.Random(1)
    _populate(home, rng, n=200)
    procs = [_spawn(home, "backup") for _ in range(2)]
    for p in procs:
        assert p.wait(120) == 0, p.stderr.read().decode()
    uploads = [p for m, p in s3.proxy.requests if m == "PUT" and "uploadId" not in p]
    assert len(uploads) == 200  # the second run waited for the first, then had nothing to do
    assert len(remote_objects(s3.client)) == 201
