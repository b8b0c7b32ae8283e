"""Integrity checks of the transfers: Content-MD5 on uploads, stored ETag checked, downloads
verified against the ETag before anything is put in place (moto server over HTTP)."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import pytest
from support.sync_s3 import BUCKET, PREFIX, s3_fixture  # noqa: F401

from hail_emr_lab.sync import SyncTarget, backup, restore
from hail_emr_lab.sync import remote as remote_mod
from hail_emr_lab.sync.remote import IntegrityError, Remote
from hail_emr_lab.sync.scan import hash_file


def _target(home: Path) -> SyncTarget:
    return SyncTarget(home=home, bucket=BUCKET, prefix=PREFIX)


def test_upload_sends_content_md5_and_refuses_a_changed_body(s3, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    f = home / "a.txt"
    f.write_bytes(b"what we hashed")
    t = _target(home)
    md5, etag = hash_file(f, t.multipart_chunksize, t.multipart_threshold)
    sent: list = []
    with Remote(t) as r:
        r.client.meta.events.register("before-send.s3.PutObject",
                                      lambda request, **_: sent.append(request.headers.get("Content-MD5")))
        want = base64.b64encode(hashlib.md5(b"what we hashed").digest())
        assert r.upload(str(f), f"{PREFIX}/a.txt", ("IfNoneMatch", "*"), {}, md5=md5, expect_etag=etag).result() == etag
        assert [v.encode() if isinstance(v, str) else v for v in sent] == [want]
        # The file changes between hashing and sending: S3 refuses the Content-MD5 (moto does
        # not check it, so the stored-ETag check must catch it).
        f.write_bytes(b"something else entirely")
        with pytest.raises(IntegrityError, match="different bytes"):
            r.upload(str(f), f"{PREFIX}/a.txt", None, {}, md5=md5, expect_etag=etag).result()


def test_corrupted_download_is_not_put_in_place(s3, tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / "d").mkdir(parents=True)
    (home / "d" / "x.bin").write_bytes(os.urandom(50_000))
    (home / "ok.txt").write_bytes(b"fine")
    assert not backup(_target(home)).errors
    dest = tmp_path / "dest"
    dest.mkdir()
    real_write = remote_mod.HashingSink.write

    def flip_a_byte(self, data):  # fault injection: a bit flipped between the socket and the disk
        if self.path and len(data) > 100:
            data = bytes([data[0] ^ 1]) + bytes(data[1:])
        return real_write(self, data)

    monkeypatch.setattr(remote_mod.HashingSink, "write", flip_a_byte)
    rep = restore(_target(dest))
    assert [e["path"] for e in rep.errors] == ["d/x.bin"] and "md5" in rep.errors[0]["error"]
    assert not (dest / "d" / "x.bin").exists()
    assert (dest / "ok.txt").read_bytes() == b"fine"
    assert not [p for p in (dest / ".hail-emr-lab-sync").rglob("*.part*")]
    monkeypatch.setattr(remote_mod.HashingSink, "write", real_write)
    rep = restore(_target(dest))  # the next run converges
    assert not rep.errors and rep.downloaded == ["d/x.bin"]
    assert (dest / "d" / "x.bin").read_bytes() == (home / "d" / "x.bin").read_bytes()
