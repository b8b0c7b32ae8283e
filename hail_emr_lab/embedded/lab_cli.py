"""``hail-emr-lab lab``: its options, checked and turned into a ``devstack.LabPlan``.

``devstack`` starts the services and JupyterLab; this module only reads the command line.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import HailEmrLabError
from .devstack import DEFAULT_BUCKET, LabPlan
from .ports import port_free


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``hail-emr-lab lab``."""
    parser.add_argument(
        "--root", default=None,
        help="home directory JupyterLab serves (default: <state-dir>/home, seeded with the tutorials)",
    )
    parser.add_argument("--state-dir", default="~/.hail-emr-lab/local", help="where the embedded services keep state")
    parser.add_argument("--livy-port", type=int, default=8998, help="port of the embedded Livy (default 8998)")
    parser.add_argument("--s3-port", type=int, default=5900, help="port of the embedded S3 (default 5900)")
    parser.add_argument("--s3-dir", default=None,
                        help="directory where the embedded S3 keeps its objects (default: <state-dir>/s3)")
    parser.add_argument("--bucket", default=DEFAULT_BUCKET, help="bucket of the embedded S3 for backups")
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser")
    parser.add_argument("lab_args", nargs=argparse.REMAINDER, help="further arguments for jupyter lab")


def plan_of(args: argparse.Namespace) -> LabPlan:
    """The lab the options ask for; HailEmrLabError naming the option when one cannot work
    (``--root`` not a directory, a port in use)."""
    state = Path(args.state_dir).expanduser().resolve()
    root = Path(args.root).expanduser().resolve() if args.root else state / "home"
    if args.root and not root.is_dir():
        raise HailEmrLabError(f"--root {args.root}: not a directory; create it or pick another")
    for port, what in ((args.livy_port, "--livy-port"), (args.s3_port, "--s3-port")):
        if not port_free(port):
            raise HailEmrLabError(
                f"port {port} on 127.0.0.1 is in use (another hail-emr-lab lab?): stop it or pick {what} N"
            )
    return LabPlan(
        state=state,
        root=root,
        s3_dir=Path(args.s3_dir).expanduser().resolve() if args.s3_dir else state / "s3",
        livy_port=args.livy_port,
        s3_port=args.s3_port,
        bucket=args.bucket,
        open_browser=not args.no_browser,
        lab_args=tuple(args.lab_args),
    )


def run(args: argparse.Namespace) -> int:
    """Start the embedded S3 and Livy, then JupyterLab in the foreground (``devstack.run``)."""
    from . import devstack

    return devstack.run(plan_of(args))
