"""Backup / restore against the moto server over HTTP (through a request-counting proxy)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.sync_s3 import BUCKET, PREFIX, cli, local_files, puts, remote_objects, s3_fixture  # noqa: F401

from hail_emr_lab.sync import SyncTarget, backup, restore, status

NAMES = [
    "plain.txt",
    "with space.ipynb",
    "ünïcödé/ñame — 日本語.ipynb",
    "hash#and%percent/50% done #1.txt",
    "tab\tand\rreturn.txt",
    "+plus&amp;=eq?.txt",
    "empty.txt",
]


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


def test_roundtrip_names_deep_trees_empty_files(s3, home, tmp_path):
    files = {n: (b"" if n == "empty.txt" else f"content of {n}".encode()) for n in NAMES}
    deep = "/".join(f"d{i}" for i in range(40)) + "/leaf.txt"
    files[deep] = b"deep"
    for rel, data in files.items():
        _write(home, rel, data)
    # excluded by default
    _write(home, "bin/tool", b"x")
    _write(home, ".ipynb_checkpoints/a-checkpoint.ipynb", b"x")
    _write(home, "sub/__pycache__/m.pyc", b"x")
    _write(home, ".sparkmagic/config.json", b"x")
    _write(home, "proj/bin/kept.sh", b"kept")  # only the top-level bin/ is excluded
    files["proj/bin/kept.sh"] = b"kept"

    report = backup(_target(home))
    assert report.exit_code == 0, report.summary()
    objects = remote_objects(s3.client)
    assert objects == {f"{PREFIX}/{rel}": data for rel, data in files.items()}

    other = tmp_path / "other"
    other.mkdir()
    report = restore(_target(other))
    assert report.exit_code == 0, report.summary()
    assert local_files(other) == files
    for rel in files:  # original modification times come back
        assert os.stat(other / rel).st_mtime_ns == os.stat(home / rel).st_mtime_ns


def test_newline_in_name_is_reported_not_fatal(s3, home):
    """moto's server cannot route keys containing a newline (S3 can): the failure is per file."""
    _write(home, "ok.txt", b"ok")
    _write(home, "line\nbreak.txt", b"nl")
    report = backup(_target(home))
    assert f"{PREFIX}/ok.txt" in remote_objects(s3.client)
    if report.errors:  # moto: reported, run marked partial, others uploaded
        assert [e["path"] for e in report.errors] == ["line\nbreak.txt"]
        assert report.exit_code == 3
    else:
        assert remote_objects(s3.client)[f"{PREFIX}/line\nbreak.txt"] == b"nl"


def test_no_change_zero_requests_and_one_change_one_put(s3, home):
    for i in range(30):
        _write(home, f"f{i:02d}.txt", str(i).encode())
    assert backup(_target(home)).exit_code == 0
    assert len(puts(s3.proxy)) == 30

    s3.proxy.reset()
    report = backup(_target(home))
    assert s3.proxy.requests == [] and not report.remote_calls

    os.utime(home / "f01.txt")  # touched, content identical: still nothing to send
    assert backup(_target(home)).uploaded == []
    assert s3.proxy.requests == []

    (home / "f07.txt").write_text("changed")
    report = backup(_target(home))
    assert report.uploaded == ["f07.txt"]
    assert s3.proxy.requests == [("PUT", f"/{BUCKET}/{PREFIX}/f07.txt")]
    assert remote_objects(s3.client)[f"{PREFIX}/f07.txt"] == b"changed"


def test_no_change_backup_does_not_import_boto3(s3, home):
    _write(home, "a.txt", b"a")
    assert cli(home, "backup").returncode == 0
    code = (
        "import sys; from hail_emr_lab.cli import main; rc = main(['sync', 'backup', '--home', sys.argv[1], "
        f"'--bucket', '{BUCKET}', '--prefix', '{PREFIX}']); "
        "print(rc, 'boto3' in sys.modules, 'botocore' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(home)], capture_output=True, text=True, check=True)
    assert out.stdout.split()[-3:] == ["0", "False", "False"], out.stdout + out.stderr


def test_large_file_goes_in_parts(s3, home, tmp_path):
    data = os.urandom(20 * 1024 * 1024 + 12345)
    _write(home, "big/data.bin", data)
    assert backup(_target(home)).exit_code == 0
    head = s3.client.head_object(Bucket=BUCKET, Key=f"{PREFIX}/big/data.bin")
    assert head["ETag"].strip('"').endswith("-3")  # 8 MiB parts: 3 parts
    methods = [m for m, p in s3.proxy.requests]
    assert methods.count("PUT") == 3 and methods.count("POST") == 2  # create + 3 parts + complete
    other = tmp_path / "o"
    other.mkdir()
    assert restore(_target(other)).exit_code == 0
    assert (other / "big/data.bin").read_bytes() == data


def test_backup_conflict_keeps_both(s3, home):
    nb = _write(home, "analysis.ipynb", b"v1")
    t = _target(home)
    backup(t)
    s3.client.put_object(Bucket=BUCKET, Key=f"{PREFIX}/analysis.ipynb", Body=b"v1-from-other-instance")
    nb.write_bytes(b"v2-local")
    report = backup(t)
    assert len(report.conflicts) == 1, report.summary()
    copy = report.conflicts[0]["conflict_copy"]
    assert copy.startswith("analysis (conflict ") and copy.endswith(" from s3).ipynb")
    assert (home / copy).read_bytes() == b"v1-from-other-instance"
    assert nb.read_bytes() == b"v2-local"
    objects = remote_objects(s3.client)
    assert objects[f"{PREFIX}/analysis.ipynb"] == b"v2-local"
    assert objects[f"{PREFIX}/{copy}"] == b"v1-from-other-instance"
    st = status(t)
    assert st["conflicts"][0]["path"] == "analysis.ipynb" and st["conflicts"][0]["conflict_copy"] == copy
    assert st["pending_count"] == 0
    s3.proxy.reset()
    assert backup(t).remote_calls is False  # converged


def test_backup_new_file_exists_remotely(s3, home):
    t = _target(home)
    s3.client.put_object(Bucket=BUCKET, Key=f"{PREFIX}/same.txt", Body=b"same")
    s3.client.put_object(Bucket=BUCKET, Key=f"{PREFIX}/diff.txt", Body=b"theirs")
    _write(home, "same.txt", b"same")
    _write(home, "diff.txt", b"mine")
    report = backup(t)
    assert [c["path"] for c in report.conflicts] == ["diff.txt"]  # identical content is no conflict
    copy = report.conflicts[0]["conflict_copy"]
    assert (home / copy).read_bytes() == b"theirs"
    assert remote_objects(s3.client)[f"{PREFIX}/diff.txt"] == b"mine"


def test_backup_after_remote_delete_reuploads(s3, home):
    t = _target(home)
    p = _write(home, "x.txt", b"1")
    backup(t)
    s3.client.delete_object(Bucket=BUCKET, Key=f"{PREFIX}/x.txt")
    p.write_bytes(b"2")
    report = backup(t)
    assert report.conflicts == [] and report.exit_code == 0
    assert remote_objects(s3.client)[f"{PREFIX}/x.txt"] == b"2"


def test_restore_cases(s3, home):
    t = _target(home)
    _write(home, "remote-changed.txt", b"r1")
    _write(home, "local-changed.txt", b"l1")
    _write(home, "both-changed.txt", b"b1")
    _write(home, "untouched.txt", b"u1")
    backup(t)
    s3.client.put_object(Bucket=BUCKET, Key=f"{PREFIX}/remote-changed.txt", Body=b"r2")
    s3.client.put_object(Bucket=BUCKET, Key=f"{PREFIX}/both-changed.txt", Body=b"b2-remote")
    s3.client.put_object(Bucket=BUCKET, Key=f"{PREFIX}/new-remote.txt", Body=b"n")
    (home / "local-changed.txt").write_bytes(b"l2")
    (home / "both-changed.txt").write_bytes(b"b2-local")
    s3.proxy.reset()
    report = restore(t)
    gets = [p for m, p in s3.proxy.requests if m == "GET" and "list-type" not in p]
    assert {"new-remote.txt", "remote-changed.txt"} <= set(report.downloaded)
    assert len(report.downloaded) == 3
    assert len(gets) == 3  # remote-changed, new-remote, the conflict copy; no HEADs
    assert not [m for m, _ in s3.proxy.requests if m == "HEAD"]
    assert (home / "remote-changed.txt").read_bytes() == b"r2"
    assert (home / "local-changed.txt").read_bytes() == b"l2"  # kept, backup will send it
    assert (home / "both-changed.txt").read_bytes() == b"b2-local"
    assert (home / "new-remote.txt").read_bytes() == b"n"
    [conflict] = report.conflicts
    assert conflict["path"] == "both-changed.txt"
    assert (home / conflict["conflict_copy"]).read_bytes() == b"b2-remote"
    assert (home / "untouched.txt").read_bytes() == b"u1"


def test_restore_selected_paths_only(s3, home):
    t = _target(home)
    _write(home, "notes/a.txt", b"a")
    _write(home, "notes/sub/b.txt", b"b")
    _write(home, "other.txt", b"o")
    _write(home, "notes-not-a-child.txt", b"n")
    backup(t)
    for rel in ("notes/a.txt", "notes/sub/b.txt", "other.txt", "notes-not-a-child.txt"):
        (home / rel).unlink()
    report = restore(t, paths=["notes"])
    assert sorted(report.downloaded) == ["notes/a.txt", "notes/sub/b.txt"]
    assert not (home / "other.txt").exists() and not (home / "notes-not-a-child.txt").exists()
    report = restore(t, paths=[str(home / "other.txt"), "../escape.txt"])
    assert report.downloaded == ["other.txt"]
    assert any("escape.txt" in e["path"] for e in report.errors)
    assert (home / "other.txt").read_bytes() == b"o"


def test_restore_without_state_never_clobbers(s3, home, tmp_path):
    """A fresh instance (no state) with local files: identical ones are adopted, others kept."""
    _write(home, "a.txt", b"A")
    _write(home, "b.txt", b"B")
    backup(_target(home))
    fresh = tmp_path / "fresh"
    _write(fresh, "a.txt", b"A")
    _write(fresh, "b.txt", b"local B")
    report = restore(_target(fresh))
    assert (fresh / "b.txt").read_bytes() == b"local B"
    [c] = report.conflicts
    assert (fresh / c["conflict_copy"]).read_bytes() == b"B"
    assert "a.txt" not in report.downloaded


def test_delete_moves_to_trash(s3, home):
    t = _target(home)
    _write(home, "keep.txt", b"k")
    gone = _write(home, "dir/gone.txt", b"g")
    backup(t)
    gone.unlink()
    assert backup(t).trashed == []  # not without --delete
    assert f"{PREFIX}/dir/gone.txt" in remote_objects(s3.client)
    report = backup(t, delete=True)
    assert report.trashed == ["dir/gone.txt"]
    objects = remote_objects(s3.client)
    assert f"{PREFIX}/dir/gone.txt" not in objects
    [trashed] = [k for k in objects if k.startswith(f"{PREFIX}/.hail-emr-lab-trash/")]
    assert trashed.endswith("/dir/gone.txt") and objects[trashed] == b"g"
    assert all(k.startswith(PREFIX + "/") for k in objects)
    # the trash is never restored
    assert "dir/gone.txt" not in restore(t).downloaded


def test_malicious_keys_are_refused(s3, home, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (home / "link").symlink_to(outside, target_is_directory=True)
    bad = [
        "../evil.txt",
        "a/../../evil2.txt",
        "/abs.txt",
        "a\\..\\..\\evil3.txt",
        "./dot.txt",
        "link/pwned.txt",
        ".hail-emr-lab-sync/state-x.sqlite",
    ]
    for rel in bad:
        s3.client.put_object(Bucket=BUCKET, Key=f"{PREFIX}/{rel}", Body=b"pwned")
    s3.client.put_object(Bucket=BUCKET, Key=f"{PREFIX}/good.txt", Body=b"good")
    report = restore(_target(home))
    assert report.exit_code == 3
    assert len(report.errors) == len(bad), report.summary()
    assert all("refused" in e["error"] for e in report.errors)
    assert (home / "good.txt").read_bytes() == b"good"
    assert list(outside.iterdir()) == []
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "evil2.txt").exists()
    assert [p.name for p in home.iterdir()].count("abs.txt") == 0


def test_symlinks_fifo_and_unreadable(s3, home, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    _write(home, "real.txt", b"real")
    (home / "loop").mkdir()
    (home / "loop/self").symlink_to(home / "loop", target_is_directory=True)
    (home / "a").symlink_to(home / "b")
    (home / "b").symlink_to(home / "a")  # symlink loop between files
    (home / "escape").symlink_to(outside / "secret.txt")
    (home / "alias.txt").symlink_to(home / "real.txt")  # inside the home: content backed up
    os.mkfifo(home / "pipe")
    unreadable = _write(home, "locked.txt", b"locked")
    unreadable.chmod(0)
    wrap = []
    if os.geteuid() == 0:  # root reads anything: drop the capabilities that allow it
        wrap = ["setpriv", "--bounding-set=-dac_override,-dac_read_search",
                "--inh-caps=-dac_override,-dac_read_search"]
    proc = cli(home, "backup", "--json", wrap=wrap)
    report = json.loads(proc.stdout)
    assert proc.returncode == 3, proc.stderr
    assert [e["path"] for e in report["errors"]] == ["locked.txt"]
    notes = {n["path"]: n["note"] for n in report["notes"]}
    assert "FIFO" in notes["pipe"]
    assert "outside the home" in notes["escape"]
    assert "loop" in notes["a"] and "loop" in notes["b"]
    assert "directory" in notes["loop/self"]
    objects = remote_objects(s3.client)
    assert sorted(objects) == [f"{PREFIX}/alias.txt", f"{PREFIX}/real.txt"]
    assert b"secret" not in b"".join(objects.values())


def test_status_json_shape(s3, home):
    t = _target(home)
    st = status(t)
    assert st["last_backup"] is None and st["running"] is False
    _write(home, "n.ipynb", b"{}")
    st = status(t)
    assert st["pending"] == ["n.ipynb"] and st["pending_count"] == 1
    backup(t)
    s3.proxy.reset()
    proc = cli(home, "status", "--json")
    st = json.loads(proc.stdout)
    for key in ("home", "bucket", "prefix", "last_backup", "last_restore", "pending", "pending_count",
                "conflicts", "errors", "running"):
        assert key in st
    assert st["pending_count"] == 0 and st["last_backup"] and st["bucket"] == BUCKET
    assert s3.proxy.requests == []  # status sent nothing


def test_missing_bucket_is_a_clear_error(home):
    proc = subprocess.run([sys.executable, "-m", "hail_emr_lab", "sync", "backup", "--home", str(home),
                           "--prefix", "p"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "--bucket" in proc.stderr and "HAIL_EMR_LAB_BUCKET" in proc.stderr
    assert "Traceback" not in proc.stderr


def _copies(files) -> list[str]:
    return sorted(r for r in files if "(conflict " in r)


def test_one_conflict_copy_per_content_however_often_it_runs(s3, home, tmp_path):
    """A file never synced here that differs from S3: restores and backups in any order keep
    S3's version beside it once (locally and in S3), then the local file wins."""
    s3.client.put_object(Bucket=BUCKET, Key=f"{PREFIX}/notes.txt", Body=b"theirs")
    _write(home, "notes.txt", b"mine")
    for action in ("restore", "backup", "restore", "backup", "restore", "backup"):
        proc = cli(home, action)
        assert proc.returncode == 0, action + proc.stdout + proc.stderr
    [copy] = _copies(local_files(home))
    assert local_files(home)[copy] == b"theirs" and (home / "notes.txt").read_bytes() == b"mine"
    objects = remote_objects(s3.client)
    assert objects[f"{PREFIX}/notes.txt"] == b"mine"
    assert _copies(k[len(PREFIX) + 1 :] for k in objects) == [copy]


def test_lost_bookkeeping_does_not_make_a_second_copy_of_one_content(s3, home, tmp_path):
    """The same, when the state is lost between runs (a crash before it was committed, a new
    state directory): an existing copy with the same bytes is reused."""
    s3.client.put_object(Bucket=BUCKET, Key=f"{PREFIX}/a.ipynb", Body=b"theirs")
    _write(home, "a.ipynb", b"mine")
    for i, action in enumerate(("restore", "restore", "backup", "restore")):
        proc = cli(home, action, "--state-dir", str(tmp_path / f"state-{i}"))
        assert proc.returncode == 0, action + proc.stdout + proc.stderr
        assert len(_copies(local_files(home))) == 1, (action, _copies(local_files(home)))
    assert remote_objects(s3.client)[f"{PREFIX}/a.ipynb"] == b"mine"
    # A new remote version is new content: that one gets its own copy.
    s3.client.put_object(Bucket=BUCKET, Key=f"{PREFIX}/a.ipynb", Body=b"theirs, later")
    (home / "a.ipynb").write_bytes(b"mine, later")
    assert restore(_target(home)).conflicts
    assert sorted(local_files(home)[c] for c in _copies(local_files(home))) == [b"theirs", b"theirs, later"]


def test_large_file_changed_on_both_sides_keeps_both(s3, home):
    """The conditional completion of a multipart upload (S3 honours If-Match on it; the proxy in
    front of moto checks it as S3 does) is what stops the local version overwriting theirs."""
    rng = os.urandom
    _write(home, "big.bin", rng(9 * 1024 * 1024))
    t = _target(home)
    assert backup(t).exit_code == 0
    theirs, mine = rng(10 * 1024 * 1024), rng(11 * 1024 * 1024)
    s3.client.put_object(Bucket=BUCKET, Key=f"{PREFIX}/big.bin", Body=theirs)  # another instance
    (home / "big.bin").write_bytes(mine)
    s3.proxy.reset()
    report = backup(t)
    assert [r for _, _, r in s3.proxy.refused] == [412]  # the If-Match completion lost
    [conflict] = report.conflicts
    assert (home / conflict["conflict_copy"]).read_bytes() == theirs
    objects = remote_objects(s3.client)
    assert objects[f"{PREFIX}/big.bin"] == mine and objects[f"{PREFIX}/{conflict['conflict_copy']}"] == theirs
    assert s3.client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
