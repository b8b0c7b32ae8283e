"""EMR Serverless applications as Livy targets: look one up, check it can serve Livy, start it.

Facts from the EMR Serverless user guide ("Run interactive workloads with EMR Serverless through
an Apache Livy endpoint"):

* the Livy endpoint exists from release emr-6.14.0, for Spark applications created (or updated)
  with ``interactiveConfiguration.livyEndpointEnabled = true``;
* the application must be started before the endpoint answers;
* the endpoint is ``https://<application-id>.livy.emr-serverless-services.<region>.amazonaws.com``,
  every request is SigV4-signed for ``emr-serverless`` (see :mod:`hail_emr_lab.livy.sigv4`);
* a session is created with the execution role in its conf, key
  ``emr-serverless.session.executionRoleArn``;
* callers need ``emr-serverless:AccessLivyEndpoints`` on the application, ``iam:PassRole`` on the
  execution role and ``emr-serverless:GetDashboardForJobRun``, with which the endpoint makes the
  Spark UI and driver-log links of a session (Livy's ``appInfo``).

And from the EMR Serverless API reference (GetDashboardForJobRun): the dashboard URL of a job run
is the live Spark UI while it runs, the Spark History Server after; it is valid for one hour.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from .. import aws_errors, aws_names
from ..errors import HailEmrLabError

#: First release with the Livy endpoint (EMR Serverless user guide, Livy endpoints).
MIN_RELEASE = (6, 14, 0)
#: Session conf key that names the execution role (EMR Serverless user guide, Livy endpoints).
EXECUTION_ROLE_CONF = "emr-serverless.session.executionRoleArn"
#: Service principal the execution role is passed to (the iam:PassedToService condition value).
SERVICE_PRINCIPAL = "emr-serverless.amazonaws.com"
#: Spark properties EMR Serverless reads for sizing (EMR Serverless user guide, Spark job properties).
SIZING_PROPERTIES = {
    "driver_memory": "spark.driver.memory",
    "driver_cores": "spark.driver.cores",
    "executor_memory": "spark.executor.memory",
    "executor_cores": "spark.executor.cores",
    "num_executors": "spark.executor.instances",
}
#: How long a dashboard URL is reused, in seconds (GetDashboardForJobRun: valid one hour after it is made).
DASHBOARD_REUSE = 50 * 60.0
#: How long a refused dashboard look-up is not repeated, in seconds (the sidebar refreshes every few seconds).
DASHBOARD_RETRY = 60.0
#: Form of an EMR Serverless job run id (EMR Serverless API reference, GetDashboardForJobRun).
JOB_RUN_ID = aws_names.SERVERLESS_ID  # a job run id has the form of an application id
#: Where EMR Serverless applications and their job runs are in the AWS console (EMR Serverless user guide).
CONSOLE_URL = "https://console.aws.amazon.com/emr/home?region={region}#/serverless"
STARTABLE = ("CREATED", "STOPPED")
WAITING = ("CREATING", "STARTING", "STOPPING")


class ServerlessError(HailEmrLabError):
    """The EMR Serverless application cannot serve Livy sessions (message says what to change)."""


def livy_endpoint_url(app_id: str, region: str) -> str:
    """The Livy endpoint of application ``app_id`` in ``region`` (EMR Serverless user guide form)."""
    return f"https://{app_id}.livy.emr-serverless-services.{region}.amazonaws.com"


def endpoint_region(url: str) -> Optional[str]:
    """The region of an EMR Serverless Livy endpoint URL (see :func:`livy_endpoint_url`), else None."""
    from urllib.parse import urlsplit

    m = re.fullmatch(r"[0-9a-z]+\.livy\.emr-serverless-services\.([a-z0-9-]+)\.amazonaws\.com",
                     urlsplit(url or "").hostname or "")
    return m[1] if m else None


def configured_endpoint(app_id: Optional[str], region: Optional[str]) -> Optional[str]:
    """The Livy endpoint of a configured application (region: given, else boto3's default), or None."""
    if not app_id:
        return None
    if not region:
        import boto3

        region = boto3.session.Session().region_name
    return livy_endpoint_url(app_id, region) if region else None


def parse_release(label: str) -> Optional[tuple[int, int, int]]:
    """``"emr-6.14.0"`` -> ``(6, 14, 0)``; None when the label has another form."""
    m = re.match(r"^emr-(\d+)\.(\d+)\.(\d+)", label or "")
    return (int(m[1]), int(m[2]), int(m[3])) if m else None


@dataclass
class ServerlessApp:
    """What GetApplication says about one application (``livy_enabled`` None = the answer did not say)."""

    app_id: str
    name: str
    state: str
    release: str
    region: str
    app_type: str = "Spark"
    livy_enabled: Optional[bool] = None
    arn: str = ""

    @property
    def livy_url(self) -> str:
        return livy_endpoint_url(self.app_id, self.region)

    def to_dict(self) -> dict[str, Any]:
        return {"application_id": self.app_id, "name": self.name, "state": self.state, "release": self.release,
                "livy_enabled": self.livy_enabled, "livy_url": self.livy_url, "region": self.region}

    @classmethod
    def from_answer(cls, app: dict[str, Any], region: str) -> ServerlessApp:
        interactive = app.get("interactiveConfiguration")
        enabled = None if not isinstance(interactive, dict) else interactive.get("livyEndpointEnabled")
        return cls(app_id=app.get("applicationId") or app.get("id") or "", name=app.get("name", ""),
                   state=str(app.get("state", "")).upper(), release=app.get("releaseLabel", ""), region=region,
                   app_type=str(app.get("type", "")), livy_enabled=enabled if enabled is None else bool(enabled),
                   arn=app.get("arn", ""))


def serverless_client(boto3_session: Any = None, region: Optional[str] = None) -> Any:
    """An ``emr-serverless`` client (honours ``AWS_ENDPOINT_URL`` like every boto3 client)."""
    import boto3

    session = boto3_session or boto3.session.Session()
    region = region or session.region_name
    if not region:
        raise ServerlessError("EMR Serverless needs an AWS region: pass --region or set AWS_REGION")
    return session.client("emr-serverless", region_name=region)


def _aws_error(exc: Exception, app_id: str, region: str, action: str) -> ServerlessError:
    found = aws_errors.kind(exc)
    if found == "credentials":
        return ServerlessError(
            "no AWS credentials to look up the EMR Serverless application: on SageMaker the instance role "
            "provides them; elsewhere run 'aws configure' or set AWS_PROFILE"
        )
    if found == "network":
        return ServerlessError(f"cannot reach the EMR Serverless API in {region} ({exc}): check the network and region")
    code, message = aws_errors.error_code(exc) or type(exc).__name__, aws_errors.error_message(exc)
    if found == "not_found" or code == "ValidationException":
        return ServerlessError(
            f"no EMR Serverless application {app_id!r} in region {region} ({message}): check the application id "
            "and the region (--region, AWS_REGION); 'hail-emr-lab clusters --region REGION' lists the "
            "Livy-enabled applications"
        )
    if found == "denied":
        return ServerlessError(
            f"AWS denied emr-serverless:{action} on application {app_id} ({message}): the notebook's role needs "
            "emr-serverless:GetApplication and StartApplication on it (hail-emr-lab lifecycle iam-policy "
            "--serverless-app ... writes them)"
        )
    return ServerlessError(f"emr-serverless {action} for {app_id} failed: {code}: {message}")


def describe(app_id: str, client: Any) -> ServerlessApp:
    """GetApplication for ``app_id``; :class:`ServerlessError` if missing or not allowed."""
    region = client.meta.region_name
    try:
        answer = client.get_application(applicationId=app_id)["application"]
    except Exception as exc:
        raise _aws_error(exc, app_id, region, "GetApplication") from None
    return ServerlessApp.from_answer(answer, region)


def check_livy_capable(app: ServerlessApp) -> None:
    """Raise :class:`ServerlessError` when ``app`` cannot have a Livy endpoint (type, release, setting)."""
    label = f"EMR Serverless application {app.app_id} ({app.name!r})"
    if app.app_type and app.app_type.upper() != "SPARK":
        raise ServerlessError(f"{label} is a {app.app_type} application: Livy sessions need a Spark application")
    release = parse_release(app.release)
    if release is not None and release < MIN_RELEASE:
        raise ServerlessError(
            f"{label} runs {app.release}: the Livy endpoint needs emr-6.14.0 or later. Create an application "
            "with a newer release (e.g. --release-label emr-7.x.0) and --interactive-configuration "
            "livyEndpointEnabled=true"
        )
    if app.livy_enabled is False:
        raise ServerlessError(
            f"{label} does not have its Livy endpoint enabled: stop it, then run 'aws emr-serverless "
            f"update-application --application-id {app.app_id} --interactive-configuration "
            "livyEndpointEnabled=true' (or create it with that option)"
        )
    if app.state == "TERMINATED":
        raise ServerlessError(f"{label} is TERMINATED: create a new application and connect to it")


def ensure_started(
    app: ServerlessApp,
    client: Any,
    on_state: Optional[Callable[[str, float], None]] = None,
    timeout: float = 600.0,
    poll: float = 5.0,
) -> ServerlessApp:
    """Start ``app`` if it is CREATED/STOPPED and wait until it is STARTED (``on_state(state, seconds)``).

    Raises :class:`ServerlessError` when it does not start within ``timeout`` seconds (it may
    still be starting: GetApplication shows its state) or StartApplication is refused.
    """
    t0 = time.monotonic()
    started_it = False
    while True:
        elapsed = time.monotonic() - t0
        if on_state:
            on_state(app.state, elapsed)
        if app.state == "STARTED":
            return app
        if app.state in STARTABLE and not started_it:
            try:
                client.start_application(applicationId=app.app_id)
            except Exception as exc:
                raise _aws_error(exc, app.app_id, app.region, "StartApplication") from None
            started_it = True
        elif app.state not in WAITING and app.state not in STARTABLE:
            raise ServerlessError(
                f"EMR Serverless application {app.app_id} is {app.state}: it cannot serve Livy sessions"
            )
        if elapsed > timeout:
            raise ServerlessError(
                f"EMR Serverless application {app.app_id} is still {app.state} after {timeout:.0f} s; it may still "
                "start: check 'aws emr-serverless get-application', then connect again"
            )
        time.sleep(poll)
        app = describe(app.app_id, client)


def application_for(
    app_id: str,
    region: Optional[str] = None,
    boto3_session: Any = None,
    on_state: Optional[Callable[[str, float], None]] = None,
    timeout: float = 600.0,
    poll: float = 5.0,
) -> ServerlessApp:
    """Look up ``app_id``, check it can serve Livy, start it if needed; the STARTED application."""
    app_id = (app_id or "").strip()
    problem = aws_names.serverless_app_problem(app_id)
    if problem:
        raise ServerlessError(f"{app_id!r} is not an EMR Serverless application id: {problem}")
    client = serverless_client(boto3_session, region)
    app = describe(app_id, client)
    check_livy_capable(app)
    return ensure_started(app, client, on_state=on_state, timeout=timeout, poll=poll)


def application_status(app_id: str, region: Optional[str] = None, boto3_session: Any = None) -> dict[str, Any]:
    """The sidebar's view of an application: :meth:`ServerlessApp.to_dict`, or ``{application_id, error}``."""
    try:
        return describe(app_id, serverless_client(boto3_session, region)).to_dict()
    except ServerlessError as exc:
        return {"application_id": app_id, "error": str(exc)}


def list_livy_applications(boto3_session: Any = None, region: Optional[str] = None) -> list[dict[str, Any]]:
    """Spark applications not known to lack a Livy endpoint (emr-6.14.0+, not TERMINATED), as dicts."""
    client = serverless_client(boto3_session, region)
    rows: list[dict[str, Any]] = []
    try:
        for page in client.get_paginator("list_applications").paginate():
            for summary in page.get("applications", []):
                if str(summary.get("type", "")).upper() != "SPARK" or summary.get("state") == "TERMINATED":
                    continue
                release = parse_release(summary.get("releaseLabel", ""))
                if release is not None and release < MIN_RELEASE:
                    continue
                app = describe(summary["id"], client)
                if app.livy_enabled is not False:
                    rows.append(app.to_dict())
    except ServerlessError:
        raise
    except Exception as exc:
        raise _aws_error(exc, "*", client.meta.region_name, "ListApplications") from None
    return rows


# ---------------------------------------------------------------- Spark UI and driver-log links


#: Query parameters of a pre-signed link that grant access (the dashboard's token, SigV4 query signing).
_GRANTS = ("authtoken", "x-amz-signature", "x-amz-credential", "x-amz-security-token")


#: What a notebook shows instead of a link that grants access (see :func:`grants_access`).
KEPT_OUT_OF_NOTEBOOK = ("the Spark UI link grants access for an hour, so it is kept out of the notebook "
                        "(outputs are saved and backed up): open it from the hail-emr-lab sidebar's Sessions section")


def grants_access(url: str) -> bool:
    """Does ``url`` carry an access-granting query parameter (see :func:`without_grant`)? Such a
    link is shown in the sidebar (never saved) but not put in a notebook's output."""
    return without_grant(url) != url


def without_grant(url: str) -> str:
    """``url`` with the values of its access-granting query parameters (a dashboard URL's
    ``authToken``, a pre-signed URL's ``X-Amz-Signature``...) shown as ``***``: for text that may
    be kept (a notebook's output, its S3 backup), where the link itself is a credential for an hour."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if not any(k.lower() in _GRANTS for k, _ in query):
        return url
    shown = [(k, "***" if k.lower() in _GRANTS else v) for k, v in query]
    return urlunsplit(parts._replace(query=urlencode(shown, safe="*")))


@dataclass(frozen=True)
class SparkLinks:
    """Where a session's Spark UI and driver log are: URLs, and ``note`` saying where to look (or why
    there is no link) when one is missing. Dashboard URLs are valid for one hour and grant access
    while they are: text shows them through :func:`without_grant`; only the sidebar, whose page is
    never saved, links them whole."""

    spark_ui_url: Optional[str] = None
    driver_log_url: Optional[str] = None
    note: Optional[str] = None

    def lines(self) -> list[str]:
        """``Spark UI: URL``, ``driver log: URL`` (tokens hidden) and the note, for the ones there are."""
        out = [f"{label}: {without_grant(url)}"
               for label, url in (("Spark UI", self.spark_ui_url), ("driver log", self.driver_log_url)) if url]
        return out + ([self.note] if self.note else [])


_DASHBOARDS: dict[tuple[str, str, str], tuple[float, Optional[str], str]] = {}
_DASHBOARDS_LOCK = threading.Lock()


def where_to_look(app_id: str, region: Optional[str], job_run_id: Optional[str] = None) -> str:
    """Where the Spark UI and driver logs of a session on application ``app_id`` are, without a link."""
    run = f", job run {job_run_id}" if job_run_id else ""
    cli = (f"; or run 'aws emr-serverless get-dashboard-for-job-run --application-id {app_id} --job-run-id "
           f"{job_run_id} --region {region}'" if job_run_id and region else "")
    return (f"open EMR Studio, or the EMR Serverless console ({CONSOLE_URL.format(region=region or 'REGION')}), "
            f"application {app_id}{run}: its Spark UI shows the driver's logs under Executors{cli}")


def _dashboard_refusal(exc: Exception, app_id: str, job_run_id: str) -> str:
    found = aws_errors.kind(exc)
    code, message = aws_errors.error_code(exc) or type(exc).__name__, aws_errors.error_message(exc)
    if found == "credentials":
        return "no AWS credentials to ask EMR Serverless for the Spark UI link"
    if found == "denied":
        return ("the notebook's role may not call emr-serverless:GetDashboardForJobRun on the application "
                "(hail-emr-lab lifecycle iam-policy --serverless-app ... adds it)")
    if found == "not_found":
        return f"EMR Serverless knows no job run {job_run_id} on application {app_id}"
    return f"GetDashboardForJobRun answered {code}" + (f": {message}" if message else "")


def dashboard_url(app_id: str, job_run_id: str, client: Any) -> tuple[Optional[str], str]:
    """``(url, "")`` from GetDashboardForJobRun, or ``(None, why not)``; reused for
    :data:`DASHBOARD_REUSE` seconds (a refusal for :data:`DASHBOARD_RETRY`)."""
    key = (client.meta.region_name, app_id, job_run_id)
    now = time.monotonic()
    with _DASHBOARDS_LOCK:
        known = _DASHBOARDS.get(key)
    if known is not None and known[0] > now:
        return known[1], known[2]
    try:
        answer = client.get_dashboard_for_job_run(applicationId=app_id, jobRunId=job_run_id)
        url, why, keep = answer["url"], "", DASHBOARD_REUSE
    except Exception as exc:
        url, why, keep = None, _dashboard_refusal(exc, app_id, job_run_id), DASHBOARD_RETRY
    with _DASHBOARDS_LOCK:
        _DASHBOARDS[key] = (now + keep, url, why)
    return url, why


def spark_links(
    app_id: str,
    region: Optional[str],
    session_app_id: Optional[str],
    spark_ui_url: Optional[str] = None,
    driver_log_url: Optional[str] = None,
    boto3_session: Any = None,
) -> SparkLinks:
    """The Spark UI / driver-log links of a Livy session on EMR Serverless application ``app_id``.

    ``session_app_id`` is the session's Livy ``appId``: when it has the form of a job run id
    (lower-case letters and digits, as EMR Serverless names the Spark application of a run) a fresh
    GetDashboardForJobRun URL is the Spark UI (the links the endpoint put in ``appInfo``,
    ``spark_ui_url`` / ``driver_log_url``, expire after an hour). Without one, the endpoint's links
    are used; failing both, ``note`` says where to look. Never raises.
    """
    job_run_id = session_app_id if session_app_id and JOB_RUN_ID.fullmatch(session_app_id) else None
    why = "" if job_run_id else "the endpoint did not give the session's job run id"
    if job_run_id:
        try:
            client = serverless_client(boto3_session, region)
        except Exception as exc:
            url, why = None, str(exc)
        else:
            region = region or client.meta.region_name
            url, why = dashboard_url(app_id, job_run_id, client)
        spark_ui_url = url or spark_ui_url
    if spark_ui_url and driver_log_url:
        return SparkLinks(spark_ui_url, driver_log_url)
    if spark_ui_url:
        return SparkLinks(spark_ui_url, None, "driver log: the Spark UI's Executors tab (driver stdout / stderr)")
    return SparkLinks(None, driver_log_url, f"no Spark UI link ({why}): {where_to_look(app_id, region, job_run_id)}")


def serverless_app_of(config: Any) -> Optional[str]:
    """The EMR Serverless application a configuration's Livy endpoint belongs to, else None: a
    connected serverless context signs with SigV4; a configured one has no Livy URL of its own."""
    app = config.get("serverless_app")
    return app if app and (config.get("auth") == "sigv4" or not config.get("livy_url")) else None


def session_links(config: Any, session: Any) -> SparkLinks:
    """:func:`spark_links` for ``session`` (a ``livy.models.SessionInfo``) when ``config`` targets EMR
    Serverless (:func:`serverless_app_of`), else the links Livy gave."""
    app = serverless_app_of(config)
    if app is None:
        return SparkLinks(session.spark_ui_url, session.driver_log_url)
    return spark_links(app, config.get("region"), session.app_id, session.spark_ui_url, session.driver_log_url)
