"""Complaint 3 (no reconnect after a server restart): the server goes away
and comes back on the same kernel-chosen port while the client reconnects;
every lifecycle event happens exactly once, in order."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from support import FAST, WAIT, Echo, Recorder, check_lifecycle

from tether import Client, DisconnectReason, EventKind, Server

SERVER_SCRIPT = Path(__file__).with_name("echo_server.py")


def assert_restart_story(rec: Recorder) -> None:
    check_lifecycle(rec.events)
    assert rec.count(EventKind.CONNECTED) == 2
    assert rec.count(EventKind.DISCONNECTED) == 2
    assert rec.count(EventKind.CLOSED) == 1 and rec.events[-1].kind == EventKind.CLOSED
    assert rec.count(EventKind.CONNECT_FAILED) >= 1 and rec.count(EventKind.WAITING) >= 1
    ends = [e for e in rec.events if e.kind == EventKind.DISCONNECTED]
    assert ends[0].generation == 1
    assert ends[0].reason in (DisconnectReason.PEER_CLOSED, DisconnectReason.RESET)
    assert ends[1].reason == DisconnectReason.CLOSED_LOCALLY
    messages = [e.data for e in rec.events if e.kind == EventKind.MESSAGE]
    assert messages == [b"one", b"two", b"three"]


def test_python_server_freed_and_restarted_on_the_same_port() -> None:
    first = Server("tcp://127.0.0.1:0")
    url = first.url
    echo = Echo(first)
    client = Client(url, **FAST)
    rec = Recorder(client)
    rec.until_kind(EventKind.CONNECTED)
    client.send(b"one")
    assert rec.until_kind(EventKind.MESSAGE).data == b"one"

    echo.stop()  # frees the server: its connection closes
    rec.until_kind(EventKind.DISCONNECTED)
    client.send(b"two")  # buffered while down
    rec.until_kind(EventKind.CONNECT_FAILED)

    with Server(url) as second:
        echo2 = Echo(second)
        rec.until_kind(EventKind.CONNECTED)
        assert rec.until_kind(EventKind.MESSAGE).data == b"two"
        client.send(b"three")
        assert rec.until_kind(EventKind.MESSAGE).data == b"three"
        client.close()
        rec.until_kind(EventKind.CLOSED)
        assert list(client.events(timeout=0.2)) == []  # nothing after CLOSED
        client.free()
        echo2.wait_kind(EventKind.CLOSED)
        echo2.stop()
    assert_restart_story(rec)
    accepted = [e for e in echo2.events if e.kind == EventKind.ACCEPTED]
    closed = [e for e in echo2.events if e.kind == EventKind.CLOSED]
    assert len(accepted) == 1 and [e.conn for e in closed] == [accepted[0].conn]


def start_server(port: int) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, str(SERVER_SCRIPT), str(port)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        stop_server(proc)
        pytest.fail(f"the server process exited with {proc.returncode}")
    return proc, int(line)


def stop_server(proc: subprocess.Popen[str], sig: signal.Signals = signal.SIGKILL) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
    proc.wait(WAIT)
    if proc.stdout is not None:
        proc.stdout.close()


@pytest.mark.parametrize("kill", [signal.SIGKILL, signal.SIGTERM])
def test_server_process_killed_and_restarted(kill: signal.Signals) -> None:
    proc, port = start_server(0)
    try:
        client = Client(f"tcp://127.0.0.1:{port}", **FAST)
        rec = Recorder(client)
        rec.until_kind(EventKind.CONNECTED)
        client.send(b"one")
        assert rec.until_kind(EventKind.MESSAGE).data == b"one"
        stop_server(proc, kill)
        rec.until_kind(EventKind.DISCONNECTED)
        client.send(b"two")
        rec.until_kind(EventKind.CONNECT_FAILED)
        proc, again = start_server(port)
        assert again == port
        rec.until_kind(EventKind.CONNECTED)
        assert rec.until_kind(EventKind.MESSAGE).data == b"two"
        client.send(b"three")
        assert rec.until_kind(EventKind.MESSAGE).data == b"three"
        client.close()
        rec.until_kind(EventKind.CLOSED)
        client.free()
        assert_restart_story(rec)
    finally:
        stop_server(proc)
