"""Result codes and the exceptions they become.

Every failing C call raises the subclass of :class:`TetherError` for its
``tether_result`` code. The message joins the code's description
(``tether_result_message``) and the per-thread detail of the failure
(``tether_last_error_message``), e.g. which configuration field was rejected.
"""

from __future__ import annotations

from collections.abc import Callable
from ctypes import byref, c_size_t, create_string_buffer
from enum import IntEnum
from typing import Any, NoReturn

from . import _ffi


class Result(IntEnum):
    """``tether_result``: the fixed numbers of the C API."""

    OK = 0
    NULL_ARGUMENT = 1
    INVALID_ARGUMENT = 2
    INVALID_CONFIG = 3
    STALE_HANDLE = 4
    INVALID_HANDLE = 5
    EMPTY = 6
    FULL = 7
    CLOSED = 8
    IO = 9
    PANIC = 10
    BUFFER_TOO_SMALL = 11
    INVALID_ADDRESS = 12
    GAVE_UP = 13
    WRONG_MODE = 14
    NOT_SUPPORTED = 15
    MESSAGE_TOO_LARGE = 16


class TetherError(Exception):
    """A tether call failed.

    Attributes:
        code: the :class:`Result` (a plain ``int`` for a code this version
            does not know).
        description: the fixed description of the code.
        detail: what exactly went wrong (may be empty).
    """

    code: Result | int
    description: str
    detail: str

    def __init__(self, code: Result | int, description: str, detail: str = "") -> None:
        self.code = code
        self.description = description
        self.detail = detail
        # The detail often repeats the description as its prefix.
        text = (
            detail
            if detail.startswith(description)
            else (f"{description}: {detail}" if detail else description)
        )
        name = code.name if isinstance(code, Result) else str(code)
        super().__init__(f"{text} [TETHER_RESULT_{name}]")


class NullArgumentError(TetherError):
    """A required pointer was NULL (a bug in these bindings; please report it)."""


class InvalidArgumentError(TetherError, ValueError):
    """An argument is out of range or malformed (e.g. a closed socket)."""


class InvalidConfigError(TetherError, ValueError):
    """A configuration value was rejected; the message names the field."""


class StaleHandleError(TetherError):
    """The object is gone: freed, closed, removed or expired."""


class InvalidHandleError(TetherError):
    """The handle was never issued (wrong object type, or garbage)."""


class EmptyError(TetherError):
    """Nothing to return right now."""


class FullError(TetherError):
    """A queue or table is full; try again later."""


class ClosedError(TetherError):
    """The object is closed (or closing) and accepts no more work."""


class TetherIOError(TetherError):
    """An operating-system call failed; the message carries the OS error."""


class PanicError(TetherError):
    """tether panicked internally; please report it."""


class BufferTooSmallError(TetherError):
    """A caller buffer was too small (handled inside these bindings)."""


class InvalidAddressError(TetherError, ValueError):
    """An address could not be parsed or resolved."""


class GaveUpError(TetherError):
    """A backoff reached its give-up limit (attempts or elapsed time)."""


class WrongModeError(TetherError):
    """The call does not fit the object's delivery mode (poll vs callback)."""


class NotSupportedError(TetherError):
    """Not available on this platform, or a transport not compiled into libtether."""


class MessageTooLargeError(TetherError, ValueError):
    """The message is larger than the transport carries; nothing was queued
    and the connection is unaffected."""


_BY_CODE: dict[int, type[TetherError]] = {
    Result.NULL_ARGUMENT: NullArgumentError,
    Result.INVALID_ARGUMENT: InvalidArgumentError,
    Result.INVALID_CONFIG: InvalidConfigError,
    Result.STALE_HANDLE: StaleHandleError,
    Result.INVALID_HANDLE: InvalidHandleError,
    Result.EMPTY: EmptyError,
    Result.FULL: FullError,
    Result.CLOSED: ClosedError,
    Result.IO: TetherIOError,
    Result.PANIC: PanicError,
    Result.BUFFER_TOO_SMALL: BufferTooSmallError,
    Result.INVALID_ADDRESS: InvalidAddressError,
    Result.GAVE_UP: GaveUpError,
    Result.WRONG_MODE: WrongModeError,
    Result.NOT_SUPPORTED: NotSupportedError,
    Result.MESSAGE_TOO_LARGE: MessageTooLargeError,
}


def _read_text(fn: Callable[..., int], *args: Any) -> str:
    """Calls a ``(..., char *buf, size_t len, size_t *out_n)`` function,
    growing the buffer when it reports BUFFER_TOO_SMALL."""
    size = 256
    while True:
        buf = create_string_buffer(size)
        n = c_size_t(0)
        rc = fn(*args, buf, size, byref(n))
        if rc == Result.BUFFER_TOO_SMALL and n.value > size:
            size = n.value
            continue
        if rc != Result.OK:
            return ""
        return buf.raw[: n.value].decode("utf-8", "replace")


def describe(code: int) -> str:
    """The fixed description of a result code (``tether_result_message``)."""
    return _read_text(_ffi.lib().tether_result_message, code)


def error(code: int, detail: str) -> TetherError:
    """The exception for ``code`` with a detail written in Python."""
    known: Result | int = Result(code) if code in Result._value2member_map_ else code
    cls = _BY_CODE.get(code, TetherError)
    return cls(known, describe(code), detail)


def raise_last(code: int) -> NoReturn:
    """Raises the exception for ``code`` returned by the C call just made on
    this thread, with that call's detail message."""
    # The detail first: every other tether call clears it.
    detail = _read_text(_ffi.lib().tether_last_error_message)
    raise error(code, detail)


def check(code: int) -> None:
    """Raises unless ``code`` is OK."""
    if code != Result.OK:
        raise_last(code)
