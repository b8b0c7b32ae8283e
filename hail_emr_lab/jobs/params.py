"""Job parameters: where each comes from, and validation before anything is submitted.

Every parameter ``NAME`` is looked up, highest first, in

1. its command-line flag / magic option (``--name-with-dashes``);
2. the environment variable ``HAIL_EMR_LAB_JOBS_<NAME>`` (upper case);
3. the ``"jobs"`` object of ``~/.hail-emr-lab/config.json`` (key ``name``);
4. for ``url``, ``bucket``, ``prefix``, ``region``: the general hail-emr-lab configuration
   (``livy_url``, ``bucket``, ``prefix``, ``region``);
5. its default.

Values are checked here (memory strings, positive counts, ARN shapes, release labels,
queue/definition names, S3 URIs) so a bad value gives one clear message that names the
flag, the variable and the config key -- before any file is uploaded or job started.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

from ..config import config_path, load_config, read_json_file
from ..errors import ConfigError
from ..s3_names import RULE, bucket_name_problem


class JobParamError(ConfigError):
    """A job parameter is missing or malformed (nothing was submitted)."""


# ---------------------------------------------------------------------------- validators

_MEMORY = re.compile(r"^\s*(\d+)\s*([kmgt])b?\s*$", re.IGNORECASE)
_UNIT_MIB = {"k": 1 / 1024, "m": 1, "g": 1024, "t": 1024 * 1024}
_PARTITION = r"arn:aws(?:-cn|-us-gov|-iso|-iso-b)?"
_ROLE_ARN = re.compile(_PARTITION + r":iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_REGION = r"[a-z]{2}(?:-[a-z]+)+-\d"
_BATCH_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
_QUEUE_ARN = re.compile(_PARTITION + r":batch:" + _REGION + r":\d{12}:job-queue/[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
_JOBDEF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}(?::\d+)?$")
_JOBDEF_ARN = re.compile(
    _PARTITION + r":batch:" + _REGION + r":\d{12}:job-definition/[A-Za-z0-9][A-Za-z0-9_-]{0,127}(?::\d+)?$"
)
_APP_ID = re.compile(r"^[0-9a-z]{16}$")
_VC_ID = re.compile(r"^[0-9a-z]{25}$")
_RELEASE = re.compile(r"^emr-\d+\.\d+\.\d+(?:-latest|-\d{8})?$")
_EMR_JOB_NAME = re.compile(r"^[.\-_/#A-Za-z0-9]{1,64}$")


def parse_memory(value: Any, what: str = "memory") -> str:
    """A Spark memory string: ``4g``, ``512m``, ``2G``, ``1024mb`` -> ``4g``/``512m``/...;
    rejects fractions, missing units and zero."""
    match = _MEMORY.match(str(value))
    if not match or int(match.group(1)) <= 0:
        raise JobParamError(
            f"{what}: {value!r} is not a memory size; write a whole number with a unit k, m, g or t, "
            "e.g. 4g or 512m"
        )
    return f"{int(match.group(1))}{match.group(2).lower()}"


def memory_mib(value: Any, what: str = "memory") -> int:
    """Memory in MiB for AWS Batch: a bare number is MiB (Batch's unit), else a memory string."""
    text = str(value).strip()
    if text.isdigit():
        mib = int(text)
        if mib <= 0:
            raise JobParamError(f"{what}: {value!r} must be positive (MiB, or a size such as 4g)")
        return mib
    norm = parse_memory(text, what)
    mib = int(norm[:-1]) * _UNIT_MIB[norm[-1]]
    if mib < 1:
        raise JobParamError(f"{what}: {value!r} is less than 1 MiB")
    return int(mib)


def positive_int(value: Any, what: str = "count") -> int:
    """A whole number > 0."""
    try:
        number = int(str(value).strip())
    except ValueError:
        raise JobParamError(f"{what}: {value!r} is not a whole number; give a positive count such as 2") from None
    if number <= 0:
        raise JobParamError(f"{what}: {value!r} must be a positive count (1 or more)")
    return number


def role_arn(value: Any, what: str = "execution role") -> str:
    """An IAM role ARN ``arn:aws:iam::123456789012:role/NAME``."""
    text = str(value).strip()
    if not _ROLE_ARN.match(text):
        raise JobParamError(
            f"{what}: {text!r} is not an IAM role ARN; expected arn:aws:iam::<12-digit account>:role/<name>, "
            "e.g. arn:aws:iam::123456789012:role/EMRServerlessJobRole"
        )
    return text


def release_label(value: Any, what: str = "release label") -> str:
    """An EMR release label: ``emr-6.15.0``, ``emr-7.1.0``, ``emr-6.15.0-latest``."""
    text = str(value).strip()
    if not _RELEASE.match(text):
        raise JobParamError(
            f"{what}: {text!r} is not an EMR release label; expected emr-MAJOR.MINOR.PATCH "
            "(e.g. emr-6.15.0, emr-7.1.0, or emr-6.15.0-latest on EMR on EKS)"
        )
    return text


def application_id(value: Any, what: str = "application id") -> str:
    """An EMR Serverless application id (16 lower-case letters and digits)."""
    text = str(value).strip()
    if not _APP_ID.match(text):
        raise JobParamError(
            f"{what}: {text!r} is not an EMR Serverless application id (16 lower-case letters/digits, "
            "e.g. 00f1abcd2efgh3ij); see `aws emr-serverless list-applications`"
        )
    return text


def virtual_cluster_id(value: Any, what: str = "virtual cluster id") -> str:
    """An EMR on EKS virtual cluster id (25 lower-case letters and digits)."""
    text = str(value).strip()
    if not _VC_ID.match(text):
        raise JobParamError(
            f"{what}: {text!r} is not an EMR on EKS virtual cluster id (25 lower-case letters/digits); "
            "see `aws emr-containers list-virtual-clusters`"
        )
    return text


def job_queue(value: Any, what: str = "job queue") -> str:
    """An AWS Batch job queue name or ARN."""
    text = str(value).strip()
    if not (_BATCH_NAME.match(text) or _QUEUE_ARN.match(text)):
        raise JobParamError(
            f"{what}: {text!r} is neither a Batch job queue name (letters, digits, - and _, up to 128) "
            "nor a job-queue ARN (arn:aws:batch:REGION:ACCOUNT:job-queue/NAME)"
        )
    return text


def job_definition(value: Any, what: str = "job definition") -> str:
    """An AWS Batch job definition: ``name``, ``name:revision`` or its ARN."""
    text = str(value).strip()
    if not (_JOBDEF.match(text) or _JOBDEF_ARN.match(text)):
        raise JobParamError(
            f"{what}: {text!r} is not a Batch job definition; expected NAME, NAME:REVISION or "
            "arn:aws:batch:REGION:ACCOUNT:job-definition/NAME:REVISION"
        )
    return text


def s3_uri(value: Any, what: str = "S3 URI") -> str:
    """``s3://bucket/key...`` with a valid bucket name."""
    text = str(value).strip()
    if not text.startswith("s3://"):
        raise JobParamError(f"{what}: {text!r} is not an S3 URI; expected s3://BUCKET/KEY")
    bucket = text[5:].split("/", 1)[0]
    problem = bucket_name_problem(bucket)
    if problem:
        raise JobParamError(f"{what}: {text!r} has an invalid bucket name {bucket!r} ({problem}); use {RULE}")
    return text


def bucket_name(value: Any, what: str = "bucket") -> str:
    """An S3 bucket name (``s3://`` prefix tolerated and removed); the rule is
    :func:`hail_emr_lab.s3_names.bucket_name_problem` (S3 "Bucket naming rules")."""
    text = str(value).strip()
    if text.startswith("s3://"):
        text = text[5:].strip("/")
    problem = bucket_name_problem(text)
    if problem:
        raise JobParamError(f"{what}: {value!r} is not an S3 bucket name ({problem}); use {RULE}")
    return text


def job_name(value: Any, backend: str) -> str:
    """A job name the backend accepts (Batch is strictest; EMR allows ``./#``)."""
    text = str(value).strip()
    if backend == "aws-batch":
        if not _BATCH_NAME.match(text):
            raise JobParamError(
                f"job name {text!r}: AWS Batch wants letters, digits, - and _ only, starting with a letter or "
                "digit, at most 128 characters"
            )
    elif backend in ("emr-serverless", "emr-eks"):
        if not _EMR_JOB_NAME.match(text):
            raise JobParamError(
                f"job name {text!r}: EMR wants 1-64 characters from letters, digits and . - _ / #"
            )
    elif not text:
        raise JobParamError("job name must not be empty")
    return text


def safe_name(text: str) -> str:
    """``text`` turned into a name every backend accepts (for default job names)."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-_") or "job"
    return cleaned[:64]


def conf_pairs(items: Any, what: str = "--conf") -> dict[str, str]:
    """``["k=v", ...]`` (or a mapping) -> dict; a clear error for items without ``=``."""
    if not items:
        return {}
    if isinstance(items, Mapping):
        return {str(k): str(v) for k, v in items.items()}
    if isinstance(items, str):
        items = [items]
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise JobParamError(f"{what}: {item!r} is not KEY=VALUE (e.g. spark.sql.shuffle.partitions=64)")
        out[key.strip()] = value
    return out


def string_list(value: Any) -> list[str]:
    """A list from a list, or a comma-separated string (env vars)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(v) for v in value]


# ---------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Param:
    """One job parameter: its validator, help text and fallback general config key."""

    help: str
    check: Optional[Callable[..., Any]] = None
    general_key: Optional[str] = None
    default: Any = None
    backends: tuple[str, ...] = ()  # empty = all
    metavar: Optional[str] = None


SPARK = ("livy", "emr-serverless", "emr-eks")
AWS = ("emr-serverless", "emr-eks", "aws-batch")

PARAMS: dict[str, Param] = {
    # where things go
    "url": Param("Livy URL (else config livy_url, else the notebook's connected session)", None, "livy_url",
                 backends=("livy",)),
    "bucket": Param("S3 bucket for uploaded job files and logs", bucket_name, "bucket", backends=AWS + ("livy",)),
    "prefix": Param("per-user S3 prefix; files go to s3://BUCKET/PREFIX/jobs/NAME/...", None, "prefix",
                    backends=AWS + ("livy",)),
    "region": Param("AWS region (else boto3's default chain)", None, "region", backends=AWS),
    "log_uri": Param("S3 URI for driver logs (default s3://BUCKET/PREFIX/jobs/logs/)", s3_uri,
                     backends=("emr-serverless", "emr-eks")),
    # Spark sizing
    "driver_memory": Param("driver memory, e.g. 4g", parse_memory, backends=SPARK, metavar="SIZE"),
    "driver_cores": Param("driver cores", positive_int, backends=SPARK, metavar="N"),
    "executor_memory": Param("executor memory, e.g. 8g", parse_memory, backends=SPARK, metavar="SIZE"),
    "executor_cores": Param("cores per executor", positive_int, backends=SPARK, metavar="N"),
    "num_executors": Param("number of executors", positive_int, backends=SPARK, metavar="N"),
    # EMR Serverless
    "application_id": Param("EMR Serverless application id", application_id, backends=("emr-serverless",)),
    "execution_role_arn": Param("IAM role the job runs as (EMR Serverless, EMR on EKS)", role_arn,
                                backends=("emr-serverless", "emr-eks"), metavar="ARN"),
    "hail_archive": Param("S3 URI of pyspark_hail.tar.gz (a packed Python env with Hail), used as --archives "
                          "...#environment", s3_uri, backends=("emr-serverless", "emr-eks"), metavar="S3URI"),
    "hail_jar": Param("S3 URI of hail-all-spark.jar (--jars)", s3_uri, backends=("emr-serverless", "emr-eks"),
                      metavar="S3URI"),
    # EMR on EKS
    "virtual_cluster_id": Param("EMR on EKS virtual cluster id", virtual_cluster_id, backends=("emr-eks",)),
    "release_label": Param("EMR release label, e.g. emr-6.15.0-latest", release_label, backends=("emr-eks",),
                           default="emr-6.15.0-latest"),
    "driver_pod_template": Param("driver pod template (local file or S3 URI)", None, backends=("emr-eks",),
                                 metavar="FILE"),
    "executor_pod_template": Param("executor pod template (local file or S3 URI)", None, backends=("emr-eks",),
                                   metavar="FILE"),
    # AWS Batch
    "job_queue": Param("AWS Batch job queue (name or ARN)", job_queue, backends=("aws-batch",)),
    "job_definition": Param("AWS Batch job definition (NAME[:REV] or ARN)", job_definition, backends=("aws-batch",)),
    "command": Param("container command template; {file} = S3 URI of FILE, {args} = ARGS "
                     "(default for .nf files: 'nextflow run {file} {args}')", None, backends=("aws-batch",)),
    "vcpus": Param("vCPUs for the container (override)", positive_int, backends=("aws-batch",), metavar="N"),
    "memory": Param("memory for the container (MiB, or a size such as 4g)", memory_mib, backends=("aws-batch",),
                    metavar="SIZE"),
    "log_group": Param("CloudWatch log group of the jobs", None, backends=("aws-batch",), default="/aws/batch/job"),
}


def env_name(name: str) -> str:
    """The environment variable for a parameter."""
    return f"HAIL_EMR_LAB_JOBS_{name.upper()}"


def flag_name(name: str) -> str:
    """The command-line flag for a parameter."""
    return "--" + name.replace("_", "-")


def where(name: str) -> str:
    """'--flag, HAIL_EMR_LAB_JOBS_X or "x" under "jobs" in the config file' (for messages)."""
    return f'{flag_name(name)}, {env_name(name)}, or "{name}" under "jobs" in {config_path()}'


def jobs_config_file(env: Optional[Mapping[str, str]] = None) -> dict[str, Any]:
    """The ``"jobs"`` object of the config file ({} if absent)."""
    data = read_json_file(config_path(env), "config file").get("jobs") or {}
    if not isinstance(data, dict):
        raise JobParamError(f'"jobs" in {config_path(env)} must be a JSON object of job settings')
    return data


class Settings:
    """Resolved, validated job parameters (see the module docstring for the order)."""

    def __init__(self, flags: Optional[Mapping[str, Any]] = None, env: Optional[Mapping[str, str]] = None):
        self.env = os.environ if env is None else env
        self.flags = {k: v for k, v in (flags or {}).items() if v is not None}
        self.file = jobs_config_file(self.env)
        unknown = sorted(set(self.file) - set(PARAMS))
        if unknown:
            raise JobParamError(
                f'unknown job setting(s) {unknown} under "jobs" in {config_path(self.env)}; known: {sorted(PARAMS)}'
            )
        self._general = None
        self.sources: dict[str, str] = {}

    def _general_config(self):
        if self._general is None:
            self._general = load_config(env=self.env)
        return self._general

    def raw(self, name: str) -> Any:
        """The unvalidated value and remember its source."""
        param = PARAMS[name]
        if name in self.flags:
            self.sources[name] = flag_name(name)
            return self.flags[name]
        env_value = self.env.get(env_name(name))
        if env_value not in (None, ""):
            self.sources[name] = env_name(name)
            return env_value
        if self.file.get(name) not in (None, ""):
            self.sources[name] = f'"jobs.{name}" in the config file'
            return self.file[name]
        if param.general_key:
            cfg = self._general_config()
            value = cfg.get(param.general_key)
            if value not in (None, ""):
                self.sources[name] = f"config {param.general_key} ({cfg.source(param.general_key)})"
                return value
        if param.default is not None:
            self.sources[name] = "default"
        return param.default

    def get(self, name: str) -> Any:
        """The validated value of ``name`` (None when unset)."""
        value = self.raw(name)
        if value is None:
            return None
        check = PARAMS[name].check
        if check is None:
            return value
        what = f"{flag_name(name)} (from {self.sources.get(name, 'default')})"
        return check(value, what)

    def require(self, name: str, backend: str) -> Any:
        """Like :meth:`get` but a clear error naming every way to set it when it is missing."""
        value = self.get(name)
        if value is None or value == "":
            raise JobParamError(f"the {backend} backend needs {PARAMS[name].help.split(' (')[0]}: set {where(name)}")
        return value
