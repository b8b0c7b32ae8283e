"""One source of configuration, with the origin of every value.

Precedence, highest first, the same for every key and every surface (``%hail``, the
``hail-emr-lab`` commands, the sidebar):

1. explicit arguments (``load_config(overrides=...)``: magic flags, CLI options);
2. environment variables ``HAIL_EMR_LAB_<KEY>`` (e.g. ``HAIL_EMR_LAB_LIVY_URL``);
3. ``~/.hail-emr-lab/config.json`` (written by the lifecycle scripts; path overridable
   with ``HAIL_EMR_LAB_CONFIG``);
4. ``~/.sparkmagic/config.json`` (``kernel_python_credentials``: url, auth, username,
   password; path overridable with ``HAIL_EMR_LAB_SPARKMAGIC_CONFIG``), so instances
   already set up for sparkmagic work unchanged;
5. the SageMaker instance metadata (``/opt/ml/metadata/resource-metadata.json``, path
   overridable with ``HAIL_EMR_LAB_METADATA``): the instance name is the default sync
   prefix and session name;
6. defaults.

The batch-job settings are a section of the same resolver (:data:`JOB_KEYS`): ``NAME`` comes
from ``load_config(job_overrides=...)`` (``--name`` flags), ``HAIL_EMR_LAB_JOBS_<NAME>``, the
``"jobs"`` object of the config file, in that order; a job key with a general counterpart
(``url`` -> ``livy_url``, ``bucket``, ``prefix``, ``region``) takes the general value when that
comes from a stronger source (at the same source the job key wins), else its default.

Only the standard library is imported here: the sync's no-change fast path loads config.
"""

from __future__ import annotations

import getpass
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from .errors import ConfigError
from .redact import redact_url

#: Keys whose values are never shown (``Config.as_dict`` redacts them).
SECRET_KEYS = frozenset({"password", "token", "aws_secret_access_key", "aws_session_token"})

#: key -> (default, description). Every key may be set by env ``HAIL_EMR_LAB_<KEY>``.
KEYS: dict[str, tuple[Any, str]] = {
    "livy_url": (None, "Livy endpoint URL, e.g. http://10.0.0.5:8998"),
    "cluster_id": (None, "EMR cluster id (j-...) to find the Livy endpoint of"),
    "cluster_name": (None, "EMR cluster name to find the Livy endpoint of"),
    "region": (None, "AWS region (else boto3's default chain)"),
    "serverless_app": (None, "EMR Serverless application id to run sessions on (its Livy endpoint, SigV4-signed)"),
    "serverless_execution_role": (None, "IAM role ARN EMR Serverless sessions run as (passed at session creation)"),
    "auth": ("none", "Livy auth: none, basic, kerberos or sigv4"),
    "sigv4_service": (None, "SigV4 signing name for --auth sigv4 (default emr-serverless)"),
    "username": (None, "user name for basic auth"),
    "password": (None, "password for basic auth (never shown; better HAIL_EMR_LAB_PASSWORD or password_file)"),
    "password_file": (None, "file whose first line is the basic-auth password (keep it mode 0600)"),
    "verify": (True, "TLS verification: true, false, or a CA bundle path"),
    "session_name": (None, "Livy session name (default: derived from instance/user)"),
    "proxy_user": (None, "Livy proxyUser for the session"),
    "heartbeat_timeout": (600, "seconds without a heartbeat before Livy reaps our session"),
    "livy_retry_timeout": (None, "seconds a running cell rides out Livy not answering (502/503/504, resets) "
                                 "before it stops waiting (default 120)"),
    "plots_dir": ("/plots", "plot directory on the cluster"),
    "plots_url": (None, "HTTP URL of the plot directory (Quick Start style clusters)"),
    "bucket": (None, "S3 bucket for backups, packages, notebooks and jobs"),
    "prefix": (None, "per-user S3 prefix (default: notebook instance name)"),
    "home": (None, "directory to back up (default /home/ec2-user/SageMaker)"),
    "excludes": ([], "extra gitignore-style patterns the sync skips"),
    "backup_environments": (False, "sync also backs up Python/conda environments, node_modules and .cache"),
    "local_livy_port": (8998, "port of the embedded Livy server"),
    # 128 MB (~2.2M GWAS-shaped rows by Spark's estimate): inline (Arrow IPC, zstd buffers, streamed)
    # beat staging at every size measured on the embedded server (benchmarks/bench_scale.py: 2M rows
    # 9.8 s vs 31-41 s), and the driver's extra memory at that size was 62-173 MB, about what
    # toPandas() takes; above it the staged path keeps the driver's memory flat.
    "transfer_inline_max": (128_000_000, "bytes: -o results estimated bigger travel staged as Parquet, not through Livy"),
    "jobs": ({}, "job backend settings (see hail-emr-lab jobs --help)"),
}

#: The ``jobs`` section: name -> (default, general key it falls back to, description). Each may
#: be set by ``--name-with-dashes``, env ``HAIL_EMR_LAB_JOBS_<NAME>`` or ``"jobs": {"name": ...}``.
JOB_KEYS: dict[str, tuple[Any, Optional[str], str]] = {
    # where things go
    "url": (None, "livy_url", "Livy URL (else config livy_url, else the notebook's connected session)"),
    "bucket": (None, "bucket", "S3 bucket for uploaded job files and logs"),
    "prefix": (None, "prefix", "per-user S3 prefix; files go to s3://BUCKET/PREFIX/jobs/NAME/..."),
    "region": (None, "region", "AWS region (else boto3's default chain)"),
    "log_uri": (None, None, "S3 URI for driver logs (default s3://BUCKET/PREFIX/jobs/logs/)"),
    # Spark sizing
    "driver_memory": (None, None, "driver memory, e.g. 4g"),
    "driver_cores": (None, None, "driver cores"),
    "executor_memory": (None, None, "executor memory, e.g. 8g"),
    "executor_cores": (None, None, "cores per executor"),
    "num_executors": (None, None, "number of executors"),
    # EMR Serverless
    "application_id": (None, None, "EMR Serverless application id"),
    "execution_role_arn": (None, None, "IAM role the job runs as (EMR Serverless, EMR on EKS)"),
    "hail_archive": (None, None, "S3 URI of pyspark_hail.tar.gz (a packed Python env with Hail), used as "
                     "--archives ...#environment"),
    "hail_jar": (None, None, "S3 URI of hail-all-spark.jar (--jars)"),
    # EMR on EKS
    "virtual_cluster_id": (None, None, "EMR on EKS virtual cluster id"),
    "release_label": ("emr-6.15.0-latest", None, "EMR release label, e.g. emr-6.15.0-latest"),
    "driver_pod_template": (None, None, "driver pod template (local file or S3 URI)"),
    "executor_pod_template": (None, None, "executor pod template (local file or S3 URI)"),
    # AWS Batch
    "job_queue": (None, None, "AWS Batch job queue (name or ARN)"),
    "job_definition": (None, None, "AWS Batch job definition (NAME[:REV] or ARN)"),
    "command": (None, None, "container command template; {file} = S3 URI of FILE, {args} = ARGS "
                "(default for .nf files: 'nextflow run {file} {args}')"),
    "vcpus": (None, None, "vCPUs for the container (override)"),
    "memory": (None, None, "memory for the container (MiB, or a size such as 4g)"),
    "log_group": ("/aws/batch/job", None, "CloudWatch log group of the jobs"),
}

DEFAULT_CONFIG_PATH = Path("~/.hail-emr-lab/config.json")
SPARKMAGIC_CONFIG_PATH = Path("~/.sparkmagic/config.json")
METADATA_PATH = Path("/opt/ml/metadata/resource-metadata.json")
SAGEMAKER_HOME = Path("/home/ec2-user/SageMaker")

#: Keys holding a number of seconds that may have a fraction (their default may be None).
_SECONDS_KEYS = frozenset({"livy_retry_timeout"})

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


#: Strength of each kind of source, strongest first (the module docstring's order).
SOURCE_RANKS = ("argument", "environment", "config file", "sparkmagic config", "instance metadata", "default")


def is_url_key(key: str) -> bool:
    """Whether ``key`` holds a URL (shown without credentials): ``livy_url``, ``jobs.url``."""
    return key.endswith("_url") or key.endswith(".url") or key == "url"


@dataclass
class _Resolved:
    """Resolved values, ``values[key]``, and where each came from, ``sources[key]``."""

    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key`` (``default`` if unset or None)."""
        value = self.values.get(key)
        return default if value is None else value

    def source(self, key: str) -> str:
        """Where ``key``'s value came from (``"default"`` if nowhere)."""
        return self.sources.get(key, "default")


@dataclass
class Section(_Resolved):
    """One resolved section of the configuration (``jobs``), and what was wrong with the
    section in the config file (``problem``; None when nothing)."""

    name: str = ""
    problem: Optional[str] = None


@dataclass
class Config(_Resolved):
    """Effective configuration: ``values[key]`` and where it came from, ``sources[key]``; the
    ``jobs`` section likewise (:class:`Section`)."""

    #: kind of source of each key (an entry of :data:`SOURCE_RANKS`), for comparing strengths
    kinds: dict[str, str] = field(default_factory=dict)
    jobs: Section = field(default_factory=lambda: Section(name="jobs"))

    def __getitem__(self, key: str) -> Any:
        return self.values.get(key)

    def rank(self, key: str) -> int:
        """Strength of ``key``'s source: 0 for an argument ... 5 for a default (:data:`SOURCE_RANKS`)."""
        return SOURCE_RANKS.index(self.kinds.get(key, "default"))

    def with_arguments(self, values: Mapping[str, Any]) -> Config:
        """A copy in which the general keys of ``values`` that are not None come from arguments
        (the strongest source), e.g. a magic's ``--auth`` and ``--user``."""
        copy = Config(dict(self.values), dict(self.sources), dict(self.kinds), self.jobs)
        for key, value in values.items():
            if key in KEYS and value is not None and value != "":
                copy.values[key], copy.sources[key], copy.kinds[key] = _coerce(key, value), "argument", "argument"
        return copy

    def __repr__(self) -> str:
        # A notebook may show a Config (or a context holding one): never with its secrets.
        shown = {k: v["value"] for k, v in self.as_dict(redact=True).items()}
        return f"Config({shown!r})"

    def password(self) -> str | None:
        """The basic-auth password: ``password`` (argument, ``HAIL_EMR_LAB_PASSWORD``, files), else
        the first line of ``password_file``; None if neither is set (ConfigError if unreadable)."""
        if self.get("password"):
            return str(self.get("password"))
        if self.get("password_file"):
            return read_password_file(self.get("password_file"))
        return None

    def as_dict(self, redact: bool = True) -> dict[str, dict[str, Any]]:
        """``{key: {"value": ..., "source": ...}}`` for every general key, then ``jobs.NAME`` for
        every job setting that has a value; secrets (and credentials in URLs) replaced by ``"***"``."""
        out = {}
        rows = [(key, self.values.get(key), self.source(key)) for key in KEYS]
        rows += [(f"jobs.{name}", value, self.jobs.source(name)) for name, value in self.jobs.values.items()
                 if value is not None]
        for key, value, source in rows:
            if redact and key in SECRET_KEYS and value:
                value = "***"
            elif redact and is_url_key(key) and isinstance(value, str):
                value = redact_url(value)
            out[key] = {"value": value, "source": source}
        return out


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """Path of the hail-emr-lab config file (``HAIL_EMR_LAB_CONFIG`` overrides)."""
    env = os.environ if env is None else env
    return Path(env.get("HAIL_EMR_LAB_CONFIG") or DEFAULT_CONFIG_PATH).expanduser()


def metadata_path(env: Mapping[str, str] | None = None) -> Path:
    """Path of the SageMaker instance metadata (``HAIL_EMR_LAB_METADATA`` overrides)."""
    env = os.environ if env is None else env
    return Path(env.get("HAIL_EMR_LAB_METADATA") or METADATA_PATH)


def read_json_file(path: Path, what: str) -> dict[str, Any]:
    """Read a JSON object from ``path``; {} if absent; ConfigError naming the file if bad."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{what} {path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            "fix or remove the file"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {path} must hold a JSON object, not {type(data).__name__}")
    return data


def instance_metadata(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The SageMaker notebook instance metadata ({} when not on a notebook instance)."""
    return read_json_file(metadata_path(env), "SageMaker metadata file")


def _seconds(key: str, value: Any) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be a number of seconds, got {value!r}") from None
    if not seconds > 0:
        raise ConfigError(f"{key} must be more than 0 seconds, got {value!r}")
    return seconds


def _verify(key: str, text: str) -> Any:
    low = text.strip().lower()
    return True if low in _TRUE else False if low in _FALSE else text  # else a CA bundle path


def _boolean(key: str, text: str) -> bool:
    low = text.strip().lower()
    if low in _TRUE | _FALSE:
        return low in _TRUE
    raise ConfigError(f"{key} must be true or false, got {text!r}")


def _whole(key: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{key} must be a whole number, got {text!r}") from None


def _words(key: str, text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _json_object(key: str, text: str) -> dict[str, Any]:
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        raise ConfigError(f"{key} must be a JSON object, got {text!r}") from None
    if not isinstance(parsed, dict):
        raise ConfigError(f"{key} must be a JSON object, got {text!r}")
    return parsed


#: How a string (from the environment) becomes a value of the type of the key's default.
_PARSE_BY_TYPE: tuple[tuple[type, Callable[[str, str], Any]], ...] = (
    (bool, _boolean),  # before int: bool is an int
    (int, _whole),
    (list, _words),
    (dict, _json_object),
)


def _coerce(key: str, value: Any) -> Any:
    """Turn a value (a string from the environment, or JSON from a file) into the key's type;
    ConfigError naming the key and the value when it cannot be."""
    if key in _SECONDS_KEYS:
        return _seconds(key, value)
    if not isinstance(value, str):
        return value
    if key == "verify":
        return _verify(key, value)
    default = KEYS[key][0]
    for kind, parse in _PARSE_BY_TYPE:
        if isinstance(default, kind):
            return parse(key, value)
    return value


def _sparkmagic_values(data: Mapping[str, Any]) -> dict[str, Any]:
    creds = data.get("kernel_python_credentials") or {}
    out: dict[str, Any] = {}
    if creds.get("url"):
        out["livy_url"] = creds["url"]
    auth = str(creds.get("auth") or "").lower()
    if auth in ("basic_access", "basic"):
        out["auth"] = "basic"
    elif auth == "kerberos":
        out["auth"] = "kerberos"
    for key in ("username", "password"):
        if creds.get(key):
            out[key] = creds[key]
    return out


def default_session_name(meta: Mapping[str, Any]) -> str:
    """A stable session name so the user finds the session again after a kernel restart."""
    base = meta.get("ResourceName") or meta.get("UserProfileName")
    if not base:
        try:
            base = getpass.getuser()
        except (KeyError, OSError):
            base = "user"
    return "hail-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", str(base)).strip("-")


def load_config(
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    use_sparkmagic: bool = True,
    job_overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Build the effective :class:`Config` from every source (see module docstring).

    ``overrides``: general keys given as arguments; ``job_overrides``: job settings given as
    arguments (``--driver-memory`` ...). Raises ConfigError for an unreadable or malformed file,
    or a value of the wrong type (naming the key, the value and where it came from).
    """
    env = os.environ if env is None else env
    cfg = Config()

    def put(values: Mapping[str, Any], source: str, kind: str) -> None:
        for key, value in values.items():
            if key in KEYS and key not in cfg.sources and value is not None and value != "":
                cfg.values[key] = _coerce(key, value)
                cfg.sources[key] = source
                cfg.kinds[key] = kind

    put(dict(overrides or {}), "argument", "argument")
    put({key: env.get(f"HAIL_EMR_LAB_{key.upper()}") for key in KEYS}, "environment", "environment")
    path = config_path(env)
    file_values = read_json_file(path, "config file")
    unknown = sorted(set(file_values) - set(KEYS))
    put(file_values, str(path), "config file")
    if unknown:
        cfg.values["_unknown_keys"] = unknown  # reported by `%hail config`, not fatal
    if use_sparkmagic:
        spath = Path(env.get("HAIL_EMR_LAB_SPARKMAGIC_CONFIG") or SPARKMAGIC_CONFIG_PATH).expanduser()
        put(_sparkmagic_values(read_json_file(spath, "sparkmagic config")), str(spath), "sparkmagic config")
    meta = instance_metadata(env)
    derived: dict[str, Any] = {"session_name": default_session_name(meta)}
    if meta.get("ResourceName"):
        derived["prefix"] = meta["ResourceName"]
        derived["home"] = str(SAGEMAKER_HOME)
    put(derived, "instance metadata" if meta else "derived", "instance metadata")
    for key, (default, _) in KEYS.items():
        if key not in cfg.sources:
            cfg.values[key] = type(default)(default) if isinstance(default, (list, dict)) else default
    if cfg.values.get("auth") not in ("none", "basic", "kerberos", "sigv4"):
        raise ConfigError(
            f"auth must be none, basic, kerberos or sigv4, got {cfg.values.get('auth')!r} (from {cfg.source('auth')})"
        )
    cfg.jobs = _jobs_section(cfg, dict(job_overrides or {}), env, path, file_values.get("jobs"))
    return cfg


def job_env_name(name: str) -> str:
    """The environment variable of job setting ``name``: ``HAIL_EMR_LAB_JOBS_<NAME>``."""
    return f"HAIL_EMR_LAB_JOBS_{name.upper()}"


def job_flag_name(name: str) -> str:
    """The command-line flag of job setting ``name``: ``--name-with-dashes``."""
    return "--" + name.replace("_", "-")


def _jobs_section(cfg: Config, arguments: dict[str, Any], env: Mapping[str, str], path: Path, file_jobs: Any) -> Section:
    """The ``jobs`` section (values unvalidated: the jobs package checks them when it uses them)."""
    section = Section(name="jobs")
    if file_jobs is not None and not isinstance(file_jobs, dict):
        section.problem = f'"jobs" in {path} must be a JSON object of job settings, not {type(file_jobs).__name__}'
        file_jobs = None
    file_jobs = file_jobs or {}
    unknown = sorted(set(file_jobs) - set(JOB_KEYS))
    if unknown:
        section.problem = f'unknown job setting(s) {unknown} under "jobs" in {path}; known: {sorted(JOB_KEYS)}'
    for name, (default, general, _) in JOB_KEYS.items():
        candidates = (
            (arguments.get(name), f"argument ({job_flag_name(name)})", "argument"),
            (env.get(job_env_name(name)), f"environment ({job_env_name(name)})", "environment"),
            (file_jobs.get(name), f'{path} ("jobs": "{name}")', "config file"),
        )
        found = next(((v, src, kind) for v, src, kind in candidates if v is not None and v != ""), None)
        if general and cfg.get(general) not in (None, "") and (
            found is None or cfg.rank(general) < SOURCE_RANKS.index(found[2])
        ):
            found = (cfg.get(general), f"{general} ({cfg.source(general)})", cfg.kinds.get(general, "default"))
        if found is None and default is not None:
            found = (default, "default", "default")
        if found is not None:
            section.values[name], section.sources[name] = found[0], found[1]
    return section


def read_password_file(path: str | os.PathLike[str]) -> str:
    """The password in ``path``: its first line, without the line break.

    Raises ConfigError naming the file when it cannot be read or is empty. A file others may
    read is still used, with a warning on stderr (as ssh does for keys, but not fatal).
    """
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
        mode = file.stat().st_mode
    except OSError as exc:
        raise ConfigError(f"cannot read the password file {file}: {exc.strerror or exc}") from None
    password = text.splitlines()[0] if text.splitlines() else ""
    if not password:
        raise ConfigError(f"the password file {file} is empty: put the password on its first line")
    if mode & 0o077:
        import sys

        sys.stderr.write(f"Warning: the password file {file} can be read by other users: chmod 600 {file}\n")
    return password


def password_from(
    prompt: bool = False,
    file: str | None = None,
    env_var: str | None = None,
    user: str | None = None,
    env: Mapping[str, str] | None = None,
) -> str | None:
    """A password that never appears in a notebook: typed (getpass), read from a file, or from an
    environment variable. None when no source is given. At most one source may be given.

    Raises ConfigError when more than one source is given, the variable is unset or the file
    cannot be read.
    """
    env = os.environ if env is None else env
    given = [name for name, value in (("prompt", prompt), ("file", file), ("env", env_var)) if value]
    if len(given) > 1:
        raise ConfigError("give the password one way only: --password-prompt, --password-file or --password-env")
    if prompt:
        return getpass.getpass(f"Livy password{f' for {user}' if user else ''}: ")
    if file:
        return read_password_file(file)
    if env_var:
        value = env.get(env_var)
        if not value:
            raise ConfigError(f"the environment variable {env_var} is not set (or empty): set it to the password")
        return value
    return None


def write_config(values: Mapping[str, Any], path: Path | None = None) -> Path:
    """Write ``values`` as the config file (atomically, mode 0600 since it may hold secrets)."""
    path = path or config_path()
    unknown = sorted(set(values) - set(KEYS))
    if unknown:
        raise ConfigError(f"unknown config keys {unknown}; known keys: {sorted(KEYS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(dict(values), fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, path)
    return path
