"""From configuration to a Livy client: the one factory every surface uses.

``%hail connect``, the sidebar and panel, and ``jobs --backend livy`` all build their
:class:`~hail_emr_lab.livy.LivyClient` here, so auth (none, basic with ``password`` or
``password_file``, Kerberos, SigV4), TLS verification, the proxy user and the token of an
embedded Livy we started are applied the same way everywhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from .config import Config

if TYPE_CHECKING:
    from .livy import LivyClient

#: A dashboard must stay responsive: a dead endpoint costs it at most this long (seconds).
QUICK_CONNECT_TIMEOUT = 2.0
QUICK_READ_TIMEOUT = 8.0


def configured_url(config: Config) -> Optional[str]:
    """The Livy URL the configuration names: ``livy_url``, else the Livy endpoint of the
    configured EMR Serverless application (``serverless_app`` in ``region``), else None."""
    if config.get("livy_url"):
        return str(config.get("livy_url"))
    if config.get("serverless_app"):
        from .emr.serverless import configured_endpoint

        return configured_endpoint(config.get("serverless_app"), config.get("region"))
    return None


def make_client(config: Config, url: str, signing_region: Optional[str] = None, quick: bool = False) -> LivyClient:
    """A :class:`LivyClient` for ``url`` with the configured auth, TLS verification and proxy user.

    An EMR Serverless Livy endpoint (``signing_region`` given, or a URL of the form EMR
    Serverless documents) is always signed with SigV4 in its region; otherwise ``auth``
    applies, ``basic`` with :meth:`Config.password`. ``quick``: 2 s to connect, 8 s to read, no
    retries (for dashboards polled every few seconds); else the client's defaults.

    Raises ConfigError (unreadable password file) or LivyError (auth that cannot be set up,
    e.g. basic without a user name).
    """
    from .embedded.launcher import client_headers  # the token of an embedded Livy we started
    from .emr.serverless import endpoint_region
    from .livy import LivyClient, make_auth

    region = signing_region or endpoint_region(url)
    if region:
        auth = make_auth("sigv4", sigv4_service=config.get("sigv4_service"), region=region)
    else:
        kind = config.get("auth")
        auth = make_auth(
            kind, config.get("username"), config.password() if kind == "basic" else None,
            sigv4_service=config.get("sigv4_service"), region=config.get("region"),
        )
    timeouts = {"connect_timeout": QUICK_CONNECT_TIMEOUT, "read_timeout": QUICK_READ_TIMEOUT, "retries": 0}
    return LivyClient(
        url,
        auth=auth,
        headers=client_headers(url),
        verify=config.get("verify", True),
        proxy_user=config.get("proxy_user"),
        **(timeouts if quick else {}),
    )
