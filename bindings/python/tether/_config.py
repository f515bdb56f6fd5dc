"""Changing frozen configuration dataclasses, nested ones included."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def replace(config: T, changes: Mapping[str, Any]) -> T:
    """A copy of the dataclass ``config`` with ``changes``. A change given as
    a mapping to a field that is itself a dataclass changes that field's own
    fields, e.g. ``backoff={"initial": 0.05}``; an unknown name raises
    TypeError."""
    resolved: dict[str, Any] = {}
    for name, value in changes.items():
        current = getattr(config, name, None)
        if isinstance(value, Mapping) and dataclasses.is_dataclass(current):
            value = replace(current, value)
        resolved[name] = value
    return dataclasses.replace(config, **resolved)  # type: ignore[type-var]
