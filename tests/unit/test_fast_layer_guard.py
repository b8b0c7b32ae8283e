"""The fast layer's guard: a test under tests/unit that starts a server or a process, reaches
the network or asks for a server fixture fails with a message saying so, even when the code
under test swallows the error; tests elsewhere are not affected."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

GUARD = Path(__file__).with_name("conftest.py")

OFFENDERS = '''
import os
import socket
import subprocess

def test_pure():
    assert sorted([2, 1]) == [1, 2]

def test_local_socketpair_is_fine():
    a, b = socket.socketpair()
    a.close(); b.close()

def test_starts_a_server():
    socket.socket().bind(("127.0.0.1", 0))

def test_reaches_the_network():
    socket.create_connection(("127.0.0.1", 9), timeout=1)

def test_starts_a_process():
    subprocess.run(["true"])

def test_runs_a_shell():
    os.system("true")

def test_swallows_the_refusal():
    try:
        socket.socket().bind(("127.0.0.1", 0))
    except BaseException:
        pass

def test_asks_for_livy(livy_server):
    pass

def test_spawns_directly():
    os.posix_spawn("/bin/true", ["true"], {})

def test_starts_a_multiprocessing_worker():
    import multiprocessing
    multiprocessing.get_context("spawn").Process(target=print).start()

def test_resolves_a_name():
    socket.getaddrinfo("example.com", 80)

def test_sends_a_datagram():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.sendto(b"x", ("127.0.0.1", 9))
'''


ELSEWHERE = '''
import os
import socket
import subprocess

def state():
    return (socket.socket.bind, socket.socket.connect, subprocess.Popen._execute_child, os.system)

SEEN = state()

def test_no_guard_outside_unit():
    assert state() == SEEN
'''


@pytest.fixture
def layered(pytester: pytest.Pytester) -> pytest.Pytester:
    """A tree like ours: a root conftest with a server fixture, unit/ guarded, x_elsewhere/ not."""
    pytester.makeconftest("import pytest\n\n@pytest.fixture\ndef livy_server():\n    return 'a server'\n")
    (pytester.path / "unit").mkdir()
    (pytester.path / "unit" / "conftest.py").write_text(GUARD.read_text())
    (pytester.path / "unit" / "test_offenders.py").write_text(OFFENDERS)
    # Collected before any test runs, so SEEN is the state outside the guard; "x_elsewhere" runs
    # after "unit", so it also sees that the guard was undone.
    (pytester.path / "x_elsewhere").mkdir()
    (pytester.path / "x_elsewhere" / "test_elsewhere.py").write_text(ELSEWHERE)
    return pytester


def test_only_pure_unit_tests_pass_and_each_offence_is_named(layered: pytest.Pytester):
    result = layered.runpytest_inprocess("-p", "no:cacheprovider", "-rfE")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed") == 3, result.stdout.str()  # test_pure, the socketpair, x_elsewhere/
    assert outcomes.get("failed", 0) + outcomes.get("errors", outcomes.get("error", 0)) == 10, result.stdout.str()
    out = result.stdout.str()
    for offence in (
        "test_starts_a_server called socket.bind",
        "test_reaches_the_network called socket.connect",
        "test_starts_a_process started a process ['true']",
        "test_runs_a_shell ran os.system('true')",
        "test_swallows_the_refusal called socket.bind",
        "test_asks_for_livy asks for server fixture(s) livy_server",
        "test_spawns_directly called os.posix_spawn",
        "test_starts_a_multiprocessing_worker called os.",
        "test_resolves_a_name looked up 'example.com'",
        "test_sends_a_datagram called socket.sendto",
    ):
        assert offence in out, out
    assert "move this test to tests/integration" in out
