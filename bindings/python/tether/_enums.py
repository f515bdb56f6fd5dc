"""Reading an IntEnum setting from itself, its name or its number."""

from __future__ import annotations

from enum import IntEnum
from typing import TypeVar

E = TypeVar("E", bound=IntEnum)


def coerce(cls: type[E], value: E | str | int, field: str) -> E:
    """A member of ``cls`` from itself, its name (any case) or its number;
    TypeError or ValueError naming ``field`` otherwise."""
    what = cls.__name__.lower()
    names = [member.name.lower() for member in cls]
    if isinstance(value, str):
        try:
            return cls[value.upper()]
        except KeyError:
            raise ValueError(f"{field}: unknown {what} {value!r}; one of {names}") from None
    if isinstance(value, bool) or not isinstance(value, int):
        article = "an" if cls.__name__[0] in "AEIOU" else "a"
        raise TypeError(
            f"{field}: expected {article} {cls.__name__}, its name or its number, got {type(value).__name__}"
        )
    try:
        return cls(value)
    except ValueError:
        raise ValueError(f"{field}: unknown {what} {value!r}; one of {names}") from None
