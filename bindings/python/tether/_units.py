"""Seconds (the Python API) to and from milliseconds (the C API).

The C API counts durations in whole milliseconds; Python callers pass
seconds as floats. Values are rounded to the nearest millisecond.

Every numeric configuration field goes through one of these checks before
it is stored in a ctypes struct, because ctypes would silently wrap a
negative or oversized number into the unsigned C field. A wrong type
(``str``, ``bool`` where a number goes, a float where a count goes) is a
:class:`TypeError`; a negative, NaN, infinite or too large value is an
:class:`~tether.InvalidConfigError` (a :class:`ValueError`) naming the field,
as C names the fields it rejects itself (e.g. a heartbeat of 0).
"""

from __future__ import annotations

import ctypes
import math

from .errors import Result, error

_U64_MAX = 2**64 - 1
_U32_MAX = 2**32 - 1
U64_MAX = _U64_MAX
#: The largest value of a C ``size_t``.
SIZE_MAX = 2 ** (8 * ctypes.sizeof(ctypes.c_size_t)) - 1
#: The largest queue length or size tether takes (a ``size_t`` within
#: Rust's ``isize``).
LEN_MAX = min(SIZE_MAX, 2**63 - 1)


def ms(field: str, seconds: float) -> int:
    """``seconds`` as whole milliseconds for the C field ``field``."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"{field}: expected seconds as a number, got {type(seconds).__name__}")
    if not math.isfinite(seconds) or seconds < 0:
        raise error(
            Result.INVALID_CONFIG,
            f"invalid configuration: {field}: must be a finite number of seconds >= 0, got {seconds!r}",
        )
    value = round(seconds * 1000)
    if value > _U64_MAX:
        raise error(Result.INVALID_CONFIG, f"invalid configuration: {field}: too large ({seconds!r} s)")
    return value


def seconds(milliseconds: int) -> float:
    """Milliseconds from C as float seconds."""
    return milliseconds / 1000.0


def count(field: str, value: int, maximum: int = _U32_MAX) -> int:
    """A non-negative integer for the C configuration field ``field``."""
    return _bounded(Result.INVALID_CONFIG, "invalid configuration", field, value, maximum)


def u64_arg(name: str, value: int) -> int:
    """A uint64_t argument (an id, tag or payload)."""
    return _bounded(Result.INVALID_ARGUMENT, "invalid argument", name, value, _U64_MAX)


def _bounded(code: Result, what: str, name: str, value: int, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if not 0 <= value <= maximum:
        raise error(code, f"{what}: {name}: must be in 0..={maximum}, got {value}")
    return int(value)


def ratio(field: str, value: float) -> float:
    """A finite, non-negative float for the C field ``field`` (the exact
    range is checked by C)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{field}: expected a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise error(
            Result.INVALID_CONFIG,
            f"invalid configuration: {field}: must be a finite number >= 0, got {value!r}",
        )
    return number


def flag(field: str, value: bool) -> bool:
    """A ``bool`` for the C field ``field`` (no truthiness: ``"no"`` would be
    True)."""
    if not isinstance(value, bool):
        raise TypeError(f"{field}: expected a bool, got {type(value).__name__}")
    return value
