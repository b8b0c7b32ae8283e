"""One way to show a time to the user: local ``YYYY-MM-DD HH:MM:SS`` (the sidebar's ``formatTime``)."""

from __future__ import annotations

import datetime
from typing import Any

FORMAT = "%Y-%m-%d %H:%M:%S"


def local_time(value: Any) -> str:
    """``value`` (ISO 8601 text, epoch seconds or a datetime) in local time; ``never`` when empty.

    A naive ISO text is taken as local time (as the browser's ``Date`` does); text that is not a
    time is returned unchanged rather than hidden.
    """
    if value is None or value == "":
        return "never"
    if isinstance(value, datetime.datetime):
        when = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        when = datetime.datetime.fromtimestamp(float(value), tz=datetime.timezone.utc)
    else:
        try:
            when = datetime.datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            return str(value)
    return when.astimezone().strftime(FORMAT)  # a naive value is taken as local by astimezone()
