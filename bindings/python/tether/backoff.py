"""Reconnect delays for code that dials on its own (``tether_backoff_*``).

The delay after the n-th consecutive failure is
``min(max_delay, initial * multiplier**(n-1))``, then jittered. Durations
are float seconds (millisecond resolution); time is ``now_ms`` (see
:mod:`tether.clock`).
"""

from __future__ import annotations

from collections.abc import Iterator
from ctypes import byref, c_uint32, c_uint64
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Self

from . import _config, _enums, _ffi, _units
from ._handle import Owned
from .clock import resolve
from .errors import GaveUpError, check


class Jitter(IntEnum):
    """How delays are randomised (``tether_jitter``)."""

    #: Exactly the computed delay (tests, single clients).
    NONE = 0
    #: Uniform in ``[0, delay]`` (the default).
    FULL = 1
    #: ``delay / 2`` plus uniform in ``[0, delay / 2]``.
    EQUAL = 2
    #: AWS decorrelated jitter: a random walk between ``initial`` and 3x the
    #: previous delay, capped.
    DECORRELATED = 3
    #: ``delay * uniform[1 - f, 1 + f]`` with ``f = jitter_fraction``.
    PROPORTIONAL = 4

    @classmethod
    def coerce(cls, value: Jitter | str | int, field: str = "jitter") -> Jitter:
        """A :class:`Jitter` from itself, its name (any case) or its number;
        TypeError or ValueError naming ``field`` otherwise."""
        return _enums.coerce(cls, value, field)


@dataclass(frozen=True, slots=True)
class BackoffConfig:
    """Settings of a backoff (``tether_backoff_config``), durations in seconds.

    Start from :meth:`default` or :meth:`grpc` and change fields with
    :meth:`replace`; the C library validates the result when it is used.
    """

    #: Delay after the first failure (> 0).
    initial: float
    #: Growth per failure; finite and >= 1.0 (1.0 = fixed delay).
    multiplier: float
    #: Cap on the un-jittered delay (>= ``initial``).
    max_delay: float
    #: How delays are randomised.
    jitter: Jitter
    #: The ``f`` of :attr:`Jitter.PROPORTIONAL`, in ``[0, 1]``.
    jitter_fraction: float
    #: Give up after this many consecutive failures; None = never.
    max_attempts: int | None
    #: Give up this long after the first failure of a streak; None = never.
    max_elapsed: float | None
    #: Lower bound of each attempt's connect timeout (> 0).
    min_connect_timeout: float
    #: How long a connection must stay up before its end resets the attempt
    #: counter (0 = every connection resets it).
    healthy_after: float
    #: Jitter seed for reproducible delays; None = random.
    seed: int | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "jitter", Jitter.coerce(self.jitter, "backoff.jitter"))

    @classmethod
    def default(cls) -> BackoffConfig:
        """tether's default: 1 s doubling to 30 s, full jitter, never give up,
        connect timeout >= 20 s, healthy after 10 s."""
        c = _ffi.tether_backoff_config()
        check(_ffi.lib().tether_backoff_config_default(byref(c)))
        return cls._from_c(c)

    @classmethod
    def grpc(cls) -> BackoffConfig:
        """gRPC's connection backoff: 1 s growing x1.6 to 120 s, +-20 % jitter,
        connect timeout >= 20 s."""
        c = _ffi.tether_backoff_config()
        check(_ffi.lib().tether_backoff_config_grpc(byref(c)))
        return cls._from_c(c)

    def replace(self, **changes: Any) -> BackoffConfig:
        """A copy with ``changes`` (field names as keyword arguments)."""
        return _config.replace(self, changes)

    @classmethod
    def _from_c(cls, c: _ffi.tether_backoff_config) -> BackoffConfig:
        s = _units.seconds
        return cls(
            initial=s(c.initial_ms),
            multiplier=c.multiplier,
            max_delay=s(c.max_delay_ms),
            jitter=Jitter(c.jitter),
            jitter_fraction=c.jitter_fraction,
            max_attempts=c.max_attempts or None,
            max_elapsed=s(c.max_elapsed_ms) if c.max_elapsed_ms else None,
            min_connect_timeout=s(c.min_connect_timeout_ms),
            healthy_after=s(c.healthy_after_ms),
            seed=c.seed if c.seeded else None,
        )

    def _to_c(self) -> _ffi.tether_backoff_config:
        ms, count = _units.ms, _units.count
        c = _ffi.tether_backoff_config()
        c.initial_ms = ms("backoff.initial", self.initial)
        c.multiplier = _units.ratio("backoff.multiplier", self.multiplier)
        c.max_delay_ms = ms("backoff.max_delay", self.max_delay)
        c.jitter = int(self.jitter)
        c.jitter_fraction = _units.ratio("backoff.jitter_fraction", self.jitter_fraction)
        c.max_attempts = count("backoff.max_attempts", self.max_attempts or 0)
        c.max_elapsed_ms = ms("backoff.max_elapsed", self.max_elapsed or 0)
        c.min_connect_timeout_ms = ms("backoff.min_connect_timeout", self.min_connect_timeout)
        c.healthy_after_ms = ms("backoff.healthy_after", self.healthy_after)
        c.seeded = self.seed is not None
        c.seed = count("backoff.seed", self.seed or 0, _units.U64_MAX)
        return c


class Backoff(Owned):
    """A reconnect backoff (``tether_backoff``).

    ``Backoff(**changes)`` starts from :meth:`BackoffConfig.default`;
    ``Backoff(config, **changes)`` from ``config``; :meth:`grpc` from gRPC's
    preset. Iterating yields delays until the backoff gives up::

        for delay in Backoff(max_attempts=5):
            if try_connect():
                break
            time.sleep(delay)
    """

    _free_name = "tether_backoff_free"

    def __init__(self, config: BackoffConfig | None = None, **changes: Any) -> None:
        cfg = (config or BackoffConfig.default()).replace(**changes)
        c = cfg._to_c()
        handle = _ffi.tether_backoff()
        check(_ffi.lib().tether_backoff_new(byref(c), byref(handle)))
        self.config: BackoffConfig = cfg
        self._adopt(handle)

    @classmethod
    def grpc(cls, **changes: Any) -> Self:
        """A backoff with gRPC's preset (plus ``changes``)."""
        return cls(BackoffConfig.grpc(), **changes)

    def next_delay(self, now_ms: int | None = None) -> float:
        """Counts one failure at ``now_ms`` and returns the delay in seconds
        before the next attempt. Raises :class:`GaveUpError` once the limits
        are reached (and keeps doing so until :meth:`reset` or a healthy
        connection)."""
        out = c_uint64()
        check(self._call("tether_backoff_next_delay_ms")(self._handle, resolve(now_ms), byref(out)))
        return _units.seconds(out.value)

    def __iter__(self) -> Iterator[float]:
        """Delays (tether's clock) until the backoff gives up."""
        while True:
            try:
                yield self.next_delay()
            except GaveUpError:
                return

    @property
    def connect_timeout(self) -> float:
        """How long the next attempt may take, in seconds."""
        out = c_uint64()
        check(self._call("tether_backoff_connect_timeout_ms")(self._handle, byref(out)))
        return _units.seconds(out.value)

    def on_connected(self, now_ms: int | None = None) -> None:
        """Reports that a connection was established at ``now_ms``."""
        check(self._call("tether_backoff_on_connected")(self._handle, resolve(now_ms)))

    def on_disconnected(self, now_ms: int | None = None) -> None:
        """Reports that the last connection ended at ``now_ms``; the attempt
        counter resets only if it lasted ``healthy_after``."""
        check(self._call("tether_backoff_on_disconnected")(self._handle, resolve(now_ms)))

    @property
    def attempt(self) -> int:
        """Failures since the last reset."""
        out = c_uint32()
        check(self._call("tether_backoff_attempt")(self._handle, byref(out)))
        return out.value

    def reset(self) -> None:
        """Forgets all failures (attempt counter and give-up clock)."""
        check(self._call("tether_backoff_reset")(self._handle))
