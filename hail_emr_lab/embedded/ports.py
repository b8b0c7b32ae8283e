"""Loopback ports for the servers the embedded stack starts (Livy, S3)."""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"


def port_free(port: int, host: str = LOOPBACK) -> bool:
    """Whether a server can bind ``host:port`` now: nothing listens there.

    Asked with ``SO_REUSEADDR``, as our servers bind (the standard library's ``HTTPServer``
    sets it; so does rclone, as every Go listener on Linux): a port whose only sockets are
    connections lingering in TIME_WAIT after a server stopped is free for them, and a restarted
    lab must be able to take its port back at once (Linux ``socket(7)``, ``SO_REUSEADDR``).
    """
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = LOOPBACK) -> int:
    """A port nothing listens on at ``host`` right now (the kernel's choice)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
