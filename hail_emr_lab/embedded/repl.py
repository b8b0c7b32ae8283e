"""Statement execution with the semantics of Livy's PySpark REPL.

One ``Repl`` owns the namespace of a session. ``run`` executes a statement the way Livy's
``fake_shell.py`` does: the code runs as a module except its last top-level statement, which
runs in interactive ("single") mode so a trailing expression's repr is printed; stdout and
stderr written meanwhile become ``text/plain``. A line starting with ``%`` is a Livy magic
(``%json VAR``, ``%table VAR``, ``%matplot plt``). Errors become error outputs with ``ename``,
``evalue`` and ``traceback`` (a list of strings); incomplete code (``if True:``) is a
``SyntaxError`` in Python's words, as Livy's PySpark REPL answers (its "incomplete statement"
is the Scala REPL's). ``run_sql`` runs Spark SQL for statements of kind ``sql``
(answering ``application/json`` ``{schema, data}`` as Livy's SQLInterpreter does).

Nothing here knows about processes or HTTP: the worker calls it, and the unit tests call it
with a plain dict namespace.
"""

from __future__ import annotations

import ast
import base64
import builtins
import datetime
import decimal
import io
import json
import re
import rlcompleter
import sys
import traceback
from typing import Any, Callable

TABLE_MIME = "application/vnd.livy.table.v1+json"
SQL_MAX_ROWS = 1000  # livy.rsc.sql.num-rows

Output = dict  # {"status", "execution_count", "data"} or {"status", ..., "ename", "evalue", "traceback"}


class _Failure(Exception):
    """Carries a finished error output out of nested helpers."""

    def __init__(self, output: dict):
        super().__init__(output.get("evalue"))
        self.output = output


def error_output(ename: str, evalue: str, tb: list[str] | None = None) -> dict:
    """An error output without execution_count (the caller adds it)."""
    return {"status": "error", "ename": ename, "evalue": evalue, "traceback": list(tb or [])}


def _exception_output(exc: BaseException) -> dict:
    """Format an exception raised by user code, dropping our own frames like Livy does."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != "<stdin>":
        tb = tb.tb_next
    lines = traceback.format_exception(type(exc), exc, tb)
    return error_output(type(exc).__name__, str(exc), lines)


class _Sink(io.TextIOBase):
    """One buffer behind both sys.stdout and sys.stderr during a statement (keeps order)."""

    def __init__(self) -> None:
        self._parts: list[str] = []

    def writable(self) -> bool:
        return True

    def write(self, s: Any) -> int:
        if isinstance(s, (bytes, bytearray)):
            s = bytes(s).decode("utf-8", "replace")
        self._parts.append(s)
        return len(s)

    def getvalue(self) -> str:
        return "".join(self._parts)

    def stripped(self) -> str:
        """``getvalue().rstrip()`` without copying a long last write (a printed plot chunk)."""
        parts = self._parts
        while parts and not parts[-1].rstrip():
            parts.pop()
        if parts:
            parts[-1] = parts[-1].rstrip()
        return "".join(parts)

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def isatty(self) -> bool:
        return False


class _Capture:
    """Swap sys.stdout/sys.stderr/sys.displayhook for the duration of a statement."""

    def __init__(self) -> None:
        self.sink = _Sink()

    def _display(self, value: Any) -> None:
        if value is None:
            return
        builtins._ = value  # type: ignore[attr-defined]
        self.sink.write(repr(value) + "\n")

    def __enter__(self) -> _Capture:
        self._saved = (sys.stdout, sys.stderr, sys.displayhook)
        sys.stdout = sys.stderr = self.sink  # type: ignore[assignment]
        sys.displayhook = self._display
        return self

    def __exit__(self, *exc: Any) -> None:
        sys.stdout, sys.stderr, sys.displayhook = self._saved


# ---------------------------------------------------------------------------------------------
# Parsing: normal code chunks and magic lines


def _compile_chunk(source: str) -> ast.Module:
    """Parse a chunk of Python; raise _Failure with the SyntaxError of bad or incomplete code."""
    try:
        return ast.parse(source, "<stdin>", "exec")
    except SyntaxError as exc:
        raise _Failure(
            error_output(type(exc).__name__, str(exc), traceback.format_exception_only(type(exc), exc))
        ) from None
    except (ValueError, OverflowError) as exc:  # e.g. null bytes in the source
        raise _Failure(error_output(type(exc).__name__, str(exc))) from None


def _split(code: str) -> list[tuple[str, Any]]:
    """Split code into ("code", ast.Module) and ("magic", line) parts, as Livy does.

    Code that parses as a whole is one part; otherwise lines starting with ``%`` are magics
    and the lines between them are code chunks.
    """
    try:
        return [("code", ast.parse(code, "<stdin>", "exec"))]
    except SyntaxError:
        pass
    except (ValueError, OverflowError) as exc:
        raise _Failure(error_output(type(exc).__name__, str(exc))) from None
    lines = code.rstrip().split("\n")
    if not any(line.startswith("%") for line in lines):
        _compile_chunk(code)  # raises the right error
    parts: list[tuple[str, Any]] = []
    normal: list[str] = []
    for line in lines:
        if line.startswith("%"):
            if normal:
                parts.append(("code", _compile_chunk("\n".join(normal))))
                normal = []
            parts.append(("magic", line))
        else:
            normal.append(line)
    if normal:
        parts.append(("code", _compile_chunk("\n".join(normal))))
    return parts


# ---------------------------------------------------------------------------------------------
# %table conversion (Livy's type names)


def _table_cell(value: Any) -> tuple[str, Any]:
    if value is None:
        return "NULL_TYPE", None
    if isinstance(value, bool):
        return "BOOLEAN_TYPE", value
    if isinstance(value, int):
        return "INT_TYPE", value
    if isinstance(value, float):
        return "DOUBLE_TYPE", value
    if isinstance(value, datetime.datetime):
        return "TIMESTAMP_TYPE", str(value)
    if isinstance(value, datetime.date):
        return "DATE_TYPE", str(value)
    if isinstance(value, decimal.Decimal):
        return "DECIMAL_TYPE", str(value)
    if isinstance(value, (list, tuple)):
        items = [_table_cell(v) for v in value]
        if len({t for t, _ in items if t != "NULL_TYPE"}) > 1:
            raise ValueError("value has inconsistent types")
        return "ARRAY_TYPE", [v for _, v in items]
    if isinstance(value, dict):
        converted = {}
        for key, item in value.items():
            converted[str(_table_cell(key)[1])] = _table_cell(item)[1]
        return "MAP_TYPE", converted
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        try:
            return _table_cell(value.item())
        except (TypeError, ValueError):
            pass
    return "STRING_TYPE", str(value)


def _rows_of(value: Any) -> list:
    """Rows for %table: a list/tuple of rows, a Spark or pandas DataFrame, or one value."""
    if hasattr(value, "schema") and hasattr(value, "take") and hasattr(value, "columns"):
        return [row.asDict(recursive=True) for row in value.take(SQL_MAX_ROWS)]  # Spark DataFrame
    if hasattr(value, "to_dict") and hasattr(value, "columns") and hasattr(value, "head"):
        return value.head(SQL_MAX_ROWS).to_dict("records")  # pandas DataFrame
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def table_data(value: Any) -> dict:
    """The ``application/vnd.livy.table.v1+json`` payload for ``value`` (Livy's rules)."""
    headers: dict[Any, dict] = {}
    data = []
    for row in _rows_of(value):
        if type(row).__name__ == "Row" and hasattr(row, "asDict"):
            row = row.asDict()
        if not isinstance(row, (list, tuple, dict)):
            row = [row]
        cells = sorted(row.items(), key=lambda kv: str(kv[0])) if isinstance(row, dict) else enumerate(row)
        out = []
        for name, cell in cells:
            col_type, col = _table_cell(cell)
            header = headers.get(name)
            if header is None:
                headers[name] = {"name": str(name), "type": col_type}
            elif col_type != "NULL_TYPE" and header["type"] != col_type:
                if header["type"] != "NULL_TYPE":
                    raise ValueError("table rows have different types")
                header["type"] = col_type
            out.append(col)
        data.append(out)
    ordered = [headers[k] for k in sorted(headers, key=lambda k: (str(type(k)), k))]
    return {"headers": ordered, "data": data}


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if hasattr(value, "asDict"):
        return value.asDict(recursive=True)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def jsonable(value: Any) -> Any:
    """``value`` converted to plain JSON types (raises TypeError if it cannot be)."""
    return json.loads(json.dumps(value, default=_json_default))


def _sql_message(exc: BaseException) -> str:
    """The message of a Spark SQL error without pyspark's JVM stack trace."""
    if isinstance(exc, KeyboardInterrupt):
        return "statement cancelled"
    return str(exc).split("\n\nJVM stacktrace:")[0].strip() or type(exc).__name__


# ---------------------------------------------------------------------------------------------


class Repl:
    """A Livy-style PySpark REPL over one namespace."""

    def __init__(self, namespace: dict | None = None) -> None:
        self.namespace: dict = namespace if namespace is not None else {}
        self.namespace.setdefault("__name__", "__main__")
        self.namespace.setdefault("__builtins__", builtins)
        self._magics: dict[str, Callable[[str], dict]] = {
            "json": self._magic_json,
            "table": self._magic_table,
            "matplot": self._magic_matplot,
        }

    # -- statements ---------------------------------------------------------------------------

    def run(self, code: str, execution_count: int) -> Output:
        """Execute ``code``; return Livy's output dict (``status`` ok or error)."""
        capture = _Capture()
        magic_data: dict = {}
        try:
            parts = _split(code)
            with capture:
                for kind, part in parts:
                    if kind == "code":
                        self._exec_module(part)
                    else:
                        magic_data = self._run_magic(part)
        except _Failure as failure:
            return dict(failure.output, execution_count=execution_count)
        except BaseException as exc:  # user code raised (KeyboardInterrupt included: cancel)
            return dict(_exception_output(exc), execution_count=execution_count)
        prefix, printed = magic_data.pop("text/plain", ""), capture.sink.stripped()
        text = prefix + printed if printed else prefix.rstrip()  # (prefix + printed).rstrip()
        data = magic_data
        if text or not data:
            data["text/plain"] = text
        return {"status": "ok", "execution_count": execution_count, "data": data}

    def _exec_module(self, module: ast.Module) -> None:
        body = module.body
        for node in body[:-1]:
            exec(compile(ast.Module([node], []), "<stdin>", "exec"), self.namespace)
        for node in body[-1:]:
            exec(compile(ast.Interactive([node]), "<stdin>", "single"), self.namespace)

    # -- magics -------------------------------------------------------------------------------

    def _run_magic(self, line: str) -> dict:
        name, _, rest = line[1:].strip().partition(" ")
        rest = rest.strip()
        if not name:
            raise _Failure(error_output("UnknownMagic", "magic command not specified"))
        handler = self._magics.get(name)
        if handler is None:
            raise _Failure(
                error_output("UnknownMagic", f"unknown magic command '{name}' (known: %json, %table, %matplot)")
            )
        if not rest:
            raise _Failure(error_output("UsageError", f"%{name} needs a variable name, e.g. %{name} result"))
        return handler(rest)

    def _lookup(self, name: str) -> Any:
        if name in self.namespace:
            return self.namespace[name]
        if not name.isidentifier():  # an expression such as df.limit(5)
            return eval(compile(name, "<stdin>", "eval"), self.namespace)
        raise _Failure(error_output("KeyError", repr(name)))

    def _magic_json(self, name: str) -> dict:
        value = self._lookup(name)
        try:
            return {"application/json": jsonable(value)}
        except (TypeError, ValueError) as exc:
            raise _Failure(error_output(type(exc).__name__, str(exc))) from None

    def _magic_table(self, name: str) -> dict:
        value = self._lookup(name)
        try:
            return {TABLE_MIME: table_data(value)}
        except (TypeError, ValueError) as exc:
            raise _Failure(error_output("Exception", str(exc))) from None

    def _magic_matplot(self, name: str) -> dict:
        value = self._lookup(name)
        buf = io.BytesIO()
        try:
            value.gcf().savefig(buf, format="png")
        except Exception as exc:  # not a pyplot module, or the figure cannot be drawn
            raise _Failure(error_output(type(exc).__name__, str(exc))) from None
        return {"image/png": base64.b64encode(buf.getvalue()).decode("ascii"), "text/plain": ""}

    # -- SQL ----------------------------------------------------------------------------------

    def run_sql(self, spark: Any, code: str, execution_count: int, max_rows: int = SQL_MAX_ROWS) -> Output:
        """Run Spark SQL the way Livy's SQLInterpreter does (the first ``max_rows`` rows).

        Livy answers ``application/json`` ``{"schema": <Spark StructType JSON>, "data": [[...]]}``
        (not the %table mime type), and errors with ename ``Error``.
        """
        try:
            df = spark.sql(code)
            schema = df.schema.jsonValue()
            rows = [[jsonable(v) for v in row] for row in df.take(max_rows)] if schema["fields"] else []
        except BaseException as exc:
            return dict(error_output("Error", _sql_message(exc)), execution_count=execution_count)
        return {
            "status": "ok",
            "execution_count": execution_count,
            "data": {"application/json": {"schema": schema, "data": rows}},
        }

    # -- completion ---------------------------------------------------------------------------

    def complete(self, code: str, cursor: int, limit: int = 100) -> list[str]:
        """Completion candidates for the name or attribute ending at ``cursor``."""
        cursor = max(0, min(int(cursor), len(code)))
        match = re.search(r"[A-Za-z_][\w.]*$", code[:cursor])
        if not match:
            return []
        completer = rlcompleter.Completer(self.namespace)
        found: list[str] = []
        for state in range(limit):
            try:
                candidate = completer.complete(match.group(0), state)
            except Exception:  # a property raising during attribute lookup ends the search
                break
            if candidate is None:
                break
            if candidate not in found:
                found.append(candidate)
        return found
