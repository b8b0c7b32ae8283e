"""One mapping of AWS API failures (``hail_emr_lab.aws_errors``): EMR discovery, SSM and the job
backends say the same thing for the same failure. botocore's exceptions are built here as
botocore raises them; no AWS call is made."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, NoRegionError

from hail_emr_lab.aws_errors import aws_error, error_code, kind
from hail_emr_lab.emr.discovery import EmrError, emr_error
from hail_emr_lab.emr.ssm import SsmError, _ssm_error
from hail_emr_lab.jobs.aws import call
from hail_emr_lab.jobs.base import JobError, JobNotFound


def client_error(code: str, message: str = "nope", status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


def _raise(exc: BaseException):
    def fn():
        raise exc

    return fn


def job_error(exc: BaseException) -> JobError:
    with pytest.raises(JobError) as err:
        call("doing it", _raise(exc))
    return err.value


CASES = [
    (NoCredentialsError(), "credentials", "no AWS credentials"),
    (NoRegionError(), "region", "no AWS region; pass --region or set AWS_DEFAULT_REGION"),
    (EndpointConnectionError(endpoint_url="https://emr.eu-west-1.amazonaws.com"), "network", "cannot reach the AWS API"),
    (client_error("AccessDeniedException", "not authorized", 403), "denied", "AWS denied access (not authorized)"),
    (client_error("UnauthorizedOperation"), "denied", "AWS denied access (nope)"),
    (client_error("ThrottlingException", "slow down"), "other", "ThrottlingException: slow down"),
]


@pytest.mark.parametrize("exc, expected_kind, says", CASES)
def test_every_surface_says_the_same(exc, expected_kind, says):
    assert kind(exc) == expected_kind
    for made, cls in ((emr_error(exc, "doing it"), EmrError), (_ssm_error(exc, "doing it"), SsmError),
                      (job_error(exc), JobError), (aws_error(exc, "doing it"), Exception)):
        assert isinstance(made, cls)
        assert str(made).startswith("doing it: ") and says in str(made), str(made)


def test_denied_names_what_each_surface_needs():
    denied = client_error("AccessDeniedException")
    assert "elasticmapreduce:ListClusters" in str(emr_error(denied, "x"))
    assert "lifecycle iam-policy --ssm" in str(_ssm_error(denied, "x"))
    assert "needs permission for this call" in str(job_error(denied))


def test_not_found_and_codes():
    assert isinstance(job_error(client_error("ResourceNotFoundException", "no such app")), JobNotFound)
    assert isinstance(job_error(client_error("ValidationException", "job run x does not exist")), JobNotFound)
    head = ClientError({"Error": {}, "ResponseMetadata": {"HTTPStatusCode": 404}}, "HeadObject")
    assert error_code(head) == "404" and kind(head) == "not_found"
    assert error_code(ValueError("x")) == ""
    assert "Or connect with --url" in str(emr_error(NoCredentialsError(), "x"))


def test_an_html_error_page_is_not_a_message():
    exc = client_error("InternalError", "<html><body>502 Bad Gateway</body></html>")
    assert "<html>" not in str(aws_error(exc, "doing it"))
