"""A high-level Livy session: start or reattach, wait until ready, run code, cancel.

``LivySession`` is what the magics, the jobs and the plots use; it knows nothing of
IPython. Waiting is done by polling that is fast for short statements and gentle for long
ones: the first check comes ~2 ms after submitting, then the interval grows by 1.2x per
poll to a cap of 0.5 s, so a statement is seen done at most ~20% after it finished (until
the cap), with about 25 requests in its first second and 2 per second after that.

While Livy does not answer (502/503/504 from a gateway, connection resets, timeouts) a wait
keeps polling with backoff (0.5 s doubling to 5 s between attempts) and reports each failed
attempt to ``on_retry``; only when that lasts longer than ``retry_timeout`` (default 120 s)
does it give up, with :class:`StatementInDoubt` naming the statement that may still run.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from typing import Any, Callable, Optional

from .client import LivyClient
from .errors import (
    LivyError,
    LivyHTTPError,
    LivyNotFound,
    LivyTimeout,
    LivyUnreachable,
    SessionDead,
    StatementCancelled,
    StatementError,
    StatementInDoubt,
    StatementInterrupted,
)
from .models import Output, Session, Statement
from .polling import Outage, RetryCallback, give_up_after, poll_intervals, ride_out
from .protocol import SessionState, StatementState

LOG_TAIL = 40
#: Seconds a wait rides out Livy not answering before it gives up (config ``livy_retry_timeout``).
RETRY_TIMEOUT = 120.0

#: The heartbeat touches a session every ``heartbeat_timeout / HEARTBEATS_PER_TIMEOUT`` seconds.
HEARTBEATS_PER_TIMEOUT = 3
#: Livy's ``livy.server.session.timeout`` default (EMR keeps it): idle sessions are deleted after 1 h.
LIVY_IDLE_TIMEOUT = 3600.0
#: What a session log says when a session crashed, and what it means for the user (first match wins).
CRASH_HINTS = (
    (r"OutOfMemoryError|Java heap space|GC overhead limit exceeded",
     "the driver ran out of memory (reconnect with a larger --driver-memory)"),
    (r"exceeding (physical |virtual )?memory limits|Container killed on request\. Exit code is 137",
     "YARN killed its container for using more memory than allowed (reconnect with a larger --driver-memory)"),
    (r"exited with code -9\b|killed by signal 9|SIGKILL",
     "its interpreter was killed (signal 9, often the out-of-memory killer)"),
    (r"exited with code (-?\d+)", "its interpreter exited (code {0})"),
    (r"Interpreter died|Python interpreter (died|exited)", "its Python interpreter died"),
)

def _span(seconds: float) -> str:
    """``"45 s"``, ``"12 min"``, ``"3.5 h"``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def death_reason(
    state: SessionState,
    log_tail: list[str],
    gone: bool,
    starting: bool = False,
    silent_for: Optional[float] = None,
    heartbeat_timeout: Optional[float] = None,
    idle_for: float = 0.0,
) -> str:
    """Why a session ended, in one phrase starting with the kind: heartbeat lost / idle timeout /
    killed / crashed / failed to start.

    ``gone``: Livy answers 404 (it deleted the session, so no log is left: the reason is
    inferred from what this client knows). ``silent_for``: seconds since our heartbeat last
    reached Livy; ``idle_for``: seconds since our last statement. Otherwise the log tail is
    searched for known causes (``CRASH_HINTS``). Livy's own rules (Apache Livy configuration
    docs): a session is deleted when no heartbeat came for ``heartbeatTimeoutInSecond``, or when
    idle longer than ``livy.server.session.timeout``.
    """
    if gone:
        if heartbeat_timeout and silent_for is not None and silent_for > heartbeat_timeout:
            return (
                f"heartbeat lost: this kernel did not reach Livy for {_span(silent_for)}, longer than the session's "
                f"heartbeat timeout ({_span(heartbeat_timeout)}), so Livy deleted it (the notebook instance was "
                "stopped or asleep, or the network was down)"
            )
        if idle_for >= LIVY_IDLE_TIMEOUT * 0.9:
            return (
                f"idle timeout: no statement ran for {_span(idle_for)}, and Livy deletes sessions idle for longer "
                f"than livy.server.session.timeout ({_span(LIVY_IDLE_TIMEOUT)} by default)"
            )
        return (
            "killed: it was deleted (by %hail delete or the sidebar from another notebook, by an administrator, or "
            "by a restart of Livy)"
        )
    text = "\n".join(log_tail)
    prefix = "failed to start: " if starting else "crashed: "
    for pattern, why in CRASH_HINTS:
        match = re.search(pattern, text)
        if match:
            return prefix + why.format(*match.groups())
    if state is SessionState.KILLED:
        return "killed: it was stopped (deleted, or its YARN application was killed)"
    if state is SessionState.SHUTTING_DOWN:
        return "it is shutting down (deleted, or stopped by Livy)"
    return prefix + "see the last log lines below" if log_tail else prefix + "Livy kept no log of why"


class Heartbeat:
    """Touches a session (GET) every ``interval`` seconds while the client lives.

    Livy reaps a session created with ``heartbeatTimeoutInSecond`` when nobody touched it for
    that long; this thread is what keeps ours alive, and its absence (a dead kernel) is what
    lets Livy clean up.
    """

    def __init__(self, client: LivyClient, session_id: int, interval: float):
        self._client = client
        self._session_id = session_id
        self._interval = max(1.0, interval)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"livy-heartbeat-{session_id}", daemon=True)
        self.beats = 0
        self.last_error: Optional[str] = None
        #: Wall-clock time (``time.time()``, so a suspended machine counts) of the last beat Livy
        #: answered, and of the first beat that found the session gone.
        self.last_ok = time.time()
        self.gone_at: Optional[float] = None

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._client.get_session(self._session_id)
                self.beats += 1
                self.last_error = None
                self.last_ok = time.time()
            except LivyNotFound:
                self.gone_at = time.time()
                return  # the session is gone: nothing left to keep alive
            except LivyError as exc:
                self.last_error = str(exc)  # transient; the next beat may succeed


class LivySession:
    """One interactive Livy session.

    Create with :meth:`create`, find again with :meth:`reattach`, or do either with
    :meth:`connect`. Use as a context manager to delete the session on exit.
    """

    def __init__(
        self,
        client: LivyClient,
        session_id: int,
        name: Optional[str] = None,
        heartbeat_interval: Optional[float] = None,
        kind: str = "pyspark",
    ):
        self.client = client
        self.id = session_id
        self.name = name
        self.kind = kind
        self.last_statement_id: Optional[int] = None
        self.current_statement_id: Optional[int] = None
        self._heartbeat: Optional[Heartbeat] = None
        self._ready = False
        #: Seconds a wait rides out Livy not answering (gateway errors, resets) before giving up.
        self.retry_timeout = RETRY_TIMEOUT
        #: Wall-clock time of our last statement (submitted or finished): for "idle timeout".
        self.last_activity = time.time()
        self.heartbeat_timeout = heartbeat_interval * HEARTBEATS_PER_TIMEOUT if heartbeat_interval else None
        if heartbeat_interval:
            self._heartbeat = Heartbeat(client, session_id, heartbeat_interval).start()

    # ------------------------------------------------------------------ creation

    @classmethod
    def create(
        cls,
        client: LivyClient,
        name: Optional[str] = None,
        kind: str = "pyspark",
        conf: Optional[dict[str, str]] = None,
        heartbeat_timeout: Optional[int] = None,
        **fields: Any,
    ) -> LivySession:
        """Start a new session (returns at once; use :meth:`wait_ready`).

        ``fields`` are Livy's session fields (jars, pyFiles, files, archives, driverMemory,
        driverCores, executorMemory, executorCores, numExecutors, queue, proxyUser); only the
        ones that are set are sent. With ``heartbeat_timeout`` Livy reaps the session when this
        client stops touching it, and a heartbeat thread touches it every third of that time.
        """
        info = client.create_session(
            name=name, kind=kind, conf=conf or None, heartbeatTimeoutInSecond=heartbeat_timeout, **fields
        )
        interval = heartbeat_timeout / HEARTBEATS_PER_TIMEOUT if heartbeat_timeout else None
        return cls(client, info.id, name=info.name or name, heartbeat_interval=interval, kind=kind)

    @classmethod
    def find(cls, client: LivyClient, name: str, usable_only: bool = True) -> Optional[Session]:
        """The newest session called ``name`` that is alive (idle, busy or starting)."""
        candidates = [
            s for s in client.list_sessions() if s.name == name and (s.state.is_alive if usable_only else True)
        ]
        return max(candidates, key=lambda s: s.id) if candidates else None

    @classmethod
    def reattach(cls, client: LivyClient, name: str, heartbeat_timeout: Optional[int] = None) -> Optional[LivySession]:
        """Pick up the live session called ``name`` (e.g. after a kernel restart), or None.

        The newest statement id at attach time is recorded, so a submit whose answer is lost
        is reconciled only against statements submitted after we attached (never against an
        identical statement run earlier by us or anybody else).
        """
        found = cls.find(client, name)
        if found is None:
            return None
        newest = client.list_statements(found.id, size=1, order="desc")
        interval = heartbeat_timeout / HEARTBEATS_PER_TIMEOUT if heartbeat_timeout else None
        session = cls(client, found.id, name=found.name, heartbeat_interval=interval, kind=found.kind or "pyspark")
        session.last_statement_id = newest[0].id if newest else -1
        session.reattached = True
        return session

    @classmethod
    def connect(cls, client: LivyClient, name: str, new: bool = False, **create_args: Any) -> LivySession:
        """Reattach to the session called ``name`` unless ``new``; else create it.

        Sessions called ``name`` that have ended are deleted first (ids in ``cleared`` of the
        result): Livy keeps an ended session's name taken until it forgets the session
        (``livy.server.session.state-retain.sec``, 600 s by default), so creating it again would
        fail with "Duplicate session name" right after a crash.
        """
        if not new:
            found = cls.reattach(client, name, heartbeat_timeout=create_args.get("heartbeat_timeout"))
            if found is not None:
                return found
        cleared = cls._clear_ended(client, name)
        session = cls.create(client, name=name, **create_args)
        session.cleared = cleared
        return session

    @staticmethod
    def _clear_ended(client: LivyClient, name: str) -> tuple[int, ...]:
        """Delete the ended sessions called ``name``; their ids."""
        ended = tuple(s.id for s in client.list_sessions() if s.name == name and not s.state.is_alive)
        for sid in ended:
            try:
                client.delete_session(sid)
            except LivyNotFound:
                continue  # Livy forgot it meanwhile: the name is free all the same
        return ended

    reattached = False
    #: Ended sessions of the same name deleted by :meth:`connect` to free the name.
    cleared: tuple[int, ...] = ()

    # ------------------------------------------------------------------ state

    def info(self) -> Session:
        """The session object from Livy (also a heartbeat); SessionDead if Livy no longer knows it."""
        try:
            return self.client.get_session(self.id)
        except LivyNotFound:
            raise self._dead(SessionState.DEAD) from None

    def state(self) -> SessionState:
        """The session's state right now."""
        return self.client.session_state(self.id)

    def log(self, n: int = 100) -> list[str]:
        """The last ``n`` lines of the session log; SessionDead if Livy no longer knows the session."""
        try:
            return self.client.session_log(self.id, size=n)
        except LivyNotFound:
            raise self._dead(SessionState.DEAD) from None

    def dead_error(self, state: Optional[SessionState] = None) -> Optional[SessionDead]:
        """A :class:`SessionDead` saying why and what to do if the session is over, else None.

        ``state`` is the state the caller saw (asked from Livy when None).
        """
        state = self.state_or_dead() if state is None else state
        return None if state.is_alive else self._dead(state)

    def _dead(self, state: SessionState, starting: bool = False) -> SessionDead:
        """The one message for a session that ended: which, why (when we can tell) and what to do."""
        self._ready = False
        gone, tail = False, []
        try:
            now = self.client.get_session(self.id).state
            state = state if now.is_alive else now
        except LivyNotFound:
            gone = True
        except LivyError:
            pass  # Livy does not answer: go by the state the caller saw
        if not gone:
            try:
                tail = self.client.session_log(self.id, size=LOG_TAIL)
            except LivyError:
                tail = []
        beat = self._heartbeat
        silent_for = None if beat is None else (beat.gone_at or time.time()) - beat.last_ok
        reason = death_reason(
            state, tail, gone=gone, starting=starting, silent_for=silent_for,
            heartbeat_timeout=self.heartbeat_timeout, idle_for=time.time() - self.last_activity,
        )
        which = f"session {self.id}{f' ({self.name})' if self.name else ''}"
        head = f"Livy no longer knows {which}" if gone else f"Livy {which} has ended ({state.value})"
        shown = "\n".join(tail[-15:])
        return SessionDead(
            f"{head}: {reason}. Its remote variables are lost: run %hail connect to start a new session."
            + (f"\nLast log lines:\n{shown}" if shown else ""),
            session_id=self.id,
            log_tail=tail,
        )

    def wait_ready(
        self,
        timeout: Optional[float] = 600.0,
        on_state: Optional[Callable[[SessionState, float], None]] = None,
        on_retry: Optional[RetryCallback] = None,
    ) -> None:
        """Block until the session is idle (or busy: it accepts statements into its queue).

        Raises :class:`SessionDead` with the log tail if it dies, :class:`LivyTimeout` after
        ``timeout`` seconds, :class:`LivyUnreachable` when Livy does not answer for longer than
        ``retry_timeout`` seconds in a row. ``on_state(state, elapsed)`` is called at every poll,
        ``on_retry`` as in :meth:`wait`.
        """
        if self._ready:
            return
        start = time.monotonic()
        was_starting = False

        def unreachable(outage: Outage, exc: LivyError) -> LivyUnreachable:
            return LivyUnreachable(
                f"Livy {outage.reason} for {outage.seconds:.0f} s while session {self.id} was starting "
                f"({outage.failures} attempts): {exc}"
            )

        for delay in poll_intervals(0.05, 1.5, 1.0):
            try:
                state = ride_out(self.state, give_up_after(self.retry_timeout, unreachable), on_retry)
            except LivyNotFound:
                raise self._dead(SessionState.DEAD) from None
            elapsed = time.monotonic() - start
            if on_state:
                on_state(state, elapsed)
            if state.takes_statements:
                self._ready = True
                return
            if state.is_final or state is SessionState.SHUTTING_DOWN:
                raise self._dead(state, starting=was_starting)
            was_starting = was_starting or state.is_starting
            if timeout is not None and elapsed > timeout:
                raise LivyTimeout(
                    f"session {self.id} is still {state.value} after {elapsed:.0f} s; the cluster may be "
                    "short of resources (YARN). Wait and retry, or check the Livy log with %hail logs."
                )
            time.sleep(delay)

    # ------------------------------------------------------------------ statements

    def submit(self, code: str, kind: Optional[str] = None) -> Statement:
        """Queue ``code`` (never sent twice, see ``LivyClient.submit_statement``)."""
        try:
            st = self.client.submit_statement(self.id, code, kind=kind, known_last_id=self.last_statement_id)
        except LivyNotFound:
            raise self._dead(SessionState.DEAD) from None
        except LivyHTTPError as exc:
            # Livy answers 400 ("Session is in state error") to a statement for a session that
            # is over: say that the session died, not that the request was bad.
            if exc.status == 400:
                self._ready = False
                state = self.state_or_dead()
                if state.is_final or state is SessionState.SHUTTING_DOWN:
                    raise self._dead(state) from None
            raise
        self.last_statement_id = st.id
        self.last_activity = time.time()
        return st

    def wait(
        self,
        statement: Statement,
        timeout: Optional[float] = None,
        on_progress: Optional[Callable[[Statement], None]] = None,
        on_retry: Optional[RetryCallback] = None,
    ) -> Statement:
        """Poll ``statement`` until it is over and return it.

        Transient failures (see ``transient_reason``) are retried with backoff for up to
        ``retry_timeout`` seconds in a row (and never beyond ``timeout``), each reported to
        ``on_retry``. Raises :class:`StatementInDoubt` when Livy stays silent longer (the
        statement may still run), :class:`LivyTimeout` after ``timeout`` seconds (the statement
        is cancelled), :class:`SessionDead` if the session ended, and on Ctrl-C cancels the
        statement and raises :class:`StatementInterrupted` (a KeyboardInterrupt).
        """
        start = time.monotonic()
        self.current_statement_id = statement.id
        sid = statement.id
        last_progress = -1.0

        def silent(outage: Outage, exc: LivyError) -> StatementInDoubt:
            return self._in_doubt(
                sid, f"Livy {outage.reason} for {outage.seconds:.0f} s ({outage.failures} attempts in a row; the "
                f"last: {exc})"
            )

        patience = give_up_after(self.retry_timeout, silent)

        def give_up(outage: Outage, exc: LivyError) -> Optional[Exception]:
            if timeout is not None and time.monotonic() - start > timeout:
                return self._in_doubt(
                    sid, f"it ran longer than {timeout:g} s and Livy {outage.reason}, so it could not be cancelled: "
                    f"{exc}"
                )
            return patience(outage, exc)

        try:
            for delay in poll_intervals():
                if statement.state.is_final:
                    self.last_activity = time.time()
                    return statement
                time.sleep(delay)
                try:
                    statement = ride_out(functools.partial(self.client.get_statement, self.id, sid), give_up, on_retry)
                except LivyNotFound:
                    raise self._dead(self.state_or_dead()) from None
                if on_progress and (statement.progress != last_progress or statement.state.is_final):
                    last_progress = statement.progress
                    on_progress(statement)
                if statement.state is StatementState.ERROR and statement.output is None:
                    # Livy marks statements of a dead interpreter as error without output.
                    state = self.state_or_dead()
                    if state.is_final:
                        raise self._dead(state)
                if timeout is not None and time.monotonic() - start > timeout and not statement.state.is_final:
                    self._cancel_overdue(sid, timeout)
            raise AssertionError("unreachable")  # pragma: no cover
        except KeyboardInterrupt:
            raise self._interrupted(sid) from None
        finally:
            self.current_statement_id = None

    def _cancel_overdue(self, statement_id: int, timeout: float) -> None:
        """Cancel a statement that ran past ``timeout``: LivyTimeout, or StatementInDoubt if that failed."""
        try:
            self.cancel(statement_id)
        except LivyError as exc:
            raise self._in_doubt(
                statement_id, f"it ran longer than {timeout:g} s and cancelling it failed: {exc}"
            ) from None
        raise LivyTimeout(f"statement {statement_id} ran longer than {timeout:g} s and was cancelled")

    def _in_doubt(self, statement_id: int, why: str) -> StatementInDoubt:
        return StatementInDoubt(
            f"Stopped waiting for statement {statement_id} of Livy session {self.id}: {why}. The statement may "
            "still be running on the cluster, so do not simply run the cell again. When Livy answers again, "
            f"%hail cancel stops it; otherwise the next cell runs after it and sees its variables (after a "
            f"kernel restart, %hail connect reattaches to session {self.id}).",
            session_id=self.id,
            statement_id=statement_id,
        )

    def _interrupted(self, statement_id: int) -> StatementInterrupted:
        """Cancel ``statement_id`` after Ctrl-C; say whether it worked (a second Ctrl-C stops trying)."""
        try:
            self.cancel(statement_id)
        except LivyError as exc:
            return StatementInterrupted(self.id, statement_id, cancelled=False, problem=str(exc))
        except KeyboardInterrupt:
            return StatementInterrupted(self.id, statement_id, cancelled=False, problem="interrupted again")
        return StatementInterrupted(self.id, statement_id, cancelled=True)

    def state_or_dead(self) -> SessionState:
        """The session's state; DEAD if Livy no longer knows it."""
        try:
            return self.state()
        except LivyNotFound:
            return SessionState.DEAD

    def run(
        self,
        code: str,
        kind: Optional[str] = None,
        timeout: Optional[float] = None,
        on_progress: Optional[Callable[[Statement], None]] = None,
        check: bool = False,
        ready_timeout: Optional[float] = 600.0,
        on_retry: Optional[RetryCallback] = None,
    ) -> Output:
        """Run ``code`` and return its :class:`Output` (waits for the session first).

        With ``check=True`` an error output raises :class:`StatementError`. A cancelled
        statement raises :class:`StatementCancelled`. ``on_progress`` and ``on_retry`` are
        passed to :meth:`wait`, which also says what else may be raised.
        """
        self.wait_ready(timeout=ready_timeout)
        statement = self.wait(self.submit(code, kind=kind), timeout=timeout, on_progress=on_progress, on_retry=on_retry)
        if statement.state is StatementState.CANCELLED:
            raise StatementCancelled(f"statement {statement.id} was cancelled")
        output = statement.output
        if output is None:
            state = self.state_or_dead()
            if state.is_final:
                raise self._dead(state)
            output = Output(
                status="error",
                ename="LivyError",
                evalue=f"statement {statement.id} ended {statement.state.value} without output",
            )
        if not output.ok:
            if (output.evalue or "").startswith("Interpreter died"):
                raise self._dead(self.state_or_dead())
            if check:
                raise StatementError(output, statement.id)
        return output

    def cancel(self, statement_id: Optional[int] = None) -> bool:
        """Cancel ``statement_id`` (default: the one running now). False if nothing to cancel."""
        target = statement_id if statement_id is not None else self.current_statement_id
        try:
            if target is None:
                recent = self.client.list_statements(self.id, size=20, order="desc")
                running = [s for s in recent if s.state.is_running]
                if not running:
                    return False
                target = running[0].id
            self.client.cancel_statement(self.id, target)
        except LivyNotFound:
            dead = self.dead_error()
            if dead is not None:
                raise dead from None
            raise
        return True

    # ------------------------------------------------------------------ end

    def close(self) -> None:
        """Stop the heartbeat; the session stays (Livy reaps it after its heartbeat timeout)."""
        if self._heartbeat:
            self._heartbeat.stop()

    def delete(self) -> None:
        """Delete the session on the server (its YARN resources are freed)."""
        self.close()
        self._ready = False
        self.client.delete_session(self.id)

    def __enter__(self) -> LivySession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.delete()

    def __repr__(self) -> str:
        return f"LivySession(id={self.id}, name={self.name!r}, url={self.client.url!r})"
