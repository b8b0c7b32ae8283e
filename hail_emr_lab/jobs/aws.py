"""Small helpers shared by the AWS backends: clients from one boto3 session, and AWS errors
turned into one-paragraph messages (never a botocore traceback)."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any, Callable, Optional

from ..aws_errors import aws_error
from .base import JobBackend, JobError, JobNotFound

if TYPE_CHECKING:
    from .params import Settings


def boto3_session(region: Optional[str] = None) -> Any:
    """A boto3 session (``region`` or boto3's default chain). AWS_ENDPOINT_URL is honoured by
    boto3 itself, which is how the tests reach the moto server."""
    import boto3

    return boto3.session.Session(region_name=region) if region else boto3.session.Session()


def make_client(session: Any, service: str) -> Any:
    """``session.client(service)`` with a clear error when no region is configured."""
    from botocore.exceptions import NoRegionError

    try:
        return session.client(service)
    except NoRegionError:
        raise JobError(
            f"no AWS region for {service}: pass --region, set HAIL_EMR_LAB_REGION or AWS_DEFAULT_REGION"
        ) from None


def call(what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
    """``fn(**kwargs)``; AWS failures become :class:`JobError` (:class:`JobNotFound` for a resource
    that does not exist) saying what we were doing (:func:`hail_emr_lab.aws_errors.aws_error`)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return fn(**kwargs)
    except (ClientError, BotoCoreError) as exc:
        raise aws_error(exc, what, error=JobError, not_found=JobNotFound) from None


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key)."""
    if not uri.startswith("s3://"):
        raise JobError(f"{uri!r} is not an S3 URI")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


class AwsJobBackend(JobBackend):
    """A backend on an AWS service: settings, one boto3 session, clients made on first use
    (after validation, so bad input fails before any client or request exists)."""

    #: boto3 service name of the backend's own client (``self.client``).
    service = ""

    def __init__(self, settings: Optional[Settings] = None, session: Any = None):
        from .params import Settings

        self.settings = settings or Settings()
        self.session = session or boto3_session(self.settings.get("region"))

    @cached_property
    def client(self) -> Any:
        """The boto3 client of ``service``."""
        return make_client(self.session, self.service)

    @cached_property
    def s3(self) -> Any:
        """The boto3 s3 client (staging files, reading logs)."""
        return make_client(self.session, "s3")
