"""What the ``%hail`` magics show in the notebook: text, tables, a cell's outputs, plots.

Nothing here parses arguments or talks to Livy: the handlers pass results in.
"""

from __future__ import annotations

import base64
import html
import json
import sys
import time
from typing import Any, Optional

from IPython.display import HTML, Image, display

#: What ``-o`` pulled, by the cluster's kind (remote/dataframe.py), as the user would name it.
SOURCE_KINDS = {"spark": "Spark DataFrame", "hail": "Hail Table", "pandas": "pandas DataFrame"}


def print_text(text: str) -> None:
    """Plain output (stdout), flushed so it shows while the command still runs."""
    print(text, flush=True)


def warn(text: str) -> None:
    """A warning on stderr (the notebook shows it apart from the output)."""
    sys.stderr.write(text.rstrip("\n") + "\n")
    sys.stderr.flush()


def local_time(epoch: Any) -> str:
    """``YYYY-mm-dd HH:MM:SS`` in the notebook's local time for epoch seconds ('-' if unknown)."""
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(epoch)))
    except (TypeError, ValueError, OverflowError, OSError):
        return "-"


def table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """Rows (dicts) as a table with these columns, in this order."""
    import pandas as pd

    display(pd.DataFrame(rows, columns=columns))


def pulled_line(item: Any, moved: Optional[str] = None) -> str:
    """One line for a variable ``-o`` pulled (a ``transfer.Pulled``): what, how big, how it travelled,
    ending with ``moved`` (``TransferProgress.moved``: bytes, seconds and the mean rate) when given."""
    if hasattr(item.value, "columns"):
        source = SOURCE_KINDS.get(item.kind, item.kind)
        what = f"{len(item.value):,} rows x {len(item.value.columns)} columns from the {source} `{item.name}`"
    else:
        what = f"the {type(item.value).__name__} `{item.name}`"
    line = f"{item.name}: pulled {what} ({item.format}, {item.wire_chars / 1e6:.2f} MB on the wire)"
    return f"{line}; moved {moved}" if moved else line


def render_output(output: Any) -> None:
    """Show a statement's output (a Livy statement output): a table, PNG, JSON, HTML or text."""
    data = output.data or {}
    rows = output.table
    if rows is not None:
        import pandas as pd

        headers = [h.get("name") for h in rows.get("headers") or []]
        display(pd.DataFrame(rows.get("data") or [], columns=headers))
        return
    if "image/png" in data:
        display(Image(data=base64.b64decode(data["image/png"]), format="png"))
    if "application/json" in data:
        value = data["application/json"]
        display({"application/json": value, "text/plain": json.dumps(value, indent=2)}, raw=True)
    if "text/html" in data:
        # HTML made on the cluster is untrusted: only ever inside a sandboxed iframe.
        from ...plots.render import sandboxed_iframe

        frame = sandboxed_iframe(str(data["text/html"]), "cell output", height=400)
        display({"text/html": frame, "text/plain": "(HTML output of the cell)"}, raw=True)
    text = output.text
    if text and "application/json" not in data:
        print(text.rstrip("\n"), flush=True)


def show_plots(plots: list[Any]) -> None:
    """Show pulled plots (``plots.store.LocalPlot`` records) below the cell, in order."""
    if not plots:
        return
    from ...plots.render import display_plot

    for plot in plots:
        display_plot(plot)


def link(url: str, text: str) -> None:
    """A link that opens in a new tab (the URL is escaped)."""
    display(HTML(f'<a href="{html.escape(url)}" target="_blank" rel="noopener">{html.escape(text)}</a>'))
