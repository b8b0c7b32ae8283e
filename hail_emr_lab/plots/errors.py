"""What the plot pass-through raises."""

from __future__ import annotations

from ..errors import HailEmrLabError
from ..paths import PathRefused


class PlotError(HailEmrLabError):
    """A plot could not be listed, pulled or shown."""


class UnsafePlotName(PlotError, PathRefused):
    """A name from the cluster that could escape ``plots/`` or is otherwise unsafe to write."""


class ShaMismatch(PlotError):
    """The pulled bytes do not hash to the cluster's sha256 (the file changed while pulling?)."""


class Changed(PlotError):
    """The remote file's size or modification time changed during a chunked pull."""
