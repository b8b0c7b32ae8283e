"""What the home backup keeps and how it says so: edits that keep their mtime, empty directories,
restoring into a new home, broken symlinks, environments that are not work.

Everything runs against the moto server over HTTP through the request-counting proxy of
``support.sync_s3`` (moto stands in for S3; it does not model S3's consistency or limits).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.sync_s3 import BUCKET, PREFIX, cli, remote_objects, s3_fixture  # noqa: F401
from test_sync_cli import fake_crontab  # noqa: F401

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


# ------------------------------------------------------------------------------------------
# empty directories
# ------------------------------------------------------------------------------------------
def test_empty_directories_are_backed_up_restored_and_listed(s3, home, tmp_path):
    t = _target(home)
    (home / "results/empty_dir").mkdir(parents=True)
    (home / "results/nested/a/b").mkdir(parents=True)  # the deepest one is enough
    _write(home, "results/table.csv", b"x")
    _write(home, "only-caches/__pycache__/m.pyc", b"pyc")  # not empty: nothing to keep
    st = status(t)
    assert st["empty_dirs"] == ["results/empty_dir", "results/nested/a/b"]
    assert "results/empty_dir/" in st["pending"] and st["pending_count"] == 3
    text = cli(home, "status").stdout
    assert "empty dirs:  2 (kept as folder markers): results/empty_dir/, results/nested/a/b/" in text

    report = backup(t)
    assert report.exit_code == 0, report.summary()
    assert sorted(report.uploaded) == ["results/empty_dir/", "results/nested/a/b/", "results/table.csv"]
    objects = remote_objects(s3.client)
    assert objects[f"{PREFIX}/results/empty_dir/"] == b"" and objects[f"{PREFIX}/results/nested/a/b/"] == b""
    assert f"{PREFIX}/results/nested/" not in objects
    assert status(t)["pending"] == []
    s3.proxy.reset()
    assert not backup(t).remote_calls and s3.proxy.requests == []

    other = tmp_path / "other"
    report = json.loads(cli(other, "restore", "--json").stdout)
    assert sorted(report["downloaded"]) == ["results/empty_dir/", "results/nested/a/b/", "results/table.csv"]
    for d in ("results/empty_dir", "results/nested/a/b"):
        assert (other / d).is_dir() and not any((other / d).iterdir())
    report = json.loads(cli(other, "restore", "--json").stdout)
    assert report["downloaded"] == [] and report["errors"] == []
    assert status(_target(other))["pending"] == []

    # a directory that gains a file keeps its marker and is not "deleted"; one removed is
    (home / "results/empty_dir/now-full.txt").write_text("full")
    os.rmdir(home / "results/nested/a/b")
    st = status(t)
    assert st["deleted_locally"] == ["results/nested/a/b/"]
    assert st["empty_dirs"] == ["results/nested/a"]
    report = backup(t, delete=True)
    assert report.trashed == ["results/nested/a/b/"], report.summary()
    objects = remote_objects(s3.client)
    assert f"{PREFIX}/results/nested/a/b/" not in objects and f"{PREFIX}/results/empty_dir/" in objects
    assert [k for k in objects if k.endswith("/results/nested/a/b/")]  # in the trash


def test_empty_directory_restore_refuses_what_is_in_the_way(s3, home, tmp_path):
    (home / "results/empty").mkdir(parents=True)
    assert backup(_target(home)).exit_code == 0
    other = tmp_path / "other"
    _write(other, "results/empty", b"a file where the directory was")
    (other / "outside-link").symlink_to(tmp_path)
    s3.client.put_object(Bucket=BUCKET, Key=f"{PREFIX}/outside-link/evil/", Body=b"")
    s3.client.put_object(Bucket=BUCKET, Key=f"{PREFIX}/", Body=b"")  # the console's folder for the prefix
    proc = cli(other, "restore", "--json")
    report = json.loads(proc.stdout)
    assert proc.returncode == 3
    errors = {e["path"]: e["error"] for e in report["errors"]}
    assert "not a directory is in the way" in errors["results/empty/"]
    assert "outside the home" in errors[f"{PREFIX}/outside-link/evil/"]
    assert len(errors) == 2 and not (tmp_path / "evil").exists()
    assert (other / "results/empty").read_bytes() == b"a file where the directory was"


def test_targeted_backup_keeps_a_new_empty_directory(s3, home):
    """What the watcher and the on-save hook send: a new empty directory gets its marker."""
    t = _target(home)
    assert backup(t).exit_code == 0
    (home / "new/empty").mkdir(parents=True)
    _write(home, "new/full/f.txt", b"f")
    report = backup(t, paths=[home / "new/empty", home / "new/full"])
    assert report.uploaded == ["new/empty/"] and report.errors == [], report.summary()
    assert remote_objects(s3.client) == {f"{PREFIX}/new/empty/": b""}


# ------------------------------------------------------------------------------------------
# environments and caches are not work
# ------------------------------------------------------------------------------------------
def _home_with_environments(home: Path) -> dict[str, bytes]:
    """A home as a developer leaves it; returns the files that are work."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(home / "proj/.venv")], check=True)
    _write(home, "proj/.venv/lib/site-packages/pkg/__init__.py", b"installed")
    # conda is not installed here: a prefix as conda leaves it (conda-meta/ marks it)
    _write(home, "SageMaker-envs/py311/conda-meta/history", b"==> 2026-01-01 <==")
    _write(home, "SageMaker-envs/py311/lib/python3.11/os.py", b"stdlib")
    _write(home, "labextension/node_modules/react/index.js", b"module.exports = 1")
    _write(home, ".cache/pip/http/abc", b"cache")
    _write(home, "proj/__pycache__/mod.cpython-311.pyc", b"pyc")
    _write(home, "proj/.ipynb_checkpoints/nb-checkpoint.ipynb", b"{}")
    work = {"proj/mod.py": b"print('work')", "proj/nb.ipynb": b"{}", "labextension/src/index.ts": b"ts"}
    for rel, data in work.items():
        _write(home, rel, data)
    git = ["git", "-C", str(home / "proj"), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "mod.py"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "unpushed work"], check=True)
    return work


def test_environments_and_caches_are_skipped_and_counted(s3, home):
    work = _home_with_environments(home)
    t = _target(home)
    st = status(t)
    assert st["skipped"] == {"environments": 2, "node_modules": 1, "caches": 2, ".ipynb_checkpoints": 1}
    assert st["skipped_text"] == "2 environments, 1 node_modules, 2 caches, 1 .ipynb_checkpoints"
    assert sorted(st["skipped_dirs"]) == [".cache", "SageMaker-envs/py311", "labextension/node_modules",
                                          "proj/.ipynb_checkpoints", "proj/.venv", "proj/__pycache__"]
    assert "skipped:     2 environments, 1 node_modules, 2 caches" in cli(home, "status").stdout
    assert not [p for p in st["pending"] if ".venv" in p or "node_modules" in p or "conda" in p]

    assert backup(t).exit_code == 0
    keys = set(remote_objects(s3.client))
    assert {f"{PREFIX}/{rel}" for rel in work} <= keys
    assert f"{PREFIX}/proj/.git/HEAD" in keys and f"{PREFIX}/proj/.git/refs/tags/" in keys  # git is work
    for skipped in (".venv", "node_modules", "SageMaker-envs/py311", ".cache", "__pycache__", "checkpoint"):
        assert not [k for k in keys if skipped in k], skipped
    other_git = [k for k in keys if "/.git/objects/" in k]
    assert other_git  # the unpushed commit's objects

    # what the watcher and the on-save hook send is filtered the same way
    _write(home, "proj/.venv/lib/site-packages/pkg/new.py", b"pip install")
    _write(home, "SageMaker-envs/py311/lib/python3.11/new.py", b"conda install")
    report = backup(t, paths=[home / "proj/.venv/lib/site-packages/pkg/new.py",
                              home / "SageMaker-envs/py311/lib/python3.11/new.py",
                              home / "labextension/node_modules/react/index.js"])
    assert report.uploaded == [] and not report.remote_calls and report.notes == []


def test_a_switch_includes_environments_again(s3, home, isolated_config):
    _home_with_environments(home)
    venv_cfg = "proj/.venv/pyvenv.cfg"
    assert venv_cfg not in json.loads(cli(home, "status", "--json").stdout)["pending"]
    for how in ("flag", "env", "config"):
        env = dict(os.environ)
        args = ["status", "--json"]
        if how == "flag":
            args.append("--include-environments")
        elif how == "env":
            env["HAIL_EMR_LAB_BACKUP_ENVIRONMENTS"] = "true"
        else:
            (isolated_config / "config.json").write_text(json.dumps({"backup_environments": True}))
        st = json.loads(cli(home, *args, env=env).stdout)
        assert venv_cfg in st["pending"], how
        assert "labextension/node_modules/react/index.js" in st["pending"]
        assert st["skipped"] == {"caches": 1, ".ipynb_checkpoints": 1}  # __pycache__ and checkpoints stay out
    proc = cli(home, "backup")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    keys = set(remote_objects(s3.client))
    assert f"{PREFIX}/{venv_cfg}" in keys and f"{PREFIX}/SageMaker-envs/py311/conda-meta/history" in keys


def test_restore_skips_environments_found_in_an_older_backup(s3, home, tmp_path):
    """Objects of environments backed up before they were skipped are not restored by default."""
    _home_with_environments(home)
    assert backup(_target(home, environments=True)).exit_code == 0
    other = tmp_path / "other"
    other.mkdir()
    report = backup(_target(home), delete=True)  # the default run neither deletes nor re-uploads them
    assert report.uploaded == [] and report.trashed == []
    assert status(_target(home))["deleted_locally_count"] == 0
    from hail_emr_lab.sync import restore

    report = restore(_target(other))
    assert report.exit_code == 0, report.summary()
    assert (other / "proj/mod.py").exists() and (other / "proj/.git/HEAD").exists()
    assert not (other / "proj/.venv").exists() and not (other / "SageMaker-envs/py311").exists()
    assert not (other / "labextension/node_modules").exists() and not (other / ".cache").exists()
    report = restore(_target(other, environments=True))
    assert (other / "proj/.venv/pyvenv.cfg").exists() and (other / "labextension/node_modules/react/index.js").exists()


# ------------------------------------------------------------------------------------------
# the watcher does not watch what the backup skips
# ------------------------------------------------------------------------------------------
def _inotify_watched_inodes() -> set[int]:
    """Inodes this process holds inotify watches on (Linux: /proc/self/fdinfo)."""
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") != "anon_inode:inotify":
                continue
            lines = Path(f"/proc/self/fdinfo/{fd}").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            if line.startswith("inotify wd:"):
                out.add(int(line.split(" ino:")[1].split()[0], 16))
    return out


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen in {timeout} s")
        time.sleep(0.1)


@pytest.mark.skipif(not Path("/proc/self/fdinfo").is_dir(), reason="needs Linux /proc to see inotify watches")
def test_watch_does_not_watch_environments(s3, home):
    import threading

    from hail_emr_lab.sync.watch import watch

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(home / "proj/.venv")], check=True)
    _write(home, "web/node_modules/react/lib/index.js", b"x")
    _write(home, "proj/src/mod.py", b"work")
    ino = lambda rel: os.stat(home / rel).st_ino  # noqa: E731
    target = _target(home)
    stop = threading.Event()
    reports = []
    thread = threading.Thread(target=watch, args=(target, 0.2, stop, reports.append), daemon=True)
    before = _inotify_watched_inodes()
    thread.start()
    try:
        _wait(lambda: reports, 30, "the initial backup")
        watched = _inotify_watched_inodes() - before
        assert {ino("."), ino("proj"), ino("proj/src"), ino("web")} <= watched
        for rel in ("proj/.venv", "proj/.venv/lib", "proj/.venv/bin", "web/node_modules",
                    "web/node_modules/react", "web/node_modules/react/lib"):
            assert ino(rel) not in watched, rel

        # a venv created while watching: what is made in it once it is one is not watched
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(home / "proj/env2")], check=True)
        [site] = (home / "proj/env2/lib").glob("python*/site-packages")
        _write(site, "newpkg/sub/__init__.py", b"pip install")
        _write(home, "proj/.venv/lib/new.py", b"pip install")
        _write(home, "web/node_modules/react/new.js", b"npm install")
        (home / "proj/empty").mkdir()
        _write(home, "proj/src/new.py", b"new work")
        keys = lambda: set(remote_objects(s3.client))  # noqa: E731
        _wait(lambda: {f"{PREFIX}/proj/src/new.py", f"{PREFIX}/proj/empty/"} <= keys(), 15, "the backup of new work")
        time.sleep(1)  # a debounce more: nothing else follows
        assert not [k for k in keys() if ".venv" in k or "node_modules" in k or "env2" in k], keys()
        watched = _inotify_watched_inodes() - before
        for d in (site / "newpkg", site / "newpkg/sub"):
            assert os.stat(d).st_ino not in watched, d
        assert ino("proj/empty") in watched

        # a watched tree renamed: its files are backed up under the new names, and a write deep
        # inside it afterwards is seen at its new path
        _write(home, "proj/src/deep/old.py", b"old")
        _wait(lambda: f"{PREFIX}/proj/src/deep/old.py" in keys(), 15, "the backup of deep/old.py")
        os.rename(home / "proj/src", home / "proj/moved")
        time.sleep(0.5)
        _write(home, "proj/moved/deep/later.py", b"later")
        _wait(lambda: {f"{PREFIX}/proj/moved/mod.py", f"{PREFIX}/proj/moved/deep/later.py"} <= keys(), 15,
              "the backup of the renamed tree")
    finally:
        stop.set()
        thread.join(15)
    assert not thread.is_alive()
    assert _inotify_watched_inodes() <= before


def test_sidebar_backup_section_says_what_is_skipped(s3, home, monkeypatch):
    """The sidebar's REST payload (and the widgets panel built from it) carries the skipped note."""
    from hail_emr_lab.config import load_config
    from hail_emr_lab.dashboard.backup import backup_status
    from hail_emr_lab.notebook.panel import backup_html

    _home_with_environments(home)
    for key, value in (("BUCKET", BUCKET), ("PREFIX", PREFIX), ("HOME", str(home))):
        monkeypatch.setenv(f"HAIL_EMR_LAB_{key}", value)
    data = backup_status(load_config())
    assert data["error"] is None, data["error"]
    note = "Not backed up: 2 environments, 1 node_modules, 2 caches, 1 .ipynb_checkpoints (rebuilt, not written)"
    assert data["skipped_note"] == note
    assert note in backup_html(data)
    monkeypatch.setenv("HAIL_EMR_LAB_BACKUP_ENVIRONMENTS", "1")
    assert backup_status(load_config())["skipped_note"] == "Not backed up: 1 cache, 1 .ipynb_checkpoints (rebuilt, not written)"


def test_install_cron_keeps_the_environments_switch(fake_crontab, tmp_path):  # noqa: F811 - the fixture
    home = tmp_path / "home"
    home.mkdir()
    assert cli(home, "install-cron", "--include-environments").returncode == 0
    [line] = [x for x in fake_crontab.read_text().splitlines() if "hail-emr-lab-sync" in x]
    assert "--include-environments" in line


def test_a_folder_made_in_the_console_is_not_an_error(s3, home):
    (home / "shared/inbox").mkdir(parents=True)
    s3.client.put_object(Bucket=BUCKET, Key=f"{PREFIX}/shared/inbox/", Body=b"")
    report = backup(_target(home))
    assert report.exit_code == 0 and report.uploaded == [] and report.unchanged == 1, report.summary()
    assert status(_target(home))["pending"] == []
    s3.proxy.reset()
    assert not backup(_target(home)).remote_calls and s3.proxy.requests == []


# ------------------------------------------------------------------------------------------
# an object gone from S3 while the file did not change (deleted by hand, by a lifecycle rule)
# ------------------------------------------------------------------------------------------
def test_object_gone_from_s3_is_uploaded_again_by_the_daily_listing(s3, home):
    t = _target(home)
    _write(home, "results/table.csv", b"a,b\n1,2\n")
    _write(home, "notes.txt", b"kept")
    assert backup(t).exit_code == 0
    s3.client.delete_object(Bucket=BUCKET, Key=f"{PREFIX}/results/table.csv")
    s3.proxy.reset()
    # Within the day, an unchanged home costs no request (the fast path the on-save hook relies on).
    assert not backup(t).remote_calls and s3.proxy.requests == []

    report = backup(t, verify=True)  # what `sync backup --verify` does, and a backup a day later
    assert report.uploaded == ["results/table.csv"], report.summary()
    assert any("gone from S3" in n["note"] for n in report.notes)
    assert remote_objects(s3.client)[f"{PREFIX}/results/table.csv"] == b"a,b\n1,2\n"

    s3.client.delete_object(Bucket=BUCKET, Key=f"{PREFIX}/notes.txt")
    with State(t.state_path) as state:  # the last listing was a day ago
        state.set_meta("last_listing", time.time() - 24 * 3600 - 1)
    assert backup(t).uploaded == ["notes.txt"]
    s3.proxy.reset()
    assert not backup(t).remote_calls and s3.proxy.requests == []  # listed again just now
    assert backup(t, verify=False).uploaded == []


def test_backup_verify_on_the_command_line(s3, home):
    _write(home, "a.txt", b"a")
    assert cli(home, "backup").returncode == 0
    s3.client.delete_object(Bucket=BUCKET, Key=f"{PREFIX}/a.txt")
    done = cli(home, "backup", "--verify", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["uploaded"] == ["a.txt"]
    assert remote_objects(s3.client)[f"{PREFIX}/a.txt"] == b"a"
