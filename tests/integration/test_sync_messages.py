"""What the sync prints: one clear message when S3 cannot be used at all (backup and restore
alike), and names from S3 or the disk never reach the terminal as raw control characters
(real ``hail-emr-lab sync`` processes, moto over HTTP)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support.net import free_port
from support.sync_s3 import BUCKET, PREFIX, cli, s3_fixture  # noqa: F401

from hail_emr_lab.sync.report import shown

CONTROL = ("\x1b", "\x07", "\r", "\x9b")


def _home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    (home / "a.txt").write_text("a")
    return home


@pytest.mark.parametrize("action", ["restore", "backup"])
def test_missing_bucket_is_one_clear_message(s3, tmp_path, action):
    proc = cli(_home(tmp_path), action, bucket="no-such-bucket-here")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert f"{action} of s3://no-such-bucket-here/{PREFIX}/ failed: the bucket 'no-such-bucket-here' does not exist" in line
    assert "--bucket" in line and "HAIL_EMR_LAB_BUCKET" in line  # what to do


@pytest.mark.parametrize("action", ["restore", "backup"])
def test_unreachable_endpoint_is_one_clear_message(tmp_path, monkeypatch, action):
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing",
               AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    proc = cli(_home(tmp_path), action, env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert f"{action} of s3://{BUCKET}/{PREFIX}/ failed: S3 could not be reached at {endpoint}" in line
    assert "check the network connection" in line


def test_shown_escapes_only_what_is_not_printable():
    assert shown("ünïcödé/ñame — 日本語.ipynb") == "ünïcödé/ñame — 日本語.ipynb"
    assert shown("a\x1b[2J\x07\r\n\tb\u202e\x9b") == "a\\x1b[2J\\x07\\r\\n\\tb\\u202e\\x9b"
    assert shown("bad-\udcff-bytes") == "bad-\\udcff-bytes"  # an undecodable file name


def test_control_characters_in_names_are_shown_escaped(s3, tmp_path):
    """A key holding terminal escapes (clear screen, set title, bell, carriage return) and a
    local file named alike: restore, backup and status print them escaped."""
    home = tmp_path / "home"
    home.mkdir()
    evil = "evil\x1b[2J\x1b]0;owned\x07\r\x9bname.txt"
    s3.client.put_object(Bucket=BUCKET, Key=f"{PREFIX}/{evil}", Body=b"theirs")
    (home / evil).write_bytes(b"mine")  # both sides differ: a conflict names both files
    os.mkfifo(home / "pipe\x1b[31mred")  # a note names it
    restored = cli(home, "restore")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "conflict: evil\\x1b[2J\\x1b]0;owned\\x07\\r\\x9bname.txt -> other version kept as evil\\x1b" in restored.stdout
    (home / "new\x1b[2J.txt").write_text("pending")
    status = cli(home, "status")
    backed = cli(home, "backup")
    assert backed.returncode == 0, backed.stdout + backed.stderr
    assert "pipe\\x1b[31mred" in backed.stdout and "new\\x1b[2J.txt" in status.stdout
    assert "conflict:    evil\\x1b[2J" in status.stdout
    for proc in (restored, status, backed):
        text = proc.stdout + proc.stderr
        assert not [c for c in CONTROL if c in text], repr(text)


def test_watch_keeps_going_while_s3_is_unreachable(s3, tmp_path):
    """A file saved while S3 cannot be reached is reported once per try and backed up as soon
    as S3 answers again; the watch process does not exit."""
    import subprocess
    import sys
    import threading
    import time

    home = tmp_path / "home"
    home.mkdir()
    (home / "before.txt").write_text("before")
    cmd = [sys.executable, "-m", "hail_emr_lab", "sync", "watch", "--debounce", "0.2",
           "--home", str(home), "--bucket", BUCKET, "--prefix", PREFIX]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True).start()

    def wait_until(check, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert proc.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, f"{what}: " + "".join(lines)
            time.sleep(0.1)

    def in_s3(name: str) -> bool:
        return s3.client.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/{name}")["KeyCount"] == 1

    try:
        wait_until(lambda: in_s3("before.txt"), 30, "initial backup")
        s3.proxy.down = True
        (home / "during.txt").write_text("written while S3 was down")
        wait_until(lambda: any("could not be reached" in line for line in lines), 60, "the outage is reported")
        s3.proxy.down = False
        wait_until(lambda: in_s3("during.txt"), 90, "backed up once S3 is back")
        assert proc.poll() is None
        assert "Traceback" not in "".join(lines)
    finally:
        proc.terminate()
        proc.wait(10)


def test_on_save_backup_logs_one_line_when_s3_cannot_be_used(s3, tmp_path):
    """The Jupyter server's on-save uploader: a missing bucket is one warning line in the
    server log, not a traceback."""
    import logging
    import time

    from hail_emr_lab.sync import SyncTarget
    from hail_emr_lab.sync.onsave import BackgroundUploader

    home = _home(tmp_path)
    records: list[logging.LogRecord] = []
    logger = logging.getLogger("test-onsave")
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    uploader = BackgroundUploader(SyncTarget(home, "no-such-bucket-here", PREFIX), logger)
    try:
        uploader.enqueue(str(home / "a.txt"))
        deadline = time.monotonic() + 30
        while not records and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        uploader.stop()
        logger.removeHandler(handler)
    [record] = records
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert "does not exist" in record.getMessage()
