"""The sync command line: install-cron (with a stand-in crontab), seed, watch."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.sync_s3 import BUCKET, PREFIX, cli, remote_objects, s3_fixture  # noqa: F401

from hail_emr_lab.sync.excludes import Excludes

FAKE_CRONTAB = """#!/bin/sh
# stand-in for crontab(1): the table lives in $CRONTAB_FILE
if [ "$1" = "-l" ]; then
  if [ -f "$CRONTAB_FILE" ]; then cat "$CRONTAB_FILE"; else echo "no crontab for $(id -un)" >&2; exit 1; fi
elif [ "$1" = "-" ]; then
  cat > "$CRONTAB_FILE"
else
  exit 2
fi
"""


def test_excludes_gitignore_semantics():
    ex = Excludes(extra=["*.tmp", "data/**/raw/", "!keep.tmp", "/scratch"])
    assert ex.excluded("bin/tool") and not ex.excluded("proj/bin/tool")
    assert ex.excluded("a/.ipynb_checkpoints/x-checkpoint.ipynb")
    assert ex.excluded(".Trash-1000/files/x") and ex.excluded("lost+found")
    assert ex.excluded("x/__pycache__/m.pyc")
    assert ex.excluded("deep/file.tmp") and not ex.excluded("deep/keep.tmp")
    assert ex.excluded("data/a/b/raw/f.csv") and ex.excluded("data/raw/f.csv")
    assert not ex.excluded("data/a/raw.csv")
    assert ex.excluded("scratch/x") and not ex.excluded("a/scratch/x")
    assert ex.excluded(".hail-emr-lab-sync/state.sqlite")
    # Jupyter's atomic-save temp copies and the plot index lock are not work; the index is.
    assert ex.excluded("proj/.~analysis.ipynb") and ex.excluded("plots/.hail-plots-index.lock")
    assert not ex.excluded("plots/.hail-plots-index.json") and not ex.excluded("poetry.lock")


@pytest.fixture
def fake_crontab(tmp_path, monkeypatch):
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    script = bindir / "crontab"
    script.write_text(FAKE_CRONTAB)
    script.chmod(0o755)
    table = tmp_path / "crontab.txt"
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("CRONTAB_FILE", str(table))
    return table


def test_install_cron_is_idempotent(fake_crontab, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    fake_crontab.write_text("0 3 * * * /usr/bin/true # someone else's job\n")
    for _ in range(2):
        proc = cli(home, "install-cron")
        assert proc.returncode == 0, proc.stderr
    lines = fake_crontab.read_text().splitlines()
    assert lines[0] == "0 3 * * * /usr/bin/true # someone else's job"
    ours = [line for line in lines if "hail-emr-lab-sync" in line]
    assert len(ours) == 1
    line = ours[0]
    assert line.startswith("*/5 * * * * ")
    exe = line.split()[5]
    assert os.path.isabs(exe) and Path(exe).parent == Path(sys.executable).parent
    assert "sync backup --quiet" in line and f"--bucket {BUCKET}" in line and f"--prefix {PREFIX}" in line
    # the line really runs: execute its command part (without the log redirection)
    cmd = line.split(" ", 5)[5].split(" >> ")[0]
    assert subprocess.run(cmd, shell=True, capture_output=True, text=True).returncode in (0, 1)

    assert cli(home, "uninstall-cron").returncode == 0
    assert fake_crontab.read_text().splitlines() == ["0 3 * * * /usr/bin/true # someone else's job"]
    assert "no hail-emr-lab line" in cli(home, "uninstall-cron").stdout


def test_install_cron_without_crontab_says_what_to_do(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    env = dict(os.environ, PATH=str(tmp_path))  # no crontab anywhere
    proc = cli(home, "install-cron", env=env)
    assert proc.returncode == 1 and "crontab command was not found" in proc.stderr


def test_seed_never_clobbers_edits(s3, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    put = s3.client.put_object
    put(Bucket=BUCKET, Key="common-notebooks/intro.ipynb", Body=b"intro v1")
    put(Bucket=BUCKET, Key="common-notebooks/gwas/gwas.ipynb", Body=b"gwas v1")
    put(Bucket=BUCKET, Key="scripts/list-clusters", Body=b"#!/bin/sh\necho v1\n")
    put(Bucket=BUCKET, Key="common-notebooks/../escape.txt", Body=b"x")
    proc = cli(home, "seed")
    assert proc.returncode == 3 and "refused" in proc.stdout  # the traversal key
    assert (home / "common-notebooks/intro.ipynb").read_bytes() == b"intro v1"
    assert (home / "common-notebooks/gwas/gwas.ipynb").read_bytes() == b"gwas v1"
    script = home / "bin/list-clusters"
    assert script.read_bytes() == b"#!/bin/sh\necho v1\n" and (script.stat().st_mode & 0o777) == 0o700
    assert not (tmp_path / "escape.txt").exists()

    (home / "common-notebooks/intro.ipynb").write_bytes(b"intro with my notes")
    put(Bucket=BUCKET, Key="common-notebooks/intro.ipynb", Body=b"intro v2")
    put(Bucket=BUCKET, Key="common-notebooks/gwas/gwas.ipynb", Body=b"gwas v2")
    s3.client.delete_object(Bucket=BUCKET, Key="common-notebooks/../escape.txt")
    for _ in range(2):  # the second run offers nothing new
        proc = cli(home, "seed")
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (home / "common-notebooks/intro.ipynb").read_bytes() == b"intro with my notes"
    [beside] = [p for p in (home / "common-notebooks").iterdir() if "new version" in p.name]
    assert beside.name.startswith("intro (new version ") and beside.read_bytes() == b"intro v2"
    notes = (home / "common-notebooks/NEW-VERSIONS.txt").read_text()
    assert "intro.ipynb" in notes and beside.name in notes and len(notes.splitlines()) == 1
    assert (home / "common-notebooks/gwas/gwas.ipynb").read_bytes() == b"gwas v2"  # untouched: updated


@pytest.mark.slow
def test_watch_backs_up_files_written_by_other_programs(s3, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "before.txt").write_text("before")
    cmd = [sys.executable, "-m", "hail_emr_lab", "sync", "watch", "--debounce", "0.3",
           "--home", str(home), "--bucket", BUCKET, "--prefix", PREFIX]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(s3.client, f"{PREFIX}/before.txt", 30)  # initial full backup
        subprocess.run(["sh", "-c", f"echo from-shell > '{home}/written by sh.txt'"], check=True)
        start = time.monotonic()
        _wait_for(s3.client, f"{PREFIX}/written by sh.txt", 10)
        assert time.monotonic() - start < 5
        assert remote_objects(s3.client)[f"{PREFIX}/written by sh.txt"] == b"from-shell\n"
    finally:
        proc.terminate()
        proc.wait(10)


def test_watch_misses_nothing_written_right_after_its_first_backup(s3, tmp_path):
    """A file written the moment the initial full backup ends (before a watch started only then
    could see it) is backed up too."""
    import threading

    from hail_emr_lab.sync import SyncTarget
    from hail_emr_lab.sync.watch import watch

    home = tmp_path / "home"
    home.mkdir()
    (home / "before.txt").write_text("before")
    target = SyncTarget(home=home, bucket=BUCKET, prefix=PREFIX)
    stop = threading.Event()
    reports = []

    def on_report(report) -> None:
        if not reports:  # the initial full backup has just finished
            (home / "right-after.txt").write_text("written between the scan and the watch")
        reports.append(report)

    thread = threading.Thread(target=watch, args=(target, 0.2, stop, on_report), daemon=True)
    thread.start()
    try:
        _wait_for(s3.client, f"{PREFIX}/right-after.txt", 15)
        assert remote_objects(s3.client)[f"{PREFIX}/right-after.txt"] == b"written between the scan and the watch"
    finally:
        stop.set()
        thread.join(15)
    assert not thread.is_alive()


def _wait_for(client, key: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            client.head_object(Bucket=BUCKET, Key=key)
            return
        except client.exceptions.ClientError:
            time.sleep(0.1)
    raise AssertionError(f"{key} did not appear in {timeout} s")
