"""Callback mode: events on tether's dispatch thread, and complaint 8:
destroying the object inside its own callback."""

from __future__ import annotations

import threading
import time

import pytest
from support import FAST, WAIT, Echo, check_lifecycle

from tether import Client, Event, EventKind, Server, WrongModeError


class Collector:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.threads: set[int] = set()
        self.cond = threading.Condition()

    def __call__(self, ev: Event) -> None:
        with self.cond:
            self.events.append(ev)
            self.threads.add(threading.get_ident())
            self.cond.notify_all()

    def wait_kind(self, kind: EventKind, n: int = 1) -> None:
        with self.cond:
            ok = self.cond.wait_for(lambda: sum(e.kind == kind for e in self.events) >= n, WAIT)
        assert ok, [e.kind.name for e in self.events]


def test_callback_mode_delivers_in_order_on_a_tether_thread(server: Server) -> None:
    echo = Echo(server)
    got = Collector()
    client = Client(server.url, on_event=got, **FAST)
    assert client.callback_mode
    got.wait_kind(EventKind.CONNECTED)
    client.send(b"hello")
    got.wait_kind(EventKind.MESSAGE)
    with pytest.raises(WrongModeError):
        client.poll_event()
    with pytest.raises(WrongModeError):
        client.fileno()
    client.close()
    got.wait_kind(EventKind.CLOSED)
    client.free()
    check_lifecycle(got.events)
    assert threading.get_ident() not in got.threads and len(got.threads) == 1
    echo.stop()


def test_free_inside_own_callback(server: Server) -> None:
    """mosquitto #1067: the client frees itself from its CONNECTED callback.
    The call completes, nothing follows, nothing crashes."""
    after_free: list[Event] = []
    seen: list[Event] = []
    done = threading.Event()
    holder: dict[str, Client] = {}
    ready = threading.Event()

    def on_event(ev: Event) -> None:
        ready.wait(WAIT)  # until `holder` has the client
        if holder.get("freed"):
            after_free.append(ev)
        seen.append(ev)
        if ev.kind == EventKind.CONNECTED:
            client = holder.pop("client")
            client.free()
            client.free()  # idempotent, even here
            holder["freed"] = client
            done.set()

    holder["client"] = Client(server.url, on_event=on_event, **FAST)
    ready.set()
    assert done.wait(WAIT)
    time.sleep(0.2)  # would any callback still come?
    assert after_free == []
    assert [e.kind for e in seen] == [EventKind.CONNECTING, EventKind.CONNECTED]
    # The server sees the connection end.
    for ev in server.events(timeout=WAIT):
        if ev.kind == EventKind.CLOSED:
            break
    else:
        raise AssertionError("the server never saw the connection close")


def test_no_callback_after_free_returns(server: Server) -> None:
    got = Collector()
    client = Client(server.url, on_event=got, **FAST)
    got.wait_kind(EventKind.CONNECTED)
    client.free()
    n = len(got.events)
    time.sleep(0.2)
    assert len(got.events) == n


def test_dropping_the_last_reference_frees_a_callback_client(server: Server) -> None:
    got = Collector()
    client = Client(server.url, on_event=got, **FAST)
    got.wait_kind(EventKind.CONNECTED)
    del client  # __del__ frees it; the server sees the close
    for ev in server.events(timeout=WAIT):
        if ev.kind == EventKind.CLOSED:
            break
    else:
        raise AssertionError("the server never saw the connection close")


def test_free_on_the_very_first_event(server: Server) -> None:
    """CONNECTING may arrive before the constructor returns; freeing from it
    still works (the callback waits until the object exists)."""
    done = threading.Event()
    clients: list[Client] = []

    def on_event(ev: Event) -> None:
        if ev.kind == EventKind.CONNECTING and not done.is_set():
            clients[0].free()
            done.set()

    class Late(Client):
        def _adopt(self, handle: object) -> None:
            time.sleep(0.1)  # widen the window before the handle is known
            super()._adopt(handle)
            clients.append(self)

    client = Late(server.url, on_event=on_event, **FAST)
    assert done.wait(WAIT) and client.freed


def test_an_exception_in_the_callback_does_not_stop_delivery(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    reported: list[BaseException | None] = []
    monkeypatch.setattr("sys.unraisablehook", lambda u: reported.append(u.exc_value))
    got = Collector()

    def on_event(ev: Event) -> None:
        got(ev)
        if ev.kind == EventKind.CONNECTING:
            raise RuntimeError("user bug")

    client = Client(server.url, on_event=on_event, **FAST)
    got.wait_kind(EventKind.CONNECTED)
    client.free()
    assert len(reported) == 1 and isinstance(reported[0], RuntimeError)


def test_interpreter_exit_with_live_callback_objects() -> None:
    """Objects never freed: the atexit hook frees them before finalization,
    so no tether thread calls into a dying interpreter."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import time, tether\n"
        "server = tether.Server(on_event=lambda ev: time.sleep(0.01))\n"
        "client = tether.Client(server.url, heartbeat_interval=0.05, heartbeat_timeout=0.05,\n"
        "                       on_event=lambda ev: time.sleep(0.01))\n"
        "time.sleep(0.2)\n"
        "client.send(b'x' * 100)\n"
        "print('exiting', flush=True)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for _ in range(3):
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and r.stdout == "exiting\n", r.stderr
