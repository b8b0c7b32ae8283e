"""The notebook's connection state, shared by the magics, the plots, the jobs and the panel.

The ``%hail`` magics own it (``%hail connect`` fills it, ``%hail disconnect`` clears it);
other modules only read it through :func:`current`. It holds no IPython objects, so the
widgets panel and the jobs code can use it without importing the magics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from ..config import Config, load_config
from ..redact import dataclass_repr

if TYPE_CHECKING:  # typing only: connect imports this module
    from ..emr.discovery import ClusterEndpoint
    from ..livy import LivyClient, LivySession
    from ..plots.manager import PlotManager
    from .connect import ConnectOptions, Startup


@dataclass(frozen=True)
class ClusterVersions:
    """What the session reported once set up: versions on the cluster's driver.

    Each is None until the setup statement has run (or when the driver did not say, e.g.
    ``hail`` with ``--no-hail``); ``pyarrow`` is whether the driver can send frames as Arrow.
    """

    hail: Optional[str] = None
    spark: Optional[str] = None
    python: Optional[str] = None
    pyarrow: Optional[bool] = None
    app_id: Optional[str] = None

    @classmethod
    def from_report(cls, report: dict[str, Any]) -> ClusterVersions:
        """From the JSON object the setup statement prints (unknown keys are ignored)."""
        return cls(**{k: report[k] for k in ("hail", "spark", "python", "pyarrow", "app_id") if k in report})


@dataclass
class HailContext:
    """What the current kernel is connected to (empty fields: not connected)."""

    config: Config = field(default_factory=load_config)
    client: Optional[LivyClient] = None
    session: Optional[LivySession] = None
    plots: Optional[PlotManager] = None  # None: connected with --no-plots (or plots unavailable)
    endpoint: Optional[str] = None  # the Livy URL in use
    target: Optional[str] = None  # how it was found: "url", "cluster j-...", "embedded Livy (...)", "config (...)"
    options: Optional[ConnectOptions] = None  # what %hail connect was given
    cluster: Optional[ClusterEndpoint] = None  # the EMR cluster, when the target is one
    local: bool = False  # the endpoint is on this machine
    reattached: bool = False  # the session existed before this connect
    startup: Optional[Startup] = None  # the background setup (session ready, Hail, plots)
    versions: ClusterVersions = field(default_factory=ClusterVersions)

    def __repr__(self) -> str:  # a notebook may show it: never a password, never URL userinfo
        return dataclass_repr(self)

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
