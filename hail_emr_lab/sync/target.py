"""What to sync where: :class:`SyncTarget` and how it is built from the configuration."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..config import SAGEMAKER_HOME, Config, load_config
from ..errors import ConfigError
from .excludes import DEFAULT_EXCLUDES, Excludes
from .keys import STATE_DIRNAME, UnsafeKey, normalize_prefix

#: Default number of parallel transfers (awscli uses 10; S3 is latency bound, so more pays).
DEFAULT_CONCURRENCY = 32
#: Files at or above this size are uploaded in parts (boto3's default, 8 MiB).
DEFAULT_MULTIPART_THRESHOLD = 8 * 1024 * 1024


@dataclass
class SyncTarget:
    """A home directory and the ``s3://bucket/prefix/`` it is synced with.

    ``state_dir`` holds the sqlite state and the lock (default ``<home>/.hail-emr-lab-sync``,
    or ``$HAIL_EMR_LAB_SYNC_STATE_DIR``); it is never synced. Downloads are staged in
    ``<home>/.hail-emr-lab-sync/tmp`` so the final rename stays on one filesystem.
    ``environments``: also back up Python/conda environments, ``node_modules`` and ``.cache``
    (skipped by default: they are rebuilt, not written; see :mod:`.excludes`).
    """

    home: Path
    bucket: str
    prefix: str
    excludes: Sequence[str] = field(default_factory=list)
    state_dir: Path | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD
    multipart_chunksize: int = DEFAULT_MULTIPART_THRESHOLD
    region: str | None = None
    trash_retention_days: int = 30
    environments: bool = False

    def __post_init__(self) -> None:
        self.home = Path(os.path.abspath(os.path.expanduser(str(self.home))))
        if not self.bucket:
            raise ConfigError(_NO_BUCKET)
        self.bucket = str(self.bucket).strip()
        if self.bucket.startswith("s3://"):
            self.bucket = self.bucket[5:].strip("/")
        try:
            self.prefix = normalize_prefix(self.prefix)
        except UnsafeKey as exc:
            raise ConfigError(
                f"{exc}. Set the per-user prefix with --prefix NAME or HAIL_EMR_LAB_PREFIX "
                "(on a notebook instance it defaults to the instance name)."
            ) from None
        if self.concurrency < 1:
            raise ConfigError(f"concurrency must be at least 1, got {self.concurrency}")
        env_dir = os.environ.get("HAIL_EMR_LAB_SYNC_STATE_DIR")
        if self.state_dir is None:
            self.state_dir = Path(env_dir) if env_dir else self.home / STATE_DIRNAME
        self.state_dir = Path(self.state_dir).expanduser()
        self.matcher = Excludes(DEFAULT_EXCLUDES, self.excludes, environments=self.environments)

    @property
    def ident(self) -> str:
        """Short stable id of (home, bucket, prefix): names the state and lock files."""
        raw = f"{self.home}\0{self.bucket}\0{self.prefix}".encode()
        return hashlib.sha256(raw).hexdigest()[:16]

    @property
    def state_path(self) -> Path:
        return Path(self.state_dir) / f"state-{self.ident}.sqlite"

    @property
    def lock_path(self) -> Path:
        return Path(self.state_dir) / f"lock-{self.ident}"

    @property
    def tmp_dir(self) -> Path:
        return self.home / STATE_DIRNAME / f"tmp-{self.ident}"

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}/"


_NO_BUCKET = (
    "no S3 bucket is configured for the home-directory sync. Pass --bucket BUCKET, set "
    "HAIL_EMR_LAB_BUCKET, or add \"bucket\" to ~/.hail-emr-lab/config.json "
    "(the lifecycle scripts write it)."
)


def ensure_home(target: SyncTarget) -> bool:
    """Create the target's home (parents included) if it does not exist; True if created.

    Raises :class:`ConfigError` if the path exists and is not a directory (a file, or a
    symlink to one or to nothing): a restore never writes into or over it.
    """
    home = target.home
    if home.is_dir():
        return False
    if os.path.lexists(home):
        raise ConfigError(f"the home {home} exists and is not a directory; restore into a directory")
    try:
        home.mkdir(parents=True)
    except FileExistsError:  # made meanwhile by someone else: fine if it is a directory
        if not home.is_dir():
            raise ConfigError(f"the home {home} exists and is not a directory; restore into a directory") from None
        return False
    except OSError as exc:
        raise ConfigError(f"cannot create the home directory {home}: {exc.strerror}") from None
    return True


def target_from_config(config: Config | None = None, overrides: dict[str, Any] | None = None,
                       require_home: bool = True, **kwargs: Any) -> SyncTarget:
    """Build the :class:`SyncTarget` from the configuration (flags passed as ``overrides``).

    Defaults on a notebook instance: home ``/home/ec2-user/SageMaker``, prefix = instance name.
    ``require_home=False`` (restore) accepts a home that does not exist yet; a path that exists
    and is not a directory is refused either way. Raises :class:`ConfigError`.
    """
    if config is None:
        config = load_config({k: v for k, v in (overrides or {}).items() if v not in (None, "", [])})
    bucket = config.get("bucket")
    if not bucket:
        raise ConfigError(_NO_BUCKET)
    home = config.get("home")
    if not home:
        if SAGEMAKER_HOME.is_dir():
            home = str(SAGEMAKER_HOME)
        else:
            raise ConfigError(
                "no home directory to sync is configured: pass --home DIR, set HAIL_EMR_LAB_HOME, or "
                "add \"home\" to ~/.hail-emr-lab/config.json (on a notebook instance it is "
                f"{SAGEMAKER_HOME})."
            )
    prefix = config.get("prefix")
    if not prefix:
        raise ConfigError(
            "no S3 prefix for this user is configured: pass --prefix NAME, set HAIL_EMR_LAB_PREFIX, "
            "or add \"prefix\" to ~/.hail-emr-lab/config.json (on a notebook instance it is the "
            "instance name, read from /opt/ml/metadata/resource-metadata.json)."
        )
    home_path = Path(home).expanduser()
    if os.path.lexists(home_path) and not home_path.is_dir():
        raise ConfigError(f"the home {home} (from {config.source('home')}) exists and is not a directory; "
                          "pass --home with a directory")
    if require_home and not home_path.is_dir():
        raise ConfigError(f"the home directory {home} does not exist (from {config.source('home')}); "
                          "create it, or run `hail-emr-lab sync restore` which creates it")
    excludes = config.get("excludes") or []
    if isinstance(excludes, str):
        excludes = [p.strip() for p in excludes.split(",") if p.strip()]
    kwargs.setdefault("environments", bool(config.get("backup_environments")))
    return SyncTarget(home=Path(home), bucket=bucket, prefix=prefix, excludes=list(excludes),
                      region=config.get("region"), **kwargs)
