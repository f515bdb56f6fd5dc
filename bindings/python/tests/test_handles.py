"""Generation-checked handles through Python: free is idempotent, every
other call after free raises StaleHandleError, and the C layer itself
answers a double free with STALE_HANDLE."""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import pytest
from support import FAST

import tether
from tether import _ffi
from tether.errors import Result


def raw_free(obj: Any) -> int:
    """Frees obj's handle once more straight through C."""
    return int(getattr(_ffi.lib(), obj._free_name)(obj._handle))


SANS_IO: list[tuple[Callable[[], Any], Callable[[Any], Any]]] = [
    (lambda: tether.Backoff(), lambda b: b.next_delay(0)),
    (lambda: tether.Monitor(now_ms=0), lambda m: m.handle_timeout(0)),
    (lambda: tether.Registry(now_ms=0), lambda r: r.insert(now_ms=0)),
]


@pytest.mark.parametrize(("make", "use"), SANS_IO)
def test_sans_io_objects_after_free(make: Callable[[], Any], use: Callable[[Any], Any]) -> None:
    obj = make()
    use(obj)
    assert obj.handle != 0 and not obj.freed
    obj.free()
    obj.free()  # no-op
    assert obj.freed
    with pytest.raises(tether.StaleHandleError) as info:
        use(obj)
    assert info.value.code == Result.STALE_HANDLE
    assert "stale" in str(info.value)
    assert raw_free(obj) == Result.STALE_HANDLE  # C agrees: already freed


def test_managed_objects_after_free(server: tether.Server) -> None:
    client = tether.Client(server.url, **FAST)
    client.free()
    client.free()
    client.close()  # closing a freed client does nothing
    for call in (lambda: client.send(b"x"), client.poll_event, client.fileno, lambda: client.next_event(1)):
        with pytest.raises(tether.StaleHandleError):
            call()
    assert list(client.events(timeout=1)) == []
    assert raw_free(client) == Result.STALE_HANDLE

    other = tether.Server()
    other.free()
    other.free()
    other.close()  # closing a freed server does nothing
    with pytest.raises(tether.StaleHandleError):
        other.send(1, b"x")
    with pytest.raises(tether.StaleHandleError):
        _ = other.connection_count
    with pytest.raises(tether.StaleHandleError):
        other.poll_event()
    assert list(other.events(timeout=1)) == []
    assert raw_free(other) == Result.STALE_HANDLE


def test_context_managers_free_on_exit() -> None:
    with tether.Backoff() as b, tether.Server() as s, tether.Client(s.url, **FAST) as c:
        pass
    assert b.freed and s.freed and c.freed
    assert raw_free(b) == raw_free(s) == raw_free(c) == Result.STALE_HANDLE


def test_garbage_collection_frees_the_c_object() -> None:
    b = tether.Backoff()
    handle = _ffi.tether_backoff(b.handle)
    del b
    gc.collect()
    assert _ffi.lib().tether_backoff_free(handle) == Result.STALE_HANDLE


def test_foreign_and_garbage_handles_are_invalid() -> None:
    lib = _ffi.lib()
    with tether.Monitor(now_ms=0) as m:
        assert lib.tether_backoff_reset(_ffi.tether_backoff(m.handle)) == Result.INVALID_HANDLE
    assert lib.tether_backoff_free(_ffi.tether_backoff(0)) == Result.OK  # {0} is "none"
    assert lib.tether_client_free(_ffi.tether_client(0x1234567)) == Result.INVALID_HANDLE
