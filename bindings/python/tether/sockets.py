"""Kernel liveness for sockets you own (scenario S3): keepalive,
TCP_USER_TIMEOUT and TCP_NODELAY (``tether_socket_*``).

Kernel keepalive is off by default and Linux waits 7200 s before its first
probe; it also never fires while sent data is unacknowledged, which is what
``user_timeout`` (TCP_USER_TIMEOUT) bounds. Neither notices a peer whose
kernel is alive but whose application hangs: keep an application heartbeat
(:class:`~tether.Monitor`, :class:`~tether.Registry`) for that.
"""

from __future__ import annotations

from ctypes import byref
from dataclasses import dataclass
from typing import Any, Protocol

from . import _config, _ffi, _units
from .errors import check


class HasFileno(Protocol):
    """Anything with ``fileno()``, e.g. :class:`socket.socket`."""

    def fileno(self) -> int: ...


@dataclass(frozen=True, slots=True)
class TcpOptions:
    """``tether_tcp_options``, durations in seconds."""

    #: Kernel keepalive with the three values below. When False,
    #: :func:`tune_socket` leaves keepalive as it is, and
    #: :func:`read_socket_options` reports it off.
    keepalive: bool
    #: Idle time before the first probe: whole seconds, 1..=32767.
    keepalive_idle: float
    #: Time between probes: whole seconds, 1..=32767.
    keepalive_interval: float
    #: Unanswered probes before the kernel drops the connection (1..=127).
    keepalive_count: int
    #: TCP_USER_TIMEOUT (Linux): how long sent data may stay unacknowledged;
    #: 0 = leave the kernel's default.
    user_timeout: float
    #: TCP_NODELAY (disable Nagle's algorithm).
    nodelay: bool

    @classmethod
    def default(cls) -> TcpOptions:
        """tether's defaults: keepalive after 10 s idle, probes every 5 s,
        3 probes, TCP_USER_TIMEOUT 30 s, TCP_NODELAY on."""
        c = _ffi.tether_tcp_options()
        check(_ffi.lib().tether_tcp_options_default(byref(c)))
        return cls._from_c(c)

    def replace(self, **changes: Any) -> TcpOptions:
        """A copy with ``changes`` (field names as keyword arguments)."""
        return _config.replace(self, changes)

    @classmethod
    def _from_c(cls, c: _ffi.tether_tcp_options) -> TcpOptions:
        s = _units.seconds
        return cls(
            keepalive=bool(c.keepalive),
            keepalive_idle=s(c.keepalive_idle_ms),
            keepalive_interval=s(c.keepalive_interval_ms),
            keepalive_count=c.keepalive_count,
            user_timeout=s(c.user_timeout_ms),
            nodelay=bool(c.nodelay),
        )

    def _to_c(self) -> _ffi.tether_tcp_options:
        c = _ffi.tether_tcp_options()
        c.keepalive = _units.flag("tcp.keepalive", self.keepalive)
        c.keepalive_idle_ms = _units.ms("tcp.keepalive_idle", self.keepalive_idle)
        c.keepalive_interval_ms = _units.ms("tcp.keepalive_interval", self.keepalive_interval)
        c.keepalive_count = _units.count("tcp.keepalive_count", self.keepalive_count)
        c.user_timeout_ms = _units.ms("tcp.user_timeout", self.user_timeout)
        c.nodelay = _units.flag("tcp.nodelay", self.nodelay)
        return c


def _fd(sock_or_fd: HasFileno | int) -> int:
    fileno = getattr(sock_or_fd, "fileno", None)
    fd = fileno() if fileno is not None else sock_or_fd
    if isinstance(fd, bool) or not isinstance(fd, int):
        raise TypeError(
            f"expected a socket (anything with fileno()) or a file descriptor, got {sock_or_fd!r}"
        )
    if not -(2**31) <= fd < 2**31:
        # ctypes would pass the low 32 bits: another descriptor.
        raise ValueError(f"file descriptor out of range: {fd}")
    return fd


def tune_socket(
    sock_or_fd: HasFileno | int,
    options: TcpOptions | None = None,
    **changes: Any,
) -> TcpOptions:
    """Applies ``options`` (default :meth:`TcpOptions.default`) plus
    ``changes`` (e.g. ``keepalive=True, keepalive_idle=30, user_timeout=10``)
    to a TCP socket, which stays yours. Returns the options applied.

    Raises :class:`~tether.InvalidConfigError` for out-of-range values
    (nothing applied), :class:`~tether.InvalidArgumentError` for a closed
    socket (fd -1), :class:`~tether.TetherIOError` when the kernel rejects an
    option (e.g. not a TCP socket).
    """
    opts = (options or TcpOptions.default()).replace(**changes)
    c = opts._to_c()
    check(_ffi.lib().tether_socket_tune(_fd(sock_or_fd), byref(c)))
    return opts


def read_socket_options(sock_or_fd: HasFileno | int) -> TcpOptions:
    """The kernel's current keepalive, TCP_USER_TIMEOUT and TCP_NODELAY
    settings of a socket (keepalive times in whole seconds)."""
    c = _ffi.tether_tcp_options()
    check(_ffi.lib().tether_socket_read_options(_fd(sock_or_fd), byref(c)))
    return TcpOptions._from_c(c)
