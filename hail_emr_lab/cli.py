"""The ``hail-emr-lab`` command line.

Each subcommand lives in its own module, imported only when that subcommand runs, so
that e.g. ``hail-emr-lab sync backup`` with nothing to do does not pay for importing
boto3, pyspark or IPython. A subcommand module provides::

    def add_arguments(parser: argparse.ArgumentParser) -> None: ...
    def run(args: argparse.Namespace) -> int: ...
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any, Sequence

from . import __version__
from .errors import HailEmrLabError

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "local-livy": ("hail_emr_lab.embedded.livy_cli", "run the embedded Livy-protocol server (PySpark + Hail)"),
    "local-s3": ("hail_emr_lab.embedded.s3", "run the embedded S3-compatible server (objects on disk) in the foreground"),
    "lab": ("hail_emr_lab.embedded.lab_cli", "start JupyterLab on the embedded default (embedded Livy + embedded S3)"),
    "clusters": ("hail_emr_lab.emr.cli", "list active EMR clusters and Livy-enabled EMR Serverless applications, their Livy URL and whether it answers"),
    "sync": ("hail_emr_lab.sync.cli", "back up / restore the home directory to S3"),
    "lifecycle": ("hail_emr_lab.lifecycle.cli", "render, validate and install SageMaker lifecycle scripts"),
    "jobs": ("hail_emr_lab.jobs.cli", "submit and follow batch jobs (Livy, EMR Serverless, EMR on EKS, AWS Batch)"),
    "ssm": ("hail_emr_lab.emr.ssm_cli", "a shell or one command on the cluster's nodes through AWS Systems Manager"),
}


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [
        "usage: hail-emr-lab COMMAND [options]",
        "",
        "Hail on Amazon EMR from JupyterLab. Commands:",
        "",
    ]
    lines += [f"  {name.ljust(width)}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run 'hail-emr-lab COMMAND --help' for a command's options."]
    return "\n".join(lines)


def build_parser(name: str, module: Any = None) -> argparse.ArgumentParser:
    """The argument parser of ``hail-emr-lab NAME`` (``module``: its already imported module)."""
    module_name, help_ = COMMANDS[name]
    module = module or importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"hail-emr-lab {name}", description=help_)
    module.add_arguments(parser)
    return parser


def needs_arguments(parser: argparse.ArgumentParser) -> bool:
    """Whether ``parser`` rejects an empty command line (a required argument or subcommand)."""
    # argparse marks a REMAINDER positional required, yet it takes nothing happily.
    return any(action.required and action.nargs != argparse.REMAINDER for action in parser._actions)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if not argv:  # no command: what there is, and a status a script can tell from success
        print(_usage())
        return 2
    if argv[0] == "--version":
        print(f"hail-emr-lab {__version__}")
        return 0
    name = argv[0]
    if name not in COMMANDS:
        print(f"hail-emr-lab: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    parser = build_parser(name, module)
    if not argv[1:] and needs_arguments(parser):
        # Bare 'hail-emr-lab sync': what it can do, not an error about one missing argument.
        parser.print_help()
        return 2
    args = parser.parse_args(argv[1:])
    try:
        return int(module.run(args) or 0)
    except HailEmrLabError as exc:
        # Our own errors already say what happened and what to do: no traceback.
        print(f"hail-emr-lab {name}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"hail-emr-lab {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
