"""The fast layer: tests here start no server, no process and no Spark, and reach no network.

``python -m pytest tests/unit`` runs in seconds. A test in this directory that asks for a
server fixture, binds or connects an internet socket (a server, a Livy session, an HTTP call)
or starts a process fails with a message saying what it did; such a test belongs in
``tests/integration``. The guard is on only for this directory's tests, from the start of a
test's set-up to the start of its tear-down.
"""

from __future__ import annotations

import _posixsubprocess
import ipaddress
import os
import socket
import subprocess

import pytest

#: Fixtures of ``tests/conftest.py`` that start a server (the embedded Livy, moto).
SERVER_FIXTURES = frozenset({"livy_server", "moto_server", "aws_env"})
_INTERNET = (socket.AF_INET, socket.AF_INET6)


class FastLayerViolation(BaseException):
    """A unit test did what only integration tests may do.

    A ``BaseException`` so that code under test catching ``Exception`` or ``OSError`` (a port
    probe, a retry loop) cannot swallow it.
    """


def _is_ip_literal(host: object) -> bool:
    """An address written out needs no name lookup (``create_connection`` resolves it anyway)."""
    try:
        ipaddress.ip_address(host.decode() if isinstance(host, bytes) else str(host))
    except ValueError:
        return False
    return True


def _refuse(item: pytest.Item, what: str) -> None:
    message = (
        f"{item.nodeid} {what}: tests/unit is the fast layer (no server, process, network or Spark); "
        "move this test to tests/integration"
    )
    item.stash[_VIOLATIONS].append(message)
    raise FastLayerViolation(message)


_VIOLATIONS = pytest.StashKey[list]()
_UNDO = pytest.StashKey[pytest.MonkeyPatch]()


def _guard(item: pytest.Item) -> pytest.MonkeyPatch:
    mp = pytest.MonkeyPatch()
    real = {name: getattr(socket.socket, name) for name in ("bind", "listen", "connect", "connect_ex")}

    def socket_guard(name: str):
        def guarded(sock: socket.socket, *args, **kwargs):
            if sock.family in _INTERNET:
                _refuse(item, f"called socket.{name}{args!r}")
            return real[name](sock, *args, **kwargs)

        return guarded

    for name in real:
        mp.setattr(socket.socket, name, socket_guard(name))

    def no_process(popen, args, *rest, **kwargs):
        _refuse(item, f"started a process {args!r}")

    mp.setattr(subprocess.Popen, "_execute_child", no_process)
    mp.setattr(os, "system", lambda command: _refuse(item, f"ran os.system({command!r})"))
    # Every other way to start or replace a process (multiprocessing forks or spawns through these).
    for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp", "execv", "execve", "execvp", "execvpe",
                 "execl", "execle", "execlp", "execlpe", "spawnv", "spawnve", "spawnvp", "spawnvpe"):
        if hasattr(os, name):
            mp.setattr(os, name, lambda *args, _name=name, **kwargs: _refuse(item, f"called os.{_name}{args!r}"))
    # multiprocessing's spawn and forkserver start Python through this, not through subprocess.
    mp.setattr(_posixsubprocess, "fork_exec", lambda *args, **kwargs: _refuse(item, "called os.fork_exec (a new process)"))
    # Name lookups and datagrams reach the network without connect().
    real_lookup = socket.getaddrinfo

    def lookup(host, *args, **kwargs):
        if host not in (None, "localhost") and not _is_ip_literal(host):
            _refuse(item, f"looked up {host!r}")
        return real_lookup(host, *args, **kwargs)

    mp.setattr(socket, "getaddrinfo", lookup)
    for name in ("sendto", "sendmsg"):
        real_send = getattr(socket.socket, name)

        def guarded_send(sock: socket.socket, *args, _real=real_send, _name=name, **kwargs):
            if sock.family in _INTERNET:
                _refuse(item, f"called socket.{_name}")
            return _real(sock, *args, **kwargs)

        mp.setattr(socket.socket, name, guarded_send)
    return mp


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Refuse server fixtures by name, then guard sockets and processes for set-up and call."""
    item.stash[_VIOLATIONS] = []
    item.stash[_UNDO] = _guard(item)
    asked = sorted(SERVER_FIXTURES & set(getattr(item, "fixturenames", ())))
    if asked:
        _refuse(item, f"asks for server fixture(s) {', '.join(asked)}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    """Fail a test whose code under test caught the guard's exception and carried on."""
    result = yield
    if item.stash.get(_VIOLATIONS, None):
        pytest.fail("\n".join(item.stash[_VIOLATIONS]), pytrace=False)
    return result


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    undo = item.stash.get(_UNDO, None)
    if undo is not None:
        undo.undo()
