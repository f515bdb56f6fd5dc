"""asyncio: waiting on the event fd with loop.add_reader."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from support import FAST, WAIT, check_lifecycle

from tether import Client, Event, EventKind, Server, StaleHandleError


async def serve_echo(server: Server) -> list[Event]:
    seen = []
    async for ev in server.aevents():  # ends when the server is freed
        seen.append(ev)
        if ev.kind == EventKind.MESSAGE:
            server.send(ev.conn, ev.data)
    return seen


def test_async_for_over_client_and_server_events() -> None:
    async def main() -> None:
        server = Server()
        serving = asyncio.create_task(serve_echo(server))
        client = Client(server.url, **FAST)
        events = []
        async for ev in client.aevents(timeout=WAIT):
            events.append(ev)
            if ev.kind == EventKind.CONNECTED:
                client.send(b"ping")
            elif ev.kind == EventKind.MESSAGE:
                assert ev.data == b"ping"
                client.close()
        # The iteration ended by itself, after CLOSED.
        assert events[-1].kind == EventKind.CLOSED
        check_lifecycle(events)
        client.free()
        server.free()  # wakes serve_echo, whose loop then ends
        seen = await asyncio.wait_for(serving, WAIT)
        assert [e.kind for e in seen][:2] == [EventKind.ACCEPTED, EventKind.MESSAGE]

    asyncio.run(main())


def record_readers(loop: asyncio.AbstractEventLoop) -> list[tuple[str, int]]:
    """Wraps the loop's add_reader / remove_reader to record their fds."""
    calls: list[tuple[str, int]] = []
    add, remove = loop.add_reader, loop.remove_reader

    def add_reader(fd: Any, callback: Callable[..., object], *args: Any) -> None:
        calls.append(("add", fd))
        add(fd, callback, *args)

    def remove_reader(fd: Any) -> bool:
        calls.append(("remove", fd))
        return remove(fd)

    loop.add_reader = add_reader  # type: ignore[method-assign,assignment]
    loop.remove_reader = remove_reader  # type: ignore[method-assign]
    return calls


def test_waiting_uses_a_reader_on_the_event_fd() -> None:
    async def main() -> None:
        calls = record_readers(asyncio.get_running_loop())
        with Server() as server, Client(server.url, **FAST) as client:
            fd = client.fileno()
            kinds = [(await client.next_event_async()).kind for _ in range(2)]
            assert kinds == [EventKind.CONNECTING, EventKind.CONNECTED]
            # Nothing is pending now, so this wait must go through the loop:
            # DISCONNECTED arrives only after the close below.
            waiting = asyncio.create_task(client.next_event_async())
            await asyncio.sleep(0.2)
            client.close()
            assert (await asyncio.wait_for(waiting, WAIT)).kind == EventKind.DISCONNECTED
            client_calls = [c for c in calls if c[1] == fd]
            # Every wait registered the fd and every registration was removed.
            assert client_calls and client_calls[0] == ("add", fd)
            assert client_calls.count(("add", fd)) == client_calls.count(("remove", fd))

    asyncio.run(main())


def test_the_loop_stays_free_while_waiting() -> None:
    """A waiting client does not block the loop: other tasks keep running."""

    async def main() -> None:
        with Server() as server, Client(server.url, **FAST) as client:
            assert (await client.next_event_async(WAIT)).kind == EventKind.CONNECTING
            assert (await client.next_event_async(WAIT)).kind == EventKind.CONNECTED
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1

            t = asyncio.create_task(ticker())
            start = time.monotonic()
            with pytest.raises(TimeoutError):
                await client.next_event_async(timeout=0.3)
            assert time.monotonic() - start >= 0.29
            t.cancel()
            assert ticks >= 10

    asyncio.run(main())


def test_several_coroutines_wait_on_one_client() -> None:
    async def main() -> None:
        with Server() as server:
            client = Client(server.url, **FAST)
            # Both wait at once (one reader serves both); together they see
            # CONNECTING and CONNECTED, each exactly once.
            a, b = await asyncio.gather(client.next_event_async(WAIT), client.next_event_async(WAIT))
            assert sorted([a.kind, b.kind]) == [EventKind.CONNECTING, EventKind.CONNECTED]
            client.free()

    asyncio.run(main())


def test_free_while_awaiting_raises_stale_in_the_waiter() -> None:
    async def main() -> None:
        with Server() as server:
            client = Client(server.url, **FAST)
            await client.next_event_async(WAIT)
            await client.next_event_async(WAIT)  # CONNECTED; now nothing pending
            loop = asyncio.get_running_loop()
            calls = record_readers(loop)
            fd = client.fileno()
            waiter = asyncio.create_task(client.next_event_async())
            await asyncio.sleep(0.05)
            assert calls == [("add", fd)]
            client.free()
            # The reader was removed before C closed the fd.
            assert calls == [("add", fd), ("remove", fd)]
            with pytest.raises(StaleHandleError):
                await asyncio.wait_for(waiter, WAIT)

    asyncio.run(main())
