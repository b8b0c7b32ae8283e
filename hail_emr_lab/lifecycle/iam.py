"""A least-privilege IAM policy for one user's notebook-instance role.

Compared with the Quick Start, ``s3:ListBucket`` is granted only with an ``s3:prefix``
condition (never on the whole bucket), and the shared prefixes are read-only.

Also the bucket rules that go with it: :func:`recommended_lifecycle_rules`. A multipart upload
that never completes (a backup killed half-way, or any other client) keeps its parts, billed and
invisible in listings, until it is aborted. The sync aborts its own interrupted uploads on its
next run; the first rule removes every other one after a few days. The second expires what a
killed kernel left of a staged ``-o`` pull in the user's staging prefix (a pull deletes its own
files, also when it fails; only a kernel killed mid-pull leaves any). The role policy does not grant
``s3:ListBucketMultipartUploads``: it is a bucket-wide listing (its keys would show other
users' file names) and the sync does not need it for uploads whose id it journaled.
"""

from __future__ import annotations

import json
from typing import Any

from ..aws_names import ROLE_ARN
from ..sync.excludes import STAGING_DIR
from .params import SHARED_PREFIXES, check_bucket, check_cluster_id, check_prefix, check_serverless

#: What cluster discovery (id/name -> master -> Livy URL) needs; these have no resource scoping.
EMR_DISCOVERY_ACTIONS = (
    "elasticmapreduce:ListClusters",
    "elasticmapreduce:DescribeCluster",
    "elasticmapreduce:ListInstanceGroups",
    "elasticmapreduce:ListInstanceFleets",
    "elasticmapreduce:ListInstances",
)


#: Days after which the recommended rule aborts an incomplete multipart upload.
ABORT_INCOMPLETE_UPLOADS_DAYS = 7
ABORT_RULE_ID = "hail-emr-lab-abort-incomplete-multipart-uploads"
#: Days after which staged ``-o`` files a killed kernel left are expired (S3's minimum is 1).
STAGING_EXPIRY_DAYS = 1


def abort_incomplete_uploads_rule(days: int = ABORT_INCOMPLETE_UPLOADS_DAYS) -> dict[str, Any]:
    """One S3 lifecycle rule: abort multipart uploads still incomplete ``days`` days after they
    started, bucket-wide.

    Source of the shape: Amazon S3 API reference, ``PutBucketLifecycleConfiguration``
    (``AbortIncompleteMultipartUpload.DaysAfterInitiation``)."""
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    return {
        "ID": ABORT_RULE_ID,
        "Filter": {"Prefix": ""},
        "Status": "Enabled",
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": days},
    }


def staging_expiry_rule(user: str, days: int = STAGING_EXPIRY_DAYS) -> dict[str, Any]:
    """One S3 lifecycle rule: expire objects under ``<user>/.hail-emr-lab/staging/`` ``days``
    days after they were written. S3 filters by key prefix only (no wildcards), hence one rule per
    user prefix (Amazon S3 User Guide, "Lifecycle configuration elements")."""
    check_prefix(user, "user")
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    return {
        "ID": f"hail-emr-lab-expire-staging-{user}"[:255],
        "Filter": {"Prefix": f"{user}/{STAGING_DIR}/"},
        "Status": "Enabled",
        "Expiration": {"Days": days},
    }


def recommended_lifecycle_rules(user: str) -> dict[str, Any]:
    """The S3 lifecycle configuration (``put-bucket-lifecycle-configuration`` JSON) recommended
    beside ``user``'s role policy: :func:`abort_incomplete_uploads_rule` and
    :func:`staging_expiry_rule`."""
    return {"Rules": [abort_incomplete_uploads_rule(), staging_expiry_rule(user)]}


def lifecycle_rules_advice(bucket: str, user: str) -> str:
    """What to tell the person installing the policy about the rules (a few lines of text)."""
    check_bucket(bucket)
    return (
        f"Recommended for s3://{bucket}: two lifecycle rules. One aborts multipart uploads that never "
        "completed (a backup killed half-way) after "
        f"{ABORT_INCOMPLETE_UPLOADS_DAYS} days (AbortIncompleteMultipartUpload), so their parts stop costing "
        f"storage; one expires what a killed kernel left of a staged -o or %hail push under "
        f"s3://{bucket}/{user}/{STAGING_DIR}/ after {STAGING_EXPIRY_DAYS} day (the EMR cluster's instance role "
        "needs s3:GetObject, s3:PutObject, s3:DeleteObject and s3:ListBucket there, as for any S3 path its jobs "
        "use). put-bucket-lifecycle-configuration REPLACES the bucket's "
        "rules: check the current ones first, e.g.\n"
        f"  aws s3api get-bucket-lifecycle-configuration --bucket {bucket}\n"
        "and add these rules to them (or, with no rules yet, put them as they are):\n"
        f"  aws s3api put-bucket-lifecycle-configuration --bucket {bucket} --lifecycle-configuration "
        f"'{json.dumps(recommended_lifecycle_rules(user))}'"
    )


def iam_policy(
    bucket: str,
    user: str,
    instance_name: str | None = None,
    kms_key_arn: str | None = None,
    ssm: bool = False,
    cluster_id: str | None = None,
    serverless_app: str | None = None,
    execution_role: str | None = None,
) -> dict[str, Any]:
    """The policy document for ``user`` (whose S3 prefix is ``<user>/``) in ``bucket``.

    ``ssm`` adds :func:`ssm_statements` (for ``hail-emr-lab ssm``), limited to the nodes of
    ``cluster_id`` when given, else to nodes of any EMR cluster.
    """
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
    if ssm:
        statements += ssm_statements(cluster_id)
    if serverless_app or execution_role:
        statements += serverless_statements(serverless_app, execution_role)
    return {"Version": "2012-10-17", "Statement": statements}


#: EMR tags every cluster node with its cluster id (EMR management guide, "Tag clusters").
EMR_CLUSTER_TAG = "aws:elasticmapreduce:job-flow-id"


def ssm_statements(cluster_id: str | None = None) -> list[dict[str, Any]]:
    """Systems Manager statements for a shell and Run Command on EMR nodes only.

    Shapes follow the Session Manager user guide's sample policies: StartSession and
    SendCommand on EC2 instances whose ``aws:elasticmapreduce:job-flow-id`` tag is the cluster
    (``ssm:resourceTag/...``), plus the two documents they use; TerminateSession/ResumeSession
    only on the caller's own sessions (the ``aws:ssmmessages:session-id`` tag is the caller's
    ``aws:userid``, the form that works for roles). GetCommandInvocation and
    DescribeInstanceInformation support no resource-level scoping (Service Authorization
    Reference), hence ``*``; they reveal command results and agent status, not a shell.
    """
    if cluster_id:
        check_cluster_id(cluster_id)
    tag = {"StringLike": {f"ssm:resourceTag/{EMR_CLUSTER_TAG}": [cluster_id or "j-*"]}}
    return [
        {
            "Sid": "SsmShellOnEmrNodes",
            "Effect": "Allow",
            "Action": ["ssm:StartSession", "ssm:SendCommand"],
            "Resource": "arn:aws:ec2:*:*:instance/*",
            "Condition": tag,
        },
        {
            "Sid": "SsmShellDocuments",
            "Effect": "Allow",
            "Action": ["ssm:StartSession", "ssm:SendCommand"],
            "Resource": [
                "arn:aws:ssm:*:*:document/SSM-SessionManagerRunShell",
                "arn:aws:ssm:*::document/AWS-RunShellScript",
            ],
        },
        {
            "Sid": "SsmOwnSessionsOnly",
            "Effect": "Allow",
            "Action": ["ssm:TerminateSession", "ssm:ResumeSession"],
            "Resource": "arn:aws:ssm:*:*:session/*",
            "Condition": {"StringLike": {"ssm:resourceTag/aws:ssmmessages:session-id": ["${aws:userid}"]}},
        },
        {
            "Sid": "SsmReadCommandResultsAndAgentStatus",
            "Effect": "Allow",
            "Action": ["ssm:GetCommandInvocation", "ssm:DescribeInstanceInformation"],
            "Resource": "*",
        },
    ]


def serverless_statements(app_id: str | None, execution_role: str | None) -> list[dict[str, Any]]:
    """What ``%hail connect --serverless-app`` needs on one EMR Serverless application.

    From the EMR Serverless user guide ("Run interactive workloads ... through an Apache Livy
    endpoint", required permissions): ``emr-serverless:AccessLivyEndpoints`` and
    ``GetDashboardForJobRun`` on the application, ``iam:PassRole`` on the execution role only
    when passed to ``emr-serverless.amazonaws.com`` (``iam:PassedToService``). Plus GetApplication
    / StartApplication on it (the lookup and start) and ListApplications (``hail-emr-lab
    clusters``; no resource scoping in the Service Authorization Reference). Raises
    LifecycleError when either is missing or malformed.
    """
    check_serverless(app_id, execution_role)
    m = ROLE_ARN.fullmatch(str(execution_role).strip())
    app_arn = f"arn:{m[1]}:emr-serverless:*:*:/applications/{app_id}"
    return [
        {
            "Sid": "EmrServerlessLivyOnOneApplication",
            "Effect": "Allow",
            "Action": [
                "emr-serverless:AccessLivyEndpoints",
                "emr-serverless:GetDashboardForJobRun",
                "emr-serverless:GetApplication",
                "emr-serverless:StartApplication",
            ],
            "Resource": [app_arn, f"{app_arn}/*"],
        },
        {"Sid": "EmrServerlessListApplications", "Effect": "Allow", "Action": "emr-serverless:ListApplications",
         "Resource": "*"},
        {
            "Sid": "PassExecutionRoleToEmrServerlessOnly",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": execution_role,
            "Condition": {"StringLike": {"iam:PassedToService": "emr-serverless.amazonaws.com"}},
        },
    ]
