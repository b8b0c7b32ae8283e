"""Jupyter server extension: the sidebar's REST API under ``<base_url>/hail-emr-lab/api/``.

Handlers are thin (``handlers.py``); the logic lives in the plain modules they call.
"""

from __future__ import annotations


def _load_jupyter_server_extension(server_app) -> None:  # noqa: ANN001 - jupyter_server's ServerApp
    """Register the REST handlers and the on-save backup hook."""
    from ..sync.onsave import register
    from .handlers import setup_handlers

    setup_handlers(server_app)
    register(server_app)  # logs (never raises) if the backup cannot be set up
