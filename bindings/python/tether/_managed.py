"""Event delivery and the close / free lifecycle of managed objects, shared
by :class:`~tether.Client` and :class:`~tether.Server`.

Poll mode (the default): events wait in tether's queue; the event fd
(``fileno()``) is readable exactly while the queue is not empty.
:meth:`Managed.poll_event` takes one without blocking;
:meth:`Managed.next_event` / :meth:`Managed.events` block on the fd (with
``poll(2)``); :meth:`Managed.next_event_async` / :meth:`Managed.aevents` wait
with ``loop.add_reader``.

Callback mode (``on_event=``): tether calls ``on_event(event)`` on a dispatch
thread it owns (one per object, events in order; ctypes takes the GIL).
The callback may close or free its own object (the current call completes
and no other follows). Exceptions raised by the callback go to
:func:`sys.unraisablehook`.

The end of the event stream: a client's last event is CLOSED or GAVE_UP; a
server's stream ends once it is closed and the events it had (plus a CLOSED
for every connection still open) were handed out. After the end,
``next_event`` raises :class:`~tether.ClosedError` and ``events()`` /
``aevents()`` stop. Freeing ends the stream too, without a last event.

``close()`` is the orderly close and leaves the object valid (its remaining
events can be read); ``free()`` releases it. Freeing is safe against every
waiter: threads blocked in ``next_event`` are woken (through a private pipe)
and see :class:`~tether.StaleHandleError` (an ``events()`` loop just ends),
asyncio readers are removed and their awaits raise it, and the C free runs
only after nobody waits on the fd any more (C closes it).
"""

from __future__ import annotations

import asyncio
import atexit
import os
import select
import threading
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from ctypes import byref, c_int
from types import TracebackType
from typing import Any, ClassVar, Self

from . import _args, _ffi
from ._handle import Owned
from .errors import ClosedError, FullError, Result, StaleHandleError, TetherError, check, error
from .events import Event

EventCallback = Callable[[Event], None]

# Thunks of objects freed from inside their own callback: the dispatch thread
# is still executing them, so they must outlive the object. One per such
# object, never freed (a few hundred bytes).
_retired_thunks: list[Any] = []
# Callback-mode objects still alive; freed at interpreter exit so that no
# tether thread calls into a finalizing interpreter.
_live_callbacks: weakref.WeakSet[Managed] = weakref.WeakSet()

# send_async: first and longest pause while the buffer is full, in seconds.
_ROOM_FIRST_PAUSE = 0.001
_ROOM_MAX_PAUSE = 0.05


@atexit.register
def _free_callback_objects() -> None:
    for obj in list(_live_callbacks):
        try:
            obj.free()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


class Managed(Owned):
    """Shared base of :class:`~tether.Client` and :class:`~tether.Server`."""

    _poll_name: ClassVar[str]
    _event_fd_name: ClassVar[str]
    #: The largest message the transport carries, when Python knows it.
    _max_message: int | None = None

    def _start(self, create: Callable[[Any], Any], on_event: EventCallback | None) -> None:
        """Creates the C object with ``create(callback)`` and adopts it."""
        self._lock = threading.Lock()  # poll + copy; the freed / released flags
        self._no_waiters = threading.Condition(self._lock)
        self._waiting = 0  # threads blocked in poll(2) on the event fd
        self._wake: tuple[int, int] | None = None
        self._async_lock = threading.Lock()
        self._async: dict[asyncio.AbstractEventLoop, set[asyncio.Future[None]]] = {}
        self._fd: int | None = None
        self._finished = False  # the terminal event was taken out of C
        self._released = False  # the C object is gone (free, or a server's close)
        self._release_done = threading.Event()
        # Events taken out of C before it was released, still to be handed out.
        self._backlog: deque[Event] = deque()
        # Callback mode: events to deliver when the running callback returns.
        self._deferred: list[Event] = []
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

    # ----- per-kind hooks ---------------------------------------------------

    def _is_terminal(self, event: Event) -> bool:
        """True for the last event C will ever report for this object."""
        return False

    def _track(self, event: Event) -> None:
        """Sees every event as it leaves C (poll or callback), in order."""

    # ----- callback mode ------------------------------------------------

    def _make_thunk(self, on_event: EventCallback, adopted: threading.Event) -> Any:
        ref = weakref.ref(self)

        def dispatch(_userdata: Any, event_ptr: Any) -> None:
            # The first event may come before the constructor returned; the
            # callback may use the object (even free it), so wait for it.
            adopted.wait()
            obj = ref()  # held for the whole call: the object outlives it
            event = Event._from_c(event_ptr.contents, obj)
            if obj is not None:
                obj._dispatch_thread = threading.get_ident()
                obj._track(event)
            try:
                on_event(event)
            finally:
                if obj is not None and obj._deferred:
                    deferred, obj._deferred = obj._deferred, []
                    obj._deliver(deferred)

        return _ffi.tether_event_callback(dispatch)

    def _deliver(self, events: list[Event]) -> None:
        """Callback mode: hands events made in Python to ``on_event``
        through the same thunk as tether's own (so that an exception in the
        callback is reported the same way)."""
        for event in events:
            raw, _keep = event._to_c()
            self._thunk(None, byref(raw))

    def _on_dispatch_thread(self) -> bool:
        return self._thunk is not None and threading.get_ident() == self._dispatch_thread

    @property
    def callback_mode(self) -> bool:
        """True when events go to ``on_event`` instead of the poll queue."""
        return self._thunk is not None

    # ----- poll mode ------------------------------------------------------

    def _stale(self) -> TetherError:
        return error(Result.STALE_HANDLE, f"{type(self).__name__} was freed")

    def _closed(self) -> TetherError:
        return error(Result.CLOSED, f"{type(self).__name__} is closed")

    def _fileno_locked(self) -> int:
        if self._freed:
            raise self._stale()
        if self._released:
            raise self._closed()
        if self._fd is None:
            out = c_int()
            check(self._call(self._event_fd_name)(self._handle, byref(out)))
            self._fd = out.value
        return self._fd

    def fileno(self) -> int:
        """The event fd: readable exactly while events are pending. Never
        read, write or close it; unregister it from your selector before
        :meth:`free` (which closes it; so does a server's ``close()``)."""
        with self._lock:
            return self._fileno_locked()

    def _poll_c_locked(self) -> Event | None:
        """One event out of C (the lock held), tracked."""
        raw = _ffi.tether_event()
        rc = self._call(self._poll_name)(self._handle, byref(raw))
        if rc == Result.EMPTY:
            return None
        check(rc)
        # raw.data is valid until the next poll or the free, both of which
        # wait for this lock: copy it now.
        event = Event._from_c(raw, self)
        self._track(event)
        if self._is_terminal(event):
            self._finished = True
        return event

    def poll_event(self) -> Event | None:
        """The next pending event, or None at once when there is none."""
        with self._lock:
            if self._freed:
                raise self._stale()
            if self._backlog:
                return self._backlog.popleft()
            if self._released:
                return None
            return self._poll_c_locked()

    def _ended(self) -> bool:
        """True once nothing can follow: the terminal event was taken, or a
        closed server's last events were handed out."""
        return self._finished or (self._released and not self._backlog)

    def _check_not_ended(self) -> None:
        if self._ended():
            raise error(Result.CLOSED, f"{type(self).__name__} reported its last event")

    def next_event(self, timeout: float | None = None) -> Event:
        """The next event, waiting up to ``timeout`` seconds (None or
        ``math.inf``: no limit; 0: only what is pending).

        Raises :class:`TimeoutError` when none arrives in time,
        :class:`~tether.ClosedError` after the end of the stream (a client's
        CLOSED or GAVE_UP, a closed server's last event),
        :class:`~tether.StaleHandleError` once freed (also when freed by
        another thread while waiting), :class:`TypeError` /
        :class:`ValueError` for a ``timeout`` that is not a number >= 0.
        """
        limit = _args.timeout("timeout", timeout)
        deadline = None if limit is None else time.monotonic() + limit
        while True:
            event = self.poll_event()
            if event is not None:
                return event
            self._check_not_ended()
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"no {type(self).__name__} event within {timeout} s")
            self._wait_readable(remaining)

    def events(self, timeout: float | None = None) -> Iterator[Event]:
        """Events as they come, until the end of the stream: the iteration
        stops only after a client's CLOSED or GAVE_UP (which it yields), a
        closed server's last event, or when the object is freed.

        ``timeout`` bounds the wait for each event, not the whole iteration:
        when no event arrives within ``timeout`` seconds, :class:`TimeoutError`
        is raised (inactivity is never mistaken for the end). None waits
        without limit."""
        limit = _args.timeout("timeout", timeout)
        return self._iterate(limit)

    def _iterate(self, limit: float | None) -> Iterator[Event]:
        while True:
            try:
                event = self.next_event(limit)
            except ClosedError:
                return
            except StaleHandleError:
                if self._freed:
                    return
                raise
            yield event
            if self._is_terminal(event):
                return

    def _wait_readable(self, timeout: float | None) -> None:
        """Blocks until the event fd is readable, ``timeout`` passes, or the
        object is released (freed: raises StaleHandleError; closed: returns)."""
        with self._lock:
            if self._freed:
                raise self._stale()
            if self._released:
                return
            fd = self._fileno_locked()
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
        ``loop.add_reader`` instead of blocking the thread. Cancellable."""
        limit = _args.timeout("timeout", timeout)
        loop = asyncio.get_running_loop()
        deadline = None if limit is None else loop.time() + limit
        while True:
            event = self.poll_event()
            if event is not None:
                return event
            self._check_not_ended()
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"no {type(self).__name__} event within {timeout} s")
            await self._readable_async(loop, remaining)

    def aevents(self, timeout: float | None = None) -> AsyncIterator[Event]:
        """As :meth:`events`, for ``async for``: ends only at the end of the
        stream (or the free); raises :class:`TimeoutError` when no event
        arrives within ``timeout`` seconds. To bound the whole loop instead,
        wrap it in ``async with asyncio.timeout(seconds):`` and leave
        ``timeout`` None."""
        limit = _args.timeout("timeout", timeout)
        return self._aiterate(limit)

    async def _aiterate(self, limit: float | None) -> AsyncIterator[Event]:
        while True:
            try:
                event = await self.next_event_async(limit)
            except ClosedError:
                return
            except StaleHandleError:
                if self._freed:
                    return
                raise
            yield event
            if self._is_terminal(event):
                return

    async def _readable_async(self, loop: asyncio.AbstractEventLoop, timeout: float | None) -> None:
        future: asyncio.Future[None] = loop.create_future()
        with self._async_lock:
            if self._freed:
                raise self._stale()
            if self._released:
                return
            fd = self.fileno()
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

    def _detach_async(self, stale: bool) -> None:
        """Removes every asyncio reader (before C closes the fd); the
        coroutines waiting on it fail with StaleHandleError (``stale``) or
        wake up to take the events kept for them."""
        with self._async_lock:
            registrations = list(self._async.items())
            self._async.clear()
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        for loop, waiters in registrations:
            if loop is current:
                self._detach_loop(loop, waiters, stale)
                continue
            done = threading.Event()
            try:
                loop.call_soon_threadsafe(self._detach_loop, loop, waiters, stale, done)
            except RuntimeError:  # the loop is closed, and its selector with it
                continue
            # A loop that is stopped (not closed) never runs the call; do not
            # hang on it.
            done.wait(timeout=1.0)

    def _detach_loop(
        self,
        loop: asyncio.AbstractEventLoop,
        waiters: set[asyncio.Future[None]],
        stale: bool,
        done: threading.Event | None = None,
    ) -> None:
        try:
            if self._fd is not None:
                loop.remove_reader(self._fd)
            for future in waiters:
                if not future.done():
                    if stale:
                        future.set_exception(self._stale())
                    else:
                        future.set_result(None)
        finally:
            if done is not None:
                done.set()

    # ----- sending ------------------------------------------------------------

    async def _send_when_room(self, send: Callable[[], None], timeout: float | None) -> None:
        """Calls ``send`` until it does not raise FullError, pausing a little
        longer each time (1 ms doubling to 50 ms) in between."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        pause = _ROOM_FIRST_PAUSE
        while True:
            try:
                send()
                return
            except FullError:
                pass
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"{type(self).__name__}: the send buffer stayed full for {timeout} s")
            await asyncio.sleep(pause if remaining is None else min(pause, remaining))
            pause = min(pause * 2, _ROOM_MAX_PAUSE)

    # ----- closing and freeing ------------------------------------------------

    def close(self) -> None:
        """The orderly close (see the subclass); the object stays valid until
        :meth:`free`."""
        raise NotImplementedError

    def _close_released(self) -> None:
        """Closes by releasing the C object while keeping the object valid:
        the events C still had, then ``closing_events``, are handed out
        afterwards. For objects whose C API has no close but the free."""
        callback = self._thunk is not None
        with self._lock:
            if self._released:
                return
            if not callback:
                while (event := self._poll_c_locked()) is not None:
                    self._backlog.append(event)
                self._backlog.extend(self._closing_events())
            self._released = True
            self._wake_waiters_locked()
        self._release_c(stale=False)
        if callback:
            closing = self._closing_events()
            if self._on_dispatch_thread():
                self._deferred.extend(closing)  # after the running callback
            else:
                self._deliver(closing)

    def _closing_events(self) -> list[Event]:
        """The events that releasing the C object implies (see Server)."""
        return []

    def _wake_waiters_locked(self) -> None:
        if self._waiting and self._wake is not None:
            os.write(self._wake[1], b"x")
            self._no_waiters.wait_for(lambda: self._waiting == 0)

    def _release_c(self, stale: bool) -> None:
        """Frees the C object: once nobody waits on the fd, asyncio readers
        removed. Not under self._lock: from another thread, C waits here for
        a running callback, which may itself call close() or free()."""
        self._detach_async(stale)
        try:
            self._free_c()
        finally:
            if self._wake is not None:
                for fd in self._wake:
                    os.close(fd)
                self._wake = None
            if self._on_dispatch_thread():
                _retired_thunks.append(self._thunk)
            _live_callbacks.discard(self)
            self._release_done.set()

    def free(self) -> None:
        """Releases the object: closes its connection(s), discards pending
        events, closes the event fd. Idempotent. Allowed from inside this
        object's own callback. Every other method raises
        :class:`~tether.StaleHandleError` afterwards."""
        if self._handle is None:
            return
        with self._lock:
            if self._freed:
                return
            self._freed = True
            self._backlog.clear()
            already = self._released
            self._released = True
            if not already:
                self._wake_waiters_locked()
        if already:
            # A close() on another thread may still be releasing it: free()
            # returns only when no callback runs any more.
            if not self._on_dispatch_thread():
                self._release_done.wait()
            return
        self._release_c(stale=True)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Closes, then frees."""
        try:
            self.close()
        finally:
            self.free()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """As the ``with`` exit: closes, then frees (neither blocks)."""
        self.__exit__(exc_type, exc, tb)
