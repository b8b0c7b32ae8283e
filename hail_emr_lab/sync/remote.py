"""The S3 side: one boto3 client and transfer manager, with conditional writes.

Imported only when there is something to transfer (a backup with nothing to do never
imports boto3). All transfers go through boto3's transfer manager (multipart above the
threshold, ``max_concurrency`` threads). The transfer manager does not accept ``IfMatch`` /
``IfNoneMatch``, so they are added through botocore's event system
(``before-parameter-build``) from a per-key table; the ETag of each stored object is read
back from the response (``after-call``) so the state records exactly what S3 holds, with
no extra HEAD request.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import boto3
from boto3.s3.transfer import TransferConfig, create_transfer_manager
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError
from s3transfer.subscribers import BaseSubscriber

from .target import SyncTarget

_WRITES = ("PutObject", "CompleteMultipartUpload")


class Remote:
    """Client + transfer manager for one :class:`SyncTarget` (use as a context manager)."""

    def __init__(self, target: SyncTarget) -> None:
        self.target = target
        self.bucket = target.bucket
        session = boto3.session.Session(region_name=target.region) if target.region else boto3.session.Session()
        self.client = session.client(
            "s3",
            config=BotoConfig(
                max_pool_connections=target.concurrency + 4,
                retries={"mode": "standard", "max_attempts": 5},
            ),
        )
        self._lock = threading.Lock()
        self.conditions: dict[str, tuple[str, str]] = {}
        self.etags: dict[str, str] = {}
        self.metadata: dict[str, dict[str, str]] = {}
        self.encryption: dict[str, str] = {}
        events = self.client.meta.events
        for op in (*_WRITES, "GetObject"):
            events.register(f"before-parameter-build.s3.{op}", self._add_condition)
            events.register(f"after-call.s3.{op}", self._record_response)
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
        cond = self.conditions.get(key)
        if cond is None:
            return
        name, value = cond
        if model.name == "GetObject":
            if name == "IfMatch":
                params["IfMatch"] = value
        else:
            params[name] = value

    def _record_response(self, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        key = context.get("hail_emr_lab_key")
        if key is None or parsed.get("Error"):
            return
        with self._lock:
            if model.name in _WRITES and parsed.get("ETag"):
                self.etags[key] = parsed["ETag"]
            elif model.name == "GetObject":
                self.metadata[key] = parsed.get("Metadata") or {}
                self.encryption[key] = parsed.get("SSECustomerAlgorithm") or parsed.get("ServerSideEncryption") or ""

    # transfers ---------------------------------------------------------------------------
    def upload(self, path: str, key: str, condition: tuple[str, str] | None, metadata: dict[str, str],
               on_bytes: Callable[[int], None] | None = None) -> Any:
        """Queue an upload of ``path`` to ``key`` (``condition`` = ("IfMatch", etag) or
        ("IfNoneMatch", "*")); returns the transfer future."""
        self._set_condition(key, condition)
        return self.manager.upload(path, self.bucket, key, extra_args={"Metadata": metadata},
                                   subscribers=_subs(None, on_bytes))

    def download(self, key: str, path: str, size: int, etag: str | None,
                 on_bytes: Callable[[int], None] | None = None) -> Any:
        """Queue a download of ``key`` (exactly the version with ``etag``) into ``path``."""
        self._set_condition(key, ("IfMatch", etag) if etag else None)
        return self.manager.download(self.bucket, key, path, subscribers=_subs(size, on_bytes, etag))

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
        self.manager.shutdown()

    def __enter__(self) -> Remote:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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


def error_code(exc: BaseException) -> str:
    """The S3 error code of a ClientError ('' for anything else)."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return str(err.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
    return ""


def is_precondition_failed(exc: BaseException) -> bool:
    """The conditional write lost: the object changed (or appeared) since we last saw it."""
    return error_code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409")


def is_missing(exc: BaseException) -> bool:
    return error_code(exc) in ("NoSuchKey", "404", "NotFound")
