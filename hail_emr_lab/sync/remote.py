"""The S3 side: one boto3 client and transfer manager, with conditional writes.

Imported only when there is something to transfer (a backup with nothing to do never
imports boto3). All transfers go through boto3's transfer manager (multipart above the
threshold, ``max_concurrency`` threads). The transfer manager does not accept ``IfMatch`` /
``IfNoneMatch``, so they are added through botocore's event system
(``before-parameter-build``) from a per-key table; the ETag of each stored object is read
back from the response (``after-call``) so the state records exactly what S3 holds, with
no extra HEAD request.

Integrity, end to end: a single-part upload carries the ``Content-MD5`` of the bytes we hashed
(S3 refuses a body that does not match), a multipart upload a CRC32 per part; either way the
ETag S3 returns must be the one those bytes give. A download is written through
:class:`HashingSink`, which hashes the bytes as they arrive; the md5 must match the ETag
(``DownloadCorrupt`` otherwise) before the caller renames the file into place. botocore's own
CRC32 pass over every upload body is off (``when_required``): the md5 covers it.

Interrupted multipart uploads: a process killed in the middle of one leaves parts that S3 keeps
(and bills) until someone aborts the upload. Every multipart upload is written to an
:class:`UploadJournal` beside the state as it starts and ends, so the next run (holding the
lock, so no live upload of this home can be in it) aborts exactly the uploads of dead runs
(:meth:`Remote.abort_interrupted_uploads`). The bucket's ``AbortIncompleteMultipartUpload``
lifecycle rule (``hail-emr-lab lifecycle iam-policy`` prints it) is the safety net for the rest.

S3-compatible servers that differ from AWS in what they send are brought to AWS's form here,
once, so the rest of the sync sees one dialect (found with ``rclone serve s3``): ETags in
listings without their quotes, user-metadata names not lower-cased, ``If-Match`` on GetObject
ignored (checked here against the response's ETag and turned into S3's 412), and a multipart
object whose ETag is the "md5-of-parts" form when completed but the whole object's md5 later
(the ETag later requests give is the one recorded). Conditional writes and folder markers
cannot be fixed after the fact: :mod:`.server_facts` finds out whether the server honours them.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import hashlib
import os
import threading
from typing import Any, Callable

import boto3
import botocore.session
from boto3.s3.transfer import TransferConfig, create_transfer_manager
from botocore.config import Config as BotoConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.utils import parse_timestamp
from s3transfer.subscribers import BaseSubscriber

from ..aws_errors import error_code
from .journal import UploadJournal, journal_path
from .report import RemoteUnavailable, shown
from .target import SyncTarget

_WRITES = ("PutObject", "CompleteMultipartUpload")
_KMS = ("aws:kms", "aws:kms:dsse")


class IntegrityError(Exception):
    """The bytes S3 holds (or sent) are not the bytes we meant: nothing is recorded or placed."""


def fast_timestamp(value: Any) -> dt.datetime:
    """botocore's timestamp parser without dateutil for the two forms S3 sends (ISO 8601 in
    listings, RFC 1123 in headers): dateutil was ~8 % of a restore's CPU."""
    if isinstance(value, str):
        try:
            if value[-1:] == "Z" and "T" in value:
                return dt.datetime.fromisoformat(value[:-1]).replace(tzinfo=dt.timezone.utc)
            if value.endswith(" GMT"):
                return email.utils.parsedate_to_datetime(value)
        except (ValueError, TypeError):
            pass
    return parse_timestamp(value)


class Remote:
    """Client + transfer manager for one :class:`SyncTarget` (use as a context manager)."""

    def __init__(self, target: SyncTarget) -> None:
        self.target = target
        self.bucket = target.bucket
        core = botocore.session.get_session()
        core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=fast_timestamp)
        session = boto3.session.Session(region_name=target.region or None, botocore_session=core)
        self.client = session.client(
            "s3",
            config=BotoConfig(
                max_pool_connections=target.concurrency + 4,
                retries={"mode": "standard", "max_attempts": 5},
                # Uploads carry our Content-MD5 instead of a CRC32 botocore would compute with one
                # more pass over the body. Downloads keep the default: GetObject asks for S3's
                # checksum and botocore verifies it when the object has one (with "when_required"
                # s3transfer switches to ranged GETs, which lose an empty object's metadata).
                request_checksum_calculation="when_required",
            ),
        )
        self._lock = threading.Lock()
        self.conditions: dict[str, tuple[str, str]] = {}
        self.content_md5: dict[str, str] = {}
        self.etags: dict[str, str] = {}
        self.write_encryption: dict[str, str] = {}
        self.metadata: dict[str, dict[str, str]] = {}
        self.encryption: dict[str, str] = {}
        events = self.client.meta.events
        for op in (*_WRITES, "GetObject"):
            events.register(f"before-parameter-build.s3.{op}", self._add_condition)
            events.register(f"after-call.s3.{op}", self._record_response)
        events.register("after-call.s3.ListObjectsV2", _quote_listed_etags)
        for op in ("HeadObject", "GetObject"):
            events.register(f"after-call.s3.{op}", _lower_metadata_names)
        self.journal = UploadJournal(journal_path(target))
        for op in ("CreateMultipartUpload", "CompleteMultipartUpload", "AbortMultipartUpload"):
            events.register(f"before-parameter-build.s3.{op}", self._journal_request)
            events.register(f"after-call.s3.{op}", self._journal_response)
        self.config = TransferConfig(
            multipart_threshold=target.multipart_threshold,
            multipart_chunksize=target.multipart_chunksize,
            max_concurrency=target.concurrency,
            use_threads=True,
            preferred_transfer_client="classic",
        )
        self.manager = create_transfer_manager(self.client, self.config)

    # botocore event handlers -------------------------------------------------------------
    def _add_condition(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        key = params.get("Key")
        context["hail_emr_lab_key"] = key
        if model.name == "PutObject" and key in self.content_md5:
            params["ContentMD5"] = self.content_md5[key]
        cond = self.conditions.get(key)
        if cond is None:
            return
        name, value = cond
        if model.name == "GetObject":
            if name == "IfMatch":
                params["IfMatch"] = value
                context["hail_emr_lab_if_match"] = value
        else:
            params[name] = value

    def _record_response(self, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        key = context.get("hail_emr_lab_key")
        if key is None or parsed.get("Error"):
            return
        with self._lock:
            if model.name in _WRITES and parsed.get("ETag"):
                self.etags[key] = parsed["ETag"]
                self.write_encryption[key] = parsed.get("ServerSideEncryption") or ""
            elif model.name == "GetObject":
                wanted = context.get("hail_emr_lab_if_match")
                if wanted and parsed.get("ETag") and parsed["ETag"] != wanted:
                    # The server ignored If-Match (AWS answers 412): refuse the other version.
                    raise ClientError({"Error": {"Code": "PreconditionFailed",
                                                 "Message": f"the object is now {parsed['ETag']}, not {wanted}"}},
                                      "GetObject")
                self.metadata[key] = parsed.get("Metadata") or {}
                self.encryption[key] = parsed.get("SSECustomerAlgorithm") or parsed.get("ServerSideEncryption") or ""

    def _journal_request(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        key = params.get("Key", "")
        if model.name == "CreateMultipartUpload":
            self.journal.creating(key)  # before S3 can create anything
        context["hail_emr_lab_upload"] = (key, params.get("UploadId", ""))

    def _journal_response(self, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        key, upload_id = context.get("hail_emr_lab_upload", ("", ""))
        if model.name == "CreateMultipartUpload":
            if parsed.get("UploadId"):
                self.journal.started(key, parsed["UploadId"])
            elif parsed.get("Error"):
                self.journal.refused(key)
        elif not parsed.get("Error") or parsed["Error"].get("Code") == "NoSuchUpload":
            self.journal.ended(key, upload_id)  # completed, aborted, or already gone

    def abort_interrupted_uploads(self, before: float) -> tuple[int, list[str]]:
        """Abort the multipart uploads that runs of this home started and never finished.

        Uploads in the journal are aborted by id. A key whose upload id never came back (the
        process died while S3 answered) is looked up with ListMultipartUploads under that exact
        key, and its uploads initiated before ``before`` (Unix seconds: when this run got the
        lock) are aborted. Returns ``(uploads aborted, problems as text)``; a problem leaves
        the entry in the journal for the next run."""
        uploads, creating = self.journal.pending()
        if not uploads and not creating:
            return 0, []
        aborted, problems = 0, []
        left: list[tuple[str, str]] = []
        for key, upload_id in uploads:
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
                aborted += 1
            except ClientError as exc:
                if error_code(exc) not in ("NoSuchUpload", "404"):
                    problems.append(f"could not abort the interrupted upload of {shown(key)}: {shown(exc)}")
                    left.append((key, upload_id))
        left_creating: list[str] = []
        for key in creating:
            try:
                pages = self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=key)
                for page in pages:
                    for up in page.get("Uploads", []):
                        initiated = up.get("Initiated")
                        if up.get("Key") != key or initiated is None or initiated.timestamp() >= before:
                            continue
                        try:
                            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=up["UploadId"])
                            aborted += 1
                        except ClientError as exc:
                            if error_code(exc) not in ("NoSuchUpload", "404"):
                                raise
            except ClientError as exc:
                problems.append(f"could not look for an interrupted upload of {shown(key)} ({shown(exc)}); "
                                "the bucket's AbortIncompleteMultipartUpload rule removes it")
                if error_code(exc) not in ("AccessDenied", "403"):
                    left_creating.append(key)
        self.journal.rewrite(left, left_creating)
        return aborted, problems

    # transfers ---------------------------------------------------------------------------
    def upload(self, path: str, key: str, condition: tuple[str, str] | None, metadata: dict[str, str],
               on_bytes: Callable[[int], None] | None = None, md5: str | None = None,
               expect_etag: str | None = None) -> VerifiedUpload:
        """Queue an upload of ``path`` to ``key`` (``condition`` = ("IfMatch", etag) or
        ("IfNoneMatch", "*")). ``md5`` (hex, of the bytes hashed before) is sent as Content-MD5
        on a single-part upload; ``.result()`` also checks the stored ETag is ``expect_etag``."""
        self._set_condition(key, condition)
        extra: dict[str, Any] = {"Metadata": metadata}
        size = os.path.getsize(path)
        with self._lock:
            self.content_md5.pop(key, None)
            if size >= self.config.multipart_threshold:
                extra["ChecksumAlgorithm"] = "CRC32"  # S3 checks each part
            elif md5:
                self.content_md5[key] = base64.b64encode(bytes.fromhex(md5)).decode()
        fut = self.manager.upload(path, self.bucket, key, extra_args=extra, subscribers=_subs(size, on_bytes))
        multipart_md5 = md5 if size >= self.config.multipart_threshold else None
        return VerifiedUpload(self, fut, key, expect_etag, multipart_md5)

    def download(self, key: str, path: str, size: int, etag: str | None,
                 on_bytes: Callable[[int], None] | None = None) -> VerifiedDownload:
        """Queue a download of ``key`` (exactly the version with ``etag``) into ``path``;
        ``.result()`` waits, checks the bytes against the ETag and returns their md5 hex."""
        self._set_condition(key, ("IfMatch", etag) if etag else None)
        sink = HashingSink(path)
        fut = self.manager.download(self.bucket, key, sink, subscribers=_subs(size, on_bytes, etag))
        return VerifiedDownload(self, fut, sink, key, size, etag)

    def _set_condition(self, key: str, condition: tuple[str, str] | None) -> None:
        with self._lock:
            if condition:
                self.conditions[key] = condition
            else:
                self.conditions.pop(key, None)
            self.etags.pop(key, None)

    def list(self, prefix: str) -> list[dict[str, Any]]:
        """Every object under ``prefix`` (one request per 1,000 keys)."""
        out: list[dict[str, Any]] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            out.extend(page.get("Contents", []))
        return out

    def head(self, key: str) -> dict[str, Any] | None:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def close(self) -> None:
        self.manager.shutdown()  # waits: every upload has completed or been aborted
        self.journal.compact()

    def __enter__(self) -> Remote:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class VerifiedUpload:
    """A queued upload; :meth:`result` raises :class:`IntegrityError` if S3 stored other bytes."""

    def __init__(self, remote: Remote, future: Any, key: str, expect_etag: str | None,
                 multipart_md5: str | None = None) -> None:
        self._remote, self._future, self._key, self._expect = remote, future, key, expect_etag
        self._multipart_md5 = multipart_md5

    def result(self) -> str | None:
        """Wait; return the stored ETag (the one later HEADs and listings give)."""
        self._future.result()
        etag = self._remote.etags.get(self._key)
        kms = self._remote.write_encryption.get(self._key, "") in _KMS  # the ETag is not an md5 then
        if self._expect and etag and not kms and etag != self._expect:
            raise IntegrityError(f"S3 stored different bytes (ETag {etag}, expected {self._expect}); "
                                 "the file probably changed during the upload: run the backup again")
        if self._multipart_md5 and etag and "-" in etag:
            # Some servers report a multipart object under the md5 of its whole bytes once it is
            # complete: record that ETag, or every later listing would look like a remote change.
            head = self._remote.head(self._key)
            later = head.get("ETag") if head else None
            if later and later != etag:
                if later.strip('"') != self._multipart_md5:
                    raise IntegrityError(f"S3 now reports {shown(self._key)} as ETag {later}, neither {etag} "
                                         "nor the md5 of the bytes sent: it changed meanwhile; run the backup again")
                etag = later
        return etag


class HashingSink:
    """The file object s3transfer writes a download into.

    Opened on the first write (thousands of queued downloads hold no descriptors), and
    hashing the bytes while they arrive in order (a single GET), so verifying the download
    costs no second read. Ranged (multipart) downloads may arrive out of order: then
    :meth:`md5` reads the file back.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._fh: Any = None
        self._pos = 0
        self._hashed = 0
        self._md5 = hashlib.md5(usedforsecurity=False)
        self.in_order = True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 0:
            self._pos = offset
        elif whence == 1:
            self._pos += offset
        else:
            raise OSError("seek from the end is not supported")
        return self._pos

    def tell(self) -> int:
        return self._pos

    def write(self, data: bytes) -> int:
        if self._fh is None:
            self._fh = open(self.path, "wb")  # noqa: SIM115 - closed by close()
        if self._fh.tell() != self._pos:
            self._fh.seek(self._pos)
        self._fh.write(data)
        if self._pos == self._hashed and self.in_order:
            self._md5.update(data)
            self._hashed += len(data)
        else:
            self.in_order = False
        self._pos += len(data)
        return len(data)

    def close(self) -> None:
        if self._fh is None:
            open(self.path, "wb").close()  # an empty object gets no write
            self._fh = False
        elif self._fh:
            self._fh.close()
            self._fh = False

    def md5(self) -> str:
        if self.in_order:
            return self._md5.hexdigest()
        whole = hashlib.md5(usedforsecurity=False)
        with open(self.path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                whole.update(chunk)
        return whole.hexdigest()


class VerifiedDownload:
    """A queued download; :meth:`result` returns the md5 of the bytes once they are checked."""

    def __init__(self, remote: Remote, future: Any, sink: HashingSink, key: str, size: int,
                 etag: str | None) -> None:
        self._remote, self._future, self._sink = remote, future, sink
        self._key, self._size, self._etag = key, size, etag

    def done(self) -> bool:
        """True once the transfer has finished (then :meth:`result` does not wait)."""
        return self._future.done()

    def result(self) -> str:
        """Wait, close the file and verify it: raises :class:`IntegrityError` on a mismatch."""
        try:
            self._future.result()
        finally:
            self._sink.close()
        got = os.path.getsize(self._sink.path)
        if got != self._size:
            raise IntegrityError(f"got {got} bytes, S3 listed {self._size}")
        md5 = self._sink.md5()
        if not self._etag:
            return md5
        expect = md5_from_etag(self._etag, self._remote.encryption.get(self._key, ""))
        if expect is not None and md5 != expect:
            raise IntegrityError(f"the downloaded bytes have md5 {md5}, S3's ETag says {expect}")
        # expect None: multipart or KMS, the ETag is not the md5; botocore verified S3's
        # checksum while streaming if the object has one.
        return md5


class _Progress(BaseSubscriber):
    def __init__(self, size: int | None, etag: str | None, on_bytes: Callable[[int], None] | None) -> None:
        self._size = size
        self._etag = etag
        self._on_bytes = on_bytes

    def on_queued(self, future: Any, **_: Any) -> None:
        # Size and ETag known from the listing spare the transfer manager a HEAD per download.
        if self._size is not None:
            future.meta.provide_transfer_size(self._size)
        if self._etag is not None and hasattr(future.meta, "provide_object_etag"):
            future.meta.provide_object_etag(self._etag)

    def on_progress(self, future: Any, bytes_transferred: int, **_: Any) -> None:
        if self._on_bytes:
            self._on_bytes(bytes_transferred)


def _subs(size: int | None, on_bytes: Callable[[int], None] | None, etag: str | None = None) -> list[BaseSubscriber]:
    return [_Progress(size, etag, on_bytes)]


def md5_from_etag(etag: str, encryption: str) -> str | None:
    """The content md5 an ETag reveals: single-part objects without KMS / customer keys."""
    plain = etag.strip('"')
    if len(plain) == 32 and "-" not in plain and encryption in ("", "AES256"):
        return plain
    return None


def _quote_listed_etags(parsed: dict[str, Any], **_: Any) -> None:
    """ListObjectsV2: ETags as AWS sends them, in quotes (some servers list them bare)."""
    for obj in parsed.get("Contents") or []:
        etag = obj.get("ETag")
        if etag and not etag.startswith('"'):
            obj["ETag"] = f'"{etag}"'


def _lower_metadata_names(parsed: dict[str, Any], **_: Any) -> None:
    """HeadObject / GetObject: user-metadata names lower-cased, as AWS stores them."""
    meta = parsed.get("Metadata")
    if meta and any(k != k.lower() for k in meta):
        parsed["Metadata"] = {k.lower(): v for k, v in meta.items()}


def is_precondition_failed(exc: BaseException) -> bool:
    """The conditional write lost: the object changed (or appeared) since we last saw it."""
    return error_code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409")


def is_missing(exc: BaseException) -> bool:
    return error_code(exc) in ("NoSuchKey", "404", "NotFound")


#: Answers that mean S3 cannot be used at all for this run (not a problem of one file).
_RUN_WIDE_CODES = {
    "NoSuchBucket": "bucket",
    "InvalidAccessKeyId": "credentials",
    "SignatureDoesNotMatch": "credentials",
    "ExpiredToken": "credentials",
    "InvalidToken": "credentials",
    "AuthorizationHeaderMalformed": "region",
    "PermanentRedirect": "region",
    "AccessDenied": "denied",
    "AllAccessDisabled": "denied",
}


def remote_failure(action: str, target: SyncTarget, exc: BaseException, endpoint: str | None = None,
                   any_error: bool = False) -> RemoteUnavailable | None:
    """The one message for a run that cannot use S3: what failed and what to do.

    ``None`` if ``exc`` is a problem of one object (and ``any_error`` is false), so the caller
    reports it per file. Kinds: missing bucket, endpoint unreachable, credentials missing or
    refused, wrong region, access denied; anything else only with ``any_error``."""
    if not isinstance(exc, (ClientError, BotoCoreError)):
        return None  # not an S3 answer: a bug must keep its traceback
    where = shown(f"s3://{target.bucket}/{target.prefix}/")
    code = error_code(exc)
    kind = _RUN_WIDE_CODES.get(code)
    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError, ConnectionClosedError)):
        kind = "unreachable"
    elif isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        kind = "credentials"
    if kind is None and not any_error:
        return None
    what, todo = {
        "bucket": (f"the bucket {target.bucket!r} does not exist",
                   "check the bucket name (--bucket, HAIL_EMR_LAB_BUCKET or \"bucket\" in "
                   "~/.hail-emr-lab/config.json) and the region"),
        "unreachable": (f"S3 could not be reached at {endpoint or 'its endpoint'}",
                        "check the network connection and the endpoint (AWS_ENDPOINT_URL, the region), "
                        "then run it again"),
        "credentials": ("S3 did not accept the AWS credentials (none found, or invalid or expired)",
                        "on a notebook instance check its IAM role; elsewhere configure credentials "
                        "(aws configure, AWS_PROFILE)"),
        "region": ("the bucket is in another region than the one used",
                   "set the region (AWS_DEFAULT_REGION or \"region\" in ~/.hail-emr-lab/config.json)"),
        "denied": (f"access to {where} was denied",
                   "the role needs the policy printed by 'hail-emr-lab lifecycle iam-policy'"),
        None: ("S3 refused the request", "check the message above, then run it again"),
    }[kind]
    after = {"backup": "Files not backed up are sent by the next backup.",
             "restore": "Files already restored are complete; the next restore brings the rest."}.get(action, "")
    text = f"{action} of {where} failed: {what} ({shown(exc)}). To fix: {todo}."
    return RemoteUnavailable(f"{text} {after}".strip())
