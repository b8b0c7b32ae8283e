"""Names AWS accepts: S3 bucket names, IAM role ARNs, EMR Serverless application ids.

The one place that says whether such a name is valid; every surface (lifecycle, jobs,
connect, the IAM policy generator) asks here and wraps the reason in its own error.
Sources: Amazon S3 User Guide "Bucket naming rules"; IAM User Guide "IAM identifiers"
(ARNs, role names and paths); EMR Serverless API Reference (``applicationId``: 1-64 of
``[0-9a-z]``).
"""

from __future__ import annotations

import re
from typing import Optional

#: Length, characters, first and last character (S3 "Bucket naming rules").
_SHAPE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
#: "Formatted as an IP address": four dot-separated numbers (S3 rejects 999.1.1.1 too).
_IP_ADDRESS = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
#: Prefixes S3 reserves (S3 "Bucket naming rules").
RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
#: Suffixes S3 reserves for access point, Object Lambda, Multi-Region access point, directory
#: and table bucket names (S3 "Bucket naming rules").
RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")

RULE = (
    "3-63 lower-case letters, digits, dots and hyphens, starting and ending with a letter or digit, "
    "e.g. my-jupyter-bucket"
)


def bucket_name_problem(name: object) -> Optional[str]:
    """Why ``name`` is not a valid general purpose S3 bucket name, or None when it is.

    Applies Amazon S3's "General purpose bucket naming rules": 3 to 63 characters of
    ``a-z 0-9 . -``, first and last a letter or digit, no two adjacent periods, not an IPv4
    address, none of the reserved prefixes and suffixes above.
    """
    if not isinstance(name, str) or not name:
        return "a bucket name is required"
    if not 3 <= len(name) <= 63:
        return f"it has {len(name)} characters (S3 allows 3-63)"
    if not _SHAPE.match(name):
        return "S3 allows only " + RULE
    if ".." in name:
        return "it has two adjacent periods"
    if _IP_ADDRESS.match(name):
        return "it is formatted as an IP address"
    for prefix in RESERVED_PREFIXES:
        if name.startswith(prefix):
            return f"the prefix {prefix!r} is reserved by S3"
    for suffix in RESERVED_SUFFIXES:
        if name.endswith(suffix):
            return f"the suffix {suffix!r} is reserved by S3"
    return None


#: An IAM role ARN: partition (``aws``, ``aws-cn``, ``aws-us-gov`` ...), 12-digit account, role
#: path and name of ``[\w+=,.@-]`` (IAM "IAM identifiers"; path + name at most 512 characters).
ROLE_ARN = re.compile(r"arn:(aws[a-z-]*):iam::(\d{12}):role/([\w+=,.@/-]{1,512})")
ROLE_ARN_EXAMPLE = "arn:aws:iam::123456789012:role/NAME"
#: An EMR Serverless application id, also the form of a job run id (EMR Serverless API Reference).
SERVERLESS_ID = re.compile(r"[0-9a-z]{1,64}")


def _around(what: str) -> str:
    return f"the {what} has spaces or a line break around it (copied with the text around it?): remove them"


def role_arn_problem(arn: object) -> Optional[str]:
    """Why ``arn`` is not an IAM role ARN (``arn:aws:iam::123456789012:role/NAME``), or None."""
    if not isinstance(arn, str) or not arn.strip():
        return "an IAM role ARN is required"
    if arn != arn.strip():  # used as given: AWS would refuse it later, obscurely
        return _around("IAM role ARN")
    if not ROLE_ARN.fullmatch(arn):
        return f"expected an IAM role ARN such as {ROLE_ARN_EXAMPLE} (12-digit account, then role/ and the name)"
    return None


def serverless_app_problem(app_id: object) -> Optional[str]:
    """Why ``app_id`` is not an EMR Serverless application id (1-64 lower-case letters and digits), or None."""
    if not isinstance(app_id, str) or not app_id.strip():
        return "an EMR Serverless application id is required"
    if app_id != app_id.strip():
        return _around("EMR Serverless application id")
    if not SERVERLESS_ID.fullmatch(app_id):
        return ("expected lower-case letters and digits such as 00fabcdexample "
                "('aws emr-serverless list-applications' shows them)")
    return None
