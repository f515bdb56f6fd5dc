"""Backoff: delay shapes per jitter kind, limits, the healthy window, and
configuration errors. Time is injected (``now_ms``); nothing sleeps."""

from __future__ import annotations

import math

import pytest

import tether
from tether import Backoff, BackoffConfig, GaveUpError, InvalidConfigError, Jitter


def delays(b: Backoff, n: int, now_ms: int = 0) -> list[float]:
    return [b.next_delay(now_ms) for _ in range(n)]


def test_defaults_and_grpc_preset_come_from_the_library() -> None:
    d = BackoffConfig.default()
    assert (d.initial, d.multiplier, d.max_delay, d.jitter) == (1.0, 2.0, 30.0, Jitter.FULL)
    assert d.max_attempts is None and d.max_elapsed is None and d.seed is None
    g = BackoffConfig.grpc()
    assert (g.initial, g.multiplier, g.max_delay) == (1.0, 1.6, 120.0)
    assert g.jitter == Jitter.PROPORTIONAL and g.jitter_fraction == pytest.approx(0.2)
    assert g.min_connect_timeout == 20.0


def test_exponential_without_jitter_doubles_up_to_the_cap() -> None:
    with Backoff(jitter=Jitter.NONE) as b:
        assert delays(b, 7) == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
        assert b.attempt == 7


def test_fixed_delay_and_millisecond_resolution() -> None:
    with Backoff(initial=0.25, multiplier=1.0, max_delay=0.25, jitter="none") as b:
        assert delays(b, 3) == [0.25, 0.25, 0.25]


def test_grpc_stays_within_twenty_percent_of_each_step() -> None:
    with Backoff.grpc(seed=7) as b:
        for step in range(12):
            base = min(120.0, 1.6**step)
            d = b.next_delay(0)
            assert base * 0.8 - 0.001 <= d <= base * 1.2 + 0.001, (step, d)


@pytest.mark.parametrize(
    ("jitter", "low", "high"),
    [(Jitter.FULL, 0.0, 1.0), (Jitter.EQUAL, 0.5, 1.0), (Jitter.PROPORTIONAL, 0.7, 1.3)],
)
def test_jitter_bounds_hold_at_every_step_and_at_the_cap(jitter: Jitter, low: float, high: float) -> None:
    b = Backoff(initial=0.1, max_delay=0.8, jitter=jitter, jitter_fraction=0.3, seed=1)
    seen_at_cap = set()
    for step in range(40):
        base = min(0.8, 0.1 * 2**step)
        d = b.next_delay(0)
        assert base * low - 0.001 <= d <= base * high + 0.001, (step, d)
        if base == 0.8:
            seen_at_cap.add(d)
    # Jitter is not lost at the cap (thundering herd, nats.go #563).
    assert len(seen_at_cap) > 5
    b.free()


def test_decorrelated_jitter_stays_between_initial_and_cap() -> None:
    with Backoff(initial=0.1, max_delay=2.0, jitter="decorrelated", seed=3) as b:
        ds = delays(b, 50)
    assert all(0.1 - 0.001 <= d <= 2.0 + 0.001 for d in ds)
    assert len(set(ds)) > 10


def test_seeded_jitter_replays_and_seeds_differ() -> None:
    a, b, c = (Backoff(jitter="full", seed=s) for s in (42, 42, 43))
    assert delays(a, 10) == delays(b, 10)
    assert delays(a, 10) != delays(c, 10)


def test_max_attempts_gives_up_and_keeps_giving_up_until_reset() -> None:
    b = Backoff(jitter="none", max_attempts=3)
    assert delays(b, 2) == [1.0, 2.0]
    with pytest.raises(GaveUpError) as info:
        b.next_delay(0)
    assert info.value.code == tether.Result.GAVE_UP
    with pytest.raises(GaveUpError):
        b.next_delay(0)
    b.reset()
    assert b.attempt == 0 and b.next_delay(0) == 1.0


def test_iteration_yields_delays_until_give_up() -> None:
    with Backoff(jitter="none", max_attempts=4) as b:
        assert list(b) == [1.0, 2.0, 4.0]


def test_max_elapsed_counts_from_the_first_failure_of_a_streak() -> None:
    b = Backoff(jitter="none", max_elapsed=5.0)
    assert b.next_delay(10_000) == 1.0
    assert b.next_delay(14_000) == 2.0
    with pytest.raises(GaveUpError):
        b.next_delay(15_001)


def test_only_a_healthy_connection_resets_the_attempt_counter() -> None:
    b = Backoff(jitter="none", healthy_after=10.0)
    assert delays(b, 3) == [1.0, 2.0, 4.0]
    # Accepted, then closed at once (rumqtt #703): the delays keep growing.
    b.on_connected(1_000)
    b.on_disconnected(1_010)
    assert b.next_delay(1_010) == 8.0
    # Up for healthy_after: the next failure starts over.
    b.on_connected(2_000)
    b.on_disconnected(12_000)
    assert b.next_delay(12_000) == 1.0


def test_connect_timeout_is_the_larger_of_the_floor_and_the_current_backoff() -> None:
    # As gRPC's connection backoff: after n failures the attempt may take
    # max(min_connect_timeout, initial * multiplier**n).
    b = Backoff(jitter="none", min_connect_timeout=3.0, max_delay=60)
    assert b.connect_timeout == 3.0
    delays(b, 1)
    assert b.connect_timeout == 3.0
    delays(b, 3)
    assert b.connect_timeout == 16.0
    delays(b, 10)
    assert b.connect_timeout == 60.0


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"multiplier": 0.5}, "backoff.multiplier"),
        ({"multiplier": math.nan}, "backoff.multiplier"),
        ({"initial": 0}, "backoff.initial"),
        ({"initial": -1.0}, "backoff.initial"),
        ({"initial": math.inf}, "backoff.initial"),
        ({"initial": 10.0, "max_delay": 5.0}, "max_delay"),
        ({"jitter": "proportional", "jitter_fraction": 1.5}, "fraction"),
        ({"min_connect_timeout": 0}, "min_connect_timeout"),
    ],
)
def test_invalid_configuration_names_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidConfigError) as info:
        Backoff(**changes)  # type: ignore[arg-type]
    assert info.value.code == tether.Result.INVALID_CONFIG
    assert field in str(info.value)
    assert isinstance(info.value, ValueError)


def test_wrong_names_and_types_are_python_errors() -> None:
    with pytest.raises(ValueError, match="unknown jitter"):
        Backoff(jitter="sometimes")
    with pytest.raises(TypeError):
        Backoff(initail=1.0)
    with pytest.raises(TypeError):
        Backoff(initial="1s")


def test_config_round_trips_and_replace_keeps_the_rest() -> None:
    cfg = BackoffConfig.default().replace(initial=0.5, max_attempts=9, seed=5)
    b = Backoff(cfg)
    assert b.config == cfg and b.config.multiplier == 2.0
    assert BackoffConfig._from_c(cfg._to_c()) == cfg
