"""``hail-emr-lab local-livy``: run the embedded Livy-protocol server in the foreground."""

from __future__ import annotations

import argparse

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
        action="store_true",
        help="require the X-Requested-By header on non-GET requests, like Livy's CSRF protection",
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
    server = EmbeddedLivy(
        host=args.host,
        port=args.port,
        plots_dir=args.plots_dir,
        csrf=args.csrf,
        max_sessions=args.max_sessions,
        session_timeout=args.session_timeout,
    )
    server.start()
    print(f"hail-emr-lab embedded Livy listening on {server.url} (plots in {server.plots_dir})", flush=True)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: bound to {args.host}: anyone who can reach this port can run code as you", flush=True)
    print("Press Ctrl-C to stop.", flush=True)
    server.serve_forever()
    print("hail-emr-lab embedded Livy stopped; all sessions deleted.", flush=True)
    return 0
