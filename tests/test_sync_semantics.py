"""What the home backup keeps and how it says so: edits that keep their mtime, empty directories,
restoring into a new home, broken symlinks, environments that are not work.

Everything runs against the moto server over HTTP through the request-counting proxy of
``test_sync_support`` (moto stands in for S3; it does not model S3's consistency or limits).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest
from test_sync_support import BUCKET, PREFIX, cli, remote_objects, s3_fixture  # noqa: F401

from hail_emr_lab.sync import SyncTarget, backup, status
from hail_emr_lab.sync.state import State


def _target(home: Path, **kw) -> SyncTarget:
    return SyncTarget(home=home, bucket=BUCKET, prefix=PREFIX, **kw)


def _write(home: Path, rel: str, data: bytes) -> Path:
    p = home / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


@pytest.fixture
def home(tmp_path) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    return h


# ------------------------------------------------------------------------------------------
# an edit that keeps size and mtime (cp -p, rsync -t, tar x, touch -r)
# ------------------------------------------------------------------------------------------
def test_same_size_edit_with_mtime_put_back_is_backed_up(s3, home, tmp_path):
    t = _target(home)
    f = _write(home, "results/table.csv", b"a,b\n1,2\n")
    _write(home, "other.txt", b"other")
    assert backup(t).exit_code == 0
    s3.proxy.reset()
    assert not backup(t).remote_calls and s3.proxy.requests == []  # nothing changed: no request

    before = os.stat(f)
    src = _write(tmp_path, "elsewhere/table.csv", b"a,b\n9,9\n")  # same size, other bytes
    os.utime(src, ns=(before.st_atime_ns, before.st_mtime_ns))
    subprocess.run(["cp", "-p", str(src), str(f)], check=True)  # rewrites in place, copies the mtime
    after = os.stat(f)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)

    assert status(t)["pending"] == ["results/table.csv"]
    report = backup(t)
    assert report.uploaded == ["results/table.csv"], report.summary()
    assert remote_objects(s3.client)[f"{PREFIX}/results/table.csv"] == b"a,b\n9,9\n"
    s3.proxy.reset()
    assert not backup(t).remote_calls and s3.proxy.requests == []
    assert status(t)["pending"] == []


def test_touch_without_change_costs_a_hash_not_a_request(s3, home):
    """chmod or touch changes the ctime: the file is hashed, found unchanged, and nothing is sent."""
    t = _target(home)
    f = _write(home, "notes.md", b"notes")
    assert backup(t).exit_code == 0
    os.chmod(f, 0o600)
    st = os.stat(f)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    s3.proxy.reset()
    report = backup(t)
    assert s3.proxy.requests == [] and report.uploaded == [] and report.unchanged == 1
    assert status(t)["pending_count"] == 0


def test_state_from_before_ctime_is_migrated_without_uploads(s3, home):
    """A state file written before ctime was recorded: one re-hash, no upload, then 0 requests."""
    t = _target(home)
    _write(home, "a.txt", b"a")
    assert backup(t).exit_code == 0
    db = sqlite3.connect(t.state_path)
    db.execute("ALTER TABLE files DROP COLUMN ctime_ns")  # the old schema
    db.execute("ALTER TABLE seeded DROP COLUMN ctime_ns")
    db.commit()
    db.close()
    with State(t.state_path) as state:  # opening adds the column back
        assert state.get("a.txt").ctime_ns is None
    s3.proxy.reset()
    report = backup(t)
    assert s3.proxy.requests == [] and report.unchanged == 1 and not report.uploaded
    with State(t.state_path) as state:
        assert state.get("a.txt").ctime_ns == os.stat(home / "a.txt").st_ctime_ns


def test_seed_keeps_an_edit_that_kept_its_mtime(s3, home, tmp_path):
    """A seeded notebook edited by a tool that restores the mtime is the user's: not replaced."""
    put = s3.client.put_object
    put(Bucket=BUCKET, Key="common-notebooks/intro.ipynb", Body=b"intro v1")
    assert cli(home, "seed").returncode == 0
    f = home / "common-notebooks/intro.ipynb"
    before = os.stat(f)
    src = _write(tmp_path, "mine.ipynb", b"my notes")  # same size as "intro v1"
    os.utime(src, ns=(before.st_atime_ns, before.st_mtime_ns))
    subprocess.run(["cp", "-p", str(src), str(f)], check=True)
    put(Bucket=BUCKET, Key="common-notebooks/intro.ipynb", Body=b"intro v2")
    proc = cli(home, "seed")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f.read_bytes() == b"my notes"
    [beside] = [p for p in f.parent.iterdir() if "new version" in p.name]
    assert beside.read_bytes() == b"intro v2"


# ------------------------------------------------------------------------------------------
# restore into a home that does not exist yet
# ------------------------------------------------------------------------------------------
def test_restore_creates_a_missing_home(s3, home, tmp_path):
    _write(home, "nb/analysis.ipynb", b"{}")
    assert cli(home, "backup").returncode == 0
    new = tmp_path / "new" / "deeper" / "home"
    proc = cli(new, "restore")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{new}: created the home directory" in proc.stdout
    assert (new / "nb/analysis.ipynb").read_bytes() == b"{}"
    # --json says it too
    again = tmp_path / "json-home"
    report = json.loads(cli(again, "restore", "--json").stdout)
    assert {"path": str(again), "note": "created the home directory (it did not exist)"} in report["notes"]
    # an existing home is not announced
    assert "created" not in cli(new, "restore").stdout


def test_restore_refuses_a_home_that_is_not_a_directory(s3, home, tmp_path):
    _write(home, "a.txt", b"a")
    assert cli(home, "backup").returncode == 0
    a_file = _write(tmp_path, "a-file", b"keep me")
    proc = cli(a_file, "restore")
    assert proc.returncode == 2 and "exists and is not a directory" in proc.stderr, proc.stderr
    assert a_file.read_bytes() == b"keep me"
    dangling = tmp_path / "dangling-home"
    dangling.symlink_to(tmp_path / "nowhere")
    proc = cli(dangling, "restore")
    assert proc.returncode == 2 and "exists and is not a directory" in proc.stderr, proc.stderr
    assert not (tmp_path / "nowhere").exists()


def test_backup_and_status_still_refuse_a_missing_home(s3, tmp_path):
    missing = tmp_path / "missing"
    for action in ("backup", "status"):
        proc = cli(missing, action)
        assert proc.returncode == 2 and "does not exist" in proc.stderr, proc.stderr
    assert not missing.exists()


# ------------------------------------------------------------------------------------------
# broken symlinks
# ------------------------------------------------------------------------------------------
def test_broken_symlinks_are_called_broken(s3, home, tmp_path):
    (home / "to-nowhere-outside").symlink_to(tmp_path / "no-such-dir" / "x.txt")
    (home / "to-nowhere-inside").symlink_to(home / "deleted.txt")
    (home / "relative-broken").symlink_to("../../no/such/file")
    _write(home, "real.txt", b"real")
    report = backup(_target(home))
    notes = {n["path"]: n["note"] for n in report.notes}
    for rel in ("to-nowhere-outside", "to-nowhere-inside", "relative-broken"):
        assert notes[rel].startswith("broken symlink"), notes
        assert "outside" not in notes[rel]
    assert {n["path"]: n["note"] for n in status(_target(home))["notes"]} == notes
    # a targeted backup (on-save hook, watch) says the same
    report = backup(_target(home), paths=[home / "to-nowhere-outside", home / "to-nowhere-inside"])
    assert [n["note"].split(" (")[0] for n in report.notes] == ["broken symlink"] * 2, report.notes
    assert sorted(remote_objects(s3.client)) == [f"{PREFIX}/real.txt"]
