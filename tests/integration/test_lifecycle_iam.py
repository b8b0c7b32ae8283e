"""The per-user IAM policy, checked with a small IAM evaluator written here: explicit Deny wins,
then any Allow; actions and resources match with * and ? wildcards; StringEquals/StringLike
conditions match when the request has the key and any listed value matches; policy variables
``${key}`` in condition values are replaced by the request's value of ``key``."""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys

import pytest

from hail_emr_lab.lifecycle import LifecycleError, iam_policy

BUCKET = "hel-bucket"
B = f"arn:aws:s3:::{BUCKET}"


def _listify(value):
    return value if isinstance(value, list) else [value]


def _wild(pattern: str, value: str, case: bool = True) -> bool:
    # IAM wildcards: * any run, ? one character; no character classes.
    pattern = pattern.replace("[", "[[]")
    if not case:
        pattern, value = pattern.lower(), value.lower()
    return fnmatch.fnmatchcase(value, pattern)


def _substitute(value: str, context: dict) -> str:
    # IAM policy variables: ${aws:userid} etc.; an absent key makes the value match nothing.
    return re.sub(r"\$\{([^}]+)\}", lambda m: context.get(m.group(1), "\0absent\0"), value)


def _conditions_hold(conditions: dict, context: dict) -> bool:
    for operator, tests in conditions.items():
        for key, wanted in tests.items():
            if key not in context:
                return False
            actual = context[key]
            wanted = [_substitute(w, context) for w in _listify(wanted)]
            if operator == "StringEquals":
                ok = any(actual == w for w in _listify(wanted))
            elif operator == "StringLike":
                ok = any(_wild(w, actual) for w in _listify(wanted))
            else:
                raise AssertionError(f"evaluator does not know {operator}")
            if not ok:
                return False
    return True


def evaluate(policy: dict, action: str, resource: str, context: dict | None = None) -> bool:
    """True if ``policy`` allows ``action`` on ``resource`` with request ``context``."""
    context = context or {}
    allowed = False
    for statement in policy["Statement"]:
        if not any(_wild(a, action, case=False) for a in _listify(statement["Action"])):
            continue
        if not any(_wild(r, resource) for r in _listify(statement["Resource"])):
            continue
        if not _conditions_hold(statement.get("Condition", {}), context):
            continue
        if statement["Effect"] == "Deny":
            return False
        allowed = True
    return allowed


def test_the_evaluator_itself():
    policy = {
        "Statement": [
            {"Effect": "Allow", "Action": "s3:Get*", "Resource": f"{B}/x/*"},
            {"Effect": "Deny", "Action": "s3:GetObject", "Resource": f"{B}/x/secret*"},
            {
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": B,
                "Condition": {"StringEquals": {"s3:prefix": ["x/"]}},
            },
        ]
    }
    assert evaluate(policy, "s3:getobject", f"{B}/x/a")
    assert not evaluate(policy, "s3:GetObject", f"{B}/x/secret.txt")
    assert not evaluate(policy, "s3:PutObject", f"{B}/x/a")
    assert evaluate(policy, "s3:ListBucket", B, {"s3:prefix": "x/"})
    assert not evaluate(policy, "s3:ListBucket", B, {"s3:prefix": "x/y/"})
    assert not evaluate(policy, "s3:ListBucket", B)


POLICY_A = iam_policy(BUCKET, "alice")

TABLE = [
    # (action, resource, context) -> allowed?
    ("s3:GetObject", f"{B}/alice/notebooks/a.ipynb", {}, True),
    ("s3:PutObject", f"{B}/alice/notebooks/a.ipynb", {}, True),
    ("s3:DeleteObject", f"{B}/alice/.trash/a.ipynb", {}, True),
    ("s3:AbortMultipartUpload", f"{B}/alice/big.vcf", {}, True),
    ("s3:ListBucket", B, {"s3:prefix": "alice/"}, True),
    ("s3:ListBucket", B, {"s3:prefix": "alice/notebooks/"}, True),
    ("s3:GetObject", f"{B}/common-notebooks/tutorial.ipynb", {}, True),
    ("s3:ListBucket", B, {"s3:prefix": "common-notebooks/"}, True),
    ("s3:GetObject", f"{B}/scripts/list-clusters", {}, True),
    ("s3:GetObject", f"{B}/packages/hail_emr_lab-0.1.0-py3-none-any.whl", {}, True),
    ("s3:ListBucket", B, {"s3:prefix": "packages/"}, True),
    ("s3:GetBucketLocation", B, {}, True),
    ("elasticmapreduce:ListClusters", "*", {}, True),
    ("elasticmapreduce:DescribeCluster", "arn:aws:elasticmapreduce:us-east-1:1:cluster/j-X", {}, True),
    ("sagemaker:ListTags", "arn:aws:sagemaker:us-east-1:123456789012:notebook-instance/alice", {}, True),
    # another user's files and listing
    ("s3:GetObject", f"{B}/bob/notebooks/b.ipynb", {}, False),
    ("s3:PutObject", f"{B}/bob/notebooks/b.ipynb", {}, False),
    ("s3:ListBucket", B, {"s3:prefix": "bob/"}, False),
    ("s3:ListBucket", B, {"s3:prefix": "alice"}, False),  # would also list alice-smith/
    ("s3:GetObject", f"{B}/alice-smith/x", {}, False),
    # the bucket root
    ("s3:ListBucket", B, {}, False),
    ("s3:ListBucket", B, {"s3:prefix": ""}, False),
    ("s3:GetObject", f"{B}/top-level.txt", {}, False),
    # shared prefixes are read-only
    ("s3:PutObject", f"{B}/common-notebooks/tutorial.ipynb", {}, False),
    ("s3:DeleteObject", f"{B}/common-notebooks/tutorial.ipynb", {}, False),
    ("s3:PutObject", f"{B}/scripts/list-clusters", {}, False),
    ("s3:PutObject", f"{B}/packages/evil.whl", {}, False),
    # nothing else
    ("s3:DeleteBucket", B, {}, False),
    ("s3:PutBucketPolicy", B, {}, False),
    ("s3:GetObject", "arn:aws:s3:::other-bucket/alice/x", {}, False),
    ("elasticmapreduce:TerminateJobFlows", "*", {}, False),
    ("sagemaker:ListTags", "arn:aws:sagemaker:us-east-1:123456789012:notebook-instance/bob", {}, False),
    ("iam:PassRole", "*", {}, False),
]


@pytest.mark.parametrize("action,resource,context,allowed", TABLE)
def test_user_a_policy(action, resource, context, allowed):
    assert evaluate(POLICY_A, action, resource, context) is allowed


def test_cli_prints_valid_json_and_never_the_whole_bucket():
    done = subprocess.run(
        [sys.executable, "-m", "hail_emr_lab", "lifecycle", "iam-policy", "--bucket", BUCKET, "--user", "alice"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    policy = json.loads(done.stdout)
    assert policy == POLICY_A
    for statement in policy["Statement"]:
        if "s3:ListBucket" in _listify(statement["Action"]):
            assert "Condition" in statement
        assert statement["Action"] != "*" and "s3:*" not in _listify(statement["Action"])


def test_kms_key_and_bad_users():
    policy = iam_policy(BUCKET, "alice", kms_key_arn="arn:aws:kms:us-east-1:1:key/abc")
    assert evaluate(policy, "kms:Decrypt", "arn:aws:kms:us-east-1:1:key/abc")
    assert not evaluate(POLICY_A, "kms:Decrypt", "arn:aws:kms:us-east-1:1:key/abc")
    for user in ("*", "a/b", "common-notebooks", "", "al?ce"):
        with pytest.raises(LifecycleError):
            iam_policy(BUCKET, user)
    with pytest.raises(LifecycleError, match="bucket"):
        iam_policy("Bad_Bucket", "alice")


def test_iam_policy_recommends_the_bucket_lifecycle_rules(aws_env):
    """The rules printed beside the policy are ones S3 accepts (moto over HTTP validates the shape):
    abort incomplete multipart uploads bucket-wide, expire the user's staged -o files; the command
    line says why and how to apply them without replacing other rules. moto stores the rules; it
    does not run them (no object is expired here)."""
    import boto3

    from hail_emr_lab.lifecycle.iam import recommended_lifecycle_rules

    done = subprocess.run(
        [sys.executable, "-m", "hail_emr_lab", "lifecycle", "iam-policy", "--bucket", BUCKET, "--user", "alice"],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == POLICY_A  # the policy alone on stdout
    assert "AbortIncompleteMultipartUpload" in done.stderr and "REPLACES" in done.stderr
    assert f"get-bucket-lifecycle-configuration --bucket {BUCKET}" in done.stderr
    rules = recommended_lifecycle_rules("alice")
    assert json.dumps(rules) in done.stderr
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_lifecycle_configuration(Bucket=BUCKET, LifecycleConfiguration=rules)
    stored = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]}
    abort = stored["hail-emr-lab-abort-incomplete-multipart-uploads"]
    assert abort["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
    assert abort["Status"] == "Enabled"
    expire = stored["hail-emr-lab-expire-staging-alice"]
    # Exactly the prefix the notebook stages under (and nothing of the user's home files).
    assert expire["Filter"]["Prefix"] == "alice/.hail-emr-lab/staging/"
    from hail_emr_lab.config import Config
    from hail_emr_lab.notebook.staging import s3_root

    config = Config()
    config.values.update(bucket=BUCKET, prefix="alice")
    assert s3_root(config) == f"s3://{BUCKET}/{expire['Filter']['Prefix']}"
    assert expire["Expiration"] == {"Days": 1} and expire["Status"] == "Enabled"
    # The role cannot list other users' uploads: no bucket-wide multipart listing is granted.
    assert not evaluate(POLICY_A, "s3:ListBucketMultipartUploads", B)


EC2 = "arn:aws:ec2:us-east-1:123456789012:instance"
JOB_FLOW = "ssm:resourceTag/aws:elasticmapreduce:job-flow-id"
SESSION_TAG = "ssm:resourceTag/aws:ssmmessages:session-id"
ME = {"aws:userid": "AROAEXAMPLE:alice"}
POLICY_SSM = iam_policy(BUCKET, "alice", ssm=True, cluster_id="j-ABC")
POLICY_SSM_ANY = iam_policy(BUCKET, "alice", ssm=True)

SSM_TABLE = [
    # the cluster's nodes: a shell and Run Command
    ("ssm:StartSession", f"{EC2}/i-0master", {JOB_FLOW: "j-ABC"}, True),
    ("ssm:SendCommand", f"{EC2}/i-0core", {JOB_FLOW: "j-ABC"}, True),
    ("ssm:StartSession", "arn:aws:ssm:us-east-1:123456789012:document/SSM-SessionManagerRunShell", {}, True),
    ("ssm:SendCommand", "arn:aws:ssm:us-east-1::document/AWS-RunShellScript", {}, True),
    ("ssm:GetCommandInvocation", "*", {}, True),
    ("ssm:DescribeInstanceInformation", "*", {}, True),
    # own sessions only
    ("ssm:TerminateSession", "arn:aws:ssm:us-east-1:123456789012:session/alice-0abc", {**ME, SESSION_TAG: "AROAEXAMPLE:alice"}, True),
    ("ssm:ResumeSession", "arn:aws:ssm:us-east-1:123456789012:session/alice-0abc", {**ME, SESSION_TAG: "AROAEXAMPLE:alice"}, True),
    ("ssm:TerminateSession", "arn:aws:ssm:us-east-1:123456789012:session/bob-0abc", {**ME, SESSION_TAG: "AROAOTHER:bob"}, False),
    ("ssm:TerminateSession", "arn:aws:ssm:us-east-1:123456789012:session/x", ME, False),
    # other clusters' nodes and instances that are no EMR node
    ("ssm:StartSession", f"{EC2}/i-0other", {JOB_FLOW: "j-OTHER"}, False),
    ("ssm:SendCommand", f"{EC2}/i-0other", {JOB_FLOW: "j-OTHER"}, False),
    ("ssm:StartSession", f"{EC2}/i-0webserver", {}, False),
    ("ssm:SendCommand", f"{EC2}/i-0webserver", {}, False),
    # other documents (e.g. one that runs as another user or forwards ports) and other SSM actions
    ("ssm:SendCommand", "arn:aws:ssm:us-east-1::document/AWS-RunPowerShellScript", {}, False),
    ("ssm:StartSession", "arn:aws:ssm:us-east-1::document/AWS-StartPortForwardingSessionToRemoteHost", {}, False),
    ("ssm:GetParameter", "arn:aws:ssm:us-east-1:123456789012:parameter/secret", {}, False),
    ("ssm:UpdateInstanceInformation", "*", {}, False),
]


@pytest.mark.parametrize("action,resource,context,allowed", SSM_TABLE)
def test_ssm_statements(action, resource, context, allowed):
    assert evaluate(POLICY_SSM, action, resource, context) is allowed


def test_ssm_without_a_cluster_id_covers_emr_nodes_only_and_is_off_by_default():
    assert evaluate(POLICY_SSM_ANY, "ssm:StartSession", f"{EC2}/i-0other", {JOB_FLOW: "j-OTHER"})
    assert not evaluate(POLICY_SSM_ANY, "ssm:StartSession", f"{EC2}/i-0webserver", {})
    assert not evaluate(POLICY_A, "ssm:StartSession", f"{EC2}/i-0master", {JOB_FLOW: "j-ABC"})
    assert not any(a.startswith("ssm:") for st in POLICY_A["Statement"] for a in _listify(st["Action"]))
    with pytest.raises(LifecycleError, match="cluster id"):
        iam_policy(BUCKET, "alice", ssm=True, cluster_id="j-*")
    done = subprocess.run(
        [sys.executable, "-m", "hail_emr_lab", "lifecycle", "iam-policy", "--bucket", BUCKET, "--user", "alice",
         "--ssm", "--cluster-id", "j-ABC"],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == POLICY_SSM
