"""AWS Signature Version 4 for Livy requests (the EMR Serverless Livy endpoint, or any SigV4 gateway).

The EMR Serverless user guide ("Run interactive workloads with EMR Serverless through an Apache
Livy endpoint") gives the endpoint as ``https://<application-id>.livy.emr-serverless-services.
<region>.amazonaws.com`` and says every request must be signed with SigV4; the signing name is
``emr-serverless`` (the service prefix of the EMR Serverless API reference).

Signing is botocore's (``botocore.auth.SigV4Auth`` over an ``AWSRequest``), never our own.
The credentials are taken from the boto3 session *for every request*
(``get_credentials().get_frozen_credentials()``): botocore refreshes an instance role's or an
assumed role's temporary credentials before they expire, so a long cell or the heartbeat keeps
working when they rotate.
"""

from __future__ import annotations

from typing import Any, Optional

from requests import PreparedRequest
from requests.auth import AuthBase

from .errors import LivyError

#: SigV4 signing name of the EMR Serverless Livy endpoint (EMR Serverless user guide, Livy endpoints).
EMR_SERVERLESS_SERVICE = "emr-serverless"
#: Request headers covered by the signature besides ``host`` and the ``x-amz-*`` ones botocore adds.
#: Only headers no proxy rewrites: a hop that changed a signed header would break the signature.
SIGNED_HEADERS = ("Content-Type", "X-Requested-By")


class SigV4Auth(AuthBase):
    """A requests auth that signs each request with SigV4 for ``service`` in ``region``.

    ``boto3_session`` defaults to a new ``boto3.session.Session()`` (the notebook's default chain:
    instance role on SageMaker, ``AWS_PROFILE``, environment). ``region`` defaults to the
    session's region. Raises :class:`LivyError` when neither gives a region, or (at request time)
    when the session has no credentials.
    """

    #: What a 401/403 answer should make the user check (used by the client's error message).
    refusal_hint = (
        "The request was signed with SigV4 from this notebook's AWS credentials: check that the role may "
        "use the endpoint (emr-serverless:AccessLivyEndpoints on the application), that the region and "
        "signing name are right (--region, --sigv4-service) and that the clock is correct."
    )

    def __init__(self, service: str = EMR_SERVERLESS_SERVICE, region: Optional[str] = None, boto3_session: Any = None):
        try:
            import boto3
            from botocore.auth import SigV4Auth as _BotoSigner  # noqa: F401 - fail early when missing
        except ImportError:  # pragma: no cover - a dependency
            raise LivyError("SigV4 auth needs boto3: pip install boto3") from None
        self.session = boto3_session or boto3.session.Session()
        self.service = (service or EMR_SERVERLESS_SERVICE).strip()
        self.region = region or self.session.region_name
        if not self.region:
            raise LivyError(
                "SigV4 auth needs an AWS region: pass --region (or set AWS_REGION / the config key 'region')"
            )

    def credentials(self) -> Any:
        """Frozen credentials for one request (refreshed by botocore when they near expiry)."""
        creds = self.session.get_credentials()
        if creds is None:
            raise LivyError(
                "SigV4 auth found no AWS credentials: on SageMaker the instance role provides them; elsewhere "
                "run 'aws configure' or set AWS_PROFILE"
            )
        return creds.get_frozen_credentials()

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        from botocore.auth import SigV4Auth as BotoSigner
        from botocore.awsrequest import AWSRequest

        headers = {name: request.headers[name] for name in SIGNED_HEADERS if name in request.headers}
        aws_request = AWSRequest(method=request.method, url=request.url, data=request.body or b"", headers=headers)
        BotoSigner(self.credentials(), self.service, self.region).add_auth(aws_request)
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
            if name in aws_request.headers:
                request.headers[name] = aws_request.headers[name]
        return request

    def __repr__(self) -> str:  # no credentials in it
        return f"SigV4Auth(service={self.service!r}, region={self.region!r})"
