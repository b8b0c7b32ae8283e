"""Handlers that run code or move data: ``%%hail``, ``%%hail sql``, ``%hail push``, and ``-o``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Optional

from IPython.display import display

from ...errors import HailEmrLabError
from ...livy import StatementError
from ..context import HailContext
from ..transfer_progress import TransferProgress, finishing
from .errors import HailMagicError, remote_error
from .render import print_text, pulled_line, render_output, show_plots, warn

if TYPE_CHECKING:
    from .core import HailMagics


def run_cell(m: HailMagics, args: argparse.Namespace, cell: Optional[str]) -> None:
    """``%%hail [-o NAME ...] [-n N] [--timeout S] [-q] [--no-plots] [--via auto|livy|staged]``: run the cell."""
    ctx = m.ctx(auto_connect=True)
    m.wait_ready(ctx)
    output = m.run_code(ctx, cell or "", args.timeout, "the cell", quiet=args.quiet)
    if not output.ok:
        if ctx.plots is not None and not args.no_plots:
            after_cell(ctx, pull=True)  # plots made before the error still show
        raise remote_error(output)
    if not args.quiet:
        render_output(output)
    if args.output:
        pull(m, ctx, args.output, args.maxrows, args.timeout, args.quiet, args.via)
    if ctx.plots is not None:
        after_cell(ctx, pull=not args.no_plots)


def after_cell(ctx: HailContext, pull: bool) -> None:
    """Let the plot manager see what the cell made; show the new plots when ``pull``."""
    try:
        plots = ctx.plots.after_cell(pull=pull)
    except HailEmrLabError as exc:
        warn(f"hail: pulling plots failed: {exc}")
        return
    if pull:
        show_plots(plots)


def pull(m: HailMagics, ctx: HailContext, names: list[str], limit: Optional[int], timeout: Optional[float],
         quiet: bool, via: str = "livy") -> None:
    """``-o``: bring the remote variables ``names`` into the notebook's namespace (``via``: ``transfer.VIAS``)."""
    from .. import transfer

    moving = TransferProgress("pull", names, session_name=_session_name(ctx))
    with finishing(moving):
        try:
            results = transfer.pull(ctx.session, names, limit=limit, timeout=timeout, on_chunk=moving.on_chunk,
                                    via=via, config=ctx.config)
        except StatementError as exc:
            raise remote_error(exc.output, "Pulling " + ", ".join(names) + " failed") from None
    for item in results:
        m.user_ns[item.name] = item.value
        if item.truncated:
            warn(
                f"Warning: {item.name} was cut to its first {item.rows:,} rows (-n {limit}); the remote "
                f"{item.kind} has more. Use -n with a larger number, or no -n for all rows."
            )
        if not quiet:
            print_text(pulled_line(item, moving.moved(item.name)))


def _session_name(ctx: HailContext) -> Optional[str]:
    return getattr(ctx.session, "name", None)


def sql(m: HailMagics, args: argparse.Namespace, cell: Optional[str]) -> None:
    """``%%hail sql [-o NAME] [-n N] [-q]``: run the cell as Spark SQL, show the result as a table."""
    ctx = m.ctx(auto_connect=True)
    m.wait_ready(ctx)
    name = args.output or "_hel_sql_result"
    code = f"{name} = spark.sql({(cell or '').strip()!r})"
    output = m.run_code(ctx, code, args.timeout, "the query")
    if not output.ok:
        raise remote_error(output, "The query failed")
    from .. import transfer

    shown = args.output or "the query result"  # not the helper variable's name
    moving = TransferProgress("pull", [shown], session_name=_session_name(ctx))
    with finishing(moving):
        try:
            (item,) = transfer.pull(ctx.session, [name], limit=args.maxrows, timeout=args.timeout,
                                    on_chunk=lambda _, done, total, **how: moving.on_chunk(shown, done, total, **how))
        except StatementError as exc:
            raise remote_error(exc.output, "Fetching the query result failed") from None
    if args.output:
        m.user_ns[args.output] = item.value
    if item.truncated:
        warn(f"Warning: showing the first {item.rows:,} rows only (-n {args.maxrows}); use -n -1 for all.")
    if not args.quiet:
        display(item.value)


def push(m: HailMagics, args: argparse.Namespace, cell: Optional[str]) -> None:
    """``%hail push LOCALVAR [--as NAME] [--pandas] [--via auto|livy|staged]``: send a local value to the session."""
    if args.variable not in m.user_ns:
        raise HailMagicError(f"There is no local variable {args.variable!r} to push: define it in a normal cell.")
    ctx = m.ctx()
    m.wait_ready(ctx)
    from .. import transfer

    moving = TransferProgress("push", [args.as_name or args.variable], session_name=_session_name(ctx))
    with finishing(moving):
        try:
            summary = transfer.push(
                ctx.session, m.user_ns[args.variable], args.as_name or args.variable, as_pandas=args.pandas,
                on_chunk=moving.on_chunk, via=args.via, config=ctx.config,
            )
        except StatementError as exc:
            raise remote_error(exc.output, f"Pushing {args.variable} failed") from None
    if summary.get("note"):
        warn(f"{args.variable}: {summary['note']}")
    staged = f", staged as {summary['bytes'] / 1e6:.1f} MB of Parquet" if summary.get("via") == "staged" else ""
    moved = moving.moved(args.as_name or args.variable)
    print_text(f"{summary['name']}: pushed ({summary['type']}, {summary['shape']}{staged})"
               + (f"; moved {moved}" if moved else ""))
