"""Job parameters: their rules, and validation before anything is submitted.

Where each value comes from is the configuration's business: the ``jobs`` section of
:func:`hail_emr_lab.config.load_config` (flag, ``HAIL_EMR_LAB_JOBS_<NAME>``, the ``"jobs"``
object of the config file, the general key for ``url``/``bucket``/``prefix``/``region``, default;
provenance kept). This module adds what only jobs need: which backends a parameter applies to,
and its check (memory strings, positive counts, ARN shapes, release labels, queue/definition
names, S3 URIs), so a bad value gives one clear message that names the flag, the variable and
the config key -- before any file is uploaded or job started.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

from ..aws_names import RULE, bucket_name_problem, role_arn_problem, serverless_app_problem
from ..config import JOB_KEYS, Config, config_path, job_env_name, job_flag_name, load_config
from ..errors import ConfigError


class JobParamError(ConfigError):
    """A job parameter is missing or malformed (nothing was submitted)."""


# ---------------------------------------------------------------------------- validators

_MEMORY = re.compile(r"^\s*(\d+)\s*([kmgt])b?\s*$", re.IGNORECASE)
_UNIT_MIB = {"k": 1 / 1024, "m": 1, "g": 1024, "t": 1024 * 1024}
_PARTITION = r"arn:aws(?:-cn|-us-gov|-iso|-iso-b)?"
_REGION = r"[a-z]{2}(?:-[a-z]+)+-\d"
_BATCH_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
_QUEUE_ARN = re.compile(_PARTITION + r":batch:" + _REGION + r":\d{12}:job-queue/[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
_JOBDEF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}(?::\d+)?$")
_JOBDEF_ARN = re.compile(
    _PARTITION + r":batch:" + _REGION + r":\d{12}:job-definition/[A-Za-z0-9][A-Za-z0-9_-]{0,127}(?::\d+)?$"
)
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
    problem = role_arn_problem(text)
    if problem:
        raise JobParamError(f"{what}: {text!r} is not an IAM role ARN; {problem}, e.g. "
                            "arn:aws:iam::123456789012:role/EMRServerlessJobRole")
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
    """An EMR Serverless application id (:func:`hail_emr_lab.aws_names.serverless_app_problem`)."""
    text = str(value).strip()
    problem = serverless_app_problem(text)
    if problem:
        raise JobParamError(f"{what}: {text!r} is not an EMR Serverless application id: {problem}")
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
    :func:`hail_emr_lab.aws_names.bucket_name_problem` (S3 "Bucket naming rules")."""
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
    """One job parameter: its help text, validator, fallback general config key and default
    (the last three facts live in :data:`hail_emr_lab.config.JOB_KEYS`)."""

    help: str
    check: Optional[Callable[..., Any]] = None
    general_key: Optional[str] = None
    default: Any = None
    backends: tuple[str, ...] = ()  # empty = all
    metavar: Optional[str] = None


SPARK = ("livy", "emr-serverless", "emr-eks")
AWS = ("emr-serverless", "emr-eks", "aws-batch")
EMR = ("emr-serverless", "emr-eks")

#: name -> (check, backends, metavar): what only jobs know about each key of ``JOB_KEYS``.
_RULES: dict[str, tuple[Optional[Callable[..., Any]], tuple[str, ...], Optional[str]]] = {
    "url": (None, ("livy",), None),
    "bucket": (bucket_name, AWS + ("livy",), None),
    "prefix": (None, AWS + ("livy",), None),
    "region": (None, AWS, None),
    "log_uri": (s3_uri, EMR, None),
    "driver_memory": (parse_memory, SPARK, "SIZE"),
    "driver_cores": (positive_int, SPARK, "N"),
    "executor_memory": (parse_memory, SPARK, "SIZE"),
    "executor_cores": (positive_int, SPARK, "N"),
    "num_executors": (positive_int, SPARK, "N"),
    "application_id": (application_id, ("emr-serverless",), None),
    "execution_role_arn": (role_arn, EMR, "ARN"),
    "hail_archive": (s3_uri, EMR, "S3URI"),
    "hail_jar": (s3_uri, EMR, "S3URI"),
    "virtual_cluster_id": (virtual_cluster_id, ("emr-eks",), None),
    "release_label": (release_label, ("emr-eks",), None),
    "driver_pod_template": (None, ("emr-eks",), "FILE"),
    "executor_pod_template": (None, ("emr-eks",), "FILE"),
    "job_queue": (job_queue, ("aws-batch",), None),
    "job_definition": (job_definition, ("aws-batch",), None),
    "command": (None, ("aws-batch",), None),
    "vcpus": (positive_int, ("aws-batch",), "N"),
    "memory": (memory_mib, ("aws-batch",), "SIZE"),
    "log_group": (None, ("aws-batch",), None),
}

PARAMS: dict[str, Param] = {
    name: Param(help_text, _RULES[name][0], general, default, _RULES[name][1], _RULES[name][2])
    for name, (default, general, help_text) in JOB_KEYS.items()
}

def where(name: str) -> str:
    """'--flag, HAIL_EMR_LAB_JOBS_X or "x" under "jobs" in the config file' (for messages)."""
    return f'{job_flag_name(name)}, {job_env_name(name)}, or "{name}" under "jobs" in {config_path()}'


class Settings:
    """Validated job parameters over the ``jobs`` section of the configuration.

    ``flags``: parameters given on the command line or in the magic; ``config``: an already
    resolved configuration (else it is resolved here, with ``flags`` as its job arguments).
    Raises JobParamError when the section in the config file is malformed or has unknown keys.
    """

    def __init__(
        self,
        flags: Optional[Mapping[str, Any]] = None,
        env: Optional[Mapping[str, str]] = None,
        config: Optional[Config] = None,
    ):
        self.flags = {k: v for k, v in (flags or {}).items() if v is not None}
        self.config = config if config is not None else load_config(env=env, job_overrides=self.flags)
        self.section = self.config.jobs
        if self.section.problem:
            raise JobParamError(self.section.problem)
        self.sources = self.section.sources

    def raw(self, name: str) -> Any:
        """The unvalidated value (None when unset)."""
        return self.section.values.get(name)

    def get(self, name: str) -> Any:
        """The validated value of ``name`` (None when unset)."""
        value = self.raw(name)
        if value is None:
            return None
        check = PARAMS[name].check
        if check is None:
            return value
        what = f"{job_flag_name(name)} (from {self.section.source(name)})"
        return check(value, what)

    def require(self, name: str, backend: str) -> Any:
        """Like :meth:`get` but a clear error naming every way to set it when it is missing."""
        value = self.get(name)
        if value is None or value == "":
            raise JobParamError(f"the {backend} backend needs {PARAMS[name].help.split(' (')[0]}: set {where(name)}")
        return value
