"""The managed server (``tether_server_*``): accepts on tether's runtime,
watches every connection's liveness and reports each connection's end
exactly once."""

from __future__ import annotations

from ctypes import byref, c_size_t, c_uint16
from dataclasses import dataclass, field
from typing import Any

from . import _config, _ffi, _units
from ._managed import EventCallback, Managed, as_bytes_pointer
from .errors import check
from .events import Event, EventKind
from .liveness import Policy, policy_from_c, policy_to_c
from .sockets import TcpOptions
from .transports import QuicServerOptions, TlsServerOptions, UdpOptions, transport_options


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """``tether_server_config``. Start from :meth:`default` and change
    fields with :meth:`replace`."""

    #: Liveness rule for every connection (heartbeat: the server pings
    #: silent clients; idle timeout: it only drops them).
    policy: Policy
    #: Messages queued per connection before :meth:`Server.send` raises
    #: :class:`~tether.FullError` (>= 1).
    send_queue: int
    #: Kernel keepalive, TCP_USER_TIMEOUT and TCP_NODELAY of each accepted
    #: connection (``tcp://`` and ``tls://``).
    tcp: TcpOptions
    #: ``tls://``: certificate and key (required), client CA, ALPN.
    tls: TlsServerOptions = field(default_factory=TlsServerOptions)
    #: ``quic://``: certificate and key (required), ALPN, 0-RTT, reset key file.
    quic: QuicServerOptions = field(default_factory=QuicServerOptions)
    #: ``udp://``: the pre-shared key (required), static key file, payload limit.
    udp: UdpOptions = field(default_factory=UdpOptions)

    @classmethod
    def default(cls) -> ServerConfig:
        """Heartbeat 15 s / 10 s / 2 misses, 1024 queued messages per
        connection, tether's TCP options, each transport's defaults."""
        c = _ffi.tether_server_config()
        check(_ffi.lib().tether_server_config_default(byref(c)))
        return cls(policy=policy_from_c(c.policy), send_queue=c.send_queue, tcp=TcpOptions._from_c(c.tcp))

    def replace(self, **changes: Any) -> ServerConfig:
        """A copy with ``changes``; ``policy``, ``tcp``, ``tls``, ``quic`` and
        ``udp`` also take a mapping of their own fields to change."""
        return _config.replace(self, changes)

    def _to_c(self) -> _ffi.tether_server_config:
        c = _ffi.tether_server_config()
        c.policy = policy_to_c(self.policy)
        c.send_queue = _units.count("send_queue", self.send_queue, 2**63 - 1)
        c.tcp = self.tcp._to_c()
        return c


class Server(Managed):
    """A server bound to ``url``: ``"tcp://ip:port"``, ``"tls://..."``,
    ``"quic://..."`` or ``"udp://..."`` with an IP literal; port 0 lets the
    kernel choose, see :attr:`port`. ``tls://`` and ``quic://`` need
    ``tls=`` / ``quic={"cert_file": ..., "key_file": ...}``, ``udp://``
    ``udp={"psk": ...}`` (see :mod:`tether.transports`). Events as for
    :class:`~tether.Client`: ACCEPTED, MESSAGE and CLOSED per connection,
    each carrying ``conn`` and the peer's address ``peer``.

    ``close()`` is :meth:`free`: it stops accepting and closes every
    connection (clients see an orderly close). Close a single connection
    with :meth:`close_connection`.

    Raises :class:`~tether.InvalidAddressError` (also for a host name),
    :class:`~tether.InvalidConfigError` (the message names the field or
    file: a missing certificate, an unreadable key, a short PSK),
    :class:`~tether.NotSupportedError`, :class:`~tether.TetherIOError` (e.g.
    the address is in use).
    """

    _free_name = "tether_server_free"
    _poll_name = "tether_server_poll_event"
    _event_fd_name = "tether_server_event_fd"

    def __init__(
        self,
        url: str = "tcp://127.0.0.1:0",
        *,
        config: ServerConfig | None = None,
        on_event: EventCallback | None = None,
        **changes: Any,
    ) -> None:
        self.config: ServerConfig = (config or ServerConfig.default()).replace(**changes)
        c = self.config._to_c()
        address = url.encode("utf-8")

        def create(callback: Any) -> _ffi.tether_server:
            handle = _ffi.tether_server()
            check(_ffi.lib().tether_server_new(address, byref(c), callback, None, byref(handle)))
            return handle

        # C copies the transport options: they are freed right after.
        with transport_options(self.config.tls, self.config.quic, self.config.udp) as options:
            c.transport = options.c
            self._start(create, on_event)
        self.port: int = self._local_port()
        scheme, _, rest = url.partition("://")
        host = rest.rsplit(":", 1)[0]
        #: The bound address, with the kernel's port: dial it with a Client.
        self.url = f"{scheme.lower()}://{host}:{self.port}"

    def _is_terminal(self, event: Event) -> bool:
        return event.kind == EventKind.FAILED

    def _local_port(self) -> int:
        out = c_uint16()
        check(self._call("tether_server_local_port")(self._handle, byref(out)))
        return out.value

    def send(self, conn: int, data: bytes | bytearray | memoryview) -> None:
        """Queues a copy of ``data`` as one message to connection ``conn``
        (from an ACCEPTED event). Never blocks. Raises
        :class:`~tether.StaleHandleError` (the connection closed or is
        closing), :class:`~tether.FullError` (its queue is full)."""
        ptr, n, _keep = as_bytes_pointer(data)
        check(self._call("tether_server_send")(self._handle, _units.u64_arg("conn", conn), ptr, n))

    def close_connection(self, conn: int) -> None:
        """Closes connection ``conn`` in an orderly way; its CLOSED event
        (reason CLOSED_LOCALLY) follows. A second close, or one of a
        connection that already ended, raises
        :class:`~tether.StaleHandleError` and touches nothing else."""
        check(self._call("tether_server_close")(self._handle, _units.u64_arg("conn", conn)))

    @property
    def connection_count(self) -> int:
        """The number of open connections."""
        out = c_size_t()
        check(self._call("tether_server_connection_count")(self._handle, byref(out)))
        return out.value

    def close(self) -> None:
        """Stops the server: the same as :meth:`free`."""
        self.free()

    def __repr__(self) -> str:
        url = getattr(self, "url", "?")
        return f"<Server {url} handle={self.handle:#x} {'freed' if self.freed else 'live'}>"
