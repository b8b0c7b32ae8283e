"""The ``%hail`` subcommands' flags: one argparse parser per subcommand, and the line splitting.

Parsers are IPython's :class:`~IPython.core.magic_arguments.MagicArgumentParser` (argparse that
raises ``UsageError`` instead of exiting the kernel); each also takes ``--help``, which prints
its help and stops. The registry (``registry.py``) names each parser with its subcommand; the
flags of ``%hail connect`` are the fields of :class:`~hail_emr_lab.notebook.connect.ConnectOptions`.
"""

from __future__ import annotations

import argparse
import typing
from dataclasses import MISSING
from typing import Any, Callable, Optional

from IPython.core.error import UsageError
from IPython.core.magic_arguments import MagicArgumentParser, MagicHelpFormatter
from IPython.utils.process import arg_split

from ..connect import connect_flags

#: Width of help and usage text (fixed, so the text does not depend on the kernel's terminal).
HELP_WIDTH = 100


class HelpShown(Exception):
    """``--help`` was shown: the subcommand has nothing else to do."""


class _Formatter(MagicHelpFormatter):
    """IPython's magic help layout with a plain ``usage: %`` prefix and a fixed width."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=HELP_WIDTH)

    def add_usage(self, usage: Any, actions: Any, groups: Any, prefix: Optional[str] = "usage: %") -> None:
        super().add_usage(usage, actions, groups, prefix)


class SubcommandParser(MagicArgumentParser):
    """The parser of one subcommand: ``prog`` is how it is typed without its ``%`` (``hail logs``)."""

    def __init__(self, prog: str, description: Optional[str] = None) -> None:
        super().__init__(prog=prog, description=description, formatter_class=_Formatter)
        # Not in the usage line, so usage errors read as before; %hail help says it exists.
        self.add_argument("--help", action="help", help=argparse.SUPPRESS)

    def exit(self, status: int = 0, message: Optional[str] = None) -> typing.NoReturn:  # type: ignore[override]
        # argparse exits only after --help (errors go to MagicArgumentParser.error): never the kernel.
        raise HelpShown()

    def usage_line(self) -> str:
        """The usage on one line, e.g. ``%hail logs [-n N]``."""
        return " ".join(self.format_usage().split()).removeprefix("usage: ")

    def parse(self, argv: list[str]) -> argparse.Namespace:
        """Parse ``argv``; a bad flag raises ``UsageError`` with the usage line."""
        try:
            return self.parse_args(argv)
        except UsageError as exc:
            raise UsageError(f"{exc}\n{self.usage_line()}\n(see %hail help)") from None


def split_line(line: str) -> list[str]:
    """The words of a magic line as IPython splits them for its own magics (quotes are kept)."""
    return arg_split(line, strict=True)


def _identifier(text: str) -> str:
    if not text.isidentifier():
        raise argparse.ArgumentTypeError(f"{text!r} is not a Python variable name")
    return text


def row_limit(text: str) -> Optional[int]:
    """``-n``: a row count; a negative one (sparkmagic's ``-n -1``) means every row (None)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"-n takes a number of rows (-1: all), got {text!r}") from None
    return None if n < 0 else n


def _kv(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--conf takes key=value, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


class _PutPair(argparse.Action):
    """``--conf key=value`` (repeatable) into one dict; a later key wins."""

    def __call__(self, parser: Any, namespace: argparse.Namespace, values: Any, option_string: Any = None) -> None:
        pairs = dict(getattr(namespace, self.dest, None) or {})  # a copy: the default is shared between parses
        key, value = values
        pairs[key] = value
        setattr(namespace, self.dest, pairs)


def _scalar(annotation: Any) -> Any:
    """``int`` for ``Optional[int]``; the annotation itself otherwise."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return args[0] if typing.get_origin(annotation) is typing.Union and len(args) == 1 else annotation


def connect_parser() -> SubcommandParser:
    """``%hail connect``: one flag per :class:`ConnectOptions` field, the flag's value in that field."""
    parser = SubcommandParser("hail connect")
    for spec, kind in connect_flags():
        meta = dict(spec.metadata)
        kwargs: dict[str, Any] = {"dest": spec.name, "help": meta.pop("help")}
        name = meta.pop("flag")
        default = spec.default if spec.default is not MISSING else spec.default_factory()  # type: ignore[misc]
        kind = _scalar(kind)
        if kind is bool:
            kwargs["action"] = "store_false" if default else "store_true"
        elif typing.get_origin(kind) is dict:
            kwargs.update(action=_PutPair, type=_kv, default=default)
        else:
            kwargs.update(type=kind if kind in (int, float) else None, default=default)
        parser.add_argument(name, **kwargs, **meta)
    return parser


def cell_parser() -> SubcommandParser:
    """``%%hail [options]``: the cell runs in the session."""
    p = SubcommandParser("%hail")
    p.add_argument("-o", "--output", action="append", default=[], type=_identifier,
                   help="pull remote variable NAME into the notebook (repeatable)")
    p.add_argument("-n", "--maxrows", type=row_limit, default=None, help="pull at most this many rows (default and -1: all)")
    p.add_argument("--timeout", type=float, default=None, help="cancel the statement after S seconds")
    p.add_argument("-q", "--quiet", action="store_true", help="show no output (errors still show)")
    p.add_argument("--no-plots", action="store_true", help="do not pull plots made by this cell")
    add_via(p, "-o")
    return p


def add_via(p: SubcommandParser, what: str) -> None:
    """The ``--via`` flag of ``-o`` and ``%hail push`` (choices: ``transfer.VIAS``)."""
    from ..transfer import VIAS

    p.add_argument("--via", choices=VIAS, default="auto",
                   help=f"how {what} moves frames: by estimated size against transfer_inline_max (default), "
                        "through Livy, or staged as Parquet")


def sql_parser() -> SubcommandParser:
    """``%%hail sql``: the cell is the query."""
    p = SubcommandParser("%hail sql")
    p.add_argument("-o", "--output", type=_identifier, default=None, help="keep the result as NAME (both sides)")
    p.add_argument("-n", "--maxrows", type=row_limit, default=1000, help="rows to pull (default 1000; -1: all)")
    p.add_argument("--timeout", type=float, default=None, help="cancel the statement after S seconds")
    p.add_argument("-q", "--quiet", action="store_true", help="keep the result, show no table")
    return p


def push_parser() -> SubcommandParser:
    """``%hail push``."""
    p = SubcommandParser("hail push")
    p.add_argument("variable", type=_identifier, help="local variable to send")
    p.add_argument("--as", dest="as_name", type=_identifier, default=None, help="name in the session")
    p.add_argument("--pandas", action="store_true", help="keep a DataFrame as pandas (default: Spark)")
    add_via(p, "push")
    return p


def logs_parser() -> SubcommandParser:
    """``%hail logs``."""
    p = SubcommandParser("hail logs")
    p.add_argument("-n", type=int, default=50, help="number of lines (default 50)")
    return p


def delete_parser() -> SubcommandParser:
    """``%hail delete``."""
    p = SubcommandParser("hail delete")
    p.add_argument("id", type=int, nargs="?", default=None, help="session id (default: the current one)")
    p.add_argument("--force", action="store_true", help="delete a session that is not yours")
    return p


def disconnect_parser() -> SubcommandParser:
    """``%hail disconnect``."""
    p = SubcommandParser("hail disconnect")
    p.add_argument("--delete", action="store_true", help="also delete the session on the server")
    return p


def clusters_parser() -> SubcommandParser:
    """``%hail clusters``."""
    p = SubcommandParser("hail clusters")
    p.add_argument("--region", default=None, help="AWS region (default: the configured one)")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for each Livy port (default 2)")
    return p


def ssm_parser() -> SubcommandParser:
    """``%hail ssm``."""
    p = SubcommandParser("hail ssm")
    p.add_argument("--command", required=True, help="shell command, run as root on the node")
    p.add_argument("--node", default="master", help="master (default), core, task or an instance id")
    p.add_argument("--cluster-id", default=None, help="EMR cluster id, j-... (default: the configured cluster)")
    p.add_argument("--cluster-name", default=None, help="name of an active EMR cluster")
    p.add_argument("--region", default=None, help="AWS region (default: the cluster's)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait (default 600)")
    return p


def plot_parser() -> SubcommandParser:
    """``%hail plot``."""
    p = SubcommandParser("hail plot")
    p.add_argument("name", help="plot file name (see %hail plots)")
    return p


def no_flags(name: str) -> Callable[[], SubcommandParser]:
    """The parser of a subcommand that takes no flags (only ``--help``)."""
    return lambda: SubcommandParser(f"hail {name}")


def strip_comment(line: str) -> str:
    """``line`` without its trailing ``# comment`` (IPython hands a line magic the whole line).

    The rule of a POSIX shell: ``#`` starts a comment only outside quotes and at the start of
    a word, so ``'a # b'``, ``"#x"``, ``a\\ #b`` and ``http://h/x#frag`` are kept as written.
    """
    quote = ""
    escaped = False
    word_start = True  # after an unquoted, unescaped blank (or at the start)
    for i, ch in enumerate(line):
        if escaped:
            escaped = word_start = False
        elif ch == "\\" and quote != "'":
            escaped, word_start = True, False
        elif quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote, word_start = ch, False
        elif ch == "#" and word_start:
            return line[:i].rstrip()
        else:
            word_start = ch.isspace()
    return line
