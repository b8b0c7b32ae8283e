"""Home-directory sync to a per-user S3 prefix.

Python API (the CLI ``hail-emr-lab sync ...`` and the Jupyter server extension use it)::

    from hail_emr_lab.sync import target_from_config, backup, restore, status
    target = target_from_config()          # or SyncTarget(home, bucket, prefix)
    report = backup(target)                # SyncReport; report.exit_code, report.to_dict()
    status(target)                         # dict, same as `hail-emr-lab sync status --json`

Importing this package does not import boto3; only a run with something to transfer does.
"""

from __future__ import annotations

from .engine import backup, conflict_name, restore, status
from .lock import SyncBusy
from .report import EXIT_PARTIAL, SyncReport
from .target import SyncTarget, target_from_config

__all__ = [
    "EXIT_PARTIAL",
    "SyncBusy",
    "SyncReport",
    "SyncTarget",
    "backup",
    "conflict_name",
    "restore",
    "seed",
    "status",
    "target_from_config",
]


def seed(target: SyncTarget, **kwargs):  # noqa: ANN201 - see seed.seed
    """Copy the shared notebooks and scripts into the home (see :func:`.seed.seed`)."""
    from .seed import seed as _seed

    return _seed(target, **kwargs)
