"""``%hail connect``: resolve the target, build the client, start or reattach the session.

Resolution order: ``--serverless-app`` (EMR Serverless, ``--url`` then only overrides its endpoint),
``--url``, ``--cluster-id``/``--cluster-name`` (EMR discovery), ``--local``; without any, the
configuration: environment (``HAIL_EMR_LAB_LIVY_URL``, ``HAIL_EMR_LAB_CLUSTER_ID``,
``HAIL_EMR_LAB_SERVERLESS_APP``), ``~/.hail-emr-lab/config.json``, ``~/.sparkmagic/config.json``,
else the embedded server.

The quick part (resolve, check the endpoint answers, create or find the session) happens in
:func:`connect`; waiting for the session and the setup statements (helpers, ``hl.init``,
plots) run in a background thread (:class:`Startup`), so the notebook is free at once and the
first cell waits for :meth:`Startup.wait`.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import Field, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Optional, get_type_hints
from urllib.parse import urlsplit

from .. import aws_names, hail_spark
from ..config import Config, load_config
from ..errors import HailEmrLabError
from ..livy import LivyClient, LivyError, LivySession, SessionDead, SessionState, normalize_url
from ..redact import dataclass_repr
from ..remote import bootstrap_code
from ..remote.dataframe import MARKER
from ..session_names import default_session_name
from .context import ClusterVersions, HailContext, set_current

if TYPE_CHECKING:
    from ..emr.discovery import ClusterEndpoint
    from ..emr.serverless import ServerlessApp


def flag(name: str, help: str, **extra: Any) -> dict[str, Any]:
    """Field metadata: the ``%hail connect`` flag that sets this field, with its help text.

    The magic builds its parser from these (:func:`connect_flags`), so every flag lands in a field
    of the same name (``ConnectOptions(**vars(args))``). ``extra`` is passed on to argparse
    (``choices``, ``default``). A bool field that defaults to True gets a ``--no-...`` flag.
    """
    return {"flag": name, "help": help, **extra}


@dataclass
class ConnectOptions:
    """Everything ``%hail connect`` accepts (None = take it from the configuration).

    Each field with ``flag`` metadata is one flag of ``%hail connect``, in this order; fields
    without it (``start_timeout``) are for callers in code.
    """

    def __repr__(self) -> str:  # a notebook may show it: never the password, never URL userinfo
        return dataclass_repr(self)


    url: Optional[str] = field(default=None, metadata=flag("--url", "Livy endpoint, e.g. http://10.0.0.5:8998"))
    cluster_id: Optional[str] = field(
        default=None, metadata=flag("--cluster-id", "EMR cluster id (j-...): find its Livy endpoint"))
    cluster_name: Optional[str] = field(
        default=None, metadata=flag("--cluster-name", "EMR cluster name: find its Livy endpoint"))
    local: bool = field(default=False, metadata=flag("--local", "start (or reuse) the embedded local server"))
    serverless_app: Optional[str] = field(
        default=None, metadata=flag("--serverless-app", "EMR Serverless application id: use its Livy endpoint"))
    execution_role: Optional[str] = field(
        default=None, metadata=flag("--execution-role", "IAM role ARN the EMR Serverless session runs as"))
    region: Optional[str] = field(
        default=None, metadata=flag("--region", "AWS region for --cluster-id/--cluster-name/--serverless-app/sigv4"))
    auth: Optional[str] = field(
        default=None, metadata=flag("--auth", "Livy authentication", choices=["none", "basic", "kerberos", "sigv4"]))
    sigv4_service: Optional[str] = field(
        default=None, metadata=flag("--sigv4-service", "SigV4 signing name for --auth sigv4 (default emr-serverless)"))
    username: Optional[str] = field(default=None, metadata=flag("--user", "user name for basic auth"))
    password: Optional[str] = field(
        default=None, metadata=flag("--password", "password for basic auth (stays in the notebook: prefer the next three)"))
    password_prompt: bool = field(
        default=False, metadata=flag("--password-prompt", "ask for the basic-auth password (not stored)"))
    password_file: Optional[str] = field(
        default=None, metadata=flag("--password-file", "read the basic-auth password from the first line of this file"))
    password_env: Optional[str] = field(
        default=None, metadata=flag("--password-env", "read the basic-auth password from this environment variable"))
    name: Optional[str] = field(
        default=None, metadata=flag("--name", "session name to share (default: one per notebook, from user and path)"))
    conf: dict[str, str] = field(default_factory=dict, metadata=flag("--conf", "Spark conf key=value (repeatable)"))
    driver_memory: Optional[str] = field(
        default=None, metadata=flag("--driver-memory", "Spark driver memory, e.g. 4g (Livy driverMemory)"))
    driver_cores: Optional[int] = field(
        default=None, metadata=flag("--driver-cores", "Spark driver cores (Livy driverCores)"))
    executor_memory: Optional[str] = field(
        default=None, metadata=flag("--executor-memory", "memory per executor, e.g. 8g (Livy executorMemory)"))
    executor_cores: Optional[int] = field(
        default=None, metadata=flag("--executor-cores", "cores per executor (Livy executorCores)"))
    num_executors: Optional[int] = field(
        default=None, metadata=flag("--num-executors", "number of executors (Livy numExecutors)"))
    new: bool = field(
        default=False, metadata=flag("--new", "start a fresh session even if one can be reattached"))
    hail: bool = field(default=True, metadata=flag("--no-hail", "do not run hl.init(sc) (nor set Hail's conf)"))
    hail_jar: Optional[str] = field(
        default=None, metadata=flag("--hail-jar", f"path of Hail's jar on the cluster (default {hail_spark.EMR_HAIL_JAR})"))
    plots: bool = field(default=True, metadata=flag("--no-plots", "do not pull plots after cells"))
    plots_url: Optional[str] = field(
        default=None, metadata=flag("--plots-url", "HTTP URL of the cluster's plot directory (Quick Start clusters)"))
    plots_dir: Optional[str] = field(
        default=None, metadata=flag("--plots-dir", "plot directory on the cluster (default /plots)"))
    heartbeat_timeout: Optional[int] = field(
        default=None, metadata=flag("--heartbeat-timeout", "seconds Livy keeps the session without us"))
    probe_timeout: float = field(default=3.0, metadata=flag("--probe-timeout", "seconds to wait for the Livy port"))
    wait: bool = field(default=False, metadata=flag("--wait", "block until the session is ready"))
    start_timeout: float = 900.0

    def __post_init__(self) -> None:
        self.conf = dict(self.conf or {})  # our own copy: a parser's default dict is shared


def connect_flags() -> list[tuple[Field[Any], Any]]:
    """Every field that is a ``%hail connect`` flag, in order, with its resolved type
    (``Optional[int]``, ``bool``, ``dict[str, str]``...); ``field.metadata`` is from :func:`flag`."""
    hints = get_type_hints(ConnectOptions)
    return [(f, hints[f.name]) for f in fields(ConnectOptions) if "flag" in f.metadata]


@dataclass
class Target:
    """A resolved Livy endpoint and how it was found."""

    url: str
    how: str
    local: bool = False
    cluster: Optional[ClusterEndpoint] = None
    serverless: Optional[ServerlessApp] = None
    execution_role: Optional[str] = None


#: What a :class:`TargetChoice` points at.
TargetKind = Literal["serverless_app", "url", "cluster_id", "cluster_name", "local"]
#: Configuration keys that name a target and the kind each names, in the order that breaks a
#: tie between equally strong sources.
_CONFIG_TARGET_KEYS: dict[str, TargetKind] = {
    "livy_url": "url", "cluster_id": "cluster_id", "cluster_name": "cluster_name", "serverless_app": "serverless_app",
}


@dataclass(frozen=True)
class TargetChoice:
    """Which target ``%hail connect`` goes to, before anything is contacted.

    ``kind`` names it, ``value`` is the URL, cluster id or name, or application id (None for
    ``local``); ``source`` is where it came from: ``"argument"``, ``"environment"``, a config
    file's path, ``"--local"`` or ``"no endpoint configured"``.
    """

    kind: TargetKind
    value: Optional[str]
    source: str


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def choose_target(opts: ConnectOptions, config: Config) -> TargetChoice:
    """Decide which target to use (see the module docstring for the order), contacting nothing.

    Raises :class:`HailEmrLabError` when the flags name more than one target.
    """
    if opts.serverless_app:
        others = [x for x in ("cluster_id", "cluster_name", "local") if getattr(opts, x)]
        if others:
            flags = " and ".join("--" + c.replace("_", "-") for c in others)
            raise HailEmrLabError(f"%hail connect got --serverless-app and {flags}: give only one target")
        return TargetChoice("serverless_app", opts.serverless_app, "argument")
    chosen: list[TargetKind] = [x for x in ("url", "cluster_id", "cluster_name", "local") if getattr(opts, x)]
    if len(chosen) > 1:
        flags = " and ".join("--" + c.replace("_", "-") for c in chosen)
        raise HailEmrLabError(f"%hail connect got {flags}: give only one target")
    if chosen:
        kind = chosen[0]
        return TargetChoice(kind, None if kind == "local" else getattr(opts, kind), "--local" if kind == "local" else "argument")
    # No target given: the strongest configuration source decides.
    candidates = [
        (config.rank(key), i, key) for i, key in enumerate(_CONFIG_TARGET_KEYS) if config.get(key)
    ]
    if not candidates:
        return TargetChoice("local", None, "no endpoint configured")
    _, _, key = min(candidates)
    return TargetChoice(_CONFIG_TARGET_KEYS[key], str(config.get(key)), config.source(key))


def resolve_target(
    opts: ConnectOptions, config: Config, on_app_state: Optional[Callable[[str, float], None]] = None
) -> Target:
    """The Livy endpoint of :func:`choose_target`'s choice: EMR clusters are looked up, an EMR
    Serverless application is started when needed (``on_app_state(state, seconds)`` sees its
    state while we wait), the embedded server is started or reused."""
    choice = choose_target(opts, config)
    if choice.kind == "serverless_app":
        return _serverless_target(str(choice.value), opts, config, choice.source, on_app_state)
    if choice.kind == "url":
        url = str(choice.value)
        how = "url" if choice.source == "argument" else f"config ({choice.source})"
        return Target(normalize_url(url), how, local=_is_loopback(url))
    if choice.kind == "cluster_id":
        return _cluster_target(choice.value, None, opts, config, choice.source)
    if choice.kind == "cluster_name":
        return _cluster_target(None, choice.value, opts, config, choice.source)
    return _local_target(config, choice.source)


def _cluster_target(cid: Optional[str], cname: Optional[str], opts: ConnectOptions, config: Config, source: str):
    from ..emr import discovery as emr

    ep = emr.endpoint_for(
        cluster_id=cid, cluster_name=cname, region=opts.region or config.get("region"), probe_timeout=opts.probe_timeout
    )
    how = f"cluster {ep.cluster_id} ({ep.name})" + ("" if source == "argument" else f" from {source}")
    return Target(ep.url, how, local=False, cluster=ep)


def _serverless_target(app_id: str, opts: ConnectOptions, config: Config, source: str, on_app_state) -> Target:

    from ..emr import serverless
    from ..errors import ConfigError

    role = opts.execution_role or config.get("serverless_execution_role")
    if not role:
        raise ConfigError(
            "an EMR Serverless session needs an execution role: pass --execution-role arn:aws:iam::ACCOUNT:role/NAME "
            "(or set HAIL_EMR_LAB_SERVERLESS_EXECUTION_ROLE, or serverless_execution_role in the config)"
        )
    problem = aws_names.role_arn_problem(role)
    if problem:
        raise ConfigError(f"--execution-role {role!r} is not an IAM role ARN: {problem}")
    app = serverless.application_for(
        app_id, region=opts.region or config.get("region"), on_state=on_app_state, timeout=opts.start_timeout
    )
    url = normalize_url(opts.url) if opts.url else app.livy_url
    how = f"EMR Serverless application {app.app_id} ({app.name})" + ("" if source == "argument" else f" from {source}")
    return Target(url, how, local=_is_loopback(url), serverless=app, execution_role=role)


def _local_target(config: Config, why: str) -> Target:
    from ..embedded.launcher import ensure_embedded_livy

    url = ensure_embedded_livy(port=int(config.get("local_livy_port", 8998)))
    return Target(url, f"embedded Livy ({why})", local=True)


#: The ``%hail connect`` options that are also configuration keys of the Livy client.
CLIENT_OPTIONS = ("auth", "username", "password", "sigv4_service", "region")


def with_connect_options(config: Config, opts: ConnectOptions) -> Config:
    """``config`` with the client options ``%hail connect`` was given as arguments: what the
    kernel's context keeps, so every client made later (the panel's, the sidebar delete) uses
    the same credentials as the session's."""
    return config.with_arguments({key: getattr(opts, key) for key in CLIENT_OPTIONS})


def make_client(url: str, config: Config, target: Optional[Target] = None) -> LivyClient:
    """The configuration's Livy client (:func:`hail_emr_lab.endpoint.make_client`); an EMR
    Serverless target signs for its application's region."""
    from .. import endpoint

    app = target.serverless if target is not None else None
    return endpoint.make_client(config, url, signing_region=app.region if app is not None else None)


def session_fields(opts: ConnectOptions, target: Target) -> dict[str, Any]:
    """Livy session fields: sizing, and Spark conf with Hail's conf for EMR targets.

    For EMR Serverless the execution role goes in the conf, sizing as the Spark properties it
    reads (:data:`serverless.SIZING_PROPERTIES`), and Hail's jar only with ``--hail-jar`` (a
    custom image has its own path).
    """
    conf: dict[str, str] = {}
    if target.serverless is not None:
        from ..emr.serverless import EXECUTION_ROLE_CONF, SIZING_PROPERTIES

        conf[EXECUTION_ROLE_CONF] = str(target.execution_role)
        for attr, key in SIZING_PROPERTIES.items():
            if getattr(opts, attr) is not None:
                conf[key] = str(getattr(opts, attr))
        if opts.hail and opts.hail_jar:
            conf.update(hail_spark.session_conf(opts.hail_jar))
        conf.update(opts.conf)
        conf[EXECUTION_ROLE_CONF] = str(target.execution_role)  # --conf cannot silently replace the role
        return {"conf": conf}
    jar = opts.hail_jar or (None if target.local else hail_spark.EMR_HAIL_JAR)
    if opts.hail and jar:
        conf.update(hail_spark.session_conf(jar))
    conf.update(opts.conf)  # the user's --conf wins
    fields: dict[str, Any] = {
        "conf": conf or None,
        "driverMemory": opts.driver_memory,
        "driverCores": opts.driver_cores,
        "executorMemory": opts.executor_memory,
        "executorCores": opts.executor_cores,
        "numExecutors": opts.num_executors,
    }
    return {k: v for k, v in fields.items() if v is not None}


def setup_code(hail: bool) -> str:
    """Run once per connection: our helpers, then Hail (once per session), then versions."""
    lines = [bootstrap_code(), "import json as _hel_json, sys as _hel_sys"]
    if hail:
        lines += [
            "if not globals().get('_hel_hail_ready'):",
            "    import hail as hl",
            "    hl.init(sc)",
            "    _hel_hail_ready = True",
            "_hail_emr_lab.guard_hail_init(hl, sc)  # a notebook's own hl.init(...) then does what it can",
            "_hel_versions = {'hail': hl.version()}",
        ]
    else:
        lines.append("_hel_versions = {}")
    lines += [
        "_hel_versions.update(spark=sc.version, python=_hel_sys.version.split()[0],",
        "                     pyarrow=_hail_emr_lab.have_arrow(), app_id=sc.applicationId)",
        f"print({MARKER!r} + _hel_json.dumps(_hel_versions))",
    ]
    return "\n".join(lines) + "\n"


class Startup:
    """Waits for the session and runs the setup statements in a background thread."""

    def __init__(self, ctx: HailContext, opts: ConnectOptions, on_change: Optional[Callable[[Startup], None]] = None):
        self.ctx = ctx
        self.opts = opts
        self.on_change = on_change
        self.state = "starting"
        self.phase = "waiting for the session"
        self.elapsed = 0.0
        self.error: Optional[BaseException] = None
        self.versions = ClusterVersions()
        self.done = threading.Event()
        self.started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="hail-connect", daemon=True)

    def start(self) -> Startup:
        self._thread.start()
        return self

    def _notify(self) -> None:
        self.elapsed = time.monotonic() - self.started
        if self.on_change:
            try:
                self.on_change(self)
            except Exception as exc:  # a display problem must not stop the startup
                self.phase += f" (display failed: {exc})"

    def _run(self) -> None:
        session: LivySession = self.ctx.session
        try:
            def on_state(state: SessionState, elapsed: float) -> None:
                self.state = state.value
                self._notify()

            session.wait_ready(timeout=self.opts.start_timeout, on_state=on_state)
            self.state = "idle"
            self.phase = "setting up Hail" if self.opts.hail else "setting up"
            self._notify()
            output = session.run(setup_code(self.opts.hail))
            if not output.ok:
                raise SetupError(output, self.opts.hail)
            text = output.text
            pos = text.rfind(MARKER)
            self.versions = ClusterVersions.from_report(json.loads(text[pos + len(MARKER):]) if pos >= 0 else {})
            self.ctx.versions = self.versions
            if self.ctx.plots is not None:
                self.phase = "setting up plots"
                self._notify()
                out = session.run(self.ctx.plots.setup_code())
                if not out.ok:
                    raise SetupError(out, False)
            self.state = "ready"
            self.phase = "ready"
        except BaseException as exc:  # kept and re-raised by wait() in the notebook's thread
            self.error = exc
            self.state = "failed"
            self.phase = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        finally:
            self.done.set()
            self._notify()

    def wait(self, timeout: Optional[float] = None, on_tick: Optional[Callable[[Startup], None]] = None) -> None:
        """Block until the session is ready; raise what went wrong if it is not."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.done.wait(0.25):
            if on_tick:
                self.elapsed = time.monotonic() - self.started
                on_tick(self)
            if deadline is not None and time.monotonic() > deadline:
                raise HailEmrLabError(f"the session is still {self.state} after {timeout:.0f} s")
        if self.error is not None:
            raise self.error

    @property
    def ready(self) -> bool:
        """True once setup finished without error."""
        return self.done.is_set() and self.error is None


class SetupError(HailEmrLabError):
    """The setup statement failed in the session."""

    def __init__(self, output: Any, hail: bool):
        hint = (
            " Hail could not start in the session: check that Hail is installed on the cluster (or connect "
            "with --no-hail)." if hail else ""
        )
        super().__init__(f"setting up the session failed: {output.error_text}.{hint}")
        self.output = output


def connect(
    opts: ConnectOptions,
    overrides: Optional[dict[str, Any]] = None,
    on_change: Optional[Callable[[Startup], None]] = None,
    local_dir: Optional[Path] = None,
    on_app_state: Optional[Callable[[str, float], None]] = None,
) -> HailContext:
    """Resolve, create or reattach the session, and start the background setup.

    Returns the new context (also made current). Errors that need no waiting (bad URL,
    unknown cluster, unreachable endpoint, refused credentials) are raised here.
    """
    config = load_config(overrides or {})
    target = resolve_target(opts, config, on_app_state)
    if target.serverless is not None:  # the panel and sidebar then sign their requests as the client does
        app = target.serverless
        for key, value in (("auth", "sigv4"), ("region", app.region), ("serverless_app", app.app_id)):
            config.values[key], config.sources[key] = value, target.how
    config = with_connect_options(config, opts)
    client = make_client(target.url, config, target)
    try:
        client.list_sessions(size=1)  # fails fast with a clear message: unreachable, 401/403, not Livy
    except LivyError as exc:
        client.close()
        if target.serverless is not None and target.serverless.livy_enabled is None:
            raise LivyError(
                f"{exc} (GetApplication did not say whether application {target.serverless.app_id} has its Livy "
                "endpoint enabled: if it does not, stop it and run 'aws emr-serverless update-application "
                f"--application-id {target.serverless.app_id} --interactive-configuration livyEndpointEnabled=true')"
            ) from None
        raise
    # One session per notebook unless --name shares one deliberately.
    name = opts.name or default_session_name(config.get("session_name"))
    heartbeat = opts.heartbeat_timeout or int(config.get("heartbeat_timeout", 600))
    try:
        session = LivySession.connect(
            client, name, new=opts.new, heartbeat_timeout=heartbeat, **session_fields(opts, target)
        )
    except LivyError as exc:
        if target.serverless is None or not ("PassRole" in str(exc) or getattr(exc, "status", None) in (401, 403)):
            raise
        raise LivyError(
            f"{exc} Creating an EMR Serverless session passes the execution role {target.execution_role}: the "
            "notebook's role needs iam:PassRole on it (condition iam:PassedToService "
            "emr-serverless.amazonaws.com) and the role must trust emr-serverless.amazonaws.com "
            "(hail-emr-lab lifecycle iam-policy --serverless-app ... --execution-role ... writes the policy)."
        ) from None
    if config.get("livy_retry_timeout") is not None:
        session.retry_timeout = config.get("livy_retry_timeout")
    ctx = HailContext(
        config=config, client=client, session=session, endpoint=target.url, target=target.how, options=opts,
        cluster=target.cluster, local=target.local, reattached=session.reattached,
    )
    if opts.plots:
        ctx.plots = _plot_manager(session, config, opts, target, local_dir)
    ctx.startup = Startup(ctx, opts, on_change)
    set_current(ctx)
    ctx.startup.start()
    return ctx


def _plot_manager(session: LivySession, config: Config, opts: ConnectOptions, target: Target, local_dir):
    try:
        from ..plots.manager import PlotManager
    except ImportError:
        return None  # plots not available in this installation: cells run without them
    plots_dir = opts.plots_dir or config.get("plots_dir", "/plots")
    return PlotManager(session, Path(local_dir or Path.cwd()) / "plots", plots_dir, opts.plots_url or config.get("plots_url"))


def disconnect(ctx: HailContext, delete: bool = False) -> None:
    """Stop the heartbeat (and delete the session when ``delete``), close the client."""
    if ctx.session is not None:
        if delete:
            ctx.session.delete()
        else:
            ctx.session.close()
    if ctx.client is not None:
        ctx.client.close()
    set_current(None)


def own_session_ids(ctx: HailContext) -> list[int]:
    """Ids of the live sessions that carry this user's session name on the endpoint."""
    name = ctx.session.name if ctx.session is not None else ctx.config.get("session_name")
    return [s.id for s in ctx.client.list_sessions() if s.name == name and s.state.is_alive]


def dead_session_error(session: LivySession) -> Optional[SessionDead]:
    """A :class:`SessionDead` (why it ended, what to do, the log tail) if the session is over, else None."""
    return session.dead_error()

