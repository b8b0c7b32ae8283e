"""A least-privilege IAM policy for one user's notebook-instance role.

Compared with the Quick Start, ``s3:ListBucket`` is granted only with an ``s3:prefix``
condition (never on the whole bucket), and the shared prefixes are read-only.
"""

from __future__ import annotations

from typing import Any

from .params import SHARED_PREFIXES, check_bucket, check_prefix

#: What cluster discovery (id/name -> master -> Livy URL) needs; these have no resource scoping.
EMR_DISCOVERY_ACTIONS = (
    "elasticmapreduce:ListClusters",
    "elasticmapreduce:DescribeCluster",
    "elasticmapreduce:ListInstanceGroups",
    "elasticmapreduce:ListInstanceFleets",
    "elasticmapreduce:ListInstances",
)


def iam_policy(
    bucket: str,
    user: str,
    instance_name: str | None = None,
    kms_key_arn: str | None = None,
) -> dict[str, Any]:
    """The policy document for ``user`` (whose S3 prefix is ``<user>/``) in ``bucket``."""
    check_bucket(bucket)
    check_prefix(user, "user")
    instance = check_prefix(instance_name, "instance name") if instance_name else user
    bucket_arn = f"arn:aws:s3:::{bucket}"
    prefixes = (user, *SHARED_PREFIXES)
    statements: list[dict[str, Any]] = [
        {
            "Sid": "OwnPrefixReadWrite",
            "Effect": "Allow",
            "Action": [
                "s3:GetObject",
                "s3:PutObject",
                "s3:DeleteObject",
                "s3:AbortMultipartUpload",
                "s3:ListMultipartUploadParts",
            ],
            "Resource": f"{bucket_arn}/{user}/*",
        },
        {
            "Sid": "SharedPrefixesReadOnly",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": [f"{bucket_arn}/{prefix}/*" for prefix in SHARED_PREFIXES],
        },
        {
            "Sid": "ListOwnAndSharedPrefixesOnly",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": bucket_arn,
            "Condition": {
                "StringLike": {"s3:prefix": [p for prefix in prefixes for p in (f"{prefix}/", f"{prefix}/*")]}
            },
        },
        {"Sid": "BucketRegion", "Effect": "Allow", "Action": "s3:GetBucketLocation", "Resource": bucket_arn},
        {"Sid": "EmrClusterDiscovery", "Effect": "Allow", "Action": list(EMR_DISCOVERY_ACTIONS), "Resource": "*"},
        {
            # on-start reads hail-emr-lab:* tags of its own instance (ARNs use lower-case names).
            "Sid": "OwnInstanceTags",
            "Effect": "Allow",
            "Action": "sagemaker:ListTags",
            "Resource": f"arn:aws:sagemaker:*:*:notebook-instance/{instance.lower()}",
        },
    ]
    if kms_key_arn:
        statements.append(
            {
                "Sid": "BucketKmsKey",
                "Effect": "Allow",
                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": kms_key_arn,
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}
