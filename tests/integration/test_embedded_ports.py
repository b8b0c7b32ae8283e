"""One answer to "is this port free for our server": the one our servers' own bind gives (real
loopback sockets, so not in the fast layer)."""

from __future__ import annotations

import socket
import time
from http.server import ThreadingHTTPServer

from hail_emr_lab.embedded.ports import free_port, port_free


def _leave_time_wait() -> int:
    """A port whose listener stopped after serving one connection, closed on its side first: that
    connection lingers in TIME_WAIT, as after a lab that served a browser was stopped."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    served, _ = listener.accept()
    served.close()  # the server closes first, so its end waits in TIME_WAIT
    assert client.recv(1) == b""
    client.close()
    listener.close()
    time.sleep(0.05)
    return port


def test_a_port_with_only_lingering_connections_is_free_and_a_server_binds_it():
    port = _leave_time_wait()
    assert port_free(port)
    server = ThreadingHTTPServer(("127.0.0.1", port), None)  # binds as the embedded Livy does
    server.server_close()


def test_a_listening_port_is_not_free():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        assert not port_free(listener.getsockname()[1])


def test_free_port_is_free():
    assert port_free(free_port())
