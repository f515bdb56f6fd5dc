"""Liveness for every connection of a server that owns its event loop and
sockets (scenario S4, ``tether_registry_*``).

The loop (single-threaded; the registry starts no threads): :meth:`insert`
on accept, :meth:`touch` on any received bytes, :meth:`remove` when you close
a socket; wait at most :meth:`next_timeout`; then :meth:`handle_timeout` and
:meth:`poll_events`. Connection ids are generation-checked and never 0: once
removed or expired, an id is stale forever, even when its slot is reused.
Per connection exactly one of an EXPIRED event or a successful
:meth:`remove` happens.
"""

from __future__ import annotations

from ctypes import byref, c_int, c_size_t, c_uint64
from dataclasses import dataclass
from enum import IntEnum

from . import _ffi, _units
from ._handle import Owned
from .clock import resolve
from .errors import Result, check
from .events import DisconnectReason
from .liveness import HeartbeatPolicy, Policy, policy_to_c, wait_seconds


class RegistryEventKind(IntEnum):
    """``tether_registry_event_kind``."""

    #: The connection has been silent for the policy's interval: send it a
    #: ping frame now. It stays registered.
    PING_DUE = 1
    #: The connection is dead and already removed (its id is stale): close
    #: the socket; do not call :meth:`Registry.remove`.
    EXPIRED = 2


@dataclass(frozen=True, slots=True)
class RegistryEvent:
    """An event of :meth:`Registry.poll_events`."""

    kind: RegistryEventKind
    #: The connection id (from :meth:`Registry.insert`).
    conn: int
    #: The tag given to :meth:`Registry.insert` (e.g. the socket's fd).
    tag: int
    #: EXPIRED: why (``TIMEOUT``).
    reason: DisconnectReason | None = None
    #: EXPIRED: how long nothing had been received, in seconds.
    silent_for: float = 0.0


class Registry(Owned):
    """The connections of one server, judged by one policy, starting at
    ``now_ms`` (``tether_registry``)."""

    _free_name = "tether_registry_free"
    _BATCH = 64

    def __init__(
        self,
        policy: Policy | None = None,
        now_ms: int | None = None,
        *,
        max_len: int | None = None,
    ) -> None:
        self.policy: Policy = policy or HeartbeatPolicy.default()
        c = policy_to_c(self.policy)
        handle = _ffi.tether_registry()
        check(_ffi.lib().tether_registry_new(byref(c), resolve(now_ms), byref(handle)))
        self._adopt(handle)
        if max_len is not None:
            self.set_max_len(max_len)

    def set_max_len(self, max_len: int) -> None:
        """Limits how many connections :meth:`insert` accepts (beyond it:
        :class:`~tether.FullError`)."""
        n = _units.count("max_len", max_len, _units.SIZE_MAX)
        check(self._call("tether_registry_set_max_len")(self._handle, n))

    def insert(self, tag: int = 0, now_ms: int | None = None) -> int:
        """Registers a connection established at ``now_ms`` carrying ``tag``
        (any u64 you want back in its events, typically the fd); returns its
        id."""
        out = c_uint64()
        t = _units.u64_arg("tag", tag)
        check(self._call("tether_registry_insert")(self._handle, resolve(now_ms), t, byref(out)))
        return out.value

    def touch(self, conn: int, now_ms: int | None = None) -> None:
        """Bytes arrived on ``conn`` at ``now_ms`` (any frame counts).
        :class:`~tether.StaleHandleError` once it was removed or expired."""
        check(
            self._call("tether_registry_touch")(self._handle, _units.u64_arg("conn", conn), resolve(now_ms))
        )

    def remove(self, conn: int) -> int:
        """Unregisters ``conn`` and returns its tag. Only the first remove
        succeeds; a second one, or one after its EXPIRED event, raises
        :class:`~tether.StaleHandleError` and touches nothing else. Close the
        socket only when this returns."""
        tag = c_uint64()
        check(self._call("tether_registry_remove")(self._handle, _units.u64_arg("conn", conn), byref(tag)))
        return tag.value

    def tag(self, conn: int) -> int:
        """The tag of the live connection ``conn``."""
        out = c_uint64()
        check(self._call("tether_registry_tag")(self._handle, _units.u64_arg("conn", conn), byref(out)))
        return out.value

    def handle_timeout(self, now_ms: int | None = None) -> None:
        """Runs the policy for every connection due at ``now_ms`` (early or
        repeated calls are harmless); then drain :meth:`poll_events`."""
        check(self._call("tether_registry_handle_timeout")(self._handle, resolve(now_ms)))

    def poll_events(self) -> list[RegistryEvent]:
        """Every queued event, oldest first (empty when none)."""
        events: list[RegistryEvent] = []
        batch = (_ffi.tether_registry_event * self._BATCH)()
        poll = self._call("tether_registry_poll_events")
        while True:
            n = c_size_t()
            check(poll(self._handle, batch, self._BATCH, byref(n)))
            for e in batch[: n.value]:
                events.append(
                    RegistryEvent(
                        kind=RegistryEventKind(e.kind),
                        conn=e.conn,
                        tag=e.tag,
                        reason=DisconnectReason.from_c(e.reason),
                        silent_for=_units.seconds(e.silent_for_ms),
                    )
                )
            if n.value < self._BATCH:
                return events

    def next_timeout(self, now_ms: int | None = None) -> float | None:
        """Seconds to wait, seen at ``now_ms``, before :meth:`handle_timeout`:
        None when no connection is registered, 0 when due (or events are
        queued). Fits ``selector.select(timeout)`` directly."""
        out = c_int()
        check(self._call("tether_registry_next_timeout_ms")(self._handle, resolve(now_ms), byref(out)))
        return wait_seconds(out.value)

    def next_deadline_ms(self) -> int | None:
        """The absolute deadline (same clock as ``now_ms``) of the next
        :meth:`handle_timeout`, or None when nothing is armed."""
        out = c_uint64()
        rc = self._call("tether_registry_next_deadline_ms")(self._handle, byref(out))
        if rc == Result.EMPTY:
            return None
        check(rc)
        return out.value

    def __len__(self) -> int:
        out = c_size_t()
        check(self._call("tether_registry_len")(self._handle, byref(out)))
        return out.value

    @property
    def detection_bound(self) -> float:
        """Worst case from a connection's last received bytes to its EXPIRED
        event, in seconds."""
        out = c_uint64()
        check(self._call("tether_registry_detection_bound_ms")(self._handle, byref(out)))
        return _units.seconds(out.value)
