"""The Cluster and Sessions sections: effective configuration, endpoint, sessions.

Everything returned here may reach a browser: secrets are redacted (``Config.as_dict``),
credentials in URLs are stripped, and only http(s) links are passed on.
"""

from __future__ import annotations

import time
from typing import Any, Optional
from urllib.parse import urlsplit, urlunsplit

from ..config import Config, is_url_key
from ..endpoint import configured_url, make_client
from ..errors import HailEmrLabError
from ..redact import redact_text
from ..session_names import is_own, notebook_label, notebook_names
from .jsonable import is_secret_key, jsonable


class NotOwnSession(HailEmrLabError):
    """Someone tried to delete a session that is not theirs."""


class SessionNotFound(HailEmrLabError):
    """The session id does not exist on the endpoint."""


def safe_url(url: Any) -> Optional[str]:
    """``url`` without user:password, or None unless it is an http(s) URL (no javascript: links)."""
    if not isinstance(url, str) or not url.strip():
        return None
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    try:
        if parts.port:
            netloc += f":{parts.port}"
    except ValueError:
        return None
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def effective_config(cfg: Config) -> dict[str, Any]:
    """``{key: {"value", "source"}}`` with secrets redacted and URLs stripped of credentials."""
    out = {}
    for key, item in cfg.as_dict(redact=True).items():
        value = item["value"]
        if is_secret_key(key) and value:
            value = "***"
        elif is_url_key(key) and value:
            value = safe_url(value) or "(invalid URL)"
        out[key] = {"value": jsonable(value), "source": item["source"]}
    return out


def configured_client(cfg: Config) -> Any:
    """A quick client (:func:`hail_emr_lab.endpoint.make_client`) for the configured endpoint;
    HailEmrLabError with what to do when none is configured."""
    url = configured_url(cfg)
    if not url:
        raise HailEmrLabError(no_endpoint_hint(cfg))
    return make_client(cfg, url, quick=True)


def no_endpoint_hint(cfg: Config) -> str:
    """What to do when no Livy endpoint is configured."""
    if cfg.get("cluster_id") or cfg.get("cluster_name"):
        which = (
            f"--cluster-id {cfg.get('cluster_id')}"
            if cfg.get("cluster_id")
            else (f"--cluster-name {cfg.get('cluster_name')}")
        )
        return (
            f"No Livy URL is configured, only an EMR cluster; in a notebook run `%load_ext hail_emr_lab` "
            f"then `%hail connect {which}` to find its endpoint (or set HAIL_EMR_LAB_LIVY_URL)."
        )
    return (
        "No Livy endpoint is configured. In a notebook run `%load_ext hail_emr_lab` then "
        "`%hail connect --url http://MASTER:8998` (or `--cluster-id j-...`, or `--local` for the "
        "embedded server), or set HAIL_EMR_LAB_LIVY_URL / livy_url in ~/.hail-emr-lab/config.json."
    )


def connect_hint(cfg: Config) -> str:
    """The one line a user types to use the configured endpoint from a notebook."""
    return "%load_ext hail_emr_lab  then  %hail connect"


def cluster_status(cfg: Config, url: Optional[str] = None) -> dict[str, Any]:
    """The Cluster section: endpoint (from ``url`` or the config), whether it answers, and why not."""
    endpoint = url or configured_url(cfg)
    source = "argument" if url else cfg.source("livy_url")
    if not url and not cfg.get("livy_url") and cfg.get("serverless_app"):
        source = f"EMR Serverless application {cfg.get('serverless_app')} ({cfg.source('serverless_app')})"
    out: dict[str, Any] = {
        "livy_url": safe_url(endpoint) if endpoint else None,
        "livy_url_source": source,
        "session_name": cfg.get("session_name"),
        "auth": cfg.get("auth"),
        "cluster_id": cfg.get("cluster_id"),
        "reachable": False,
        "error": None,
        "latency_ms": None,
        "hint": connect_hint(cfg),
        "config": effective_config(cfg),
    }
    if cfg.get("serverless_app"):  # id, name, state, release and Livy endpoint of the application
        from ..emr.serverless import application_status

        out["serverless"] = application_status(cfg.get("serverless_app"), cfg.get("region"))
    if not endpoint:
        out["error"] = no_endpoint_hint(cfg)
        return out
    try:
        client = make_client(cfg, endpoint, quick=True)
    except HailEmrLabError as exc:
        out["error"] = redact_text(str(exc))
        return out
    started = time.monotonic()
    try:
        client.list_sessions(size=1)
        out["reachable"] = True
        out["latency_ms"] = round((time.monotonic() - started) * 1000.0, 1)
    except HailEmrLabError as exc:
        out["error"] = redact_text(str(exc))
    finally:
        client.close()
    return out


def session_info(session: Any, own_name: Optional[str], notebooks: Optional[dict[str, str]] = None) -> dict[str, Any]:
    """One row of the Sessions section; ``notebooks`` maps session names to open notebooks."""
    state = session.state
    return {
        "id": session.id,
        "name": session.name,
        "state": state.value,
        "alive": state.is_alive,
        "busy": state.is_busy,
        "starting": state.is_starting,
        "kind": session.kind,
        "app_id": session.app_id,
        "owner": session.owner,
        "proxy_user": session.proxy_user,
        "spark_ui_url": safe_url(session.spark_ui_url),
        "driver_log_url": safe_url(session.driver_log_url),
        "own": is_own(session.name, own_name),
        "notebook": notebook_label(session.name, own_name, notebooks or {}) if is_own(session.name, own_name) else None,
    }


def list_sessions(
    cfg: Config, client: Any = None, notebooks: Optional[list[tuple[str, str]]] = None
) -> dict[str, Any]:
    """The Sessions section: every session on the endpoint, own ones marked (named ``session_name``
    or ``session_name@<notebook>``) with the notebook that owns each. ``notebooks``: ``(path, shown
    path)`` of the notebooks Jupyter has open (the path as their kernels see it)."""
    own_name = cfg.get("session_name")
    out: dict[str, Any] = {"session_name": own_name, "sessions": [], "error": None}
    close = client is None
    try:
        client = client or configured_client(cfg)
        sessions = client.list_sessions()
    except HailEmrLabError as exc:
        out["error"] = redact_text(str(exc))
        return out
    finally:
        if close and client is not None:
            client.close()
    known = notebook_names(own_name, notebooks or []) if own_name else {}
    sessions = sorted(sessions, key=lambda s: -s.id)
    out["sessions"] = [session_info(s, own_name, known) for s in sessions]
    from ..emr.serverless import serverless_app_of, session_links

    if serverless_app_of(cfg):  # links from GetDashboardForJobRun (reused for 50 min), else where to look
        for row, session in zip(out["sessions"], sessions):
            links = session_links(cfg, session)
            row.update(spark_ui_url=safe_url(links.spark_ui_url), driver_log_url=safe_url(links.driver_log_url),
                       spark_ui_note=links.note)
    return out


def delete_own_session(session_id: int, cfg: Config, client: Any = None) -> dict[str, Any]:
    """Delete session ``session_id`` if it is the user's own (its name is ``session_name``)."""
    from ..livy import LivyNotFound

    own_name = cfg.get("session_name")
    close = client is None
    client = client or configured_client(cfg)
    try:
        try:
            session = client.get_session(session_id)
        except LivyNotFound:
            raise SessionNotFound(f"session {session_id} does not exist on {client.url} (already deleted?)") from None
        if not is_own(session.name, own_name):
            raise NotOwnSession(
                f"session {session_id} ({session.name or 'unnamed'}) is not yours: only sessions named "
                f"{own_name!r} or {own_name}@<notebook> (your session_name) can be deleted from here; its owner "
                "can delete it "
                "with `%hail delete`."
            )
        client.delete_session(session_id)
    finally:
        if close:
            client.close()
    return {"deleted": session_id, "name": own_name}
