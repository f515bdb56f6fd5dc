"""Liveness policies and the per-connection :class:`Monitor`
(``tether_policy``, ``tether_monitor_*``).

Only received traffic proves life: a side busy writing into a half-open
connection still pings and still notices.

The monitor is sans-IO. Report traffic with :meth:`Monitor.handle_received` /
:meth:`Monitor.handle_pong`; wait at most :meth:`Monitor.next_timeout`; then
call :meth:`Monitor.handle_timeout` and drain :meth:`Monitor.poll_action`.
"""

from __future__ import annotations

from ctypes import byref, c_bool, c_int, c_uint64
from dataclasses import dataclass
from enum import IntEnum

from . import _ffi, _units
from ._handle import Owned
from .clock import resolve
from .errors import Result, check
from .events import DisconnectReason


@dataclass(frozen=True, slots=True)
class HeartbeatPolicy:
    """Ping after ``interval`` of silence; any traffic within ``timeout``
    answers it; ``max_missed`` unanswered pings in a row mean dead."""

    #: Silence before a ping, in seconds (> 0).
    interval: float
    #: How long a ping waits for any traffic, in seconds (> 0).
    timeout: float
    #: Unanswered pings in a row that mean dead (1..=255).
    max_missed: int

    @classmethod
    def default(cls) -> HeartbeatPolicy:
        """tether's default: ping after 15 s, 10 s reply timeout, dead after
        2 misses (within 35 s)."""
        c = _ffi.tether_policy()
        check(_ffi.lib().tether_policy_default(byref(c)))
        return cls._from_c(c)

    @classmethod
    def _from_c(cls, c: _ffi.tether_policy) -> HeartbeatPolicy:
        s = _units.seconds
        return cls(interval=s(c.interval_ms), timeout=s(c.timeout_ms), max_missed=c.max_missed)

    @property
    def detection_bound(self) -> float:
        """Worst case from the peer's last sign of life to the verdict, in
        seconds: ``interval + max_missed * timeout``."""
        return _detection_bound(self)


@dataclass(frozen=True, slots=True)
class IdleTimeoutPolicy:
    """Never ping; dead after ``factor * keepalive`` of silence (MQTT brokers
    use a factor of 1.5)."""

    #: The keepalive period the peer promised, in seconds (> 0).
    keepalive: float
    #: Grace factor (finite, >= 1.0).
    factor: float = 1.5

    @property
    def detection_bound(self) -> float:
        """``factor * keepalive``, in seconds."""
        return _detection_bound(self)


Policy = HeartbeatPolicy | IdleTimeoutPolicy

_HEARTBEAT, _IDLE_TIMEOUT = 1, 2


def policy_to_c(policy: Policy) -> _ffi.tether_policy:
    """The C form of ``policy``."""
    c = _ffi.tether_policy()
    if isinstance(policy, HeartbeatPolicy):
        c.kind = _HEARTBEAT
        c.interval_ms = _units.ms("policy.interval", policy.interval)
        c.timeout_ms = _units.ms("policy.timeout", policy.timeout)
        c.max_missed = _units.count("policy.max_missed", policy.max_missed)
    elif isinstance(policy, IdleTimeoutPolicy):
        c.kind = _IDLE_TIMEOUT
        c.keepalive_ms = _units.ms("policy.keepalive", policy.keepalive)
        c.idle_factor = _units.ratio("policy.factor", policy.factor)
    else:
        raise TypeError(f"expected a HeartbeatPolicy or IdleTimeoutPolicy, got {type(policy).__name__}")
    return c


def policy_from_c(c: _ffi.tether_policy) -> Policy:
    """The Python form of a C policy."""
    if c.kind == _IDLE_TIMEOUT:
        return IdleTimeoutPolicy(keepalive=_units.seconds(c.keepalive_ms), factor=c.idle_factor)
    return HeartbeatPolicy._from_c(c)


def _detection_bound(policy: Policy) -> float:
    c = policy_to_c(policy)
    out = c_uint64()
    check(_ffi.lib().tether_policy_detection_bound_ms(byref(c), byref(out)))
    return _units.seconds(out.value)


def wait_seconds(timeout_ms: int) -> float | None:
    """An ``epoll_wait``-style timeout (-1 = none) as seconds for
    ``selectors`` / ``asyncio`` (None = none)."""
    return None if timeout_ms < 0 else _units.seconds(timeout_ms)


class ActionKind(IntEnum):
    """``tether_action_kind`` (NONE is returned as ``None``)."""

    #: Send a ping frame carrying ``payload`` (the peer echoes it in a pong).
    SEND_PING = 1
    #: The peer is dead: close the connection.
    DEAD = 2


@dataclass(frozen=True, slots=True)
class LivenessAction:
    """What :meth:`Monitor.poll_action` asks you to do."""

    kind: ActionKind
    #: SEND_PING: the 8-byte ping payload.
    payload: int = 0
    #: DEAD: why (``TIMEOUT``).
    reason: DisconnectReason | None = None
    #: DEAD: how long nothing had been received, in seconds.
    silent_for: float = 0.0


class Monitor(Owned):
    """One connection's liveness under a policy (``tether_monitor``), for a
    peer connected at ``now_ms``."""

    _free_name = "tether_monitor_free"

    def __init__(self, policy: Policy | None = None, now_ms: int | None = None) -> None:
        self.policy: Policy = policy or HeartbeatPolicy.default()
        c = policy_to_c(self.policy)
        handle = _ffi.tether_monitor()
        check(_ffi.lib().tether_monitor_new(byref(c), resolve(now_ms), byref(handle)))
        self._adopt(handle)

    def handle_received(self, now_ms: int | None = None) -> None:
        """Bytes (any frame) arrived from the peer at ``now_ms``."""
        check(self._call("tether_monitor_handle_received")(self._handle, resolve(now_ms)))

    def handle_pong(self, payload: int, now_ms: int | None = None) -> float | None:
        """A pong echoing ``payload`` arrived (it counts as traffic). Returns
        the round-trip time in seconds, or None when it answers no
        outstanding ping."""
        rtt = c_uint64()
        rc = self._call("tether_monitor_handle_pong")(
            self._handle, resolve(now_ms), _units.u64_arg("payload", payload), byref(rtt)
        )
        if rc == Result.EMPTY:
            return None
        check(rc)
        return _units.seconds(rtt.value)

    def handle_timeout(self, now_ms: int | None = None) -> None:
        """Advances time to ``now_ms``; then drain :meth:`poll_action`."""
        check(self._call("tether_monitor_handle_timeout")(self._handle, resolve(now_ms)))

    def poll_action(self) -> LivenessAction | None:
        """The next action, or None when there is nothing to do."""
        a = _ffi.tether_liveness_action()
        check(self._call("tether_monitor_poll_action")(self._handle, byref(a)))
        if a.kind == 0:
            return None
        return LivenessAction(
            kind=ActionKind(a.kind),
            payload=a.payload,
            reason=DisconnectReason.from_c(a.reason),
            silent_for=_units.seconds(a.silent_for_ms),
        )

    def next_timeout(self, now_ms: int | None = None) -> float | None:
        """Seconds to wait, seen at ``now_ms``, before :meth:`handle_timeout`
        (0 when due; None for no deadline, i.e. a dead monitor)."""
        out = c_int()
        check(self._call("tether_monitor_next_timeout_ms")(self._handle, resolve(now_ms), byref(out)))
        return wait_seconds(out.value)

    def next_deadline_ms(self) -> int | None:
        """The absolute deadline (same clock as ``now_ms``) of the next
        :meth:`handle_timeout`, or None when nothing is armed."""
        out = c_uint64()
        rc = self._call("tether_monitor_next_deadline_ms")(self._handle, byref(out))
        if rc == Result.EMPTY:
            return None
        check(rc)
        return out.value

    @property
    def is_dead(self) -> bool:
        """True once the monitor declared the peer dead."""
        out = c_bool()
        check(self._call("tether_monitor_is_dead")(self._handle, byref(out)))
        return bool(out.value)

    @property
    def detection_bound(self) -> float:
        """The policy's worst-case detection time, in seconds."""
        out = c_uint64()
        check(self._call("tether_monitor_detection_bound_ms")(self._handle, byref(out)))
        return _units.seconds(out.value)

    def reset(self, now_ms: int | None = None) -> None:
        """Starts over for a fresh connection at ``now_ms`` (revives a dead
        monitor)."""
        check(self._call("tether_monitor_reset")(self._handle, resolve(now_ms)))
