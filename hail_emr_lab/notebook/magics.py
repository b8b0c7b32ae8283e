"""The ``%hail`` / ``%%hail`` IPython magics: argument parsing and display only.

The work is done by :mod:`hail_emr_lab.notebook.connect` (target, session), :mod:`hail_emr_lab.notebook.transfer`
(``-o`` and push), :mod:`hail_emr_lab.emr.discovery` (clusters) and the Livy client; this module turns
flags into calls and results into notebook output. Errors we expect are shown as one
paragraph (no local traceback) and still fail the cell, so "Run All" stops.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import re
import shlex
import sys
import time
from typing import Any, Optional

from IPython.core import magic_arguments
from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.display import HTML, Image, display

from ..errors import HailEmrLabError
from ..livy import (
    LivyHTTPError,
    SessionDead,
    StatementCancelled,
    StatementError,
    StatementInterrupted,
    transient_reason,
)
from ..progress import Progress
from ..redact import redact_url, split_userinfo
from . import connect as conn
from .cell_progress import StatementProgress
from .context import HailContext, current

SUBCOMMANDS = (
    "connect", "info", "sessions", "logs", "cancel", "delete", "cleanup", "disconnect", "config", "help",
    "clusters", "push", "plots", "plot", "panel", "submit", "jobs", "ssm",
)

HELP = """\
%load_ext hail_emr_lab, then:

  %hail connect [--url URL | --cluster-id j-... | --cluster-name NAME | --local] [--name NAME] [--new]
                [--auth none|basic|kerberos|sigv4 --user U --password-prompt] [--conf key=value ...]
                [--driver-memory 4g --executor-memory 8g --executor-cores 4 --num-executors 10]
                [--no-hail] [--no-plots] [--plots-url URL] [--heartbeat-timeout S]
  %hail connect --serverless-app APP_ID --execution-role ROLE_ARN [--region R]    EMR Serverless (Livy
                endpoint, SigV4-signed with this notebook's AWS credentials; starts a stopped application)
  %%hail [-o NAME ...] [-n MAXROWS] [--timeout S] [-q] [--no-plots]   run the cell on the cluster
  %%hail sql [-o NAME] [-n MAXROWS] [-q]                               run Spark SQL
  %hail push LOCALVAR [--as NAME] [--pandas]                           send a local value to the session
  %hail info | sessions | logs [-n N] | cancel | delete [ID] | cleanup | disconnect [--delete]
  %hail config | clusters | plots | plot NAME | panel | help
  %hail submit ... | %%hail submit ... | %hail jobs ...                batch jobs (see %hail submit --help)
  %hail ssm --command CMD [--node master|core|task|i-...] [--cluster-id j-...]
                                           run a shell command on a cluster node through AWS Systems Manager

Without a target, connect uses HAIL_EMR_LAB_LIVY_URL / HAIL_EMR_LAB_CLUSTER_ID / HAIL_EMR_LAB_SERVERLESS_APP,
~/.hail-emr-lab/config.json, ~/.sparkmagic/config.json, else the embedded local server.
Basic-auth password: --password-prompt asks for it, --password-file PATH or --password-env VAR
read it, or set HAIL_EMR_LAB_PASSWORD (or password_file in the config). --password P works but
leaves it in the notebook, its history and its backup.
-o pulls a Spark DataFrame, Hail Table or pandas DataFrame into a local pandas DataFrame with
exact dtypes; -n limits the rows (a warning says when rows were cut). Ctrl-C (interrupt the
kernel) cancels the statement on the cluster."""


#: Seconds of Livy not answering before the progress line says so (shorter blips stay quiet).
RETRY_NOTE_AFTER = 3.0


class HailMagicError(Exception):
    """A failed ``%hail`` command or cell, shown as its message only (no local traceback)."""

    def __init__(self, message: str, lines: Optional[list[str]] = None):
        super().__init__(message)
        self.lines = lines if lines is not None else [message]

    def _render_traceback_(self) -> list[str]:  # IPython shows these lines instead of a traceback
        return ["\x1b[0;31m" + line + "\x1b[0m" if i == 0 else line for i, line in enumerate(self.lines)]


class HailInterrupted(KeyboardInterrupt):
    """Ctrl-C during a ``%hail`` command: shown as its message only, still a KeyboardInterrupt."""

    def __init__(self, lines: list[str]):
        super().__init__(lines[0])
        self.lines = lines

    _render_traceback_ = HailMagicError._render_traceback_


def interrupted(exc: BaseException, what: str = "the cell") -> HailInterrupted:
    """The one message shown after Ctrl-C: was the statement cancelled, or does it go on?"""
    if not isinstance(exc, StatementInterrupted):
        return HailInterrupted([f"Interrupted. If {what} had already reached the cluster it may still run there: "
                                "%hail cancel stops it."])
    where = f"statement {exc.statement_id} of session {exc.session_id}"
    if exc.cancelled:
        return HailInterrupted([f"Interrupted: {what} was cancelled on the cluster ({where}; remote variables "
                                "are kept)."])
    return HailInterrupted([
        f"Interrupted, but {what} continues on the cluster ({where}): the cancel request failed.",
        f"Cancel request: {exc.problem}",
        "%hail cancel stops it once Livy answers; otherwise the next cell runs after it.",
    ])


# ---------------------------------------------------------------------- argument parsers


def _kv(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--conf takes key=value, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


def _identifier(text: str) -> str:
    if not text.isidentifier():
        raise argparse.ArgumentTypeError(f"{text!r} is not a Python variable name")
    return text


@magic_arguments.magic_arguments(name="hail connect")
@magic_arguments.argument("--url", help="Livy endpoint, e.g. http://10.0.0.5:8998")
@magic_arguments.argument("--cluster-id", help="EMR cluster id (j-...): find its Livy endpoint")
@magic_arguments.argument("--cluster-name", help="EMR cluster name: find its Livy endpoint")
@magic_arguments.argument("--local", action="store_true", help="start (or reuse) the embedded local server")
@magic_arguments.argument("--serverless-app", help="EMR Serverless application id: use its Livy endpoint")
@magic_arguments.argument("--execution-role", help="IAM role ARN the EMR Serverless session runs as")
@magic_arguments.argument("--region", help="AWS region for --cluster-id/--cluster-name/--serverless-app/sigv4")
@magic_arguments.argument("--auth", choices=["none", "basic", "kerberos", "sigv4"], help="Livy authentication")
@magic_arguments.argument("--sigv4-service", help="SigV4 signing name for --auth sigv4 (default emr-serverless)")
@magic_arguments.argument("--user", dest="username", help="user name for basic auth")
@magic_arguments.argument("--password", help="password for basic auth (stays in the notebook: prefer the next three)")
@magic_arguments.argument("--password-prompt", action="store_true", help="ask for the basic-auth password (not stored)")
@magic_arguments.argument("--password-file", help="read the basic-auth password from the first line of this file")
@magic_arguments.argument("--password-env", help="read the basic-auth password from this environment variable")
@magic_arguments.argument("--name", help="session name to share (default: one per notebook, from user and path)")
@magic_arguments.argument("--conf", action="append", default=[], type=_kv, help="Spark conf key=value (repeatable)")
@magic_arguments.argument("--driver-memory", help="Spark driver memory, e.g. 4g (Livy driverMemory)")
@magic_arguments.argument("--driver-cores", type=int, help="Spark driver cores (Livy driverCores)")
@magic_arguments.argument("--executor-memory", help="memory per executor, e.g. 8g (Livy executorMemory)")
@magic_arguments.argument("--executor-cores", type=int, help="cores per executor (Livy executorCores)")
@magic_arguments.argument("--num-executors", type=int, help="number of executors (Livy numExecutors)")
@magic_arguments.argument("--new", action="store_true", help="start a fresh session even if one can be reattached")
@magic_arguments.argument("--no-hail", action="store_true", help="do not run hl.init(sc) (nor set Hail's conf)")
@magic_arguments.argument("--hail-jar", help="path of hail-all-spark.jar on the cluster (default /opt/hail/...)")
@magic_arguments.argument("--no-plots", action="store_true", help="do not pull plots after cells")
@magic_arguments.argument("--plots-url", help="HTTP URL of the cluster's plot directory (Quick Start clusters)")
@magic_arguments.argument("--plots-dir", help="plot directory on the cluster (default /plots)")
@magic_arguments.argument("--heartbeat-timeout", type=int, help="seconds Livy keeps the session without us")
@magic_arguments.argument("--probe-timeout", type=float, default=3.0, help="seconds to wait for the Livy port")
@magic_arguments.argument("--wait", action="store_true", help="block until the session is ready")
def _connect_parser(line: str) -> None:
    """Connect to a Livy endpoint and start or reattach the session."""


@magic_arguments.magic_arguments(name="%hail")
@magic_arguments.argument("-o", "--output", action="append", default=[], type=_identifier,
                          help="pull remote variable NAME into the notebook (repeatable)")
@magic_arguments.argument("-n", "--maxrows", type=int, default=None, help="pull at most this many rows")
@magic_arguments.argument("--timeout", type=float, default=None, help="cancel the statement after S seconds")
@magic_arguments.argument("-q", "--quiet", action="store_true", help="show no output (errors still show)")
@magic_arguments.argument("--no-plots", action="store_true", help="do not pull plots made by this cell")
def _cell_parser(line: str) -> None:
    """Run the cell in the Livy session."""


@magic_arguments.magic_arguments(name="%hail sql")
@magic_arguments.argument("-o", "--output", type=_identifier, default=None, help="keep the result as NAME (both sides)")
@magic_arguments.argument("-n", "--maxrows", type=int, default=1000, help="rows to pull (default 1000; -1: all)")
@magic_arguments.argument("--timeout", type=float, default=None, help="cancel the statement after S seconds")
@magic_arguments.argument("-q", "--quiet", action="store_true", help="keep the result, show no table")
def _sql_parser(line: str) -> None:
    """Run Spark SQL in the session and show the result as a table."""


@magic_arguments.magic_arguments(name="hail push")
@magic_arguments.argument("variable", type=_identifier, help="local variable to send")
@magic_arguments.argument("--as", dest="as_name", type=_identifier, default=None, help="name in the session")
@magic_arguments.argument("--pandas", action="store_true", help="keep a DataFrame as pandas (default: Spark)")
def _push_parser(line: str) -> None:
    """Send a local pandas DataFrame, string, number or JSON-able value to the session."""


@magic_arguments.magic_arguments(name="hail logs")
@magic_arguments.argument("-n", type=int, default=50, help="number of lines (default 50)")
def _logs_parser(line: str) -> None:
    """Show the end of the session's Livy log."""


@magic_arguments.magic_arguments(name="hail delete")
@magic_arguments.argument("id", type=int, nargs="?", default=None, help="session id (default: the current one)")
@magic_arguments.argument("--force", action="store_true", help="delete a session that is not yours")
def _delete_parser(line: str) -> None:
    """Delete a Livy session."""


@magic_arguments.magic_arguments(name="hail disconnect")
@magic_arguments.argument("--delete", action="store_true", help="also delete the session on the server")
def _disconnect_parser(line: str) -> None:
    """Forget the session (it stays until Livy's heartbeat timeout, unless --delete)."""


@magic_arguments.magic_arguments(name="hail clusters")
@magic_arguments.argument("--region", default=None, help="AWS region (default: the configured one)")
@magic_arguments.argument("--timeout", type=float, default=2.0, help="seconds to wait for each Livy port (default 2)")
def _clusters_parser(line: str) -> None:
    """List active EMR clusters with their Livy URL and whether it answers."""


@magic_arguments.magic_arguments(name="hail ssm")
@magic_arguments.argument("--command", required=True, help="shell command, run as root on the node")
@magic_arguments.argument("--node", default="master", help="master (default), core, task or an instance id")
@magic_arguments.argument("--cluster-id", default=None, help="EMR cluster id, j-... (default: the configured cluster)")
@magic_arguments.argument("--cluster-name", default=None, help="name of an active EMR cluster")
@magic_arguments.argument("--region", default=None, help="AWS region (default: the cluster's)")
@magic_arguments.argument("--timeout", type=float, default=600.0, help="seconds to wait (default 600)")
def _ssm_parser(line: str) -> None:
    """Run a command on a cluster node through SSM Run Command (an interactive shell: hail-emr-lab ssm in a terminal)."""


@magic_arguments.magic_arguments(name="hail plot")
@magic_arguments.argument("name", help="plot file name (see %hail plots)")
def _plot_parser(line: str) -> None:
    """Pull and show one plot from the cluster's plot directory."""


@magic_arguments.magic_arguments(name="hail (no flags)")
def _noargs_parser(line: str) -> None:
    """A subcommand without options."""


def _password(args: Any) -> Optional[str]:
    """The password from --password-prompt/-file/-env, or a literal --password (with a warning)."""
    from ..config import password_from

    safe = password_from(args.password_prompt, args.password_file, args.password_env, user=args.username)
    if args.password and safe is not None:
        raise HailMagicError("Give the password one way only: --password or --password-prompt/-file/-env.")
    in_url = bool(args.url and (split_userinfo(args.url)[1] or ('', ''))[1])
    if args.password or in_url:
        where = "--password" if args.password else "a password in --url"
        _warn(f"Warning: {where} stays in this notebook, its IPython history and its S3 backup; use "
              "--password-prompt, --password-file PATH, --password-env VAR or HAIL_EMR_LAB_PASSWORD instead.")
    return safe if safe is not None else args.password


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


def _parse(parser_func: Any, line: str) -> Any:
    """Parse with magic_arguments; bad flags raise UsageError with the usage text."""
    try:
        return magic_arguments.parse_argstring(parser_func, line)
    except UsageError as exc:
        usage = " ".join(parser_func.parser.format_usage().replace("::", " ").split())
        raise UsageError(f"{exc}\n{usage}\n(see %hail help)") from None


# ---------------------------------------------------------------------- display helpers


def _print(text: str) -> None:
    print(text, flush=True)


def _warn(text: str) -> None:
    sys.stderr.write(text.rstrip("\n") + "\n")
    sys.stderr.flush()


#: What ``-o`` pulled, by the cluster's kind (remote/dataframe.py), as the user would name it.
_SOURCE_KINDS = {"spark": "Spark DataFrame", "hail": "Hail Table", "pandas": "pandas DataFrame"}


def _local_time(epoch: Any) -> str:
    """``YYYY-mm-dd HH:MM:SS`` in the notebook's local time for epoch seconds ('-' if unknown)."""
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(epoch)))
    except (TypeError, ValueError, OverflowError, OSError):
        return "-"


def _table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    import pandas as pd

    display(pd.DataFrame(rows, columns=columns))


def user_frames(traceback_lines: list[str], library_frames: int = 1) -> list[str]:
    """The frames of the user's own code in a remote traceback (cell code, not libraries).

    When the error was raised inside a library (Hail, Spark), its innermost ``library_frames``
    frames follow: often they are the only ones that say what went wrong (an ``assert`` in Hail).
    Our own helpers' frames are never shown.
    """
    text = "".join(traceback_lines)
    frames = re.split(r"(?m)^(?=  File \")", text)
    body = [f for f in frames[1:]]
    mine = [f for f in body if re.match(r'  File "<(?!hail_emr_lab|hail-emr-lab|frozen)[^"]*>"', f)]
    keep = mine or body[-1:]
    if mine and body[-1] is not mine[-1]:
        inner = [f for f in body[body.index(mine[-1]) + 1:] if not re.match(r'  File "<(hail_emr_lab|hail-emr-lab)', f)]
        shown = inner[-library_frames:] if library_frames > 0 else []
        if len(inner) > len(shown):
            keep = keep + [f"  ... {len(inner) - len(shown)} more frame(s) inside libraries ...\n"]
        keep = keep + shown
    out = []
    for frame in keep:
        lines = frame.rstrip("\n").splitlines()
        # A frame is 'File ..., line N, in f' plus its code line; the last one also has the error.
        out.extend(line for line in lines[:2] if line.strip())
    return out


def remote_error(output: Any, what: str = "The cell failed on the cluster") -> HailMagicError:
    """A one-paragraph error for a failed statement, with the user's frames."""
    ename, evalue = output.ename or "Error", (output.evalue or "").strip()
    lines = [f"{what}: {ename}: {evalue}"]
    # Without a message, the frames where it was raised are all there is to explain it.
    frames = user_frames(output.traceback, library_frames=1 if evalue else 3)
    if frames:
        lines += ["Remote traceback (your code):"] + frames
    if ename == "NameError":
        match = re.search(r"name '([^']+)' is not defined", evalue)
        var = match.group(1) if match else "it"
        lines.append(
            f"Names live on the cluster: define {var} in a %%hail cell, or send a local value with "
            f"%hail push {var}. If you reconnected, the old session's variables are gone."
        )
    return HailMagicError(lines[0], lines)


def _render_output(output: Any) -> None:
    data = output.data or {}
    table = output.table
    if table is not None:
        import pandas as pd

        headers = [h.get("name") for h in table.get("headers") or []]
        display(pd.DataFrame(table.get("data") or [], columns=headers))
        return
    if "image/png" in data:
        display(Image(data=base64.b64decode(data["image/png"]), format="png"))
    if "application/json" in data:
        value = data["application/json"]
        display({"application/json": value, "text/plain": json.dumps(value, indent=2)}, raw=True)
    if "text/html" in data:
        # HTML made on the cluster is untrusted: only ever inside a sandboxed iframe.
        doc = html.escape(str(data["text/html"]), quote=True)
        display(HTML(f'<iframe sandbox="allow-scripts" srcdoc="{doc}" style="width:100%;height:400px;border:0">'
                     "</iframe>"))
    text = output.text
    if text and "application/json" not in data:
        print(text.rstrip("\n"), flush=True)


# ---------------------------------------------------------------------- the magics


@magics_class
class HailMagics(Magics):
    """``%hail SUBCOMMAND ...`` and ``%%hail [options]`` (see ``%hail help``)."""

    def __init__(self, shell: Any):
        super().__init__(shell)
        self._connect_handle: Any = None

    # -------------------------------------------------------------- dispatch

    @line_cell_magic
    def hail(self, line: str = "", cell: Optional[str] = None) -> Any:
        """Run a subcommand (line magic) or the cell on the cluster (cell magic)."""
        line = strip_comment(line).strip()
        first, _, rest = line.partition(" ")
        if cell is not None:
            if first == "sql":
                return self._guard(self._sql, rest, cell)
            if first == "submit":
                return self._guard(self._jobs, "submit", rest, cell)
            if first in SUBCOMMANDS:
                raise UsageError(f"%%hail {first} is a line magic: use %hail {first} (one % sign)")
            return self._guard(self._run_cell, line, cell)
        if not first:
            _print(HELP)
            return None
        if first not in SUBCOMMANDS and first != "sql":
            raise UsageError(f"unknown %hail subcommand {first!r}; one of: {', '.join(SUBCOMMANDS)} (see %hail help)")
        if first == "sql":
            raise UsageError("SQL runs as a cell magic: %%hail sql, with the query in the cell")
        if first in ("submit", "jobs"):
            return self._guard(self._jobs, first, rest, None)
        return self._guard(getattr(self, "_cmd_" + first), rest)

    def _guard(self, func: Any, *args: Any) -> Any:
        """Turn our expected errors into one-paragraph cell errors."""
        try:
            return func(*args)
        except (HailMagicError, UsageError, HailInterrupted):
            raise
        except KeyboardInterrupt as exc:
            raise interrupted(exc, "the command") from None
        except SessionDead as exc:
            lines = str(exc).splitlines()  # already says why and what to do
            raise HailMagicError(lines[0], lines) from None
        except HailEmrLabError as exc:
            lines = str(exc).splitlines() or [type(exc).__name__]
            raise HailMagicError(lines[0], lines) from None

    # -------------------------------------------------------------- context

    def _ctx(self, auto_connect: bool = False) -> HailContext:
        ctx = current()
        if ctx.session is None:
            if not auto_connect:
                raise HailMagicError("Not connected: run %hail connect first (see %hail help).")
            _print("Not connected yet: connecting with the configuration (%hail connect)...")
            self._cmd_connect("")
            ctx = current()
        return ctx

    def _wait_ready(self, ctx: HailContext) -> None:
        startup = conn.startup_of(ctx)
        if startup is None or startup.ready:
            return
        bar = Progress("session")

        def tick(s: conn.Startup) -> None:
            bar.update(None, f"waiting for session {ctx.session.id}: {s.state}, {s.phase}")

        try:
            startup.wait(on_tick=tick)
        except KeyboardInterrupt:
            bar.close()
            raise HailMagicError(
                "Stopped waiting for the session (it keeps starting; the next cell waits again)."
            ) from None
        except StatementError as exc:
            bar.close()
            raise remote_error(exc.output, "Setting up the session failed") from None
        except conn.SetupError as exc:
            bar.close()
            raise remote_error(exc.output, "Setting up the session failed") from None
        bar.close()

    # -------------------------------------------------------------- connect

    def _cmd_connect(self, rest: str) -> None:
        args = _parse(_connect_parser, rest)
        password = _password(args)
        opts = conn.ConnectOptions(
            url=args.url, cluster_id=args.cluster_id, cluster_name=args.cluster_name, local=args.local,
            auth=args.auth, username=args.username, password=password, name=args.name, conf=dict(args.conf),
            driver_memory=args.driver_memory, driver_cores=args.driver_cores, executor_memory=args.executor_memory,
            executor_cores=args.executor_cores, num_executors=args.num_executors, new=args.new,
            hail=not args.no_hail, hail_jar=args.hail_jar, plots=not args.no_plots, plots_url=args.plots_url,
            plots_dir=args.plots_dir, heartbeat_timeout=args.heartbeat_timeout, region=args.region,
            probe_timeout=args.probe_timeout, serverless_app=args.serverless_app,
            execution_role=args.execution_role, sigv4_service=args.sigv4_service,
        )
        old = current()
        if old.session is not None:
            conn.disconnect(old)  # stop its heartbeat; the session itself stays (reattachable)
        handle = display({"text/plain": "connecting..."}, raw=True, display_id=True)

        def show(s: conn.Startup) -> None:
            ctx = s.ctx
            verb = "reattached to" if ctx.extras.get("reattached") else "started"
            state = s.state if s.state not in ("idle", "ready") else s.phase
            text = (f"hail: {verb} session {ctx.session.id} ({ctx.session.name}) on {redact_url(ctx.endpoint)} "
                    f"[{ctx.target}]: {state} ({s.elapsed:.0f} s)")
            if s.state == "ready" and s.versions:
                text += f" | Hail {s.versions.get('hail', '-')}, Spark {s.versions.get('spark')}"
            if s.error is not None:
                text += "\nThe next %%hail cell shows the error; %hail logs shows the session log."
            handle.update({"text/plain": text}, raw=True)

        def show_app(state: str, elapsed: float) -> None:  # an EMR Serverless application starting
            app = opts.serverless_app or "(from the configuration)"
            handle.update({"text/plain": f"hail: EMR Serverless application {app}: {state} ({elapsed:.0f} s)"}, raw=True)

        ctx = conn.connect(opts, on_change=show, on_app_state=show_app)
        show(ctx.extras["startup"])
        if args.wait:
            self._wait_ready(ctx)

    # -------------------------------------------------------------- running cells

    def _run_cell(self, line: str, cell: str) -> None:
        args = _parse(_cell_parser, line)
        ctx = self._ctx(auto_connect=True)
        self._wait_ready(ctx)
        output = self._run_code(ctx, cell, args.timeout, "the cell", quiet=args.quiet)
        if not output.ok:
            if ctx.plots is not None and not args.no_plots:
                self._after_cell(ctx, pull=True)  # plots made before the error still show
            raise remote_error(output)
        if not args.quiet:
            _render_output(output)
        if args.output:
            self._pull(ctx, args.output, args.maxrows, args.timeout, args.quiet)
        if ctx.plots is not None:
            self._after_cell(ctx, pull=not args.no_plots)

    def _run_code(self, ctx: HailContext, code: str, timeout: Optional[float], what: str, kind: Optional[str] = None,
                  quiet: bool = False):
        watch = StatementProgress(ctx.session)  # state and elapsed from the first second
        outcome = "error"

        def on_retry(failures: int, error: Any, seconds: float) -> None:
            # Quiet for a blip; after a few seconds say why the cell seems stuck.
            if error is None or seconds >= RETRY_NOTE_AFTER:
                watch.bar.note(error and f"Livy {transient_reason(error)}, retrying ({failures})")

        try:
            output = ctx.session.run(code, kind=kind, timeout=timeout, on_progress=watch.on_progress,
                                     on_retry=on_retry)
            outcome = "ok" if output.ok else "error"
            return output
        except LivyHTTPError as exc:
            # Livy answers 400 "Session is in state error" to a statement for a dead session.
            dead = conn.dead_session_error(ctx.session)
            if dead is not None:
                raise dead from None
            raise exc from None
        except KeyboardInterrupt as exc:
            outcome = "interrupted"
            watch.finish(outcome)
            raise interrupted(exc, what) from None
        except StatementCancelled as exc:
            outcome = "cancelled"
            raise HailMagicError(f"{what.capitalize()} was cancelled on the cluster ({exc}).") from None
        finally:
            watch.finish(outcome, quiet)  # a plain record of how it ended, no live widget left behind

    def _after_cell(self, ctx: HailContext, pull: bool) -> None:
        try:
            plots = ctx.plots.after_cell(pull=pull)
        except HailEmrLabError as exc:
            _warn(f"hail: pulling plots failed: {exc}")
            return
        if pull:
            self._show_plots(plots)

    @staticmethod
    def _show_plots(plots: list[Any]) -> None:
        if not plots:
            return
        from ..plots.manager import display_plot

        for plot in plots:
            display_plot(plot)

    def _pull(self, ctx: HailContext, names: list[str], limit: Optional[int], timeout, quiet: bool) -> None:
        from . import transfer

        bar = Progress("pull")

        def on_chunk(name: str, done: int, total: int) -> None:
            bar.update(done / total, f"pulling {name}: {done / 1e6:.1f} of {total / 1e6:.1f} MB")

        try:
            results = transfer.pull(ctx.session, names, limit=limit, timeout=timeout, on_chunk=on_chunk)
        except StatementError as exc:
            raise remote_error(exc.output, "Pulling " + ", ".join(names) + " failed") from None
        finally:
            bar.close()
        for item in results:
            self.shell.user_ns[item.name] = item.value
            if item.truncated:
                _warn(
                    f"Warning: {item.name} was cut to its first {item.rows:,} rows (-n {limit}); the remote "
                    f"{item.kind} has more. Use -n with a larger number, or no -n for all rows."
                )
            if not quiet:
                if hasattr(item.value, "columns"):
                    source = _SOURCE_KINDS.get(item.kind, item.kind)
                    what = (f"{len(item.value):,} rows x {len(item.value.columns)} columns from the {source} "
                            f"`{item.name}`")
                else:
                    what = f"the {type(item.value).__name__} `{item.name}`"
                _print(f"{item.name}: pulled {what} ({item.format}, {item.wire_chars / 1e6:.2f} MB on the wire)")

    def _sql(self, line: str, cell: str) -> None:
        args = _parse(_sql_parser, line)
        ctx = self._ctx(auto_connect=True)
        self._wait_ready(ctx)
        name = args.output or "_hel_sql_result"
        code = f"{name} = spark.sql({cell.strip()!r})"
        output = self._run_code(ctx, code, args.timeout, "the query")
        if not output.ok:
            raise remote_error(output, "The query failed")
        limit = None if args.maxrows is not None and args.maxrows < 0 else args.maxrows
        from . import transfer

        try:
            (item,) = transfer.pull(ctx.session, [name], limit=limit, timeout=args.timeout)
        except StatementError as exc:
            raise remote_error(exc.output, "Fetching the query result failed") from None
        if args.output:
            self.shell.user_ns[args.output] = item.value
        if item.truncated:
            _warn(f"Warning: showing the first {item.rows:,} rows only (-n {args.maxrows}); use -n -1 for all.")
        if not args.quiet:
            display(item.value)

    # -------------------------------------------------------------- data

    def _cmd_push(self, rest: str) -> None:
        args = _parse(_push_parser, rest)
        if args.variable not in self.shell.user_ns:
            raise HailMagicError(f"There is no local variable {args.variable!r} to push: define it in a normal cell.")
        ctx = self._ctx()
        self._wait_ready(ctx)
        from . import transfer

        bar = Progress("push")
        try:
            summary = transfer.push(
                ctx.session, self.shell.user_ns[args.variable], args.as_name or args.variable, as_pandas=args.pandas,
                on_chunk=lambda n, d, t: bar.update(d / t, f"pushing {n}: {d / 1e6:.1f} of {t / 1e6:.1f} MB"),
            )
        except StatementError as exc:
            raise remote_error(exc.output, f"Pushing {args.variable} failed") from None
        finally:
            bar.close()
        _print(f"{summary['name']}: pushed ({summary['type']}, {summary['shape']})")

    # -------------------------------------------------------------- managing

    def _cmd_help(self, rest: str) -> None:
        _print(HELP)

    def _cmd_info(self, rest: str) -> None:
        _parse(_noargs_parser, rest)
        ctx = self._ctx()
        startup = conn.startup_of(ctx)
        info = ctx.session.info()
        dead = ctx.session.dead_error(info.state)
        if dead is not None:
            raise dead
        versions = ctx.extras.get("versions") or {}
        rows = [
            ("endpoint", redact_url(ctx.endpoint)), ("found by", ctx.target), ("session id", info.id), ("name", info.name),
            ("state", info.state.value), ("setup", startup.phase if startup else "-"),
            ("reattached", "yes" if ctx.extras.get("reattached") else "no"), ("app id", info.app_id or "-"),
            ("Spark UI", info.spark_ui_url or "-"), ("driver log", info.driver_log_url or "-"),
            ("Hail", versions.get("hail", "-")), ("Spark", versions.get("spark", "-")),
            ("Python (cluster)", versions.get("python", "-")),
            ("pyarrow (cluster)", {True: "yes", False: "no"}.get(versions.get("pyarrow"), "-")),
        ]
        width = max(len(k) for k, _ in rows)
        _print("\n".join(f"{k.ljust(width)}  {v}" for k, v in rows))
        if info.spark_ui_url:
            display(HTML(f'<a href="{html.escape(info.spark_ui_url)}" target="_blank" rel="noopener">Spark UI</a>'))

    def _cmd_sessions(self, rest: str) -> None:
        _parse(_noargs_parser, rest)
        ctx = self._ctx()
        own_name = ctx.session.name
        rows = []
        for s in ctx.client.list_sessions():
            mark = "current" if s.id == ctx.session.id else ("yours" if s.name == own_name else "")
            rows.append({"id": s.id, "name": s.name, "state": s.state.value, "kind": s.kind, "app id": s.app_id,
                         "owner": s.owner, "mine": mark})
        if not rows:
            _print(f"No sessions on {redact_url(ctx.endpoint)}.")
            return
        _table(rows, ["id", "name", "state", "kind", "app id", "owner", "mine"])

    def _cmd_logs(self, rest: str) -> None:
        args = _parse(_logs_parser, rest)
        ctx = self._ctx()
        lines = ctx.session.log(args.n)
        _print("\n".join(lines) if lines else "(the session log is empty)")

    def _cmd_cancel(self, rest: str) -> None:
        _parse(_noargs_parser, rest)
        ctx = self._ctx()
        if ctx.session.cancel():
            _print(f"Cancelled the running statement of session {ctx.session.id}.")
        else:
            _print(f"Nothing is running in session {ctx.session.id}.")

    def _cmd_delete(self, rest: str) -> None:
        args = _parse(_delete_parser, rest)
        ctx = self._ctx()
        sid = ctx.session.id if args.id is None else args.id
        if sid == ctx.session.id:
            conn.disconnect(ctx, delete=True)
            _print(f"Deleted session {sid}; its remote variables are gone. %hail connect starts a new one.")
            return
        sessions = {s.id: s for s in ctx.client.list_sessions()}
        if sid not in sessions:
            raise HailMagicError(f"There is no session {sid} on {redact_url(ctx.endpoint)} (see %hail sessions).")
        if sessions[sid].name != ctx.session.name and not args.force:
            raise HailMagicError(
                f"Session {sid} ({sessions[sid].name}) is not yours (yours are named {ctx.session.name!r}); "
                "add --force to delete it anyway."
            )
        ctx.client.delete_session(sid)
        _print(f"Deleted session {sid}.")

    def _cmd_cleanup(self, rest: str) -> None:
        _parse(_noargs_parser, rest)
        ctx = self._ctx()
        ids = conn.own_session_ids(ctx)
        for sid in ids:
            if sid != ctx.session.id:
                ctx.client.delete_session(sid)
        if ctx.session.id in ids or not ids:
            conn.disconnect(ctx, delete=True)
        _print(f"Deleted {len(ids)} session(s) named {ctx.session.name!r}: {ids or 'none'}. "
               "%hail connect starts a new one.")

    def _cmd_disconnect(self, rest: str) -> None:
        args = _parse(_disconnect_parser, rest)
        ctx = current()
        if ctx.session is None:
            _print("Not connected.")
            return
        sid = ctx.session.id
        conn.disconnect(ctx, delete=args.delete)
        if args.delete:
            _print(f"Disconnected and deleted session {sid}.")
        else:
            _print(f"Disconnected from session {sid}; it stays until Livy's heartbeat timeout, so "
                   "%hail connect can reattach to it.")

    def _cmd_config(self, rest: str) -> None:
        _parse(_noargs_parser, rest)
        ctx = current()
        from ..config import load_config

        config = load_config() if ctx.session is None else ctx.config
        rows = [{"key": k, "value": v["value"], "source": v["source"]} for k, v in config.as_dict().items()]
        _table(rows, ["key", "value", "source"])
        unknown = config.values.get("_unknown_keys")
        if unknown:
            _warn(f"Warning: unknown keys in the config file are ignored: {', '.join(unknown)}")

    def _cmd_clusters(self, rest: str) -> None:
        args = _parse(_clusters_parser, rest)
        from ..emr.cli import format_serverless_table, serverless_rows
        from ..emr.discovery import list_clusters

        rows = list_clusters(region=args.region, probe_timeout=args.timeout)
        apps, note = serverless_rows(args.region)
        if not rows:
            _print("No active EMR clusters in this region.")
        for r in rows:
            r["answers"] = "yes" if r.get("reachable") else f"no ({r.get('problem') or '?'})"
        if rows:
            _table(rows, ["cluster_id", "name", "state", "livy_url", "answers"])
        _print(format_serverless_table(apps, note))

    def _cmd_ssm(self, rest: str) -> None:
        # Shell quoting, so that --command 'df -h /mnt' reaches the node without its quotes.
        try:
            args = _ssm_parser.parser.parse_args(shlex.split(rest))
        except ValueError as exc:
            raise UsageError(f"%hail ssm: {exc}; quote the command once, e.g. --command 'df -h /mnt'") from None
        except UsageError as exc:
            usage = " ".join(_ssm_parser.parser.format_usage().replace("::", " ").split())
            raise UsageError(f"{exc}\n{usage}\n(see %hail help)") from None
        from ..emr import ssm  # imported when asked: %load_ext stays fast

        cluster, nodes = ssm.cluster_nodes(args.cluster_id, args.cluster_name, region=args.region)
        region = args.region or ssm.cluster_region(cluster)
        node = ssm.pick_node(nodes, args.node, cluster["Id"])
        ssm.require_managed(node, cluster["Id"], region)
        result = ssm.run_command(ssm.ssm_client(region=region), node, args.command, timeout=args.timeout)
        sys.stdout.write(result.stdout)
        sys.stdout.flush()
        if result.stderr:
            _warn(result.stderr)
        note = ssm.truncated_note(result)
        if note:
            _warn(note)
        if not result.finished:
            raise HailMagicError(ssm.still_running_message(result, region))
        _print(f"[{node.instance_id} {node.group}: {result.status}, exit code {result.exit_code}]")
        if result.exit_code != 0:
            raise HailMagicError(f"the command exited with code {result.exit_code} on {node.instance_id} ({node.group})")

    def _plots(self) -> Any:
        ctx = self._ctx()
        if ctx.plots is None:
            raise HailMagicError(
                "Plots are not available in this connection (connected with --no-plots, or the plots module is "
                "missing): reconnect without --no-plots."
            )
        self._wait_ready(ctx)
        return ctx.plots

    def _cmd_plots(self, rest: str) -> None:
        _parse(_noargs_parser, rest)
        plots = self._plots().list_remote()
        if not plots:
            _print("No plots on the cluster yet: save them to PLOTS_DIR (e.g. save_plot(fig, 'name')).")
            return
        rows = [{"name": p.name, "bytes": p.size, "modified": _local_time(p.mtime), "sha256": (p.sha256 or "-")[:12]}
                for p in plots]
        _table(rows, ["name", "bytes", "modified", "sha256"])

    def _cmd_plot(self, rest: str) -> None:
        args = _parse(_plot_parser, rest)
        plot = self._plots().pull(args.name)
        self._show_plots([plot])

    def _cmd_panel(self, rest: str) -> None:
        _parse(_noargs_parser, rest)
        from .panel import show_panel  # imported when asked: %load_ext stays fast

        show_panel()

    def _jobs(self, sub: str, rest: str, cell: Optional[str]) -> Any:
        from ..jobs.notebook import run_magic

        return run_magic(sub, rest, cell)


# ---------------------------------------------------------------------- extension hooks


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics (``%load_ext hail_emr_lab``)."""
    ipython.register_magics(HailMagics)


def unload_ipython_extension(ipython: Any) -> None:
    """Stop the heartbeat of the current session (the session itself stays reattachable)."""
    ctx = current()
    if ctx.session is not None:
        ctx.session.close()
