"""``journey broker``'s check that its port is free (agents/cli/broker.py)."""

from __future__ import annotations

import socket
import subprocess
import time

import pytest

from agents.cli.broker import _free


def _listener() -> socket.socket:
    """A listener bound as servers (the broker included) bind: with SO_REUSEADDR, which
    its connections keep into TIME-WAIT, and which lets a later bind share the port."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s


def _time_wait_port() -> int:
    """A port whose only sockets are in TIME-WAIT: the side that closes first keeps it,
    so the listener's side (as a broker's is, when it stops) closes first."""
    listener = _listener()
    port = int(listener.getsockname()[1])
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = listener.accept()
    listener.close()
    accepted.close()  # the server side closes first: it goes to TIME-WAIT
    client.recv(1)  # the FIN arrived
    client.close()
    return port


def _states(port: int) -> set[str]:
    out = subprocess.run(["ss", "-tanH", f"sport = :{port}"], capture_output=True,
                         text=True, check=False).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _settled_states(port: int, within: float = 5.0) -> set[str]:
    """The port's socket states once the closing handshake has finished (TIME-WAIT
    only), or as they are when ``within`` seconds have passed."""
    deadline = time.monotonic() + within
    states = _states(port)
    while states != {"TIME-WAIT"} and time.monotonic() < deadline:
        time.sleep(0.05)
        states = _states(port)
    return states


def test_a_port_with_a_listener_is_refused() -> None:
    with _listener() as listener:
        assert not _free(int(listener.getsockname()[1]))


def test_a_port_held_only_by_time_wait_counts_as_free() -> None:
    port = _time_wait_port()
    try:
        states = _settled_states(port)
    except FileNotFoundError:
        states = set()  # no ss here: the bind below still shows the probe is not fooled
    if states and states != {"TIME-WAIT"}:
        pytest.fail(f"the setup left {states} on port {port}, not only TIME-WAIT")
    # the setup is what a probe without SO_REUSEADDR trips on
    with socket.socket() as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))
    assert _free(port)
