"""Monitor and policies with injected times: ping, reply deadline, dead
verdict, reset."""

from __future__ import annotations

import pytest

from tether import (
    ActionKind,
    DisconnectReason,
    HeartbeatPolicy,
    IdleTimeoutPolicy,
    InvalidConfigError,
    Monitor,
)

POLICY = HeartbeatPolicy(interval=1.0, timeout=0.5, max_missed=2)


def drain(m: Monitor) -> list[ActionKind]:
    kinds = []
    while (a := m.poll_action()) is not None:
        kinds.append(a.kind)
    return kinds


def test_detection_bounds() -> None:
    assert POLICY.detection_bound == 2.0
    assert IdleTimeoutPolicy(keepalive=10.0).detection_bound == 15.0
    assert HeartbeatPolicy.default().detection_bound == 35.0


def test_silent_peer_is_pinged_then_declared_dead_once() -> None:
    m = Monitor(POLICY, now_ms=0)
    assert m.next_timeout(0) == 1.0 and m.next_deadline_ms() == 1000
    m.handle_timeout(999)
    assert drain(m) == []
    m.handle_timeout(1000)
    assert drain(m) == [ActionKind.SEND_PING]
    m.handle_timeout(1500)
    assert drain(m) == [ActionKind.SEND_PING]
    m.handle_timeout(2000)
    dead = m.poll_action()
    assert dead is not None and dead.kind == ActionKind.DEAD
    assert dead.reason == DisconnectReason.TIMEOUT and dead.silent_for == 2.0
    assert m.poll_action() is None and m.is_dead
    assert m.next_timeout(2000) is None and m.next_deadline_ms() is None
    m.handle_timeout(5000)  # repeated calls are harmless
    assert drain(m) == []
    m.reset(6000)
    assert not m.is_dead and m.next_deadline_ms() == 7000
    m.free()


def test_any_traffic_and_pongs_keep_the_peer_alive() -> None:
    m = Monitor(POLICY, now_ms=0)
    m.handle_timeout(1000)
    ping = m.poll_action()
    assert ping is not None and ping.kind == ActionKind.SEND_PING
    assert m.handle_pong(ping.payload, now_ms=1040) == pytest.approx(0.04)
    assert m.handle_pong(12345, now_ms=1050) is None  # no such ping: still traffic
    for t in range(1100, 10_000, 400):
        m.handle_received(t)
        m.handle_timeout(t)
        assert ActionKind.DEAD not in drain(m)
    assert not m.is_dead


def test_bad_policies_are_rejected() -> None:
    with pytest.raises(InvalidConfigError, match="max_missed"):
        Monitor(HeartbeatPolicy(interval=1.0, timeout=0.5, max_missed=0), now_ms=0)
    with pytest.raises(InvalidConfigError):
        Monitor(IdleTimeoutPolicy(keepalive=1.0, factor=0.5), now_ms=0)
    with pytest.raises(TypeError):
        Monitor("heartbeat")  # type: ignore[arg-type]
