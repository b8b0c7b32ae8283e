"""Parameters of the lifecycle scripts, checked before anything is rendered or sent to AWS.

The same rules are applied again by the rendered on-start script to values read from the
instance tags (its ``valid`` function), since those end up in JSON config files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Optional
from urllib.parse import urlsplit

from ..aws_names import RULE, bucket_name_problem, role_arn_problem, serverless_app_problem
from ..errors import HailEmrLabError
from ..redact import redact_url

#: Prefixes of the bucket that are shared by every user (read-only for users).
SHARED_PREFIXES = ("common-notebooks", "scripts", "packages")

_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]+$")
_CLUSTER_ID = re.compile(r"^j-[A-Z0-9]+$")
_CLUSTER_NAME = re.compile(r"^[A-Za-z0-9 ._:@+=,/()-]{1,256}$")
_HOST = re.compile(r"^[A-Za-z0-9.-]+$")
_URL_PATH = re.compile(r"^(/[A-Za-z0-9._~/-]*)?$")
_PLOTS_DIR = re.compile(r"^/[A-Za-z0-9._/-]*$")
_WHEEL = re.compile(r"^hail_emr_lab-[0-9][A-Za-z0-9.+!]*(-[A-Za-z0-9_.]+){3}\.whl$")
_PIP_REQ = re.compile(r"^hail-emr-lab([=<>!~]=?[0-9][A-Za-z0-9.*+!]*)?$")
#: SageMaker resource names: lifecycle configs, notebook instances.
_SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")


class LifecycleError(HailEmrLabError):
    """Bad lifecycle parameters or a script that would not work on a notebook instance."""

    exit_code = 2


def check_serverless(app_id: object, execution_role: object) -> None:
    """Both an EMR Serverless application id and its execution role ARN are given and valid
    (:mod:`hail_emr_lab.aws_names`), else raise LifecycleError saying which and why."""
    for flag, what, value, problem in (
        ("--serverless-app", "an EMR Serverless application id", app_id, serverless_app_problem(app_id)),
        ("--execution-role", "an IAM role ARN", execution_role, role_arn_problem(execution_role)),
    ):
        if problem:
            raise LifecycleError(f"{flag} needs {what}, got {value!r}: {problem}")


def check_bucket(bucket: str) -> str:
    """Return ``bucket`` if it is a valid S3 bucket name (S3 "Bucket naming rules", see
    :mod:`hail_emr_lab.aws_names`), else raise LifecycleError saying why."""
    problem = bucket_name_problem(bucket)
    if problem:
        raise LifecycleError(f"{bucket!r} is not a valid S3 bucket name ({problem}): use {RULE}")
    return bucket


def check_prefix(prefix: str, what: str = "prefix") -> str:
    """A per-user S3 prefix / user name: one path segment, like a notebook instance name."""
    if not _PREFIX.match(prefix or ""):
        raise LifecycleError(
            f"{what} {prefix!r} is not allowed: use one path segment of letters, digits, '.', '_' "
            "and '-' (no slashes), like the notebook instance name, e.g. alice"
        )
    if prefix in SHARED_PREFIXES:
        raise LifecycleError(
            f"{what} {prefix!r} is a shared prefix of the bucket ({', '.join(SHARED_PREFIXES)}); choose a per-user name"
        )
    return prefix


def check_region(region: str) -> str:
    """An AWS region name such as us-east-1."""
    if not _REGION.match(region or ""):
        raise LifecycleError(f"{region!r} is not an AWS region name (e.g. us-east-1, eu-west-2)")
    return region


def check_cluster_id(cluster_id: str) -> str:
    """An EMR cluster id, ``j-`` followed by upper-case letters and digits."""
    if not _CLUSTER_ID.match(cluster_id or ""):
        raise LifecycleError(
            f"{cluster_id!r} is not an EMR cluster id: ids look like j-2AXXXXXXGAPLF "
            "(see `aws emr list-clusters --active`); to select a cluster by name use --cluster-name"
        )
    return cluster_id


def check_cluster_name(name: str) -> str:
    """An EMR cluster name that is safe in a JMESPath query and in JSON."""
    if not _CLUSTER_NAME.match(name or ""):
        raise LifecycleError(
            f"cluster name {name!r} is not supported: use up to 256 letters, digits, spaces and "
            "._:@+=,/()- (no quotes or backslashes)"
        )
    return name


def check_livy_url(url: str) -> str:
    """An http(s) Livy URL with a host and an optional port and path, no credentials or query."""
    problem = None
    try:
        parts = urlsplit(url or "")
        port = parts.port  # raises ValueError for a bad port
    except ValueError:
        parts, port, problem = None, None, "its port is not a number between 0 and 65535"
    if problem is None and parts is not None:
        if parts.scheme not in ("http", "https"):
            problem = "it must start with http:// or https://"
        elif not parts.hostname or not _HOST.match(parts.hostname):
            problem = "it has no valid host name"
        elif parts.username or parts.password:
            problem = "it must not contain credentials (use the auth settings instead)"
        elif parts.query or parts.fragment:
            problem = "it must not have a query or fragment"
        elif not _URL_PATH.match(parts.path):
            problem = "its path has unsupported characters"
        elif port is not None and not 0 < port < 65536:
            problem = "its port is out of range"
    if problem:
        raise LifecycleError(f"{redact_url(url)!r} is not a usable Livy URL: {problem} (e.g. http://10.0.0.5:8998)")
    return url


def check_plots_dir(path: str) -> str:
    """An absolute path on the cluster for plots (no ``..``)."""
    if not _PLOTS_DIR.match(path or "") or ".." in path.split("/") or path == "/":
        raise LifecycleError(
            f"plots directory {path!r} must be an absolute path of letters, digits, '.', '_', '-' "
            "and '/', without '..' (e.g. /plots)"
        )
    return path


def check_sagemaker_name(name: str, what: str = "lifecycle configuration name") -> str:
    """A SageMaker resource name: at most 63 letters, digits and hyphens."""
    if not name or len(name) > 63 or not _SAGEMAKER_NAME.match(name):
        raise LifecycleError(
            f"{what} {name!r} is not allowed: SageMaker names have 1-63 letters, digits and "
            "hyphens, start with a letter or digit and do not end with a hyphen"
        )
    return name


@dataclass
class LifecycleParams:
    """Everything the rendered scripts need; empty fields are read at start from the tags."""

    bucket: str = ""
    prefix: str = ""
    region: str = ""
    cluster_id: str = ""
    cluster_name: str = ""
    livy_url: str = ""
    plots_dir: str = ""
    package_source: str = "s3"
    wheel: str = ""
    read_tags: bool = True
    ssm: bool = False  # install the Session Manager plugin (for `hail-emr-lab ssm`)
    serverless_app: str = ""  # EMR Serverless application id for %hail connect
    serverless_execution_role: str = ""  # IAM role ARN its sessions run as

    def validate(self, require_bucket: bool = True) -> LifecycleParams:
        """Check every field; raise LifecycleError naming the first bad one."""
        chosen = [name for name in ("cluster_id", "cluster_name", "livy_url") if getattr(self, name)]
        if len(chosen) > 1:
            flags = " and ".join("--" + name.replace("_", "-") for name in chosen)
            raise LifecycleError(
                f"{flags} conflict: give at most one way to find the cluster (an id, a name or a Livy URL)"
            )
        if self.bucket or require_bucket:
            check_bucket(self.bucket)
        if self.prefix:
            check_prefix(self.prefix)
        if self.region:
            check_region(self.region)
        if self.cluster_id:
            check_cluster_id(self.cluster_id)
        if self.cluster_name:
            check_cluster_name(self.cluster_name)
        if self.livy_url:
            check_livy_url(self.livy_url)
        if self.plots_dir:
            check_plots_dir(self.plots_dir)
        if self.serverless_app or self.serverless_execution_role:
            check_serverless(self.serverless_app, self.serverless_execution_role)
        if self.package_source not in ("s3", "pypi"):
            raise LifecycleError(
                f"package source must be s3 (a wheel from s3://BUCKET/packages/, works without internet) "
                f"or pypi (the package index), got {self.package_source!r}"
            )
        if self.wheel:
            pattern = _WHEEL if self.package_source == "s3" else _PIP_REQ
            if not pattern.match(self.wheel):
                example = (
                    "a wheel file name like hail_emr_lab-0.1.0-py3-none-any.whl"
                    if self.package_source == "s3"
                    else "a requirement like hail-emr-lab==0.1.0"
                )
                raise LifecycleError(f"--wheel {self.wheel!r} is not {example}")
        return self

    def as_dict(self) -> dict[str, object]:
        """The parameters as a plain dict (for JSON output and the script header)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def params_from(values: dict[str, Optional[object]]) -> LifecycleParams:
    """Build (not yet validated) params from a dict of possibly-None values, e.g. argparse's."""
    known = {f.name for f in fields(LifecycleParams)}
    clean = {k: v for k, v in values.items() if k in known and v is not None}
    return LifecycleParams(**clean)
