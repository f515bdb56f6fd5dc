"""Registry with injected millisecond times: pings, expiry exactly once,
the remove gate, stale ids, the epoll timeout."""

from __future__ import annotations

import pytest

import tether
from tether import (
    DisconnectReason,
    FullError,
    HeartbeatPolicy,
    Registry,
    RegistryEventKind,
    StaleHandleError,
)

POLICY = HeartbeatPolicy(interval=1.0, timeout=0.5, max_missed=2)  # dead within 2 s
T0 = 50_000


def step(reg: Registry, now: int) -> list[tuple[RegistryEventKind, int]]:
    reg.handle_timeout(now)
    return [(e.kind, e.tag) for e in reg.poll_events()]


def test_silent_connection_expires_once_and_its_id_goes_stale() -> None:
    with Registry(POLICY, now_ms=T0) as reg:
        assert reg.next_timeout(T0) is None  # nothing registered
        a = reg.insert(tag=7, now_ms=T0)
        b = reg.insert(tag=8, now_ms=T0)
        assert a != b and 0 not in (a, b) and len(reg) == 2
        assert reg.tag(a) == 7
        assert reg.next_timeout(T0) == 1.0 and reg.next_deadline_ms() == T0 + 1000
        assert reg.detection_bound == 2.0

        assert step(reg, T0 + 999) == []
        assert sorted(step(reg, T0 + 1000)) == [
            (RegistryEventKind.PING_DUE, 7),
            (RegistryEventKind.PING_DUE, 8),
        ]
        reg.touch(b, T0 + 1200)  # b answers; a stays silent
        step(reg, T0 + 1500)
        reg.touch(b, T0 + 1900)

        reg.handle_timeout(T0 + 2000)
        events = reg.poll_events()
        expired = [e for e in events if e.kind == RegistryEventKind.EXPIRED]
        assert [(e.conn, e.tag) for e in expired] == [(a, 7)]
        assert expired[0].reason == DisconnectReason.TIMEOUT and expired[0].silent_for == 2.0
        assert len(reg) == 1
        # Exactly once: no second EXPIRED, and the id is stale for good.
        for t in range(T0 + 2000, T0 + 2800, 100):
            assert (RegistryEventKind.EXPIRED, 7) not in step(reg, t)
            reg.touch(b, t)
        with pytest.raises(StaleHandleError):
            reg.remove(a)
        with pytest.raises(StaleHandleError):
            reg.touch(a, T0 + 3000)

        # The remove gate: the first remove wins, the second is stale.
        assert reg.remove(b) == 8
        with pytest.raises(StaleHandleError):
            reg.remove(b)
        assert len(reg) == 0 and reg.next_timeout(T0 + 3000) is None


def test_reused_slot_keeps_old_ids_stale() -> None:
    reg = Registry(POLICY, now_ms=0)
    a = reg.insert(tag=1, now_ms=0)
    reg.remove(a)
    c = reg.insert(tag=2, now_ms=10)
    assert c != a
    with pytest.raises(StaleHandleError):
        reg.remove(a)
    assert reg.tag(c) == 2


def test_max_len_and_invalid_ids() -> None:
    reg = Registry(POLICY, now_ms=0, max_len=1)
    reg.insert(now_ms=0)
    with pytest.raises(FullError):
        reg.insert(now_ms=0)
    with pytest.raises(tether.InvalidHandleError):
        reg.touch(0, 0)


def test_many_connections_drain_in_batches() -> None:
    reg = Registry(POLICY, now_ms=0)
    ids = {reg.insert(tag=i, now_ms=0) for i in range(200)}  # > one C batch of 64
    reg.handle_timeout(1000)
    pings = reg.poll_events()
    assert [e.kind for e in pings] == [RegistryEventKind.PING_DUE] * 200
    assert {e.conn for e in pings} == ids
    expired = []
    for t in (1500, 2000):
        reg.handle_timeout(t)
        expired += [e.conn for e in reg.poll_events() if e.kind == RegistryEventKind.EXPIRED]
    assert sorted(expired) == sorted(ids)
    assert reg.poll_events() == [] and len(reg) == 0
