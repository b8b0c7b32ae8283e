"""Handlers for the plots on the cluster: ``%hail plots`` and ``%hail plot NAME``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Optional

from .errors import HailMagicError
from .render import local_time, print_text, show_plots, table

if TYPE_CHECKING:
    from ...plots.manager import PlotManager
    from .core import HailMagics


def _manager(m: HailMagics) -> PlotManager:
    """The connection's plot manager, once the session is ready."""
    ctx = m.ctx()
    if ctx.plots is None:
        raise HailMagicError(
            "Plots are not available in this connection (connected with --no-plots, or the plots module is "
            "missing): reconnect without --no-plots."
        )
    m.wait_ready(ctx)
    return ctx.plots


def plots(m: HailMagics, args: argparse.Namespace, cell: Optional[str]) -> None:
    """``%hail plots``: the files in the cluster's plot directory."""
    found = _manager(m).list_remote()
    if not found:
        print_text("No plots on the cluster yet: save them to PLOTS_DIR (e.g. save_plot(fig, 'name')).")
        return
    rows = [{"name": p.name, "bytes": p.size, "modified": local_time(p.mtime), "sha256": (p.sha256 or "-")[:12]}
            for p in found]
    table(rows, ["name", "bytes", "modified", "sha256"])


def plot(m: HailMagics, args: argparse.Namespace, cell: Optional[str]) -> None:
    """``%hail plot NAME``: pull one plot and show it."""
    show_plots([_manager(m).pull(args.name)])
