"""Handlers for the connection and the Livy sessions: connect, info, sessions, logs, cancel,
delete, cleanup, disconnect, config."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Optional

from IPython.display import display

from ...emr.serverless import KEPT_OUT_OF_NOTEBOOK, grants_access, serverless_app_of, session_links, without_grant
from ...redact import redact_url, split_userinfo
from ...session_names import is_own
from .. import connect as conn
from ..context import current
from .errors import HailMagicError
from .render import link, print_text, table, warn

if TYPE_CHECKING:
    from .core import HailMagics


def _password(opts: conn.ConnectOptions) -> Optional[str]:
    """The password from --password-prompt/-file/-env, or a literal --password (with a warning)."""
    from ...config import password_from

    safe = password_from(opts.password_prompt, opts.password_file, opts.password_env, user=opts.username)
    if opts.password and safe is not None:
        raise HailMagicError("Give the password one way only: --password or --password-prompt/-file/-env.")
    in_url = bool(opts.url and (split_userinfo(opts.url)[1] or ('', ''))[1])
    if opts.password or in_url:
        where = "--password" if opts.password else "a password in --url"
        warn(f"Warning: {where} stays in this notebook, its IPython history and its S3 backup; use "
             "--password-prompt, --password-file PATH, --password-env VAR or HAIL_EMR_LAB_PASSWORD instead.")
    return safe if safe is not None else opts.password


def _startup_line(s: conn.Startup) -> str:
    """The connect cell's status line for the startup ``s``."""
    ctx = s.ctx
    verb = "reattached to" if ctx.reattached else "started"
    state = s.state if s.state not in ("idle", "ready") else s.phase
    text = (f"hail: {verb} session {ctx.session.id} ({ctx.session.name}) on {redact_url(ctx.endpoint)} "
            f"[{ctx.target}]: {state} ({s.elapsed:.0f} s)")
    if s.state == "ready" and s.versions.spark:
        text += f" | Hail {s.versions.hail or '-'}, Spark {s.versions.spark}"
    if s.error is not None:
        text += "\nThe next %%hail cell shows the error; %hail logs shows the session log."
    return text


def connect(m: HailMagics, args: argparse.Namespace, cell: Optional[str]) -> None:
    """``%hail connect [flags]``: resolve the target, start or reattach the session (setup goes on
    in the background; ``--wait`` blocks until it is done)."""
    opts = conn.ConnectOptions(**vars(args))
    opts.password = _password(opts)
    old = current()
    if old.session is not None:
        conn.disconnect(old)  # stop its heartbeat; the session itself stays (reattachable)
    handle = display({"text/plain": "connecting..."}, raw=True, display_id=True)

    def show(s: conn.Startup) -> None:
        handle.update({"text/plain": _startup_line(s)}, raw=True)

    def show_app(state: str, elapsed: float) -> None:  # an EMR Serverless application starting
        app = opts.serverless_app or "(from the configuration)"
        handle.update({"text/plain": f"hail: EMR Serverless application {app}: {state} ({elapsed:.0f} s)"}, raw=True)

    ctx = conn.connect(opts, on_change=show, on_app_state=show_app)
    assert ctx.startup is not None
    show(ctx.startup)
    if ctx.session.cleared:
        ids = ", ".join(str(i) for i in ctx.session.cleared)
        print_text(f"hail: session {ids} of the same name had ended; it was deleted so the name could be used "
                   "again (Livy keeps an ended session's name for 10 minutes).")
    if opts.wait:
        m.wait_ready(ctx)


def info(m: HailMagics, args: argparse.Namespace, cell: Optional[str]) -> None:
    """``%hail info``: endpoint, session, setup state, links and versions on the cluster."""
    ctx = m.ctx()
    startup = ctx.startup
    info = ctx.session.info()
    dead = ctx.session.dead_error(info.state)
    if dead is not None:
        raise dead
    v = ctx.versions
    links = session_links(ctx.config, info)  # on EMR Serverless from GetDashboardForJobRun
    rows = [
        ("endpoint", redact_url(ctx.endpoint)), ("found by", ctx.target), ("session id", info.id), ("name", info.name),
        ("state", info.state.value), ("setup", startup.phase if startup else "-"),
        ("reattached", "yes" if ctx.reattached else "no"), ("app id", info.app_id or "-"),
        ("Spark UI", without_grant(links.spark_ui_url or "-")), ("driver log", without_grant(links.driver_log_url or "-")),
        ("Hail", v.hail or "-"), ("Spark", v.spark or "-"), ("Python (cluster)", v.python or "-"),
        ("pyarrow (cluster)", {True: "yes", False: "no"}.get(v.pyarrow, "-")),
    ]
    width = max(len(k) for k, _ in rows)
    print_text("\n".join([f"{k.ljust(width)}  {v}" for k, v in rows] + ([links.note] if links.note else [])))
    if links.spark_ui_url:
        _spark_ui_link(links.spark_ui_url)


def _spark_ui_link(url: str) -> None:
    """A link to the Spark UI, unless the URL is itself a credential (an EMR Serverless dashboard
    URL): outputs are saved with the notebook, so that one is only said where to open."""
    if grants_access(url):
        print_text(KEPT_OUT_OF_NOTEBOOK)
    else:
        link(url, "Spark UI")


def sessions(m: HailMagics, args: argparse.Namespace, cell: Optional[str]) -> None:
    """``%hail sessions``: the sessions on the endpoint, the current one and yours marked."""
    ctx = m.ctx()
    own_name, base = ctx.session.name, ctx.config.get("session_name")
    rows = []
    for s in ctx.client.list_sessions():
        mark = "current" if s.id == ctx.session.id else ("yours" if is_own(s.name, base, own_name) else "")
        rows.append({"id": s.id, "name": s.name, "state": s.state.value, "kind": s.kind, "app id": s.app_id,
                     "owner": s.owner, "mine": mark})
    if not rows:
        print_text(f"No sessions on {redact_url(ctx.endpoint)}.")
        return
    table(rows, ["id", "name", "state", "kind", "app id", "owner", "mine"])


def logs(m: HailMagics, args: argparse.Namespace, cell: Optional[str]) -> None:
    """``%hail logs [-n N]``: the last N lines of the session's Livy log."""
    ctx = m.ctx()
    lines = ctx.session.log(args.n)
    print_text("\n".join(lines) if lines else "(the session log is empty)")
    if serverless_app_of(ctx.config):  # the driver's own logs are not in Livy's log there
        links = session_links(ctx.config, ctx.session.info())
        print_text("\n".join(links.lines()))
        if links.spark_ui_url:
            _spark_ui_link(links.spark_ui_url)


def cancel(m: HailMagics, args: argparse.Namespace, cell: Optional[str]) -> None:
    """``%hail cancel``: cancel the running statement."""
    ctx = m.ctx()
    if ctx.session.cancel():
        print_text(f"Cancelled the running statement of session {ctx.session.id}.")
    else:
        print_text(f"Nothing is running in session {ctx.session.id}.")


def delete(m: HailMagics, args: argparse.Namespace, cell: Optional[str]) -> None:
    """``%hail delete [ID] [--force]``: delete a session (another user's only with --force)."""
    ctx = m.ctx()
    sid = ctx.session.id if args.id is None else args.id
    if sid == ctx.session.id:
        conn.disconnect(ctx, delete=True)
        print_text(f"Deleted session {sid}; its remote variables are gone. %hail connect starts a new one.")
        return
    found = {s.id: s for s in ctx.client.list_sessions()}
    if sid not in found:
        raise HailMagicError(f"There is no session {sid} on {redact_url(ctx.endpoint)} (see %hail sessions).")
    base = ctx.config.get("session_name")
    if not is_own(found[sid].name, base, ctx.session.name) and not args.force:
        raise HailMagicError(
            f"Session {sid} ({found[sid].name}) is not yours (yours are named {ctx.session.name!r}, "
            f"{base!r} or {base}@<notebook>); add --force to delete it anyway."
        )
    ctx.client.delete_session(sid)
    print_text(f"Deleted session {sid}.")


def cleanup(m: HailMagics, args: argparse.Namespace, cell: Optional[str]) -> None:
    """``%hail cleanup``: delete every live session named as this notebook's."""
    ctx = m.ctx()
    ids = conn.own_session_ids(ctx)
    for sid in ids:
        if sid != ctx.session.id:
            ctx.client.delete_session(sid)
    if ctx.session.id in ids or not ids:
        conn.disconnect(ctx, delete=True)
    print_text(f"Deleted {len(ids)} session(s) named {ctx.session.name!r}: {ids or 'none'}. "
               "%hail connect starts a new one.")


def disconnect(m: HailMagics, args: argparse.Namespace, cell: Optional[str]) -> None:
    """``%hail disconnect [--delete]``: forget the session (and delete it with --delete)."""
    ctx = current()
    if ctx.session is None:
        print_text("Not connected.")
        return
    sid = ctx.session.id
    conn.disconnect(ctx, delete=args.delete)
    if args.delete:
        print_text(f"Disconnected and deleted session {sid}.")
    else:
        print_text(f"Disconnected from session {sid}; it stays until Livy's heartbeat timeout, so "
                   "%hail connect can reattach to it.")


def config(m: HailMagics, args: argparse.Namespace, cell: Optional[str]) -> None:
    """``%hail config``: every configuration key, its value (secrets hidden) and its source."""
    ctx = current()
    from ...config import load_config

    cfg = load_config() if ctx.session is None else ctx.config
    rows = [{"key": k, "value": v["value"], "source": v["source"]} for k, v in cfg.as_dict().items()]
    table(rows, ["key", "value", "source"])
    unknown = cfg.values.get("_unknown_keys")
    if unknown:
        warn(f"Warning: unknown keys in the config file are ignored: {', '.join(unknown)}")
