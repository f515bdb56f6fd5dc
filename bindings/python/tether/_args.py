"""Checks of the arguments that reach C as text, byte buffers or timeouts:
one set of rules for every public call of the package.

* Text (addresses, server names, ALPN entries) must be :class:`str`; paths
  may also be :class:`os.PathLike` objects whose ``__fspath__`` gives a
  ``str`` (:class:`pathlib.Path`). Anything else is a :class:`TypeError`
  (``bytes`` too: tether's C API takes UTF-8 text, so decode it first). An
  embedded NUL character is a :class:`ValueError` (the tether subclass of the
  call: :class:`~tether.InvalidAddressError` for an address,
  :class:`~tether.InvalidConfigError` for a setting), as in Python's own
  APIs: C would silently cut the text short there.
* Messages must be bytes-like: :class:`bytes`, :class:`bytearray`,
  :class:`memoryview` or any other object with the buffer protocol
  (``array.array``, ``mmap``); never ``str``, ``int`` or a list. The size is
  checked before anything is copied.
* Timeouts of waiting calls are seconds (``int`` or ``float``, not ``bool``)
  or None for no limit; ``math.inf`` also means no limit; negative and NaN
  are :class:`ValueError`.
"""

from __future__ import annotations

import math
import os
from ctypes import c_uint8
from typing import Any

from .errors import Result, error

#: What the package accepts as a message (any buffer-protocol object works
#: at run time; these are the types it is annotated with).
BytesLike = bytes | bytearray | memoryview


def _type_name(value: object) -> str:
    return type(value).__name__


def _encode(name: str, text: str, code: Result, errors: str) -> bytes:
    if "\0" in text:
        raise error(code, f"{name}: embedded null character in {text!r}")
    try:
        return text.encode("utf-8", errors)
    except UnicodeEncodeError as e:
        raise error(code, f"{name}: not encodable as UTF-8 ({e.reason} at {e.start})") from None


def c_text(name: str, value: object, code: Result = Result.INVALID_CONFIG) -> bytes:
    """``value``, which must be a ``str``, as NUL-terminated UTF-8 for the C
    argument ``name``. Raises TypeError for any other type and the
    ValueError subclass for ``code`` for an embedded NUL."""
    if not isinstance(value, str):
        hint = " (decode it first, e.g. value.decode())" if isinstance(value, (bytes, bytearray)) else ""
        raise TypeError(f"{name}: expected a str, got {_type_name(value)}{hint}")
    return _encode(name, value, code, "strict")


def c_path(name: str, value: object, code: Result = Result.INVALID_CONFIG) -> bytes:
    """A file path (``str`` or an ``os.PathLike`` giving ``str``) for the C
    argument ``name``. Characters that Python decoded from undecodable
    file-name bytes (``surrogateescape``) go back to those bytes, which C
    then refuses as not UTF-8, naming the field."""
    if isinstance(value, (bytes, bytearray)):
        raise TypeError(f"{name}: expected a str or os.PathLike path, got bytes (decode it: os.fsdecode(path))")
    try:
        path = os.fspath(value)  # type: ignore[call-overload]
    except TypeError:
        raise TypeError(f"{name}: expected a str or os.PathLike path, got {_type_name(value)}") from None
    if not isinstance(path, str):
        raise TypeError(f"{name}: expected a path giving str, got one giving {_type_name(path)}")
    return _encode(name, path, code, "surrogateescape")


def timeout(name: str, value: object) -> float | None:
    """A waiting call's timeout in seconds: None (or ``math.inf``) for no
    limit, else a finite number >= 0."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected seconds as an int or float (or None), got {_type_name(value)}")
    seconds = float(value)
    if math.isnan(seconds) or seconds < 0:
        raise ValueError(f"{name}: must be >= 0 seconds (or None for no limit), got {value!r}")
    return None if math.isinf(seconds) else seconds


class Message:
    """A message checked for sending: ``pointer`` (for a ``const uint8_t *``
    parameter declared ``c_void_p``: bytes, a ctypes array or None) and
    ``length``, valid while this object lives.

    bytes and writable C-contiguous buffers reach C without a copy (C copies
    them); read-only or non-contiguous views are copied once, after the
    size check, and so is every buffer when ``snapshot`` is set (the message
    is then what the buffer held at this moment, whatever happens to it
    later).
    """

    __slots__ = ("length", "pointer")

    def __init__(
        self, data: object, max_len: int | None = None, *, name: str = "data", snapshot: bool = False
    ) -> None:
        self.pointer: bytes | Any | None
        if isinstance(data, str):
            raise TypeError(
                f"{name}: expected a bytes-like object (bytes, bytearray, memoryview), got str: "
                f"encode it first, e.g. {name.rpartition('.')[2]}.encode()"
            )
        if isinstance(data, bytes):
            check_size(len(data), max_len)
            self._set_bytes(data)
            return
        try:
            view = memoryview(data)  # type: ignore[arg-type]
        except TypeError:
            raise TypeError(
                f"{name}: expected a bytes-like object (bytes, bytearray, memoryview), got {_type_name(data)}"
            ) from None
        with view:
            check_size(view.nbytes, max_len)
            if snapshot or view.readonly or not view.c_contiguous:
                self._set_bytes(view.tobytes())  # in C order
                return
            self.length = view.nbytes
            # The array holds its own export of the buffer until it is
            # dropped (the caller's bytearray cannot be resized meanwhile).
            self.pointer = (c_uint8 * self.length).from_buffer(view) if self.length else None

    def _set_bytes(self, data: bytes) -> None:
        self.length = len(data)
        self.pointer = data if data else None


def check_size(n: int, max_len: int | None) -> None:
    """Refuses a message larger than the transport's known maximum."""
    if max_len is not None and n > max_len:
        raise error(
            Result.MESSAGE_TOO_LARGE,
            f"message of {n} bytes exceeds the transport's maximum of {max_len}",
        )
