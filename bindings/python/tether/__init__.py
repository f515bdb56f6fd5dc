"""tether: connections that notice dead peers, reconnect with jittered
backoff and report every lifecycle step exactly once (Python bindings of
libtether, over ctypes).

Two layers, as in the C API:

* sans-IO objects for code that owns its sockets and loop, driven with
  explicit ``now_ms`` times: :class:`Backoff`, :class:`Monitor`,
  :class:`Registry`, plus :func:`tune_socket` / :func:`read_socket_options`
  for kernel keepalive and TCP_USER_TIMEOUT;
* managed objects running on tether's own threads: :class:`Client` and
  :class:`Server` over ``tcp://``, ``tls://``, ``quic://`` or ``udp://``
  (settings in :mod:`tether.transports`), whose :class:`Event` s you poll
  (``events()``, ``poll_event()``, ``fileno()``, ``async for ... in
  aevents()``) or receive by callback (``on_event=``).

Durations are float seconds; clock values are integer milliseconds
(:func:`now_ms`). Failures raise subclasses of :class:`TetherError`;
arguments of the wrong type (a ``str`` message, a ``bytes`` address, a
``str`` timeout) raise :class:`TypeError`, out-of-range ones
:class:`ValueError` naming the argument or field. Every object has
``free()`` (idempotent) and is a context manager; clients and servers also
have ``close()``, the orderly close that keeps the object valid until
``free()`` so that its last events can be read, and ``async with``.

libtether is found through ``TETHER_LIBRARY``, else in the Cargo
workspace's ``target/{debug,release}`` above this package, else with
``ctypes.util.find_library("tether")``.
"""

from ._ffi import LIBRARY_ENV, LibraryNotFoundError, library_path
from .backoff import Backoff, BackoffConfig, Jitter
from .client import Client, ClientConfig
from .clock import now_ms
from .errors import (
    BufferTooSmallError,
    ClosedError,
    EmptyError,
    FullError,
    GaveUpError,
    InvalidAddressError,
    InvalidArgumentError,
    InvalidConfigError,
    InvalidHandleError,
    MessageTooLargeError,
    NotSupportedError,
    NullArgumentError,
    PanicError,
    Result,
    StaleHandleError,
    TetherError,
    TetherIOError,
    WrongModeError,
)
from .events import DisconnectReason, Event, EventKind
from .liveness import (
    ActionKind,
    HeartbeatPolicy,
    IdleTimeoutPolicy,
    LivenessAction,
    Monitor,
    Policy,
)
from .opening import Opening
from .registry import Registry, RegistryEvent, RegistryEventKind
from .server import Server, ServerConfig
from .sockets import TcpOptions, read_socket_options, tune_socket
from .transports import (
    QuicClientOptions,
    QuicServerOptions,
    TlsClientOptions,
    TlsServerOptions,
    UdpOptions,
)

__version__ = "0.1.0"

__all__ = [
    "LIBRARY_ENV",
    "ActionKind",
    "Backoff",
    "BackoffConfig",
    "BufferTooSmallError",
    "Client",
    "ClientConfig",
    "ClosedError",
    "DisconnectReason",
    "EmptyError",
    "Event",
    "EventKind",
    "FullError",
    "GaveUpError",
    "HeartbeatPolicy",
    "IdleTimeoutPolicy",
    "InvalidAddressError",
    "InvalidArgumentError",
    "InvalidConfigError",
    "InvalidHandleError",
    "Jitter",
    "LibraryNotFoundError",
    "LivenessAction",
    "MessageTooLargeError",
    "Monitor",
    "NotSupportedError",
    "NullArgumentError",
    "Opening",
    "PanicError",
    "Policy",
    "QuicClientOptions",
    "QuicServerOptions",
    "Registry",
    "RegistryEvent",
    "RegistryEventKind",
    "Result",
    "Server",
    "ServerConfig",
    "StaleHandleError",
    "TcpOptions",
    "TetherError",
    "TetherIOError",
    "TlsClientOptions",
    "TlsServerOptions",
    "UdpOptions",
    "WrongModeError",
    "library_path",
    "now_ms",
    "read_socket_options",
    "tune_socket",
]
