"""Names AWS accepts (S3 bucket names, IAM role ARNs, EMR Serverless application ids), and that every
surface (lifecycle, jobs) applies the same rule."""

from __future__ import annotations

import pytest

from hail_emr_lab.aws_names import bucket_name_problem, role_arn_problem, serverless_app_problem
from hail_emr_lab.jobs.params import JobParamError, application_id, bucket_name, role_arn, s3_uri
from hail_emr_lab.lifecycle.params import LifecycleError, check_bucket, check_serverless

VALID = ["abc", "a" * 63, "my-bucket", "my.bucket.2", "1bucket", "bucket-1", "a-b.c-d", "xn-a", "s3alias-x"]
INVALID = {
    "": "required",
    "ab": "3-63",
    "a" * 64: "3-63",
    "My-Bucket": "lower-case",
    "my_bucket": "lower-case",
    "-bucket": "starting and ending",
    "bucket-": "starting and ending",
    ".bucket": "starting and ending",
    "bucket.": "starting and ending",
    "a..b": "adjacent periods",
    "192.168.5.4": "IP address",
    "999.1.1.1": "IP address",
    "xn--bucket": "'xn--'",
    "sthree-bucket": "'sthree-'",
    "sthree-configurator": "'sthree-'",
    "amzn-s3-demo-bucket": "'amzn-s3-demo-'",
    "bucket-s3alias": "'-s3alias'",
    "bucket--ol-s3": "'--ol-s3'",
    "bucket.mrap": "'.mrap'",
    "bucket--x-s3": "'--x-s3'",
    "bucket--table-s3": "'--table-s3'",
}


@pytest.mark.parametrize("name", VALID)
def test_valid_names_pass_everywhere(name):
    assert bucket_name_problem(name) is None
    assert check_bucket(name) == name
    assert bucket_name(name) == name
    assert s3_uri(f"s3://{name}/key") == f"s3://{name}/key"


@pytest.mark.parametrize("name, why", sorted(INVALID.items()))
def test_invalid_names_fail_everywhere_saying_why(name, why):
    assert why in bucket_name_problem(name)
    with pytest.raises(LifecycleError, match="not a valid S3 bucket name") as lifecycle:
        check_bucket(name)
    assert why in str(lifecycle.value)
    if name:  # jobs treat an empty value as unset, before it reaches the rule
        with pytest.raises(JobParamError, match="not an S3 bucket name") as jobs:
            bucket_name(name)
        assert why in str(jobs.value)
        with pytest.raises(JobParamError, match="invalid bucket name"):
            s3_uri(f"s3://{name}/key")


ROLES_OK = ["arn:aws:iam::123456789012:role/HailServerless", "arn:aws-cn:iam::123456789012:role/path/to/R+=,.@-_",
            "arn:aws-us-gov:iam::123456789012:role/x"]
ROLES_BAD = ["", "HailServerless", "arn:aws:iam::12345:role/x", "arn:aws:iam::123456789012:user/x",
             "arn:aws:iam::123456789012:role/", "arn:aws:iam::123456789012:role/a b", "arn:aws:s3:::bucket"]
APPS_OK = ["00fabcdexample", "0" * 64, "a"]
APPS_BAD = ["", "00F1ABCD", "app-1", "0" * 65, "00fab cd"]


@pytest.mark.parametrize("arn", ROLES_OK)
def test_role_arns_accepted_by_every_surface(arn):
    assert role_arn_problem(arn) is None
    assert role_arn(arn) == arn
    check_serverless("00fabcdexample", arn)


@pytest.mark.parametrize("arn", ROLES_BAD)
def test_role_arns_refused_by_every_surface_with_the_example(arn):
    assert "role" in role_arn_problem(arn)
    with pytest.raises(JobParamError, match="not an IAM role ARN"):
        role_arn(arn)
    with pytest.raises(LifecycleError, match="--execution-role needs an IAM role ARN"):
        check_serverless("00fabcdexample", arn)


@pytest.mark.parametrize("app", APPS_OK)
def test_serverless_app_ids_accepted_by_every_surface(app):
    """One rule (EMR Serverless API Reference: 1-64 of [0-9a-z]); jobs used to demand exactly 16."""
    assert serverless_app_problem(app) is None
    assert application_id(app) == app
    check_serverless(app, ROLES_OK[0])


@pytest.mark.parametrize("app", APPS_BAD)
def test_serverless_app_ids_refused_by_every_surface(app):
    assert serverless_app_problem(app)
    with pytest.raises(JobParamError, match="not an EMR Serverless application id"):
        application_id(app)
    with pytest.raises(LifecycleError, match="--serverless-app needs an EMR Serverless application id"):
        check_serverless(app, ROLES_OK[0])


@pytest.mark.parametrize("arn, app", [(" " + ROLES_OK[0], "00fabcdexample"), (ROLES_OK[0] + "\n", "00fabcdexample"),
                                      (ROLES_OK[0], "00fabcdexample "), (ROLES_OK[0], "\t00fabcdexample")])
def test_whitespace_around_an_id_never_reaches_aws(arn, app):
    """Checked stripped but used as given, the id would land in a policy or a session's conf with
    its space and AWS would refuse it later, obscurely: the policy generator and connect refuse it
    up front; jobs settings (often read from files) are stripped and used stripped."""
    assert "spaces or a line break" in (role_arn_problem(arn) or serverless_app_problem(app))
    with pytest.raises(LifecycleError, match="spaces or a line break"):
        check_serverless(app, arn)
    assert role_arn(arn) == ROLES_OK[0] and application_id(app) == "00fabcdexample"

