"""The fast layer: tests here start no server, no process and no Spark, and reach no network.

``python -m pytest tests/unit`` runs in seconds. A test in this directory that asks for a
server fixture, binds or connects an internet socket (a server, a Livy session, an HTTP call)
or starts a process fails with a message saying what it did; such a test belongs in
``tests/integration``. The guard is on only for this directory's tests, from the start of a
test's set-up to the start of its tear-down.
"""

from __future__ import annotations

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
