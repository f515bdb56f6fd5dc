"""tether's monotonic millisecond clock, the ``now_ms`` of the sans-IO API.

Sans-IO objects (:class:`~tether.Backoff`, :class:`~tether.Monitor`,
:class:`~tether.Registry`) take time as an argument, in integer milliseconds
on one monotonic clock. Leave ``now_ms`` out to use :func:`now_ms`; pass your
own values to drive them deterministically (tests, simulations). Feed each
object from one clock only.
"""

from __future__ import annotations

from . import _ffi

_U64_MAX = 2**64 - 1


def now_ms() -> int:
    """Milliseconds on tether's monotonic clock (``tether_now_ms``)."""
    return int(_ffi.lib().tether_now_ms())


def resolve(now: int | None) -> int:
    """``now`` checked, or the current time when it is None."""
    if now is None:
        return now_ms()
    if isinstance(now, bool) or not isinstance(now, int):
        raise TypeError(f"now_ms must be an int (milliseconds), got {type(now).__name__}")
    if not 0 <= now <= _U64_MAX:
        # ctypes would wrap it into another uint64_t time.
        raise ValueError(f"now_ms must be in 0..={_U64_MAX}, got {now}")
    return now
