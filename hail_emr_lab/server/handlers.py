"""REST handlers of the server extension (filled in by the sidebar issue)."""

from __future__ import annotations


def setup_handlers(server_app) -> None:  # noqa: ANN001
    """Add the hail-emr-lab handlers to the server's web app."""
    server_app.log.debug("hail-emr-lab server extension loaded")
