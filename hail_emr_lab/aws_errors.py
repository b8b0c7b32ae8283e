"""AWS API failures (boto3/botocore) as one paragraph: what we were doing, what went wrong,
what to do. The one mapping for EMR discovery, SSM and the job backends.

Kinds follow botocore's exceptions ("Error handling" in the boto3 docs): missing credentials
or region, an endpoint that cannot be reached, and service errors (``ClientError``) whose
``Error.Code`` says access was denied, the resource does not exist, or something else.
"""

from __future__ import annotations

from typing import Optional

from .errors import HailEmrLabError

#: ``Error.Code`` values meaning the caller's role may not make the call (IAM, S3, EC2).
DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "403"})
#: ``Error.Code`` values meaning the named resource does not exist (S3, EMR, Batch, Logs).
NOT_FOUND_CODES = frozenset({"ResourceNotFoundException", "NoSuchKey", "NoSuchBucket", "404", "NotFound"})
_CREDENTIALS = ("NoCredentialsError", "PartialCredentialsError")
_NETWORK = ("EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError", "ReadTimeoutError")

CREDENTIALS_HINT = (
    "no AWS credentials. On a SageMaker notebook the instance role provides them; elsewhere run "
    "'aws configure' or set AWS_PROFILE"
)


def error_code(exc: BaseException) -> str:
    """The AWS ``Error.Code`` of a botocore ``ClientError``, else its HTTP status (S3 answers a
    HEAD without a body: "404", "403"); "" for other exceptions."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    code = (response.get("Error") or {}).get("Code") or (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    return str(code or "")


def error_message(exc: BaseException) -> str:
    """The AWS ``Error.Message`` (else the exception's text; an HTML error page is not a message)."""
    response = getattr(exc, "response", None)
    message = ((response or {}).get("Error") or {}).get("Message") if isinstance(response, dict) else None
    text = str(message or exc)
    return "" if text.lstrip().startswith("<") else text


def kind(exc: BaseException) -> str:
    """``credentials``, ``region``, ``network``, ``denied``, ``not_found`` or ``other``."""
    name = type(exc).__name__
    if name in _CREDENTIALS:
        return "credentials"
    if name == "NoRegionError":
        return "region"
    if name in _NETWORK:
        return "network"
    code = error_code(exc)
    if code in DENIED_CODES:
        return "denied"
    message = error_message(exc)
    if code in NOT_FOUND_CODES or "does not exist" in message or "doesn't exist" in message:
        return "not_found"
    return "other"


def aws_error(
    exc: BaseException,
    what: str,
    denied_hint: str = "The notebook's IAM role needs permission for this call.",
    error: type[HailEmrLabError] = HailEmrLabError,
    not_found: Optional[type[HailEmrLabError]] = None,
) -> HailEmrLabError:
    """``exc`` as an ``error`` whose message starts with ``what`` (e.g. "listing EMR clusters").

    ``denied_hint`` names the permissions an AccessDenied needs; ``not_found`` is the class for
    a resource that does not exist (default ``error``). Never raises.
    """
    found = kind(exc)
    code, message = error_code(exc), error_message(exc)
    if found == "credentials":
        return error(f"{what}: {CREDENTIALS_HINT}.")
    if found == "region":
        return error(f"{what}: no AWS region; pass --region or set AWS_DEFAULT_REGION (or region in ~/.aws/config).")
    if found == "network":
        return error(f"{what}: cannot reach the AWS API ({exc}); check the network and AWS_REGION.")
    if found == "denied":
        return error(f"{what}: AWS denied access ({message or code}). {denied_hint}")
    if found == "not_found":
        return (not_found or error)(f"{what}: {message or code}")
    return error(f"{what}: {code or type(exc).__name__}: {message}")
