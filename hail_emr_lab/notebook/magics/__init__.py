"""The ``%hail`` / ``%%hail`` IPython magics: argument parsing and display only.

The work is done by :mod:`hail_emr_lab.notebook.connect` (target, session),
:mod:`hail_emr_lab.notebook.transfer` (``-o`` and push), :mod:`hail_emr_lab.emr` (clusters, SSM),
the plots and jobs packages and the Livy client; this package turns flags into calls and results
into notebook output:

* ``registry`` declares the surface (every subcommand: name, one-line help, parser, handler);
* ``args`` holds the argument parsers, ``render`` what is shown, ``errors`` how failures read;
* ``core`` is the magic itself (dispatch, and what handlers share: connection, progress);
* ``cells``, ``session``, ``cluster``, ``plot_views``, ``jobs`` are the handlers.
"""

from __future__ import annotations

from typing import Any

from ..context import current


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics (``%load_ext hail_emr_lab``)."""
    from .core import HailMagics

    ipython.register_magics(HailMagics)


def unload_ipython_extension(ipython: Any) -> None:
    """Stop the heartbeat of the current session (the session itself stays reattachable)."""
    ctx = current()
    if ctx.session is not None:
        ctx.session.close()
