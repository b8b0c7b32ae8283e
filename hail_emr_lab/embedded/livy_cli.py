"""``hail-emr-lab local-livy``: run the embedded Livy-protocol server in the foreground."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Optional

from ..errors import HailEmrLabError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``hail-emr-lab local-livy``."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8998, help="port to listen on (default 8998, Livy's; 0: any free)")
    parser.add_argument(
        "--plots-dir", default=None, help="directory the sessions write plots to (default ~/.hail-emr-lab/local/plots)"
    )
    parser.add_argument(
        "--csrf",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="require the X-Requested-By header and a JSON body on non-GET requests, like Livy's CSRF "
        "protection (default on; --no-csrf for old clients that cannot send it)",
    )
    token = parser.add_mutually_exclusive_group()
    token.add_argument(
        "--token-file",
        default=None,
        help="require the token kept in this file (created with a fresh random token, mode 0600, if missing); "
        "clients send 'Authorization: Bearer TOKEN' or the token as a basic-auth password",
    )
    token.add_argument(
        "--token",
        default=None,
        help="require this token (other users may see it in the process list: prefer --token-file)",
    )
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="HOST",
        help="also answer requests whose Host header names HOST (repeatable; '*': any, which turns off the "
        "DNS-rebinding guard); loopback names and the --host address are always allowed",
    )
    parser.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="also accept browser requests from the web page at ORIGIN, e.g. http://127.0.0.1:8888 "
        "(repeatable; '*': any page, which lets every site you visit run code here)",
    )
    parser.add_argument(
        "--max-sessions",
        type=int,
        default=4,
        help="most sessions at once; each is a Spark driver JVM of ~1 GB (default 4)",
    )
    parser.add_argument(
        "--session-timeout",
        type=float,
        default=3600.0,
        help="delete sessions idle for this many seconds (default 3600, Livy's 1h; 0: never)",
    )


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; every session's worker and JVM is stopped on the way out."""
    from .server import EmbeddedLivy

    if args.max_sessions < 1:
        raise HailEmrLabError(f"--max-sessions must be at least 1, got {args.max_sessions}")
    if args.session_timeout < 0:
        raise HailEmrLabError(f"--session-timeout must be 0 (never) or positive, got {args.session_timeout}")
    if not 0 <= args.port <= 65535:
        raise HailEmrLabError(f"--port must be between 0 and 65535, got {args.port}")
    token, hint = _token(args)
    server = EmbeddedLivy(
        host=args.host,
        port=args.port,
        plots_dir=args.plots_dir,
        csrf=args.csrf,
        max_sessions=args.max_sessions,
        session_timeout=args.session_timeout,
        token=token,
        allowed_hosts=tuple(args.allow_host),
        allowed_origins=tuple(args.allow_origin),
        token_hint=hint,
    )
    server.start()
    print(f"hail-emr-lab embedded Livy listening on {server.url} (plots in {server.plots_dir})", flush=True)
    if token is not None:
        print(f"hail-emr-lab: requests must carry the token{f' kept in {hint}' if hint else ''}", flush=True)
    for warning in _warnings(args, server, token):
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    print("Press Ctrl-C to stop.", flush=True)
    server.serve_forever()
    print("hail-emr-lab embedded Livy stopped; all sessions deleted.", flush=True)
    return 0


def _token(args: argparse.Namespace) -> tuple[Optional[str], Optional[str]]:
    """The token to require and the file it is kept in (None for --token), from the options."""
    from .guard import TokenFileError, ensure_token

    if args.token is not None:
        if len(args.token.strip()) < 16 or any(c.isspace() for c in args.token.strip()):
            raise HailEmrLabError("--token must be at least 16 characters without spaces")
        return args.token.strip(), None
    if args.token_file:
        path = Path(args.token_file).expanduser()
        try:
            return ensure_token(path), str(path)
        except (TokenFileError, OSError) as exc:
            raise HailEmrLabError(f"--token-file: {exc}") from None
    return None, None


def _warnings(args: argparse.Namespace, server: Any, token: Optional[str]) -> list[str]:
    """What an operator should know about the checks this server was started with."""
    out = []
    if server.policy.binds_beyond_loopback and token is None:
        out.append(
            f"listening on {args.host} without a token: anyone who can reach port {server.port} can run code as "
            "you. Restart with --token-file FILE (clients then send its token), or bind 127.0.0.1"
        )
    if not args.csrf:
        out.append(
            "--no-csrf: requests without X-Requested-By or with a non-JSON body are accepted; only the Origin "
            "and Host checks now hold off web pages"
        )
    if "*" in args.allow_origin:
        out.append("--allow-origin '*': every web site you visit may run code through this server")
    if "*" in args.allow_host:
        out.append("--allow-host '*': the DNS-rebinding guard is off")
    return out
