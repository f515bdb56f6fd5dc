"""Event delivery of managed objects, shared by :class:`~tether.Client` and
:class:`~tether.Server`.

Poll mode (the default): events wait in tether's queue; the event fd
(``fileno()``) is readable exactly while the queue is not empty.
:meth:`Managed.poll_event` takes one without blocking;
:meth:`Managed.next_event` / :meth:`Managed.events` block on the fd (with
``poll(2)``); :meth:`Managed.next_event_async` / :meth:`Managed.aevents` wait
with ``loop.add_reader``.

Callback mode (``on_event=``): tether calls ``on_event(event)`` on a dispatch
thread it owns (one per object, events in order; ctypes takes the GIL).
The callback may free its own object (the current call completes and no
other follows).

Freeing is safe against every waiter: threads blocked in ``next_event`` are
woken (through a private pipe) and see :class:`~tether.StaleHandleError` (an
``events()`` loop just ends), asyncio readers are removed and their awaits
raise it, and the C free runs only after nobody waits on the fd any more (C
closes it).
"""

from __future__ import annotations

import asyncio
import atexit
import os
import select
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from ctypes import POINTER, byref, c_char_p, c_int, c_uint8, cast
from typing import Any, ClassVar

from . import _ffi
from ._handle import Owned
from .errors import ClosedError, Result, StaleHandleError, TetherError, check, error
from .events import Event

EventCallback = Callable[[Event], None]

# Thunks of objects freed from inside their own callback: the dispatch thread
# is still executing them, so they must outlive the object. One per such
# object, never freed (a few hundred bytes).
_retired_thunks: list[Any] = []
# Callback-mode objects still alive; freed at interpreter exit so that no
# tether thread calls into a finalizing interpreter.
_live_callbacks: weakref.WeakSet[Managed] = weakref.WeakSet()


@atexit.register
def _free_callback_objects() -> None:
    for obj in list(_live_callbacks):
        try:
            obj.free()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


def as_bytes_pointer(data: bytes | bytearray | memoryview) -> tuple[Any, int, bytes]:
    """A ``const uint8_t *`` and length for ``data``; the bytes object
    returned with them must stay alive for the call."""
    buf = bytes(data)
    return cast(c_char_p(buf), POINTER(c_uint8)), len(buf), buf


class Managed(Owned):
    """Shared base of :class:`~tether.Client` and :class:`~tether.Server`."""

    _poll_name: ClassVar[str]
    _event_fd_name: ClassVar[str]

    def _start(self, create: Callable[[Any], Any], on_event: EventCallback | None) -> None:
        """Creates the C object with ``create(callback)`` and adopts it."""
        self._lock = threading.Lock()  # poll + copy; the freed flag
        self._no_waiters = threading.Condition(self._lock)
        self._waiting = 0  # threads blocked in poll(2) on the event fd
        self._wake: tuple[int, int] | None = None
        self._async_lock = threading.Lock()
        self._async: dict[asyncio.AbstractEventLoop, set[asyncio.Future[None]]] = {}
        self._fd: int | None = None
        self._finished = False  # the terminal event was handed out
        self._dispatch_thread: int | None = None
        self._thunk: Any = None
        if on_event is None:
            self._adopt(create(_ffi.tether_event_callback()))  # NULL: poll mode
            return
        adopted = threading.Event()
        self._thunk = self._make_thunk(on_event, adopted)
        try:
            self._adopt(create(self._thunk))
            _live_callbacks.add(self)
        finally:
            adopted.set()

    # ----- callback mode ------------------------------------------------

    def _make_thunk(self, on_event: EventCallback, adopted: threading.Event) -> Any:
        ref = weakref.ref(self)

        def dispatch(_userdata: Any, event_ptr: Any) -> None:
            # The first event may come before the constructor returned; the
            # callback may use the object (even free it), so wait for it.
            adopted.wait()
            obj = ref()  # held for the whole call: the object outlives it
            if obj is not None:
                obj._dispatch_thread = threading.get_ident()
            on_event(Event._from_c(event_ptr.contents, obj))

        return _ffi.tether_event_callback(dispatch)

    @property
    def callback_mode(self) -> bool:
        """True when events go to ``on_event`` instead of the poll queue."""
        return self._thunk is not None

    # ----- poll mode ------------------------------------------------------

    def _is_terminal(self, event: Event) -> bool:
        """True for the last event this object will ever report."""
        return False

    def _stale(self) -> TetherError:
        return error(Result.STALE_HANDLE, f"{type(self).__name__} was freed")

    def fileno(self) -> int:
        """The event fd: readable exactly while events are pending. Never
        read, write or close it; unregister it from your selector before
        :meth:`free` (which closes it)."""
        if self._fd is None:
            out = c_int()
            check(self._call(self._event_fd_name)(self._handle, byref(out)))
            self._fd = out.value
        elif self._freed:
            raise self._stale()
        return self._fd

    def poll_event(self) -> Event | None:
        """The next pending event, or None at once when there is none."""
        raw = _ffi.tether_event()
        with self._lock:
            if self._freed:
                raise self._stale()
            rc = self._call(self._poll_name)(self._handle, byref(raw))
            if rc == Result.EMPTY:
                return None
            check(rc)
            # raw.data is valid until the next poll or the free, both of
            # which wait for this lock: copy it now.
            event = Event._from_c(raw, self)
        if self._is_terminal(event):
            self._finished = True
        return event

    def next_event(self, timeout: float | None = None) -> Event:
        """The next event, waiting up to ``timeout`` seconds (None: no limit).

        Raises :class:`TimeoutError` when none arrives in time,
        :class:`~tether.ClosedError` after the terminal event (nothing
        follows it), :class:`~tether.StaleHandleError` once freed (also when
        freed by another thread while waiting).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            event = self.poll_event()
            if event is not None:
                return event
            self._check_not_finished()
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"no {type(self).__name__} event within {timeout} s")
            self._wait_readable(remaining)

    def events(self, timeout: float | None = None) -> Iterator[Event]:
        """Events as they come. Ends after the terminal event (a client's
        CLOSED or GAVE_UP), when none arrives within ``timeout`` seconds of
        the previous one, or when the object is freed."""
        while True:
            try:
                event = self.next_event(timeout)
            except (TimeoutError, ClosedError):
                return
            except StaleHandleError:
                if self._freed:
                    return
                raise
            yield event
            if self._is_terminal(event):
                return

    def _check_not_finished(self) -> None:
        if self._finished:
            raise error(Result.CLOSED, f"{type(self).__name__} reported its last event")

    def _wait_readable(self, timeout: float | None) -> None:
        """Blocks until the event fd is readable, ``timeout`` passes, or the
        object is freed (then raises StaleHandleError)."""
        fd = self.fileno()
        with self._lock:
            if self._freed:
                raise self._stale()
            if self._wake is None:
                self._wake = os.pipe()
            wake_r = self._wake[0]
            self._waiting += 1
        try:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            poller.register(wake_r, select.POLLIN)
            poller.poll(None if timeout is None else max(0, int(timeout * 1000) + 1))
        finally:
            with self._lock:
                self._waiting -= 1
                self._no_waiters.notify_all()
        if self._freed:
            raise self._stale()

    # ----- asyncio ----------------------------------------------------------

    async def next_event_async(self, timeout: float | None = None) -> Event:
        """As :meth:`next_event`, awaiting the event fd with
        ``loop.add_reader`` instead of blocking the thread."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            event = self.poll_event()
            if event is not None:
                return event
            self._check_not_finished()
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"no {type(self).__name__} event within {timeout} s")
            await self._readable_async(loop, remaining)

    async def aevents(self, timeout: float | None = None) -> AsyncIterator[Event]:
        """As :meth:`events`, for ``async for``."""
        while True:
            try:
                event = await self.next_event_async(timeout)
            except (TimeoutError, ClosedError):
                return
            except StaleHandleError:
                if self._freed:
                    return
                raise
            yield event
            if self._is_terminal(event):
                return

    async def _readable_async(self, loop: asyncio.AbstractEventLoop, timeout: float | None) -> None:
        fd = self.fileno()
        future: asyncio.Future[None] = loop.create_future()
        with self._async_lock:
            if self._freed:
                raise self._stale()
            waiters = self._async.get(loop)
            if waiters is None:
                # One reader per loop serves every coroutine waiting in it
                # (add_reader would replace an earlier registration).
                waiters = self._async[loop] = set()
                loop.add_reader(fd, self._on_readable, loop, fd)
            waiters.add(future)
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            pass
        finally:
            with self._async_lock:
                if self._async.get(loop) is waiters:
                    waiters.discard(future)
                    if not waiters:
                        del self._async[loop]
                        loop.remove_reader(fd)

    def _on_readable(self, loop: asyncio.AbstractEventLoop, fd: int) -> None:
        with self._async_lock:
            waiters = self._async.pop(loop, set())
            loop.remove_reader(fd)
        for future in waiters:
            if not future.done():
                future.set_result(None)

    def _detach_async(self) -> None:
        """Removes every asyncio reader (before C closes the fd) and fails
        the coroutines waiting on it with StaleHandleError."""
        with self._async_lock:
            registrations = list(self._async.items())
            self._async.clear()
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        for loop, waiters in registrations:
            if loop is current:
                self._detach_loop(loop, waiters)
                continue
            done = threading.Event()
            try:
                loop.call_soon_threadsafe(self._detach_loop, loop, waiters, done)
            except RuntimeError:  # the loop is closed, and its selector with it
                continue
            # A loop that is stopped (not closed) never runs the call; do not
            # hang on it.
            done.wait(timeout=1.0)

    def _detach_loop(
        self,
        loop: asyncio.AbstractEventLoop,
        waiters: set[asyncio.Future[None]],
        done: threading.Event | None = None,
    ) -> None:
        try:
            if self._fd is not None:
                loop.remove_reader(self._fd)
            for future in waiters:
                if not future.done():
                    future.set_exception(self._stale())
        finally:
            if done is not None:
                done.set()

    # ----- freeing ------------------------------------------------------------

    def free(self) -> None:
        """Releases the object: closes its connection(s), discards pending
        events, closes the event fd. Idempotent. Allowed from inside this
        object's own callback."""
        if self._handle is None:
            return
        with self._lock:
            if self._freed:
                return
            self._freed = True
            if self._waiting and self._wake is not None:
                os.write(self._wake[1], b"x")
                self._no_waiters.wait_for(lambda: self._waiting == 0)
        self._detach_async()
        try:
            # Not under self._lock: from another thread, C waits here for a
            # running callback, which may itself call free().
            self._free_c()
        finally:
            if self._wake is not None:
                for fd in self._wake:
                    os.close(fd)
                self._wake = None
            if self._thunk is not None and threading.get_ident() == self._dispatch_thread:
                _retired_thunks.append(self._thunk)
            _live_callbacks.discard(self)
