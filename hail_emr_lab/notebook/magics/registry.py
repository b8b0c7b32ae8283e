"""The ``%hail`` surface, declared once: every subcommand with its one-line help, parser and handler.

Dispatch (:meth:`Registry.route`), ``%hail help`` (:func:`help_text`) and each subcommand's
``--help`` all come from :data:`REGISTRY`; adding a subcommand is adding one entry here.
"""

from __future__ import annotations

import argparse
import shlex
import textwrap
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Callable, Iterator, Literal, Optional

from IPython.core.error import UsageError

from . import args as a
from . import cells, cluster, jobs, plot_views, session
from .render import print_text

if TYPE_CHECKING:
    from .core import HailMagics

#: ``handler(magics, parsed, cell)``: ``parsed`` is the parser's namespace (the line itself for a
#: ``raw`` subcommand), ``cell`` the cell body or None for a line magic.
Handler = Callable[["HailMagics", Any, Optional[str]], Any]


@dataclass(frozen=True)
class Subcommand:
    """One ``%hail`` subcommand.

    ``cell`` says whether it takes a cell body: ``"no"`` (``%hail NAME`` only), ``"optional"``
    (both), ``"required"`` (``%%hail NAME`` only). ``raw`` subcommands parse their line
    themselves with ``build_parser``'s parser (the batch jobs share the command line's).
    ``split`` turns the line into words; ``quote_hint`` says what to do when that fails.
    """

    name: str
    summary: str
    build_parser: Callable[[], argparse.ArgumentParser]
    handler: Handler
    cell: Literal["no", "optional", "required"] = "no"
    raw: bool = False
    split: Callable[[str], list[str]] = a.split_line
    quote_hint: str = "check the quotes"

    @cached_property
    def parser(self) -> argparse.ArgumentParser:
        """The argument parser (built on first use, so ``%load_ext`` stays fast)."""
        parser = self.build_parser()
        parser.description = parser.description or self.summary
        return parser

    @property
    def typed(self) -> str:
        """How it is typed: ``%hail logs``, ``%%hail sql`` or ``%%hail`` for the cell itself."""
        return ("%%hail" if self.cell == "required" or not self.name else "%hail") + (f" {self.name}" if self.name else "")

    def usage(self) -> str:
        """The usage line(s) shown by ``%hail help`` (wrapped at the help width)."""
        if self.raw:
            return f"{self.typed} ..." + (f" | %{self.typed} ..." if self.cell == "optional" else "")
        prefix = "usage: "  # argparse's; continuation lines are indented by its width too
        lines = self.parser.format_usage().rstrip("\n").splitlines()
        return "\n".join(line[len(prefix):] if line.startswith(prefix) or not line[:len(prefix)].strip() else line
                         for line in lines)

    def parse(self, line: str) -> Any:
        """The parsed line (``UsageError`` for bad flags or quotes; :class:`~.args.HelpShown` after ``--help``)."""
        if self.raw:
            return line
        try:
            words = self.split(line)
        except ValueError as exc:
            raise UsageError(f"{self.typed}: {exc}; {self.quote_hint}") from None
        return self.parser.parse(words)  # type: ignore[attr-defined]

    def run(self, magics: HailMagics, line: str, cell: Optional[str]) -> Any:
        """Parse ``line`` and call the handler."""
        return self.handler(magics, self.parse(line), cell)


class Registry:
    """The cell magic (``%%hail [options]``) and the named subcommands, in the order help lists them."""

    def __init__(self, cell: Subcommand, subcommands: list[Subcommand]):
        self.cell = cell
        self._by_name = {s.name: s for s in subcommands}
        if len(self._by_name) != len(subcommands) or "" in self._by_name:
            raise ValueError("subcommand names must be unique and not empty")

    def __iter__(self) -> Iterator[Subcommand]:
        """The cell magic, then every subcommand."""
        yield self.cell
        yield from self._by_name.values()

    def get(self, name: str) -> Optional[Subcommand]:
        """The subcommand called ``name``, or None."""
        return self._by_name.get(name)

    def line_names(self) -> list[str]:
        """Names usable as ``%hail NAME`` (not the cell-only ones)."""
        return [s.name for s in self._by_name.values() if s.cell != "required"]

    def route(self, line: str, cell: Optional[str]) -> tuple[Subcommand, str]:
        """``(subcommand, rest of the line)`` for a magic line (comment already stripped).

        A cell whose first word is no subcommand is the cell magic with the whole line as its
        flags. Raises ``UsageError`` for an unknown subcommand or the wrong number of ``%``.
        """
        first, _, rest = line.partition(" ")
        entry = self.get(first)
        if cell is not None:
            if entry is None:
                return self.cell, line
            if entry.cell == "no":
                raise UsageError(f"%%hail {first} is a line magic: use %hail {first} (one % sign)")
            return entry, rest
        if entry is None:
            raise UsageError(
                f"unknown %hail subcommand {first!r}; one of: {', '.join(self.line_names())} (see %hail help)"
            )
        if entry.cell == "required":
            raise UsageError(f"{entry.typed} runs as a cell magic: {entry.typed} in the first line, its input in the cell")
        return entry, rest


_INTRO = "%load_ext hail_emr_lab, then:\n"

_NOTES = """\
%hail NAME --help shows a subcommand's flags with their help.
Without a target, connect uses HAIL_EMR_LAB_LIVY_URL / HAIL_EMR_LAB_CLUSTER_ID / HAIL_EMR_LAB_SERVERLESS_APP,
~/.hail-emr-lab/config.json, ~/.sparkmagic/config.json, else the embedded local server.
connect --serverless-app APP_ID --execution-role ROLE_ARN uses an EMR Serverless application's Livy
endpoint, SigV4-signed with this notebook's AWS credentials (a stopped application is started).
Basic-auth password: --password-prompt asks for it, --password-file PATH or --password-env VAR
read it, or set HAIL_EMR_LAB_PASSWORD (or password_file in the config). --password P works but
leaves it in the notebook, its history and its backup.
-o pulls a Spark DataFrame, Hail Table or pandas DataFrame into a local pandas DataFrame with
exact dtypes; -n limits the rows (a warning says when rows were cut). Ctrl-C (interrupt the
kernel) cancels the statement on the cluster."""


def help_text(registry: Registry) -> str:
    """``%hail help``: every entry of ``registry`` (usage, then its one-line help), then notes."""
    out = [_INTRO]
    for entry in registry:
        out.append(textwrap.indent(entry.usage(), "  "))
        out.append(textwrap.indent(textwrap.fill(entry.summary, a.HELP_WIDTH - 6, break_on_hyphens=False), "      "))
    return "\n".join(out) + "\n\n" + _NOTES


def _show_help(magics: HailMagics, parsed: argparse.Namespace, cell: Optional[str]) -> None:
    print_text(help_text(REGISTRY))


#: The ``%hail`` surface. Order: as ``%hail help`` lists it (and the unknown-subcommand error).
REGISTRY = Registry(
    Subcommand("", "run the cell in the session on the cluster", a.cell_parser, cells.run_cell, cell="required"),
    [
        Subcommand("connect", "connect to a Livy endpoint (URL, EMR cluster, EMR Serverless application or the "
                   "embedded server) and start or reattach this notebook's session", a.connect_parser,
                   session.connect),
        Subcommand("info", "show the session: endpoint, state, Spark UI, versions on the cluster",
                   a.no_flags("info"), session.info),
        Subcommand("sessions", "list the sessions on the endpoint (yours marked)", a.no_flags("sessions"),
                   session.sessions),
        Subcommand("logs", "show the end of the session's Livy log", a.logs_parser, session.logs),
        Subcommand("cancel", "cancel the running statement", a.no_flags("cancel"), session.cancel),
        Subcommand("delete", "delete a Livy session (default: the current one)", a.delete_parser, session.delete),
        Subcommand("cleanup", "delete this notebook's sessions on the endpoint (every live one named as its session)", a.no_flags("cleanup"), session.cleanup),
        Subcommand("disconnect", "forget the session (it stays until Livy's heartbeat timeout, unless --delete)",
                   a.disconnect_parser, session.disconnect),
        Subcommand("config", "show the effective configuration and where each value came from", a.no_flags("config"),
                   session.config),
        Subcommand("help", "this list", a.no_flags("help"), _show_help),
        Subcommand("clusters", "list active EMR clusters and EMR Serverless applications with their Livy endpoint",
                   a.clusters_parser, cluster.clusters),
        Subcommand("push", "send a local pandas DataFrame, string, number or JSON-able value to the session",
                   a.push_parser, cells.push),
        Subcommand("plots", "list the plots in the cluster's plot directory", a.no_flags("plots"), plot_views.plots),
        Subcommand("plot", "pull and show one plot from the cluster's plot directory", a.plot_parser,
                   plot_views.plot),
        Subcommand("panel", "show the cluster, sessions, running statements, plots and backup as widgets",
                   a.no_flags("panel"), cluster.panel),
        Subcommand("submit", "submit a batch job: a file, or the cell as the script (%hail submit --help)",
                   jobs.parser, jobs.submit, cell="optional", raw=True),
        Subcommand("jobs", "list, follow, show the logs of or cancel batch jobs (%hail jobs --help)", jobs.parser,
                   jobs.jobs, raw=True),
        Subcommand("ssm", "run a shell command on a cluster node through AWS Systems Manager (an interactive "
                   "shell: hail-emr-lab ssm in a terminal)", a.ssm_parser, cluster.ssm, split=shlex.split,
                   quote_hint="quote the command once, e.g. --command 'df -h /mnt'"),
        Subcommand("sql", "run Spark SQL (the cell is the query) and show the result as a table", a.sql_parser,
                   cells.sql, cell="required"),
    ],
)
