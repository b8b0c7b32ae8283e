"""The S3 bucket-name rule (Amazon S3 "Bucket naming rules"), and that every surface applies it."""

from __future__ import annotations

import pytest

from hail_emr_lab.jobs.params import JobParamError, bucket_name, s3_uri
from hail_emr_lab.lifecycle.params import LifecycleError, check_bucket
from hail_emr_lab.s3_names import bucket_name_problem

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
