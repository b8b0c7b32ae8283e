"""A high-level Livy session: start or reattach, wait until ready, run code, cancel.

``LivySession`` is what the magics, the jobs and the plots use; it knows nothing of
IPython. Waiting is done by polling that is fast for short statements and gentle for long
ones: the first check comes ~2 ms after submitting, then the interval grows by 1.2x per
poll to a cap of 0.5 s, so a statement is seen done at most ~20% after it finished (until
the cap), with about 25 requests in its first second and 2 per second after that.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Iterator, Optional

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
)
from .models import Output, Session, SessionState, Statement, StatementState

FIRST_POLL = 0.002
POLL_GROWTH = 1.2
MAX_POLL = 0.5
LOG_TAIL = 40


def poll_intervals(first: float = FIRST_POLL, growth: float = POLL_GROWTH, cap: float = MAX_POLL) -> Iterator[float]:
    """Sleep intervals: ``first``, then growing by ``growth`` up to ``cap``, forever."""
    delay = first
    while True:
        yield delay
        delay = min(cap, delay * growth)


def pyspark_hail_conf(jar: str = "/opt/hail/hail-all-spark.jar") -> dict[str, str]:
    """The Spark conf Hail needs (the jar path is EMR's; the embedded server sets its own)."""
    return {
        "spark.jars": jar,
        "spark.driver.extraClassPath": jar,
        "spark.executor.extraClassPath": "./hail-all-spark.jar",
        "spark.serializer": "org.apache.spark.serializer.KryoSerializer",
        "spark.kryo.registrator": "is.hail.kryo.HailKryoRegistrator",
    }


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
            except LivyNotFound:
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
        interval = heartbeat_timeout / 3.0 if heartbeat_timeout else None
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
        """Pick up the live session called ``name`` (e.g. after a kernel restart), or None."""
        found = cls.find(client, name)
        if found is None:
            return None
        interval = heartbeat_timeout / 3.0 if heartbeat_timeout else None
        session = cls(client, found.id, name=found.name, heartbeat_interval=interval, kind=found.kind or "pyspark")
        session.reattached = True
        return session

    @classmethod
    def connect(cls, client: LivyClient, name: str, new: bool = False, **create_args: Any) -> LivySession:
        """Reattach to the session called ``name`` unless ``new``; else create it."""
        if not new:
            found = cls.reattach(client, name, heartbeat_timeout=create_args.get("heartbeat_timeout"))
            if found is not None:
                return found
        return cls.create(client, name=name, **create_args)

    reattached = False

    # ------------------------------------------------------------------ state

    def info(self) -> Session:
        """The session object from Livy (also a heartbeat)."""
        return self.client.get_session(self.id)

    def state(self) -> SessionState:
        """The session's state right now."""
        return self.client.session_state(self.id)

    def log(self, n: int = 100) -> list[str]:
        """The last ``n`` lines of the session log."""
        return self.client.session_log(self.id, size=n)

    def _dead(self, state: SessionState) -> SessionDead:
        try:
            tail = self.log(LOG_TAIL)
        except LivyError:
            tail = []
        shown = "\n".join(tail[-15:])
        self._ready = False
        return SessionDead(
            f"Livy session {self.id}{f' ({self.name})' if self.name else ''} is {state.value}: its remote "
            "variables are lost. Start a new one (%hail connect)." + (f"\nLast log lines:\n{shown}" if shown else ""),
            session_id=self.id,
            log_tail=tail,
        )

    def wait_ready(
        self,
        timeout: Optional[float] = 600.0,
        on_state: Optional[Callable[[SessionState, float], None]] = None,
    ) -> None:
        """Block until the session is idle (or busy: it accepts statements into its queue).

        Raises :class:`SessionDead` with the log tail if it dies, :class:`LivyTimeout` after
        ``timeout`` seconds. ``on_state(state, elapsed)`` is called at every poll.
        """
        if self._ready:
            return
        start = time.monotonic()
        for delay in poll_intervals(0.05, 1.5, 1.0):
            try:
                state = self.state()
            except LivyNotFound:
                raise self._dead(SessionState.DEAD) from None
            elapsed = time.monotonic() - start
            if on_state:
                on_state(state, elapsed)
            if state.is_ready or state.is_busy:
                self._ready = True
                return
            if state.is_final or state is SessionState.SHUTTING_DOWN:
                raise self._dead(state)
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
        return st

    def wait(
        self,
        statement: Statement,
        timeout: Optional[float] = None,
        on_progress: Optional[Callable[[Statement], None]] = None,
    ) -> Statement:
        """Poll ``statement`` until it is over; Ctrl-C cancels it on the cluster, then re-raises."""
        start = time.monotonic()
        self.current_statement_id = statement.id
        last_progress = -1.0
        try:
            for delay in poll_intervals():
                if statement.state.is_final:
                    return statement
                time.sleep(delay)
                try:
                    statement = self.client.get_statement(self.id, statement.id)
                except LivyNotFound:
                    raise self._dead(self.state_or_dead()) from None
                except LivyUnreachable:
                    if timeout is not None and time.monotonic() - start > timeout:
                        raise
                    continue  # the GET was retried already; keep waiting rather than lose the result
                if on_progress and (statement.progress != last_progress or statement.state.is_final):
                    last_progress = statement.progress
                    on_progress(statement)
                if statement.state is StatementState.ERROR and statement.output is None:
                    # Livy marks statements of a dead interpreter as error without output.
                    state = self.state_or_dead()
                    if state.is_final:
                        raise self._dead(state)
                if timeout is not None and time.monotonic() - start > timeout and not statement.state.is_final:
                    self.cancel(statement.id)
                    raise LivyTimeout(f"statement {statement.id} ran longer than {timeout:g} s and was cancelled")
            raise AssertionError("unreachable")  # pragma: no cover
        except KeyboardInterrupt:
            self.cancel(statement.id)
            raise
        finally:
            self.current_statement_id = None

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
    ) -> Output:
        """Run ``code`` and return its :class:`Output` (waits for the session first).

        With ``check=True`` an error output raises :class:`StatementError`. A cancelled
        statement raises :class:`StatementCancelled`.
        """
        self.wait_ready(timeout=ready_timeout)
        statement = self.wait(self.submit(code, kind=kind), timeout=timeout, on_progress=on_progress)
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
        if target is None:
            running = [s for s in self.client.list_statements(self.id, size=20, order="desc") if s.state.is_running]
            if not running:
                return False
            target = running[0].id
        self.client.cancel_statement(self.id, target)
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
