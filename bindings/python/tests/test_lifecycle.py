"""The end of an event stream, close() and free() for clients and servers,
async with, the connected property and send_async."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import pytest
from support import FAST, WAIT, Echo, Recorder, check_lifecycle, hello_socket

from tether import (
    Client,
    ClosedError,
    DisconnectReason,
    Event,
    EventKind,
    FullError,
    HeartbeatPolicy,
    Server,
    StaleHandleError,
)


def down_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"tcp://127.0.0.1:{port}"


# ----- the end of the stream ------------------------------------------------------


def test_inactivity_raises_timeout_instead_of_ending(server: Server) -> None:
    with Client(server.url, **FAST) as client:
        seen = []
        with pytest.raises(TimeoutError):
            for ev in client.events(timeout=0.3):
                seen.append(ev.kind)
        assert seen == [EventKind.CONNECTING, EventKind.CONNECTED]
        # The stream goes on after the timeout: close() leads to its end.
        client.close()
        assert [e.kind for e in client.events(timeout=WAIT)] == [EventKind.DISCONNECTED, EventKind.CLOSED]
        assert list(client.events(timeout=WAIT)) == []  # after the end: nothing, at once


def test_the_iteration_ends_after_gave_up() -> None:
    client = Client(down_url(), **{**FAST, "backoff": {**FAST["backoff"], "max_attempts": 2}})
    kinds = [e.kind for e in client.events(timeout=WAIT)]
    assert kinds[-1] == EventKind.GAVE_UP and kinds.count(EventKind.CONNECT_FAILED) == 2
    with pytest.raises(ClosedError):
        client.next_event(0)
    client.free()


def test_aevents_raises_timeout_on_inactivity(server: Server) -> None:
    async def main() -> None:
        with Client(server.url, **FAST) as client:
            kinds = []
            with pytest.raises(TimeoutError):
                async for ev in client.aevents(timeout=0.3):
                    kinds.append(ev.kind)
            assert kinds == [EventKind.CONNECTING, EventKind.CONNECTED]
            # A bound on the whole loop: asyncio.timeout around aevents().
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.2):
                    async for _ in client.aevents():
                        pass
            client.close()
            assert [e.kind async for e in client.aevents(timeout=WAIT)] == [
                EventKind.DISCONNECTED,
                EventKind.CLOSED,
            ]

    asyncio.run(main())


# ----- close() and free() ---------------------------------------------------------


def test_client_close_keeps_the_object_for_its_last_events(server: Server) -> None:
    client = Client(server.url, **FAST)
    rec = Recorder(client)
    rec.until_kind(EventKind.CONNECTED)
    client.close()
    assert not client.freed
    rec.until_kind(EventKind.CLOSED)
    check_lifecycle(rec.events)
    with pytest.raises(ClosedError):
        client.send(b"late")
    client.free()
    assert client.freed
    with pytest.raises(StaleHandleError):
        client.poll_event()


def test_server_close_keeps_the_object_for_its_last_events() -> None:
    server = Server(policy=HeartbeatPolicy(interval=5.0, timeout=5.0, max_missed=1))
    clients = [Client(server.url, **FAST) for _ in range(2)]
    recs = [Recorder(c) for c in clients]
    for rec in recs:
        rec.until_kind(EventKind.CONNECTED)
    clients[0].send(b"unread")
    while server.connection_count < 2:
        time.sleep(0.01)
    time.sleep(0.3)  # let the message arrive; nothing was read yet
    server.close()
    assert not server.freed and server.connection_count == 0
    # The events it had, then a CLOSED per open connection, then the end.
    events = list(server.events(timeout=WAIT))
    kinds = [e.kind for e in events]
    assert kinds.count(EventKind.ACCEPTED) == 2 and kinds.count(EventKind.MESSAGE) == 1
    accepted = {e.conn: e.peer for e in events if e.kind == EventKind.ACCEPTED}
    closed = [e for e in events if e.kind == EventKind.CLOSED]
    assert {e.conn: e.peer for e in closed} == accepted
    assert kinds[-2:] == [EventKind.CLOSED, EventKind.CLOSED]
    for e in closed:
        assert e.reason == DisconnectReason.CLOSED_LOCALLY and e.detail and e.handle == server.handle
    with pytest.raises(ClosedError):
        server.next_event(0)
    with pytest.raises(ClosedError):
        server.send(events[0].conn, b"x")
    with pytest.raises(ClosedError):
        server.close_connection(events[0].conn)
    server.close()  # idempotent
    # The clients saw an orderly close.
    for rec in recs:
        ev = rec.until_kind(EventKind.DISCONNECTED)
        assert ev.reason == DisconnectReason.PEER_CLOSED
    for c in clients:
        c.free()
    server.free()
    assert server.freed
    with pytest.raises(StaleHandleError):
        server.poll_event()


def test_server_close_wakes_a_blocked_reader_with_the_last_events(server: Server) -> None:
    client = Client(server.url, **FAST)
    srv = Recorder(server)
    conn = srv.until_kind(EventKind.ACCEPTED).conn
    got: list[Any] = []

    def reader() -> None:
        try:
            got.extend(server.events())  # no timeout: only the end stops it
        except BaseException as e:  # noqa: BLE001
            got.append(e)

    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.1)  # blocked in poll(2)
    server.close()
    t.join(WAIT)
    assert not t.is_alive()
    assert [(e.kind, e.conn) for e in got] == [(EventKind.CLOSED, conn)]
    client.free()


def test_server_close_wakes_an_asyncio_reader() -> None:
    async def main() -> None:
        server = Server()
        client = Client(server.url, **FAST)
        first = await server.next_event_async(WAIT)
        assert first.kind == EventKind.ACCEPTED
        waiter = asyncio.create_task(server.next_event_async())
        await asyncio.sleep(0.05)
        server.close()
        last = await asyncio.wait_for(waiter, WAIT)
        assert (last.kind, last.conn) == (EventKind.CLOSED, first.conn)
        with pytest.raises(ClosedError):
            await server.next_event_async()
        client.free()
        server.free()

    asyncio.run(main())


class Collector:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.threads: list[int] = []
        self.cond = threading.Condition()

    def __call__(self, ev: Event) -> None:
        with self.cond:
            self.events.append(ev)
            self.threads.append(threading.get_ident())
            self.cond.notify_all()

    def wait_for(self, pred: Any) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: pred(self.events), WAIT), self.events


def test_server_close_in_callback_mode() -> None:
    got = Collector()
    server = Server(on_event=got)
    client = Client(server.url, **FAST)
    got.wait_for(lambda evs: any(e.kind == EventKind.ACCEPTED for e in evs))
    server.close()  # the CLOSED is delivered before close() returns
    kinds = [e.kind for e in got.events]
    assert kinds == [EventKind.ACCEPTED, EventKind.CLOSED]
    assert got.events[1].conn == got.events[0].conn
    client.free()
    server.free()


def test_server_close_from_its_own_callback() -> None:
    log: list[str] = []
    threads: set[int] = set()
    holder: dict[str, Server] = {}
    ready, done = threading.Event(), threading.Event()

    def on_event(ev: Event) -> None:
        ready.wait(WAIT)
        log.append(ev.kind.name)
        threads.add(threading.get_ident())
        if ev.kind == EventKind.MESSAGE:
            holder["server"].close()
            log.append("close returned")
        if ev.kind == EventKind.CLOSED:
            done.set()

    holder["server"] = server = Server(on_event=on_event)
    ready.set()
    client = Client(server.url, **FAST)
    Recorder(client).until_kind(EventKind.CONNECTED)
    client.send(b"close now")
    assert done.wait(WAIT)
    time.sleep(0.1)  # would anything follow?
    # The CLOSED comes once the running callback returned, on its thread.
    assert log == ["ACCEPTED", "MESSAGE", "close returned", "CLOSED"]
    assert len(threads) == 1
    client.free()
    server.free()


def test_with_blocks_close_then_free(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    for cls in (Client, Server):
        for name in ("close", "free"):
            original = getattr(cls, name)

            def spy(self: Any, _o: Any = original, _n: str = name) -> None:
                calls.append(f"{type(self).__name__}.{_n}")
                _o(self)

            monkeypatch.setattr(cls, name, spy)
    with Server() as s, Client(s.url, **FAST) as c:
        pass
    assert c.freed and s.freed
    assert calls[:4] == ["Client.close", "Client.free", "Server.close", "Server.free"]


def test_async_with_closes_and_frees() -> None:
    async def main() -> None:
        async with Server() as server, Client(server.url, **FAST) as client:
            assert (await client.next_event_async(WAIT)).kind == EventKind.CONNECTING
        assert client.freed and server.freed

    asyncio.run(main())


# ----- connected ------------------------------------------------------------------------


def test_connected_follows_the_events_taken_in_poll_mode() -> None:
    server = Server()
    echo = Echo(server)
    client = Client(server.url, **FAST)
    rec = Recorder(client)
    assert not client.connected
    rec.until_kind(EventKind.CONNECTING)
    assert not client.connected
    rec.until_kind(EventKind.CONNECTED)
    assert client.connected
    echo.stop()  # the server goes away...
    time.sleep(0.2)
    assert client.connected  # ...but its DISCONNECTED was not taken yet
    rec.until_kind(EventKind.DISCONNECTED)
    assert not client.connected
    client.free()
    assert not client.connected


def test_connected_inside_callbacks(server: Server) -> None:
    seen: list[tuple[EventKind, bool]] = []
    done = threading.Event()
    holder: dict[str, Client] = {}
    ready = threading.Event()

    def on_event(ev: Event) -> None:
        ready.wait(WAIT)
        seen.append((ev.kind, holder["client"].connected))
        if ev.kind == EventKind.CONNECTED:
            holder["client"].close()
        if ev.kind == EventKind.CLOSED:
            done.set()

    holder["client"] = Client(server.url, on_event=on_event, **FAST)
    ready.set()
    assert done.wait(WAIT)
    assert seen == [
        (EventKind.CONNECTING, False),
        (EventKind.CONNECTED, True),
        (EventKind.DISCONNECTED, False),
        (EventKind.CLOSED, False),
    ]
    holder["client"].free()


# ----- send_async -------------------------------------------------------------------------


def fill(send: Any) -> int:
    """Sends until FullError; returns how many were queued."""
    for n in range(10_000):
        try:
            send(b"m%d" % n)
        except FullError:
            return n
    raise AssertionError("never full")


def test_send_async_waits_for_room_and_then_sends() -> None:
    url = down_url()
    client = Client(url, max_pending=2, **FAST)
    rec = Recorder(client)
    rec.until_kind(EventKind.CONNECT_FAILED)
    queued = fill(client.send)

    async def main() -> None:
        task = asyncio.create_task(client.send_async(b"waited"))
        await asyncio.sleep(0.2)
        assert not task.done()  # still full: it waits instead of raising
        with Server(url) as server:
            echo = Echo(server)
            await asyncio.wait_for(task, WAIT)
            got: list[bytes] = []
            while len(got) < queued + 1:
                ev = await client.next_event_async(WAIT)
                if ev.kind == EventKind.MESSAGE:
                    got.append(ev.data)
            assert got == [b"m%d" % i for i in range(queued)] + [b"waited"]
            client.free()
            echo.stop()

    asyncio.run(main())


def test_send_async_is_cancellable_and_has_a_timeout() -> None:
    url = down_url()
    client = Client(url, max_pending=1, **FAST)
    Recorder(client).until_kind(EventKind.CONNECT_FAILED)
    queued = fill(client.send)

    async def main() -> None:
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            await client.send_async(b"never", timeout=0.2)
        assert 0.19 <= time.monotonic() - start < 2
        task = asyncio.create_task(client.send_async(b"cancelled"))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    # Neither message was queued: only the first ones arrive.
    with Server(url) as server:
        echo = Echo(server)
        rec = Recorder(client)
        got = [rec.until_kind(EventKind.MESSAGE).data for _ in range(queued)]
        assert got == [b"m%d" % i for i in range(queued)]
        with pytest.raises(AssertionError):
            rec.until_kind(EventKind.MESSAGE, timeout=0.3)
        client.free()
        echo.stop()


def test_send_async_copies_a_mutable_buffer(server: Server) -> None:
    echo = Echo(server)
    with Client(server.url, **FAST) as client:
        rec = Recorder(client)
        rec.until_kind(EventKind.CONNECTED)
        buf = bytearray(b"before")

        async def main() -> None:
            await client.send_async(buf)

        asyncio.run(main())
        buf[:] = b"after!"
        assert rec.until_kind(EventKind.MESSAGE).data == b"before"
    echo.stop()


def test_server_send_async_waits_for_a_slow_reader() -> None:
    """A raw TCP peer that does not read: the server's queue fills; once the
    peer reads, send_async completes."""
    with Server(send_queue=1) as server:
        peer = hello_socket(server.port)
        try:
            conn = Recorder(server).until_kind(EventKind.ACCEPTED).conn
            chunk = bytes(256 * 1024)
            # Until the kernel's buffers are full too: the queue stays full.
            deadline = time.monotonic() + WAIT
            while True:
                fill(lambda _m: server.send(conn, chunk))
                time.sleep(0.2)
                try:
                    server.send(conn, chunk)
                except FullError:
                    break
                assert time.monotonic() < deadline, "the queue never stayed full"

            async def main() -> None:
                task = asyncio.create_task(server.send_async(conn, b"last"))
                await asyncio.sleep(0.2)
                assert not task.done()
                stop = threading.Event()

                def drain() -> None:
                    peer.settimeout(0.05)
                    while not stop.is_set():
                        try:
                            if not peer.recv(1 << 20):
                                return
                        except TimeoutError:
                            pass

                reader = threading.Thread(target=drain)
                reader.start()
                try:
                    await asyncio.wait_for(task, WAIT)
                finally:
                    stop.set()
                    reader.join(WAIT)

            asyncio.run(main())
        finally:
            peer.close()


def test_send_async_after_close_raises_closed(server: Server) -> None:
    async def main() -> None:
        client = Client(server.url, **FAST)
        client.close()
        with pytest.raises(ClosedError):
            await client.send_async(b"x")
        client.free()
        with pytest.raises(StaleHandleError):
            await client.send_async(b"x")
        other = Server()
        other.close()
        with pytest.raises(ClosedError):
            await other.send_async(1, b"x")
        other.free()

    asyncio.run(main())
