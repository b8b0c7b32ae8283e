"""One interactive session's REPL process: ``python -m hail_emr_lab.embedded.worker``.

IPC with the server (``sessions.py``), JSON lines:

* stdin: first line the session config (``{"id", "conf", "kind", "settings"}``: Spark conf and
  Livy's session settings, ``livy.rsc.*``), then commands
  ``execute {id, code, kind}``, ``cancel {id}``, ``complete {req, code, cursor}``, ``shutdown``.
  EOF on stdin means the server is gone: the worker exits at once, and the JVM (whose stdin
  is a pipe from this process) follows.
* stdout at startup: the message channel. The worker moves it to a private descriptor and
  points fd 1 at stderr, so anything else that writes to fd 1 (the JVM, ``os.system``) lands
  in the session log, never in the channel. Messages: ``ready``, ``startup_failed``,
  ``started``, ``progress``, ``result``, ``skipped``, ``completion``. A ``result`` line is
  followed by the statement's output as JSON text of ``body_bytes`` bytes (encoded once, here,
  and served as it is: plot chunks are megabytes).
* stderr: the session log (worker, Spark and JVM lines).

User code runs in the main thread, in the SparkFiles root directory (as in Livy, so files
shipped with the session's ``files`` open by their names) so that a cancel can interrupt it with SIGINT (which also
breaks out of ``time.sleep`` and socket waits); the Spark jobs of the statement's job group
are cancelled first. A reader thread takes commands; a progress thread polls Spark's status
tracker for the running statement's job group.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import sys
import threading
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

from ..livy.protocol import RSC_DEFAULTS
from . import jsontext
from .repl import Repl, error_output

PROGRESS_INTERVAL = 0.2
CANCEL_RETRY_INTERVAL = 0.5
CANCEL_GIVE_UP = 30.0  # livy.rsc.job-cancel.timeout


# The worker's own messages go to the real stderr (the session log) even while a statement
# has sys.stdout/sys.stderr redirected into its output.
_LOG = sys.__stderr__


def _now_ms() -> int:
    return int(time.time() * 1000)


class Channel:
    """Thread-safe writer of JSON-line messages to the server."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lock = threading.Lock()

    def send(self, msg_type: str, body: str | None = None, **fields: Any) -> None:
        """One message line; ``body`` (JSON text, e.g. an encoded output) follows it as
        ``body_bytes`` bytes, so that neither side re-encodes or re-parses it."""
        payload = body.encode("utf-8") if body is not None else b""
        if body is not None:
            fields["body_bytes"] = len(payload)
        line = (json.dumps(dict(fields, type=msg_type), default=str) + "\n").encode("utf-8")
        with self._lock:
            for data in (line, payload):
                view = memoryview(data)
                while view:
                    written = os.write(self._fd, view)
                    view = view[written:]


class Worker:
    """State shared by the main, reader and progress threads."""

    def __init__(self, channel: Channel, config: dict) -> None:
        self.channel = channel
        self.config = config
        self.commands: queue.Queue = queue.Queue()
        # Re-entrant: the SIGINT handler runs in the main thread, possibly while it holds the lock.
        self.lock = threading.RLock()
        self.current: int | None = None  # id of the statement running in the main thread
        self.in_user_code = False
        self.cancel_target: int | None = None
        self.cancelled_waiting: set[int] = set()
        self.spark: Any = None
        self.sc: Any = None
        self.repl = Repl()
        settings = config.get("settings") or {}
        self.max_output_bytes = int(settings.get("livy.rsc.rpc.max.size") or RSC_DEFAULTS["livy.rsc.rpc.max.size"])
        self.sql_rows = int(settings.get("livy.rsc.sql.num-rows") or RSC_DEFAULTS["livy.rsc.sql.num-rows"])

    # -- startup ------------------------------------------------------------------------------

    def start_spark(self) -> None:
        """Create the SparkSession with Hail's conf; define spark, sc, sqlContext."""
        from pyspark import SparkConf, SparkContext, SparkFiles
        from pyspark.sql import SparkSession, SQLContext

        conf = SparkConf(loadDefaults=False).setAll(sorted(self.config["conf"].items()))
        SparkContext._ensure_initialized(conf=conf)  # starts the JVM with driver memory + classpath
        try:  # Hail's own view of the conf it needs, from the jar in use
            backend = getattr(SparkContext._jvm, "is").hail.backend.spark.SparkBackend
            hail_conf = SparkConf(_jconf=backend.pySparkConf()).getAll()
        except Exception as exc:  # the jar is on the classpath, so this is unexpected; go on
            print(f"hail-emr-lab worker: could not read Hail's Spark conf ({exc}); using defaults", file=_LOG)
            hail_conf = []
        full = SparkConf(loadDefaults=True).setAll(hail_conf).setAll(conf.getAll())
        self.spark = SparkSession.builder.config(conf=full).getOrCreate()
        self.sc = self.spark.sparkContext
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sql_context = SQLContext(self.sc, self.spark)
        self.repl.namespace.update({"spark": self.spark, "sc": self.sc, "sqlContext": sql_context})
        # Livy runs the interpreter where Spark puts the session's files (and pyFiles, archives).
        self._work_in(SparkFiles.getRootDirectory())
        # hl.init(sc) warns that Hail needs its jar and Kryo settings: this session has them.
        warnings.filterwarnings("ignore", message="Hail requires additional configuration options in Spark")
        # Replace pyspark's SIGINT handler (which cancels *all* jobs) with ours.
        signal.signal(signal.SIGINT, self._on_sigint)

    def _work_in(self, root: str) -> None:
        """Make ``root`` the working directory of Python and of the JVM's local file system, so
        a relative path names the same file in ``open()``, Spark and Hail."""
        os.chdir(root)
        jvm = self.sc._jvm
        try:
            local_fs = jvm.org.apache.hadoop.fs.FileSystem.getLocal(self.sc._jsc.hadoopConfiguration())
            local_fs.setWorkingDirectory(jvm.org.apache.hadoop.fs.Path(Path(root).as_uri()))
        except Exception as exc:  # Python's cwd moved anyway; say that Spark's did not
            print(f"hail-emr-lab worker: Spark keeps its own working directory ({exc})", file=_LOG)

    # -- commands (reader thread) -------------------------------------------------------------

    def read_commands(self, stream: Any) -> None:
        for raw in stream:
            try:
                cmd = json.loads(raw)
            except ValueError:
                print(f"hail-emr-lab worker: ignoring a malformed command line: {raw[:200]!r}", file=_LOG)
                continue
            kind = cmd.get("type")
            if kind == "execute":
                self.commands.put(cmd)
            elif kind == "cancel":
                self.cancel(int(cmd["id"]))
            elif kind == "complete":
                self._complete(cmd)
            elif kind == "shutdown":
                self.commands.put(None)
        # The server closed our stdin: it is gone or wants us gone. Exit without ceremony;
        # the JVM exits when its own stdin (a pipe from this process) closes.
        os._exit(0)

    def _complete(self, cmd: dict) -> None:
        try:
            candidates = self.repl.complete(str(cmd.get("code", "")), int(cmd.get("cursor", 0)))
        except Exception as exc:
            print(f"hail-emr-lab worker: completion failed: {exc}", file=_LOG)
            candidates = []
        self.channel.send("completion", req=cmd.get("req"), candidates=candidates)

    def cancel(self, sid: int) -> None:
        with self.lock:
            if self.current != sid:
                self.cancelled_waiting.add(sid)  # not started yet (or already over): skip it
                return
            self.cancel_target = sid
        threading.Thread(target=self._cancel_loop, args=(sid,), name=f"cancel-{sid}", daemon=True).start()

    def _cancel_loop(self, sid: int) -> None:
        """Cancel the job group and interrupt the Python code until the statement ends."""
        deadline = time.monotonic() + CANCEL_GIVE_UP
        while time.monotonic() < deadline:
            with self.lock:
                if self.current != sid:
                    return
                interrupt = self.in_user_code
            try:
                self.sc.cancelJobGroup(str(sid))
            except Exception as exc:
                print(f"hail-emr-lab worker: cancelJobGroup({sid}) failed: {exc}", file=_LOG)
            if interrupt:
                signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
            time.sleep(CANCEL_RETRY_INTERVAL)
        print(f"hail-emr-lab worker: statement {sid} ignored cancellation for {CANCEL_GIVE_UP:.0f} s", file=_LOG)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        # No locking here: reading three attributes under the GIL is consistent enough.
        if self.in_user_code and self.current is not None and self.cancel_target == self.current:
            raise KeyboardInterrupt("statement cancelled")

    # -- progress (progress thread) -----------------------------------------------------------

    def progress_of(self, sid: int) -> float:
        tracker = self.sc.statusTracker()
        total = done = 0
        for job_id in tracker.getJobIdsForGroup(str(sid)):
            job = tracker.getJobInfo(job_id)
            if job is None:
                continue
            for stage_id in job.stageIds:
                stage = tracker.getStageInfo(stage_id)
                if stage is not None:
                    total += stage.numTasks
                    done += stage.numCompletedTasks
        return done / total if total else 0.0

    def report_progress(self) -> None:
        last: tuple[int, float] | None = None
        while True:
            time.sleep(PROGRESS_INTERVAL)
            sid = self.current
            if sid is None or self.sc is None:
                continue
            try:
                value = self.progress_of(sid)
            except Exception:  # the JVM is busy shutting down or the statement just ended
                continue
            if (sid, value) != last and self.current == sid:
                last = (sid, value)
                self.channel.send("progress", id=sid, progress=value)

    # -- statements (main thread) -------------------------------------------------------------

    def serve(self) -> None:
        while True:
            cmd = self.commands.get()
            if cmd is None:
                return
            try:
                self.run_statement(cmd)
            except KeyboardInterrupt:  # a late SIGINT between statements: nothing to cancel
                continue

    def run_statement(self, cmd: dict) -> None:
        sid = int(cmd["id"])
        with self.lock:
            if sid in self.cancelled_waiting:
                self.cancelled_waiting.discard(sid)
                skip = True
            else:
                skip = False
                self.current = sid
                self.cancel_target = None
        if skip:
            self.channel.send("skipped", id=sid)
            return
        self.channel.send("started", id=sid, ts=_now_ms())
        output: dict | None = None
        try:
            self.sc.setJobGroup(str(sid), f"Job group for statement {sid}", True)
            with self.lock:
                self.in_user_code = True
            if cmd.get("kind") == "sql":
                output = self.repl.run_sql(self.spark, str(cmd.get("code", "")), sid, max_rows=self.sql_rows)
            else:
                output = self.repl.run(str(cmd.get("code", "")), sid)
        except KeyboardInterrupt as exc:  # arrived just outside the REPL's own handler
            output = dict(error_output("KeyboardInterrupt", str(exc)), execution_count=sid)
        finally:
            with self.lock:
                self.in_user_code = False
                cancelled = self.cancel_target == sid
                self.current = None
                self.cancel_target = None
        if cancelled:
            self._reset_py4j_connection()
        if output is None:
            output = dict(error_output("InternalError", "the statement produced no output"), execution_count=sid)
        encoded = jsontext.dumps(output, max_depth=2, default=str)
        if len(encoded) > self.max_output_bytes:
            output = dict(
                error_output(
                    "OutputTooLarge",
                    f"the statement's output is {len(encoded) / 2**20:.0f} MB, more than Livy's limit of "
                    f"{self.max_output_bytes / 2**20:.0f} MB (livy.rsc.rpc.max.size): return less, or write it to a file",
                ),
                execution_count=sid,
            )
            encoded = jsontext.dumps(output)
        progress = 1.0  # Livy reports 1.0 for a finished statement; a cancelled one keeps its own
        if cancelled:
            try:
                progress = self.progress_of(sid)
            except Exception:
                progress = 0.0
        self.channel.send("result", body=encoded, id=sid, cancelled=cancelled, ts=_now_ms(), progress=progress)

    def _reset_py4j_connection(self) -> None:
        """Drop the main thread's py4j connection: a SIGINT may have cut a call in half."""
        try:
            client = self.sc._gateway._gateway_client
            connection = client.get_thread_connection() if hasattr(client, "get_thread_connection") else None
            if connection is not None:
                connection.close(reset=True)
        except Exception as exc:
            print(f"hail-emr-lab worker: could not reset the py4j connection: {exc}", file=_LOG)


def main() -> int:
    """Entry point of the worker process."""
    msg_fd = os.dup(1)
    os.dup2(2, 1)  # from now on fd 1 (JVM, subprocesses, print outside statements) -> the log
    cmd_stream = os.fdopen(os.dup(0), "r", encoding="utf-8")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)  # user code calling input() must not eat our commands
    os.close(devnull)
    channel = Channel(msg_fd)
    first = cmd_stream.readline()
    if not first:
        return 0
    config = json.loads(first)
    worker = Worker(channel, config)
    threading.Thread(target=worker.read_commands, args=(cmd_stream,), name="commands", daemon=True).start()
    try:
        worker.start_spark()
    except BaseException as exc:
        traceback.print_exc()
        channel.send("startup_failed", error=f"{type(exc).__name__}: {exc}")
        sys.stderr.flush()
        os._exit(1)
    channel.send(
        "ready",
        appId=worker.sc.applicationId,
        sparkUiUrl=worker.sc.uiWebUrl,
        sparkVersion=worker.sc.version,
        pid=os.getpid(),
    )
    print(f"hail-emr-lab worker: Spark {worker.sc.version} ready, UI at {worker.sc.uiWebUrl}", file=_LOG)
    threading.Thread(target=worker.report_progress, name="progress", daemon=True).start()
    threading.Thread(target=_warm_spark_rest, args=(worker.sc.uiWebUrl,), name="warm-ui", daemon=True).start()
    worker.serve()
    try:
        worker.spark.stop()
    finally:
        sys.stderr.flush()
        os._exit(0)


def _warm_spark_rest(ui_url: str | None) -> None:
    """Ask the Spark UI's REST API once, in the background: its first answer initialises the REST
    servlet (seconds on a busy machine), which would otherwise delay the sidebar's first look at
    a running statement's jobs."""
    if not ui_url:
        return
    import urllib.request

    try:
        with urllib.request.urlopen(ui_url.rstrip("/") + "/api/v1/applications", timeout=60) as answer:
            answer.read()
    except OSError as exc:  # only a warm-up: the sidebar reports real failures itself
        print(f"hail-emr-lab worker: Spark UI warm-up failed: {exc}", file=_LOG)


if __name__ == "__main__":
    sys.exit(main())
