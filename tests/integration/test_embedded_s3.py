"""``hail-emr-lab local-s3`` (rclone serve s3 over a directory) and the sync against it.

One test per fact the sync relies on, probed on the real server over HTTP: what it honours
(Content-MD5, single-part ETags, ListObjectsV2 paging, CopyObject, user metadata while it
runs, signed requests only) and what it does not, with the sync's cover for each (ETag quotes,
metadata names, If-Match on GetObject, the multipart ETag, conditional writes, folder
markers). Then the promise of the lab: a backup survives a restart of the server.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError
from s3transfer.exceptions import S3DownloadFailedError
from support.net import free_port

from hail_emr_lab.sync.engine import backup, restore, status
from hail_emr_lab.sync.remote import Remote
from hail_emr_lab.sync.server_facts import PROBE_ENV, ServerFacts, probe
from hail_emr_lab.sync.target import SyncTarget

BIN = Path(sys.executable).parent
BUCKET = "local-s3-test"
KEY_ID, SECRET = "HELTESTKEY0123456789", "test-secret-0123456789abcdef"


class LocalS3:
    """``hail-emr-lab local-s3`` in a process of its own; restartable over the same directory."""

    def __init__(self, data_dir: Path, state_dir: Path) -> None:
        self.data_dir, self.state_dir = data_dir, state_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = {**os.environ, "AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET}
        self.proc = subprocess.Popen(
            [str(BIN / "hail-emr-lab"), "local-s3", "--dir", str(self.data_dir), "--port", str(self.port),
             "--state-dir", str(self.state_dir)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )
        for _ in range(150):
            try:
                requests.get(self.url, timeout=5)
                return
            except (requests.ConnectionError, requests.Timeout):  # starting: accepted, not answered yet
                assert self.proc.poll() is None, self.proc.stdout.read().decode()
                import time

                time.sleep(0.2)
        raise AssertionError("local-s3 did not start")

    def stop(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(30)
        self.output = self.proc.stdout.read().decode()

    def client(self):  # noqa: ANN201 - a boto3 S3 client
        return boto3.client("s3", endpoint_url=self.url, region_name="us-east-1", aws_access_key_id=KEY_ID,
                            aws_secret_access_key=SECRET,
                            config=Config(request_checksum_calculation="when_required"))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s3 = LocalS3(tmp_path_factory.mktemp("s3-data"), tmp_path_factory.mktemp("s3-state"))
    s3.start()
    s3.client().create_bucket(Bucket=BUCKET)
    yield s3
    s3.stop()


@pytest.fixture
def s3_env(server, monkeypatch):
    """boto3 (and so the sync) pointed at the local S3."""
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv(PROBE_ENV, "1")  # as the lab sets it
    return server


def quoted_md5(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


# What the server honours ---------------------------------------------------------------------

def test_objects_are_files_on_disk(server):
    server.client().put_object(Bucket=BUCKET, Key="disk/a.txt", Body=b"on disk")
    assert (server.data_dir / BUCKET / "disk" / "a.txt").read_bytes() == b"on disk"


def test_unsigned_and_wrongly_signed_requests_are_refused(server):
    unsigned = requests.get(f"{server.url}/{BUCKET}/disk/a.txt", timeout=10)
    assert unsigned.status_code in (400, 403) and b"on disk" not in unsigned.content
    wrong = boto3.client("s3", endpoint_url=server.url, region_name="us-east-1",
                         aws_access_key_id=KEY_ID, aws_secret_access_key="not-the-secret")
    with pytest.raises(ClientError):
        wrong.list_objects_v2(Bucket=BUCKET)


def test_content_md5_is_verified_and_the_etag_is_the_md5(server):
    s3 = server.client()
    body = b"hello world"
    good = base64.b64encode(hashlib.md5(body).digest()).decode()
    assert s3.put_object(Bucket=BUCKET, Key="md5/ok", Body=body, ContentMD5=good)["ETag"] == quoted_md5(body)
    bad = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    with pytest.raises(ClientError) as err:
        s3.put_object(Bucket=BUCKET, Key="md5/bad", Body=body, ContentMD5=bad)
    assert err.value.response["Error"]["Code"] == "BadDigest"


def test_list_objects_v2_pages(server):
    s3 = server.client()
    for i in range(25):
        s3.put_object(Bucket=BUCKET, Key=f"pages/{i:03}", Body=b"x")
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=BUCKET, Prefix="pages/", PaginationConfig={"PageSize": 10}) for o in page.get("Contents", [])]
    assert keys == [f"pages/{i:03}" for i in range(25)]


def test_listed_etags_come_quoted_through_the_sync(s3_env, tmp_path):
    raw = s3_env.client()
    raw.put_object(Bucket=BUCKET, Key="quote/a", Body=b"a")
    assert raw.list_objects_v2(Bucket=BUCKET, Prefix="quote/")["Contents"][0]["ETag"] == hashlib.md5(b"a").hexdigest()
    with Remote(SyncTarget(tmp_path, BUCKET, "quote")) as remote:
        assert remote.list("quote/")[0]["ETag"] == quoted_md5(b"a")


def test_user_metadata_is_kept_while_running_with_its_names_lower_cased_by_the_sync(s3_env, tmp_path):
    raw = s3_env.client()
    raw.put_object(Bucket=BUCKET, Key="meta/a", Body=b"a", Metadata={"md5": "x", "mtime-ns": "123"})
    assert raw.head_object(Bucket=BUCKET, Key="meta/a")["Metadata"] == {"Md5": "x", "Mtime-Ns": "123"}
    with Remote(SyncTarget(tmp_path, BUCKET, "meta")) as remote:
        assert remote.head("meta/a")["Metadata"] == {"md5": "x", "mtime-ns": "123"}


def test_copy_object_copies(server):
    s3 = server.client()
    s3.put_object(Bucket=BUCKET, Key="copy/src", Body=b"to the trash")
    s3.copy_object(Bucket=BUCKET, Key="copy/dst", CopySource={"Bucket": BUCKET, "Key": "copy/src"})
    assert s3.get_object(Bucket=BUCKET, Key="copy/dst")["Body"].read() == b"to the trash"


# What it does not honour, and the sync's cover ----------------------------------------------

def test_conditional_writes_are_ignored_and_the_probe_says_so(s3_env, tmp_path):
    raw = s3_env.client()
    raw.put_object(Bucket=BUCKET, Key="cond/a", Body=b"1")
    raw.put_object(Bucket=BUCKET, Key="cond/a", Body=b"2", IfNoneMatch="*")  # AWS: 412
    raw.put_object(Bucket=BUCKET, Key="cond/a", Body=b"3", IfMatch='"not-the-etag"')  # AWS: 412
    raw.copy_object(Bucket=BUCKET, Key="cond/b", CopySource={"Bucket": BUCKET, "Key": "cond/a"},
                    CopySourceIfMatch='"not-the-etag"')  # AWS: 412
    assert raw.get_object(Bucket=BUCKET, Key="cond/a")["Body"].read() == b"3"
    with Remote(SyncTarget(tmp_path, BUCKET, "probe")) as remote:
        assert probe(remote) == ServerFacts(conditional_writes=False, folder_markers=False)
        assert remote.list("probe/") == []  # the probe cleans up after itself


def test_folder_markers_become_files(server):
    s3 = server.client()
    s3.put_object(Bucket=BUCKET, Key="marker/empty/", Body=b"")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="marker/")["Contents"]] == ["marker/empty"]
    assert (server.data_dir / BUCKET / "marker" / "empty").is_file()


def test_get_if_match_is_ignored_by_the_server_and_enforced_by_the_sync(s3_env, tmp_path):
    raw = s3_env.client()
    raw.put_object(Bucket=BUCKET, Key="ifmatch/a", Body=b"now")
    assert raw.get_object(Bucket=BUCKET, Key="ifmatch/a", IfMatch='"old"')["Body"].read() == b"now"
    with Remote(SyncTarget(tmp_path, BUCKET, "ifmatch")) as remote:
        # The same refusal as AWS's 412 gives (s3transfer words it so): not a download of other bytes.
        with pytest.raises(S3DownloadFailedError, match="did not match expected ETag"):
            remote.download("ifmatch/a", str(tmp_path / "out"), 3, quoted_md5(b"before")).result()
    assert b"now" not in ((tmp_path / "out").read_bytes() if (tmp_path / "out").exists() else b"")


def test_multipart_etag_changes_form_after_completion_and_the_sync_records_the_later_one(s3_env, tmp_path):
    raw = s3_env.client()
    part1, part2 = b"a" * (5 * 1024 * 1024), b"tail"
    up = raw.create_multipart_upload(Bucket=BUCKET, Key="mp/raw")
    etags = [raw.upload_part(Bucket=BUCKET, Key="mp/raw", UploadId=up["UploadId"], PartNumber=n, Body=b)["ETag"]
             for n, b in ((1, part1), (2, part2))]
    done = raw.complete_multipart_upload(
        Bucket=BUCKET, Key="mp/raw", UploadId=up["UploadId"], IfNoneMatch="*",
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in zip((1, 2), etags)]})
    parts_md5 = hashlib.md5(hashlib.md5(part1).digest() + hashlib.md5(part2).digest()).hexdigest()
    assert done["ETag"] == f'"{parts_md5}-2"'
    assert raw.head_object(Bucket=BUCKET, Key="mp/raw")["ETag"] == quoted_md5(part1 + part2)

    home = tmp_path / "home"
    home.mkdir()
    (home / "big.bin").write_bytes(part1 + part2)
    target = SyncTarget(home, BUCKET, "mp-home", multipart_threshold=5 * 1024 * 1024,
                        multipart_chunksize=5 * 1024 * 1024)
    assert backup(target).exit_code == 0
    assert backup(target).remote_calls is False
    again = restore(target)  # the ETag recorded is the one listings give: nothing looks changed in S3
    assert again.exit_code == 0 and again.downloaded == [] and not again.conflicts, again
    restored = tmp_path / "restored"
    report = restore(SyncTarget(restored, BUCKET, "mp-home"))
    assert report.exit_code == 0, report.errors
    assert (restored / "big.bin").read_bytes() == part1 + part2


# The sync end to end, across a restart -------------------------------------------------------

def make_home(root: Path) -> dict[str, bytes]:
    files = {
        "notebook.ipynb": json.dumps({"cells": [], "nbformat": 4}).encode(),
        "data/table.tsv": b"locus\talleles\n1:1\tA,T\n" * 500,
        "data/deep/nested/x.bin": os.urandom(70_000),
        "empty.txt": b"",
        "names/with space & ünïcode.txt": b"odd names",
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / "results" / "none-yet").mkdir(parents=True)
    return files


def test_backups_survive_a_restart_of_the_server(tmp_path, monkeypatch):
    s3 = LocalS3(tmp_path / "s3-data", tmp_path / "s3-state")
    s3.start()
    try:
        for name in [n for n in os.environ if n.startswith("AWS_")]:
            monkeypatch.delenv(name)
        monkeypatch.setenv("AWS_ENDPOINT_URL", s3.url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.setenv(PROBE_ENV, "1")  # as the lab sets it
        s3.client().create_bucket(Bucket="restart")
        home = tmp_path / "home"
        home.mkdir()
        files = make_home(home)
        target = SyncTarget(home, "restart", "me")
        first = backup(target)
        assert first.exit_code == 0, first.errors
        assert sorted(first.uploaded) == sorted(files)
        before = status(target)
        assert before["pending_count"] == 0
        limits = before["server_limits"]
        assert len(limits) == 2 and "conditional writes" in limits[0] and "empty directories" in limits[1]
        assert backup(target).remote_calls is False  # no change: no request, the probe is remembered

        s3.stop()
        s3.start()  # same directory, same port

        after = status(target)
        for key in ("pending_count", "synced_count", "last_backup", "conflicts", "errors", "server_limits"):
            assert after[key] == before[key], key
        assert backup(target).remote_calls is False
        restored = tmp_path / "restored"
        report = restore(SyncTarget(restored, "restart", "me"))
        assert report.exit_code == 0, report.errors
        for rel, data in files.items():
            assert (restored / rel).read_bytes() == data, rel
            # Of the metadata only the mtime outlives the server (as the file's mtime; listed to the ms).
            assert abs(os.stat(restored / rel).st_mtime_ns - os.stat(home / rel).st_mtime_ns) < 1_000_000, rel
        # One change after the restart goes up as usual and comes back.
        (home / "notebook.ipynb").write_bytes(b"edited after the restart")
        assert backup(target).uploaded == ["notebook.ipynb"]
        assert restore(SyncTarget(restored, "restart", "me")).downloaded == ["notebook.ipynb"]
        assert (restored / "notebook.ipynb").read_bytes() == b"edited after the restart"
        # Deleting goes through the trash (CopyObject + DeleteObject) and stays deleted.
        (home / "empty.txt").unlink()
        assert backup(target, delete=True).trashed == ["empty.txt"]
        keys = [o["Key"] for o in s3.client().list_objects_v2(Bucket="restart", Prefix="me/")["Contents"]]
        assert "me/empty.txt" not in keys and any(k.endswith("/empty.txt") and "trash" in k for k in keys)
    finally:
        s3.stop()


def test_status_names_each_server_limitation_once(s3_env, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "a.txt").write_text("a")
    (home / "empty").mkdir()
    target = SyncTarget(home, BUCKET, "once")
    assert backup(target).exit_code == 0
    assert backup(target).exit_code == 0
    out = subprocess.run([str(BIN / "hail-emr-lab"), "sync", "status", "--home", str(home), "--bucket", BUCKET,
                          "--prefix", "once"], capture_output=True, text=True, env=os.environ.copy())
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("ignores conditional writes") == 1, out.stdout
    assert out.stdout.count("empty directories are not backed up") == 1, out.stdout
    assert "kept as folder markers" not in out.stdout, out.stdout


# Credentials ---------------------------------------------------------------------------------

def test_generated_credentials_are_kept_once_in_a_private_file(tmp_path, monkeypatch):
    from hail_emr_lab.embedded import s3 as local_s3

    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    first = local_s3.credentials(tmp_path)
    path = tmp_path / local_s3.CREDENTIALS_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert local_s3.credentials(tmp_path) == first
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "FROMENVKEY0123456789")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "from-env-secret-0123456789")
    assert local_s3.credentials(tmp_path) == ("FROMENVKEY0123456789", "from-env-secret-0123456789")


def test_credentials_are_not_on_the_command_line_nor_in_the_output(server):
    cmdline = Path(f"/proc/{server.proc.pid}/cmdline").read_bytes().decode(errors="replace")
    children = subprocess.run(["pgrep", "-s", str(server.proc.pid), "-a"], capture_output=True, text=True).stdout
    assert SECRET not in cmdline and SECRET not in children and KEY_ID not in children
    assert "rclone" in children  # the server found
