"""``kill -9`` of real ``hail-emr-lab sync`` processes (at random moments, and at exact ones: right
after S3 completed an upload, in the middle of placing restored files) never leaves a partial
file or object; the next run converges: right bytes everywhere, no conflict copy made of our
own interrupted work, no multipart upload left in S3, nothing completed sent again.
Also: two syncs at once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from support.sync_s3 import BUCKET, PREFIX, cli, local_files, remote_objects, s3_fixture, sha  # noqa: F401

from hail_emr_lab.sync import SyncTarget, backup
from hail_emr_lab.sync.lock import SyncLock
from hail_emr_lab.sync.scan import hash_file
from hail_emr_lab.sync.state import State


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


def _spawn(home: Path, action: str, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "hail_emr_lab", "sync", action, "--quiet", "--home", str(home),
           "--bucket", BUCKET, "--prefix", PREFIX, "--wait", "30", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _kill_during(proc: subprocess.Popen, started, rng: random.Random, max_delay: float) -> None:
    """``kill -9`` ``proc`` a random moment (up to ``max_delay`` s) after ``started()`` holds."""
    deadline = time.monotonic() + 60
    while not started() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(rng.uniform(0, max_delay))
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _incomplete_uploads(client) -> list[str]:
    return [u["Key"] for u in client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])]


def _conflict_copies(home: Path) -> list[str]:
    return sorted(r for r in local_files(home) if "(conflict " in r)


def _part_puts(proxy, key: str) -> list[str]:
    return [p for m, p in proxy.requests if m == "PUT" and p.startswith(f"/{BUCKET}/{key}?") and "partNumber" in p]


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
    assert _incomplete_uploads(s3.client) == []  # the killed runs' parts were aborted
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


@pytest.mark.slow
def test_kill9_restore_then_remote_changes_converges_without_conflict_copies(s3, tmp_path):
    """A restore killed after placing files, before its bookkeeping was committed; then another
    machine changes every file; the next restore must bring the new versions, not take the
    files the killed restore wrote for local edits."""
    rng = random.Random(13)
    src = tmp_path / "src"
    _populate(src, rng, n=90)
    (src / "big.bin").unlink()
    assert backup(SyncTarget(src, BUCKET, PREFIX)).exit_code == 0
    dest = tmp_path / "dest"
    dest.mkdir()
    for round_ in range(4):
        s3.proxy.delay = 0.01  # one connection at a time, ~10 ms a file: killed midway
        proc = _spawn(dest, "restore", "--concurrency", "1")
        deadline = time.monotonic() + 60
        while len(local_files(dest)) < 20 + 15 * round_ and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL, "the restore finished before it could be killed"
        s3.proxy.delay = 0.0
        placed = local_files(dest)
        assert placed, "nothing was placed before the kill"
        # Another machine writes a new version of every file (and of those placed just now).
        for key in remote_objects(s3.client):
            s3.client.put_object(Bucket=BUCKET, Key=key, Body=f"round {round_} {key}".encode())
    done = cli(dest, "restore")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "conflict" not in done.stdout
    remote = {k[len(PREFIX) + 1 :]: sha(d) for k, d in remote_objects(s3.client).items()}
    assert {r: sha(d) for r, d in local_files(dest).items()} == remote
    assert _conflict_copies(dest) == []
    s3.proxy.reset()
    assert cli(dest, "backup").returncode == 0  # and nothing restored is taken for an edit
    assert [m for m, _ in s3.proxy.requests if m in ("PUT", "POST")] == []


@pytest.mark.slow
def test_kill9_restore_at_random_with_remote_changes_converges(s3, tmp_path):
    rng = random.Random(77)
    src = tmp_path / "src"
    _populate(src, rng, n=60)
    assert backup(SyncTarget(src, BUCKET, PREFIX)).exit_code == 0
    dest = tmp_path / "dest"
    dest.mkdir()
    keys = sorted(remote_objects(s3.client))
    for _ in range(8):
        s3.proxy.delay = 0.01  # ~10 ms a file, one at a time: kills land while files are placed
        s3.proxy.reset()
        proc = _spawn(dest, "restore", "--concurrency", "1")
        _kill_during(proc, lambda: any(m == "GET" and "?" not in p for m, p in list(s3.proxy.requests)), rng, 0.5)
        s3.proxy.delay = 0.0
        for key in rng.sample(keys, 20):  # the other machine keeps working
            s3.client.put_object(Bucket=BUCKET, Key=key, Body=rng.randbytes(rng.randint(0, 30_000)))
    done = cli(dest, "restore")
    assert done.returncode == 0, done.stdout + done.stderr
    remote = {k[len(PREFIX) + 1 :]: sha(d) for k, d in remote_objects(s3.client).items()}
    assert {r: sha(d) for r, d in local_files(dest).items()} == remote
    assert _conflict_copies(dest) == []


def test_backup_killed_after_s3_completed_an_upload(s3, tmp_path):
    """Killed the moment S3 completed one multipart upload (before the process heard of it)
    while another was half-way: the next backup sends neither again in full (a HEAD shows
    the first is there), aborts the half-done one, and leaves no upload open in S3."""
    home = tmp_path / "home"
    home.mkdir()
    rng = random.Random(3)
    (home / "small.txt").write_bytes(b"small")
    (home / "done.bin").write_bytes(rng.randbytes(12 * 1024 * 1024))  # 2 parts
    (home / "half.bin").write_bytes(rng.randbytes(48 * 1024 * 1024))  # 6 parts
    assert cli(home, "backup").returncode == 0
    (home / "done.bin").write_bytes(rng.randbytes(12 * 1024 * 1024))
    (home / "half.bin").write_bytes(rng.randbytes(48 * 1024 * 1024))
    s3.proxy.reset()
    victim: list[subprocess.Popen] = []
    killed = threading.Event()

    def kill_when_done_completes(method: str, path: str, status: int) -> None:
        if method == "PUT" and path.startswith(f"/{BUCKET}/{PREFIX}/half.bin?"):
            killed.wait(60)  # half.bin's parts reach moto, their answers wait: half-way for sure
        elif method == "POST" and path.startswith(f"/{BUCKET}/{PREFIX}/done.bin?uploadId=") and status == 200:
            victim[0].send_signal(signal.SIGKILL)  # S3 completed it; the process never hears so
            killed.set()

    s3.proxy.on_answer = kill_when_done_completes
    victim.append(_spawn(home, "backup", "--concurrency", "10"))  # room for every part at once
    assert victim[0].wait(120) == -signal.SIGKILL
    s3.proxy.on_answer = None
    assert s3.client.get_object(Bucket=BUCKET, Key=f"{PREFIX}/done.bin")["Body"].read() == (home / "done.bin").read_bytes()
    assert f"{PREFIX}/half.bin" in _incomplete_uploads(s3.client)

    s3.proxy.reset()
    done = cli(home, "backup")
    assert done.returncode == 0, done.stdout + done.stderr
    assert _part_puts(s3.proxy, f"{PREFIX}/done.bin") == []  # not sent again: one HEAD said it is there
    assert ("HEAD", f"/{BUCKET}/{PREFIX}/done.bin") in s3.proxy.requests
    assert len(_part_puts(s3.proxy, f"{PREFIX}/half.bin")) == 6  # sent once, in full
    assert _incomplete_uploads(s3.client) == []
    assert remote_objects(s3.client) == {f"{PREFIX}/{r}": d for r, d in local_files(home).items()}
    assert _conflict_copies(home) == []
    s3.proxy.reset()
    assert cli(home, "backup").returncode == 0
    assert s3.proxy.requests == []


@pytest.mark.slow
def test_kill9_backup_of_large_files_leaves_no_multipart_upload(s3, tmp_path):
    rng = random.Random(11)
    home = tmp_path / "home"
    home.mkdir()
    for _ in range(8):
        for name in ("a.bin", "b.bin"):
            (home / name).write_bytes(rng.randbytes(rng.choice((9, 17, 25)) * 1024 * 1024))
        s3.proxy.reset()
        proc = _spawn(home, "backup", "--concurrency", "2")
        _kill_during(proc, lambda: any("partNumber" in p for _, p in list(s3.proxy.requests)), rng, 0.3)
    final = cli(home, "backup")
    assert final.returncode == 0, final.stderr
    assert _incomplete_uploads(s3.client) == []
    assert remote_objects(s3.client) == {f"{PREFIX}/{r}": d for r, d in local_files(home).items()}


def test_torn_upload_carrying_our_metadata_is_sent_again(s3, tmp_path):
    """A backup killed while sending a file's body, to a server that stored the part it got
    (moto does; S3 refuses a short body, rclone's S3 server is not documented either way): the
    object has our ``md5`` metadata, which was sent with the headers, but not our bytes. The
    next backup must send the file again, not take the metadata for proof the bytes arrived."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "a.txt").write_bytes(b"first version\n")
    assert cli(home, "backup").returncode == 0
    key = f"{PREFIX}/a.txt"
    origin = s3.client.head_object(Bucket=BUCKET, Key=key)["Metadata"]["origin"]
    target = SyncTarget(home, BUCKET, PREFIX)
    for n, torn in enumerate((b"", b"the sec")):  # nothing of the body arrived; a part of it
        edited = f"the version number {n + 2}, longer\n".encode()
        (home / "a.txt").write_bytes(edited)
        md5, etag = hash_file(home / "a.txt", target.multipart_chunksize, target.multipart_threshold)
        with State(target.state_path) as state:  # what the killed run committed before sending
            state.put_intents("upload", [("a.txt", md5, etag, len(edited))])
        s3.client.put_object(Bucket=BUCKET, Key=key, Body=torn, Metadata={"md5": md5, "origin": origin})
        done = cli(home, "backup")
        assert done.returncode == 0, done.stderr
        assert remote_objects(s3.client)[key] == edited
    assert not _conflict_copies(home)  # our own torn upload is no remote edit
