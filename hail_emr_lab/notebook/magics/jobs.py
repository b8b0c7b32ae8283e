"""Handlers for batch jobs: ``%hail submit``, ``%%hail submit``, ``%hail jobs``.

They are ``raw`` subcommands: the jobs package parses the line with the command line's own
parser, so flags, environment variables and config keys are the same as ``hail-emr-lab jobs``.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, Optional

from ..context import current

if TYPE_CHECKING:
    from .core import HailMagics


def parser() -> argparse.ArgumentParser:
    """The jobs parser (``%hail jobs --help`` shows it)."""
    from ...jobs.notebook import build_parser  # imported when asked: %load_ext stays fast

    return build_parser()


def submit(m: HailMagics, line: str, cell: Optional[str]) -> Any:
    """``%hail submit FILE ...`` or ``%%hail submit ...`` (the cell is the script)."""
    from ...jobs.notebook import run_magic

    return run_magic("submit", line, cell, livy_client=current().client)  # --backend livy may use this session's


def jobs(m: HailMagics, line: str, cell: Optional[str]) -> Any:
    """``%hail jobs list|status|logs|cancel ...``."""
    from ...jobs.notebook import run_magic

    return run_magic("jobs", line, cell, livy_client=current().client)
