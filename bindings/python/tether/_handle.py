"""Ownership of one C object named by a generation-checked handle.

The rule, for every object of this package: ``free()`` releases the C object
once and is idempotent from Python's point of view (a second ``free()``, the
``with`` block's exit and ``__del__`` are no-ops; if the C side already says
STALE_HANDLE, the object is gone either way and that is not an error). Every
*other* method called after ``free()`` reaches the C library with the stale
handle and raises :class:`~tether.StaleHandleError`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, ClassVar, Self

from . import _ffi
from .errors import Result, raise_last


class Owned:
    """Base of every handle-owning class."""

    #: ``tether_<object>_free``.
    _free_name: ClassVar[str]
    _handle: Any = None
    _freed: bool = False

    def _adopt(self, handle: Any) -> None:
        self._handle = handle
        self._freed = False
        self._free_lock = threading.Lock()

    @property
    def handle(self) -> int:
        """The raw C handle value (``.id`` of the C struct); stays the same
        (and stale) after :meth:`free`."""
        return int(self._handle.id) if self._handle is not None else 0

    @property
    def freed(self) -> bool:
        """True once :meth:`free` ran."""
        return self._freed

    def _call(self, name: str) -> Callable[..., int]:
        fn: Callable[..., int] = getattr(_ffi.lib(), name)
        return fn

    def _take_for_free(self) -> bool:
        """Marks the object freed; True for the one caller that must free it."""
        if self._handle is None:
            return False
        with self._free_lock:
            if self._freed:
                return False
            self._freed = True
            return True

    def _free_c(self) -> None:
        rc = self._call(self._free_name)(self._handle)
        if rc not in (Result.OK, Result.STALE_HANDLE):
            raise_last(rc)

    def free(self) -> None:
        """Releases the C object. Idempotent; see the module docs."""
        if self._take_for_free():
            self._free_c()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.free()

    def __del__(self) -> None:
        try:
            self.free()
        except Exception:  # noqa: BLE001 - nothing can be raised from __del__
            pass

    def __repr__(self) -> str:
        state = "freed" if self._freed else "live"
        return f"<{type(self).__name__} handle={self.handle:#x} {state}>"
