"""The raw C API: finding and loading libtether, and its declarations.

Every struct mirrors ``include/tether.h`` field for field (the ABI test
compiles the header and compares offsets); every function this package calls
is declared with its exact ``argtypes`` / ``restype``, handle structs passed
by value. Nothing here is public: the rest of the package wraps it.

The library is loaded on first use, not at import, so that ``import tether``
works (for type checkers, docs) on a machine without libtether.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import threading
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_bool,
    c_char,
    c_char_p,
    c_double,
    c_int,
    c_size_t,
    c_uint8,
    c_uint16,
    c_uint32,
    c_uint64,
    c_void_p,
)
from pathlib import Path
from typing import Any

#: Environment variable naming the libtether shared library to load.
LIBRARY_ENV = "TETHER_LIBRARY"

# C enums are declared as uint32_t in the header (before C23).
c_result = c_uint32
# `const uint8_t *data` parameters (messages, the PSK): declared as void *,
# the same in the ABI, so that a bytes object or a ctypes array is passed
# as the address of its own buffer, without a copy or a cast.
c_bytes = c_void_p


class tether_backoff_config(Structure):
    _fields_ = [
        ("initial_ms", c_uint64),
        ("multiplier", c_double),
        ("max_delay_ms", c_uint64),
        ("jitter", c_uint32),
        ("jitter_fraction", c_double),
        ("max_attempts", c_uint32),
        ("max_elapsed_ms", c_uint64),
        ("min_connect_timeout_ms", c_uint64),
        ("healthy_after_ms", c_uint64),
        ("seeded", c_bool),
        ("seed", c_uint64),
    ]


class tether_tcp_options(Structure):
    _fields_ = [
        ("keepalive", c_bool),
        ("keepalive_idle_ms", c_uint64),
        ("keepalive_interval_ms", c_uint64),
        ("keepalive_count", c_uint32),
        ("user_timeout_ms", c_uint64),
        ("nodelay", c_bool),
    ]


class tether_transport_options(Structure):
    _fields_ = [("id", c_uint64)]


class tether_client_config(Structure):
    _fields_ = [
        ("heartbeat_interval_ms", c_uint64),
        ("heartbeat_timeout_ms", c_uint64),
        ("heartbeat_max_missed", c_uint32),
        ("backoff", tether_backoff_config),
        ("max_pending", c_size_t),
        ("tcp", tether_tcp_options),
        ("transport", tether_transport_options),
        ("opening", c_uint32),
    ]


class tether_event(Structure):
    _fields_ = [
        ("kind", c_uint32),
        ("generation", c_uint64),
        ("attempt", c_uint32),
        ("reason", c_uint32),
        ("delay_ms", c_uint64),
        ("conn", c_uint64),
        ("data", POINTER(c_uint8)),
        ("len", c_size_t),
        ("peer", c_char_p),
        ("detail", c_char_p),
        ("object", c_uint64),
    ]


class tether_policy(Structure):
    _fields_ = [
        ("kind", c_uint32),
        ("interval_ms", c_uint64),
        ("timeout_ms", c_uint64),
        ("max_missed", c_uint32),
        ("keepalive_ms", c_uint64),
        ("idle_factor", c_double),
    ]


class tether_liveness_action(Structure):
    _fields_ = [
        ("kind", c_uint32),
        ("payload", c_uint64),
        ("reason", c_uint32),
        ("silent_for_ms", c_uint64),
    ]


class tether_registry_event(Structure):
    _fields_ = [
        ("kind", c_uint32),
        ("conn", c_uint64),
        ("tag", c_uint64),
        ("reason", c_uint32),
        ("silent_for_ms", c_uint64),
    ]


class tether_server_config(Structure):
    _fields_ = [
        ("policy", tether_policy),
        ("send_queue", c_size_t),
        ("tcp", tether_tcp_options),
        ("transport", tether_transport_options),
        ("opening", c_uint32),
    ]


# The generation-checked handles: a struct around a uint64_t, passed by value.
class tether_backoff(Structure):
    _fields_ = [("id", c_uint64)]


class tether_monitor(Structure):
    _fields_ = [("id", c_uint64)]


class tether_registry(Structure):
    _fields_ = [("id", c_uint64)]


class tether_client(Structure):
    _fields_ = [("id", c_uint64)]


class tether_server(Structure):
    _fields_ = [("id", c_uint64)]


#: ``void (*)(void *userdata, const struct tether_event *event)``
tether_event_callback = CFUNCTYPE(None, c_void_p, POINTER(tether_event))

_P = POINTER
# name -> (restype, argtypes), in the header's order.
_PROTOTYPES: dict[str, tuple[Any, list[Any]]] = {
    # backoff
    "tether_backoff_config_default": (c_result, [_P(tether_backoff_config)]),
    "tether_backoff_config_grpc": (c_result, [_P(tether_backoff_config)]),
    "tether_backoff_new": (c_result, [_P(tether_backoff_config), _P(tether_backoff)]),
    "tether_backoff_next_delay_ms": (c_result, [tether_backoff, c_uint64, _P(c_uint64)]),
    "tether_backoff_connect_timeout_ms": (c_result, [tether_backoff, _P(c_uint64)]),
    "tether_backoff_on_connected": (c_result, [tether_backoff, c_uint64]),
    "tether_backoff_on_disconnected": (c_result, [tether_backoff, c_uint64]),
    "tether_backoff_attempt": (c_result, [tether_backoff, _P(c_uint32)]),
    "tether_backoff_reset": (c_result, [tether_backoff]),
    "tether_backoff_free": (c_result, [tether_backoff]),
    # client
    "tether_client_config_default": (c_result, [_P(tether_client_config)]),
    "tether_client_new": (
        c_result,
        [c_char_p, _P(tether_client_config), tether_event_callback, c_void_p, _P(tether_client)],
    ),
    "tether_client_send": (c_result, [tether_client, c_bytes, c_size_t]),
    "tether_client_feed": (c_result, [tether_client, c_bytes, c_size_t]),
    "tether_client_flush": (c_result, [tether_client]),
    "tether_client_close": (c_result, [tether_client]),
    "tether_client_poll_event": (c_result, [tether_client, _P(tether_event)]),
    "tether_client_event_fd": (c_result, [tether_client, _P(c_int)]),
    "tether_client_free": (c_result, [tether_client]),
    # monitor
    "tether_monitor_new": (c_result, [_P(tether_policy), c_uint64, _P(tether_monitor)]),
    "tether_monitor_handle_received": (c_result, [tether_monitor, c_uint64]),
    "tether_monitor_handle_pong": (c_result, [tether_monitor, c_uint64, c_uint64, _P(c_uint64)]),
    "tether_monitor_handle_timeout": (c_result, [tether_monitor, c_uint64]),
    "tether_monitor_poll_action": (c_result, [tether_monitor, _P(tether_liveness_action)]),
    "tether_monitor_next_timeout_ms": (c_result, [tether_monitor, c_uint64, _P(c_int)]),
    "tether_monitor_next_deadline_ms": (c_result, [tether_monitor, _P(c_uint64)]),
    "tether_monitor_is_dead": (c_result, [tether_monitor, _P(c_bool)]),
    "tether_monitor_detection_bound_ms": (c_result, [tether_monitor, _P(c_uint64)]),
    "tether_monitor_reset": (c_result, [tether_monitor, c_uint64]),
    "tether_monitor_free": (c_result, [tether_monitor]),
    # errors
    "tether_last_error_message": (c_result, [_P(c_char), c_size_t, _P(c_size_t)]),
    "tether_result_message": (c_result, [c_uint32, _P(c_char), c_size_t, _P(c_size_t)]),
    # policy
    "tether_policy_default": (c_result, [_P(tether_policy)]),
    "tether_policy_detection_bound_ms": (c_result, [_P(tether_policy), _P(c_uint64)]),
    # registry
    "tether_registry_new": (c_result, [_P(tether_policy), c_uint64, _P(tether_registry)]),
    "tether_registry_set_max_len": (c_result, [tether_registry, c_size_t]),
    "tether_registry_insert": (c_result, [tether_registry, c_uint64, c_uint64, _P(c_uint64)]),
    "tether_registry_touch": (c_result, [tether_registry, c_uint64, c_uint64]),
    "tether_registry_remove": (c_result, [tether_registry, c_uint64, _P(c_uint64)]),
    "tether_registry_tag": (c_result, [tether_registry, c_uint64, _P(c_uint64)]),
    "tether_registry_handle_timeout": (c_result, [tether_registry, c_uint64]),
    "tether_registry_poll_events": (
        c_result,
        [tether_registry, _P(tether_registry_event), c_size_t, _P(c_size_t)],
    ),
    "tether_registry_next_timeout_ms": (c_result, [tether_registry, c_uint64, _P(c_int)]),
    "tether_registry_next_deadline_ms": (c_result, [tether_registry, _P(c_uint64)]),
    "tether_registry_len": (c_result, [tether_registry, _P(c_size_t)]),
    "tether_registry_detection_bound_ms": (c_result, [tether_registry, _P(c_uint64)]),
    "tether_registry_free": (c_result, [tether_registry]),
    # server
    "tether_server_config_default": (c_result, [_P(tether_server_config)]),
    "tether_server_new": (
        c_result,
        [c_char_p, _P(tether_server_config), tether_event_callback, c_void_p, _P(tether_server)],
    ),
    "tether_server_local_port": (c_result, [tether_server, _P(c_uint16)]),
    "tether_server_send": (c_result, [tether_server, c_uint64, c_bytes, c_size_t]),
    "tether_server_feed": (c_result, [tether_server, c_uint64, c_bytes, c_size_t]),
    "tether_server_flush": (c_result, [tether_server, c_uint64]),
    "tether_server_close": (c_result, [tether_server, c_uint64]),
    "tether_server_connection_count": (c_result, [tether_server, _P(c_size_t)]),
    "tether_server_poll_event": (c_result, [tether_server, _P(tether_event)]),
    "tether_server_event_fd": (c_result, [tether_server, _P(c_int)]),
    "tether_server_free": (c_result, [tether_server]),
    # sockets
    "tether_tcp_options_default": (c_result, [_P(tether_tcp_options)]),
    "tether_socket_tune": (c_result, [c_int, _P(tether_tcp_options)]),
    "tether_socket_read_options": (c_result, [c_int, _P(tether_tcp_options)]),
    # transport options
    "tether_transport_options_new": (c_result, [_P(tether_transport_options)]),
    "tether_transport_options_free": (c_result, [tether_transport_options]),
    "tether_transport_options_set_tls_ca_file": (c_result, [tether_transport_options, c_char_p]),
    "tether_transport_options_set_tls_server_name": (c_result, [tether_transport_options, c_char_p]),
    "tether_transport_options_set_tls_client_cert": (
        c_result,
        [tether_transport_options, c_char_p, c_char_p],
    ),
    "tether_transport_options_set_tls_cert": (c_result, [tether_transport_options, c_char_p, c_char_p]),
    "tether_transport_options_set_tls_client_ca_file": (c_result, [tether_transport_options, c_char_p]),
    "tether_transport_options_set_tls_alpn": (c_result, [tether_transport_options, _P(c_char_p), c_size_t]),
    "tether_transport_options_set_quic_ca_file": (c_result, [tether_transport_options, c_char_p]),
    "tether_transport_options_set_quic_server_name": (c_result, [tether_transport_options, c_char_p]),
    "tether_transport_options_set_quic_cert": (c_result, [tether_transport_options, c_char_p, c_char_p]),
    "tether_transport_options_set_quic_alpn": (c_result, [tether_transport_options, _P(c_char_p), c_size_t]),
    "tether_transport_options_set_quic_zero_rtt": (c_result, [tether_transport_options, c_bool]),
    "tether_transport_options_set_quic_reset_key_file": (c_result, [tether_transport_options, c_char_p]),
    "tether_transport_options_set_udp_psk": (c_result, [tether_transport_options, c_bytes, c_size_t]),
    "tether_transport_options_set_udp_static_key_file": (c_result, [tether_transport_options, c_char_p]),
    "tether_transport_options_set_udp_max_payload": (c_result, [tether_transport_options, c_size_t]),
    "tether_transport_options_set_udp_handshake_timeout": (c_result, [tether_transport_options, c_uint64]),
    # clock
    "tether_now_ms": (c_uint64, []),
}


class LibraryNotFoundError(OSError):
    """libtether could not be found or loaded; the message says what was tried."""


def _library_names() -> list[str]:
    if sys.platform == "darwin":
        return ["libtether.dylib"]
    if sys.platform == "win32":
        return ["tether.dll"]
    return ["libtether.so"]


def _workspace_candidates(start: Path) -> list[Path]:
    """libtether under ``target/{debug,release}`` of the nearest enclosing
    Cargo workspace, newest build first."""
    for directory in [start, *start.parents]:
        found = [
            directory / "target" / profile / name
            for profile in ("debug", "release")
            for name in _library_names()
            if (directory / "target" / profile / name).is_file()
        ]
        if found:
            return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)
    return []


def _load() -> ctypes.CDLL:
    tried: list[str] = []
    explicit = os.environ.get(LIBRARY_ENV)
    if explicit:
        # An explicit choice is honoured or reported, never silently replaced.
        try:
            return ctypes.CDLL(explicit)
        except OSError as e:
            raise LibraryNotFoundError(f"cannot load libtether from {LIBRARY_ENV}={explicit!r}: {e}") from e
    tried.append(f"{LIBRARY_ENV} (not set)")

    here = Path(__file__).resolve().parent
    candidates = _workspace_candidates(here)
    for path in candidates:
        try:
            return ctypes.CDLL(str(path))
        except OSError as e:
            tried.append(f"{path} ({e})")
    if not candidates:
        tried.append(f"target/{{debug,release}}/{_library_names()[0]} in {here} and its parents (none)")

    found = ctypes.util.find_library("tether")
    if found:
        try:
            return ctypes.CDLL(found)
        except OSError as e:
            tried.append(f"ctypes.util.find_library('tether') -> {found} ({e})")
    else:
        tried.append("ctypes.util.find_library('tether') (nothing found)")

    raise LibraryNotFoundError(
        "cannot find libtether. Tried: "
        + "; ".join(tried)
        + ". Build it with `cargo build -p tether-ffi` and set "
        + f"{LIBRARY_ENV}=/path/to/target/debug/{_library_names()[0]}."
    )


def _declare(cdll: ctypes.CDLL) -> ctypes.CDLL:
    for name, (restype, argtypes) in _PROTOTYPES.items():
        try:
            fn = getattr(cdll, name)
        except AttributeError as e:
            raise LibraryNotFoundError(f"{cdll._name} is not a compatible libtether: it lacks {name}") from e
        fn.restype = restype
        fn.argtypes = argtypes
    return cdll


_lib: ctypes.CDLL | None = None
_lib_lock = threading.Lock()


def lib() -> Any:
    """The loaded and declared libtether (loaded on first call)."""
    global _lib
    if _lib is None:
        with _lib_lock:
            if _lib is None:
                _lib = _declare(_load())
    return _lib


def library_path() -> str:
    """The file the loaded libtether came from."""
    return str(lib()._name)
