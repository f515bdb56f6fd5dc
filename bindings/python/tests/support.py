"""Helpers of the managed-object tests: fast settings, event recording and
the lifecycle grammar check."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import tether
from tether import DisconnectReason, Event, EventKind

#: Client settings that make reconnects quick (20 ms doubling to 100 ms, no
#: jitter) and the heartbeat short enough to matter within a test.
FAST: dict[str, Any] = {
    "heartbeat_interval": 1.0,
    "heartbeat_timeout": 0.5,
    "heartbeat_max_missed": 2,
    "backoff": {"initial": 0.02, "max_delay": 0.1, "jitter": "none", "healthy_after": 0},
}

WAIT = 5.0  # seconds; generous, only reached when something is broken


class Recorder:
    """Pulls the events of one poll-mode object and keeps them all."""

    def __init__(self, source: tether.Client | tether.Server) -> None:
        self.source = source
        self.events: list[Event] = []

    def until(self, pred: Callable[[Event], bool], timeout: float = WAIT) -> Event:
        """Records events up to and including the first matching ``pred``."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                ev = self.source.next_event(timeout=max(remaining, 0))
            except TimeoutError:
                raise AssertionError(f"timed out; events so far: {self.kinds()}") from None
            self.events.append(ev)
            if pred(ev):
                return ev

    def until_kind(self, kind: EventKind, timeout: float = WAIT) -> Event:
        return self.until(lambda e: e.kind == kind, timeout)

    def count(self, kind: EventKind) -> int:
        return sum(e.kind == kind for e in self.events)

    def kinds(self) -> list[str]:
        return [e.kind.name for e in self.events]


class Echo(threading.Thread):
    """Echoes every message a poll-mode server receives, on a thread that
    blocks in ``events()``; the loop ends when the server is freed."""

    def __init__(self, server: tether.Server) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.events: list[Event] = []
        self.error: BaseException | None = None
        self._seen = threading.Condition()
        self.start()

    def run(self) -> None:
        try:
            for ev in self.server.events():
                with self._seen:
                    self.events.append(ev)
                    self._seen.notify_all()
                if ev.kind == EventKind.MESSAGE:
                    self.server.send(ev.conn, ev.data)
        except BaseException as e:  # noqa: BLE001 - reported by stop()
            self.error = e

    def wait_kind(self, kind: EventKind, n: int = 1) -> None:
        """Waits until the server reported ``n`` events of ``kind``."""
        with self._seen:
            ok = self._seen.wait_for(lambda: sum(e.kind == kind for e in self.events) >= n, WAIT)
        assert ok, [e.kind.name for e in self.events]

    def stop(self) -> None:
        """Frees the server (waking the blocked thread) and joins it."""
        self.server.free()
        self.join(WAIT)
        assert not self.is_alive(), "the events() loop did not end when the server was freed"
        assert self.error is None, self.error


def check_lifecycle(events: list[Event]) -> None:
    """The client grammar: per generation (1, 2, ... without gaps) one
    CONNECTING, then CONNECT_FAILED or CONNECTED; every CONNECTED followed by
    exactly one DISCONNECTED; MESSAGEs only while connected, carrying that
    connection's generation; WAITING and the terminal event carrying the
    last attempt's; exactly one terminal event, last; every event from the
    same object (one ``handle``)."""
    generation = 0
    open_gen: int | None = None
    resolved = True
    terminal = 0
    handles = {e.handle for e in events}
    assert len(handles) <= 1, f"events of several objects: {handles}"
    for i, e in enumerate(events):
        where = f"event {i} {e} in {[x.kind.name for x in events]}"
        assert terminal == 0, f"an event after the terminal one: {where}"
        if e.kind in (EventKind.WAITING, EventKind.CLOSED, EventKind.GAVE_UP, EventKind.FAILED):
            assert e.generation == generation, f"not the last attempt's generation: {where}"
        if e.kind in (
            EventKind.CONNECTING,
            EventKind.CONNECTED,
            EventKind.WAITING,
            EventKind.MESSAGE,
            EventKind.CLOSED,
        ):
            assert e.reason is None, f"a reason where none applies: {where}"
        if e.kind == EventKind.CONNECTING:
            assert open_gen is None and resolved, where
            assert e.generation == generation + 1, where
            generation = e.generation
            resolved = False
        elif e.kind == EventKind.CONNECTED:
            assert e.generation == generation and not resolved, where
            open_gen, resolved = generation, True
        elif e.kind == EventKind.CONNECT_FAILED:
            assert e.generation == generation and not resolved, where
            # Or a connection the kernel completed that ended before the
            # server's welcome, or a refused certificate.
            assert e.reason in (
                DisconnectReason.CONNECT_REFUSED,
                DisconnectReason.CONNECT_TIMEOUT,
                DisconnectReason.UNREACHABLE,
                DisconnectReason.PEER_CLOSED,
                DisconnectReason.RESET,
                DisconnectReason.TLS_CERTIFICATE,
                DisconnectReason.TLS_NAME_MISMATCH,
            ), where
            resolved = True
        elif e.kind == EventKind.DISCONNECTED:
            assert open_gen is not None and e.generation == open_gen, where
            assert e.reason is not None, where
            open_gen = None
        elif e.kind == EventKind.WAITING:
            assert open_gen is None and resolved and e.delay > 0, where
        elif e.kind == EventKind.MESSAGE:
            assert open_gen is not None and e.generation == open_gen, where
        elif e.kind in (EventKind.CLOSED, EventKind.GAVE_UP, EventKind.FAILED):
            assert open_gen is None, f"terminal while connected: {where}"
            if e.kind == EventKind.FAILED:
                assert e.reason == DisconnectReason.INTERNAL and e.detail, where
            terminal += 1
        else:
            raise AssertionError(f"unexpected client event: {where}")


#: A tether client's opening on the wire: a hello frame (kind 4, length
#: 10) with protocol version 1 and no capabilities.
HELLO_FRAME = bytes([4]) + struct.pack(">I", 10) + struct.pack(">HQ", 1, 0)


def hello_socket(port: int) -> socket.socket:
    """A plain TCP socket to a tether server on loopback that has sent the
    hello, so that the server accepts it; it does nothing else."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(HELLO_FRAME)
    return sock
