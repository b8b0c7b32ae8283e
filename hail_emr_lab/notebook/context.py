"""The notebook's connection state, shared by the magics, the plots, the jobs and the panel.

The ``%hail`` magics own it (``%hail connect`` fills it, ``%hail disconnect`` clears it);
other modules only read it through :func:`current`. It holds no IPython objects, so the
widgets panel and the jobs code can use it without importing the magics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from ..config import Config, load_config


@dataclass
class HailContext:
    """What the current kernel is connected to."""

    config: Config = field(default_factory=load_config)
    client: Optional[Any] = None  # hail_emr_lab.livy.LivyClient
    session: Optional[Any] = None  # hail_emr_lab.livy.LivySession
    plots: Optional[Any] = None  # hail_emr_lab.plots.manager.PlotManager
    endpoint: Optional[str] = None  # the Livy URL in use
    target: Optional[str] = None  # how it was found: "url", "cluster j-...", "local", "config: <source>"
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def connected(self) -> bool:
        """True once ``%hail connect`` has a session (which may still be starting)."""
        return self.session is not None


_CURRENT: Optional[HailContext] = None


def current() -> HailContext:
    """The kernel's context (created empty, from the configuration, on first use)."""
    global _CURRENT
    if _CURRENT is None:
        _CURRENT = HailContext()
    return _CURRENT


def set_current(ctx: Optional[HailContext]) -> None:
    """Replace the kernel's context (the magics do this on connect/disconnect)."""
    global _CURRENT
    _CURRENT = ctx
