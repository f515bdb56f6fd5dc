"""The managed server (``tether_server_*``): accepts on tether's runtime,
watches every connection's liveness and reports each connection's end
exactly once."""

from __future__ import annotations

import weakref
from ctypes import byref, c_size_t, c_uint16
from dataclasses import dataclass, field
from typing import Any

from . import _args, _config, _ffi, _units
from ._args import BytesLike
from ._managed import EventCallback, Managed
from .errors import Result, check
from .events import DisconnectReason, Event, EventKind
from .liveness import Policy, policy_from_c, policy_to_c
from .opening import Opening
from .sockets import TcpOptions
from .transports import QuicServerOptions, TlsServerOptions, UdpOptions, max_message, transport_options


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
    #: How each connection starts: the hello/welcome exchange (the default)
    #: or RAW for peers that do not speak it; name or number also accepted.
    opening: Opening = Opening.HELLO

    def __post_init__(self) -> None:
        object.__setattr__(self, "opening", Opening.coerce(self.opening))

    @classmethod
    def default(cls) -> ServerConfig:
        """Heartbeat 15 s / 10 s / 2 misses, 1024 queued messages per
        connection, tether's TCP options, each transport's defaults."""
        c = _ffi.tether_server_config()
        check(_ffi.lib().tether_server_config_default(byref(c)))
        return cls(
            policy=policy_from_c(c.policy),
            send_queue=c.send_queue,
            tcp=TcpOptions._from_c(c.tcp),
            opening=Opening(c.opening),
        )

    def replace(self, **changes: Any) -> ServerConfig:
        """A copy with ``changes``; ``policy``, ``tcp``, ``tls``, ``quic`` and
        ``udp`` also take a mapping of their own fields to change."""
        return _config.replace(self, changes)

    def _to_c(self) -> _ffi.tether_server_config:
        c = _ffi.tether_server_config()
        c.policy = policy_to_c(self.policy)
        c.send_queue = _units.count("send_queue", self.send_queue, _units.LEN_MAX)
        c.tcp = self.tcp._to_c()
        c.opening = self.opening
        return c


class Server(Managed):
    """A server bound to ``url``: ``"tcp://ip:port"``, ``"tls://..."``,
    ``"quic://..."`` or ``"udp://..."`` with an IP literal; port 0 lets the
    kernel choose, see :attr:`port`. ``tls://`` and ``quic://`` need
    ``tls=`` / ``quic={"cert_file": ..., "key_file": ...}``, ``udp://``
    ``udp={"psk": ...}`` (see :mod:`tether.transports`). Events as for
    :class:`~tether.Client`: ACCEPTED, MESSAGE and CLOSED per connection,
    each carrying ``conn`` and the peer's address ``peer``.

    Lifecycle, as for a client: :meth:`close` is the orderly close and the
    object stays valid, so that its remaining events can be read;
    :meth:`free` releases it; ``with`` / ``async with`` close and free on
    exit. Close a single connection with :meth:`close_connection`.

    Raises :class:`TypeError` for a ``url`` that is not a ``str``,
    :class:`~tether.InvalidAddressError` (also for a host name, or an
    embedded NUL), :class:`~tether.InvalidConfigError` (the message names
    the field or file: a missing certificate, an unreadable key, a short
    PSK), :class:`~tether.NotSupportedError`, :class:`~tether.TetherIOError`
    (e.g. the address is in use).
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
        address = _args.c_text("url", url, Result.INVALID_ADDRESS)
        self.config: ServerConfig = (config or ServerConfig.default()).replace(**changes)
        c = self.config._to_c()
        self._max_message = max_message(url, self.config.udp)
        # Open connections (ACCEPTED, no CLOSED yet) as C reported them:
        # conn -> peer.
        self._open: dict[int, str | None] = {}

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

    def _track(self, event: Event) -> None:
        if event.kind == EventKind.ACCEPTED:
            self._open[event.conn] = event.peer
        elif event.kind == EventKind.CLOSED:
            self._open.pop(event.conn, None)

    def _closing_events(self) -> list[Event]:
        # tether_server_free closes every connection in an orderly way but
        # reports nothing more: each still-open connection gets its CLOSED
        # here, as close_connection() would have reported it.
        events = [
            Event(
                kind=EventKind.CLOSED,
                reason=DisconnectReason.CLOSED_LOCALLY,
                conn=conn,
                peer=peer,
                detail="the server was closed",
                handle=self.handle,
                _source=weakref.ref(self),
            )
            for conn, peer in self._open.items()
        ]
        self._open.clear()
        return events

    def _check_open(self) -> None:
        """ClosedError after close() (after free(), C says STALE_HANDLE)."""
        if self._released and not self._freed:
            raise self._closed()

    def _local_port(self) -> int:
        out = c_uint16()
        check(self._call("tether_server_local_port")(self._handle, byref(out)))
        return out.value

    def send(self, conn: int, data: BytesLike) -> None:
        """Queues a copy of ``data`` as one message to connection ``conn``
        (from an ACCEPTED event). Never blocks. ``data`` as for
        :meth:`Client.send <tether.Client.send>` (bytes-like, size checked
        first). Raises :class:`~tether.StaleHandleError` (the connection
        closed or is closing), :class:`~tether.FullError` (its queue is full;
        or use :meth:`send_async`), :class:`~tether.ClosedError` (the server
        is closed), :class:`TypeError`,
        :class:`~tether.MessageTooLargeError`."""
        self._send(_units.u64_arg("conn", conn), _args.Message(data, self._max_message))

    async def send_async(self, conn: int, data: BytesLike, *, timeout: float | None = None) -> None:
        """As :meth:`send`, but waits (without blocking the loop) while the
        connection's queue is full instead of raising
        :class:`~tether.FullError`; :class:`TimeoutError` after ``timeout``
        seconds (None: no limit). Cancellable; see
        :meth:`Client.send_async <tether.Client.send_async>`."""
        limit = _args.timeout("timeout", timeout)
        target = _units.u64_arg("conn", conn)
        message = _args.Message(data, self._max_message, snapshot=True)
        await self._send_when_room(lambda: self._send(target, message), limit)

    def _send(self, conn: int, message: _args.Message) -> None:
        self._check_open()
        check(self._call("tether_server_send")(self._handle, conn, message.pointer, message.length))

    def feed(self, conn: int, data: BytesLike) -> None:
        """Queues a copy of ``data`` to connection ``conn`` like
        :meth:`send`, but leaves the writing to the next :meth:`flush` of
        ``conn``; fed inside one of this server's callbacks (an echo) it is
        flushed when the callback's batch ends. Errors as for :meth:`send`."""
        target = _units.u64_arg("conn", conn)
        message = _args.Message(data, self._max_message)
        self._check_open()
        check(
            self._call("tether_server_feed")(self._handle, target, message.pointer, message.length)
        )

    def flush(self, conn: int) -> None:
        """Writes every message fed to connection ``conn`` so far (see
        :meth:`feed`). Raises :class:`~tether.StaleHandleError` when the
        connection closed, :class:`~tether.ClosedError` once the server is
        closed."""
        target = _units.u64_arg("conn", conn)
        self._check_open()
        check(self._call("tether_server_flush")(self._handle, target))

    def close_connection(self, conn: int) -> None:
        """Closes connection ``conn`` in an orderly way; its CLOSED event
        (reason CLOSED_LOCALLY) follows. A second close, or one of a
        connection that already ended, raises
        :class:`~tether.StaleHandleError` and touches nothing else;
        :class:`~tether.ClosedError` once the server is closed."""
        target = _units.u64_arg("conn", conn)
        self._check_open()
        check(self._call("tether_server_close")(self._handle, target))

    @property
    def connection_count(self) -> int:
        """The number of open connections (0 once closed)."""
        if self._released and not self._freed:
            return 0
        out = c_size_t()
        check(self._call("tether_server_connection_count")(self._handle, byref(out)))
        return out.value

    def close(self) -> None:
        """Stops the server in an orderly way: it stops accepting and closes
        every connection (clients see an orderly close; what was queued for
        them is written first). The object stays valid until :meth:`free`:
        the events not read yet can still be taken, followed by a CLOSED
        (reason CLOSED_LOCALLY, ``detail`` "the server was closed") for each
        connection still open, and then the stream ends (``events()`` stops,
        ``next_event`` raises :class:`~tether.ClosedError`). In callback mode
        those CLOSED events go to ``on_event`` before ``close()`` returns (or,
        when called from inside the callback, right after it returns).

        The event fd is closed by ``close()``: unregister it from your own
        selector first. :meth:`send` and :meth:`close_connection` then raise
        :class:`~tether.ClosedError`. Idempotent; does nothing after
        :meth:`free`."""
        if self._handle is None or self._freed:
            return
        self._close_released()

    def __repr__(self) -> str:
        url = getattr(self, "url", "?")
        state = "freed" if self.freed else ("closed" if getattr(self, "_released", False) else "live")
        return f"<Server {url} handle={self.handle:#x} {state}>"
