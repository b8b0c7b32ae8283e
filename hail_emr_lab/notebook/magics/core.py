"""The ``%hail`` / ``%%hail`` magic: dispatch through the registry, and what every handler shares.

Handlers (``cells``, ``session``, ``cluster``, ``plot_views``, ``jobs``) get the
:class:`HailMagics` instance for the kernel's namespace, the connection (:meth:`HailMagics.ctx`),
waiting for the session (:meth:`HailMagics.wait_ready`) and running a statement with its
progress line (:meth:`HailMagics.run_code`). Errors we expect are shown as one paragraph.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class

from ...errors import HailEmrLabError
from ...livy import LivyHTTPError, Output, SessionDead, StatementCancelled, StatementError, transient_reason
from .. import connect as conn
from ..cell_progress import StatementProgress
from ..context import HailContext, current
from ..progress import Progress
from .args import HelpShown, strip_comment
from .errors import HailInterrupted, HailMagicError, interrupted, remote_error
from .registry import REGISTRY, help_text
from .render import print_text

#: Seconds of Livy not answering before the progress line says so (shorter blips stay quiet).
RETRY_NOTE_AFTER = 3.0


@magics_class
class HailMagics(Magics):
    """``%hail SUBCOMMAND ...`` and ``%%hail [options]`` (see ``%hail help``)."""

    @line_cell_magic
    def hail(self, line: str = "", cell: Optional[str] = None) -> Any:
        """Run a subcommand (line magic) or the cell on the cluster (cell magic)."""
        line = strip_comment(line).strip()
        if cell is None and not line:
            print_text(help_text(REGISTRY))
            return None
        entry, rest = REGISTRY.route(line, cell)
        try:
            return self.guard(entry.run, self, rest, cell)
        except HelpShown:
            return None

    @property
    def user_ns(self) -> dict[str, Any]:
        """The notebook's variables."""
        return self.shell.user_ns

    def guard(self, func: Callable[..., Any], *args: Any) -> Any:
        """Call ``func``, turning our expected errors into one-paragraph cell errors."""
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

    def ctx(self, auto_connect: bool = False) -> HailContext:
        """The connection; with ``auto_connect``, ``%hail connect`` with the configuration first."""
        ctx = current()
        if ctx.session is None:
            if not auto_connect:
                raise HailMagicError("Not connected: run %hail connect first (see %hail help).")
            print_text("Not connected yet: connecting with the configuration (%hail connect)...")
            connect = REGISTRY.get("connect")
            assert connect is not None
            connect.run(self, "", None)
            ctx = current()
        return ctx

    def wait_ready(self, ctx: HailContext) -> None:
        """Block (with a progress line) until the session's setup is done; raise what failed."""
        startup = ctx.startup
        if startup is None or startup.ready:
            return
        bar = Progress("session")

        def tick(s: conn.Startup) -> None:
            bar.update(None, f"waiting for session {ctx.session.id}: {s.state}, {s.phase}")

        try:
            startup.wait(on_tick=tick)
        except KeyboardInterrupt:
            raise HailMagicError(
                "Stopped waiting for the session (it keeps starting; the next cell waits again)."
            ) from None
        except (StatementError, conn.SetupError) as exc:
            raise remote_error(exc.output, "Setting up the session failed") from None
        finally:
            bar.close()

    def run_code(self, ctx: HailContext, code: str, timeout: Optional[float], what: str,
                 kind: Optional[str] = None, quiet: bool = False) -> Output:
        """Run ``code`` in the session with the cell's progress line; ``what`` names it in messages.

        Ctrl-C cancels it on the cluster (:class:`HailInterrupted`); a dead session, a
        cancelled statement and Livy errors are raised as their one-paragraph errors.
        """
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
