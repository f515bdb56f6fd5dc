"""The managed client (``tether_client_*``): a supervised connection on
tether's runtime that reconnects with backoff and reports every lifecycle
step exactly once."""

from __future__ import annotations

from ctypes import byref
from dataclasses import dataclass, field
from typing import Any

from . import _args, _config, _ffi, _units
from ._args import BytesLike
from ._managed import EventCallback, Managed
from .backoff import BackoffConfig
from .errors import Result, check, raise_last
from .events import Event, EventKind
from .opening import Opening
from .sockets import TcpOptions
from .transports import QuicClientOptions, TlsClientOptions, UdpOptions, max_message, transport_options


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """``tether_client_config``, durations in seconds. Start from
    :meth:`default` and change fields with :meth:`replace`."""

    #: Application heartbeat: ping after this much silence (> 0).
    heartbeat_interval: float
    #: Application heartbeat: how long a ping waits for any traffic.
    heartbeat_timeout: float
    #: Application heartbeat: unanswered pings that mean dead (1..=255).
    heartbeat_max_missed: int
    #: Waiting between connection attempts.
    backoff: BackoffConfig
    #: Messages kept while disconnected (>= 1); :meth:`Client.send` raises
    #: :class:`~tether.FullError` beyond it.
    max_pending: int
    #: Kernel keepalive, TCP_USER_TIMEOUT and TCP_NODELAY of each connection
    #: (``tcp://`` and ``tls://``).
    tcp: TcpOptions
    #: ``tls://``: trust roots, server name, client certificate, ALPN.
    tls: TlsClientOptions = field(default_factory=TlsClientOptions)
    #: ``quic://``: trust roots, server name, ALPN, 0-RTT.
    quic: QuicClientOptions = field(default_factory=QuicClientOptions)
    #: ``udp://``: the pre-shared key (required), payload limit.
    udp: UdpOptions = field(default_factory=UdpOptions)
    #: How each connection starts: the hello/welcome exchange (the default)
    #: or RAW for peers that do not speak it; name or number also accepted.
    opening: Opening = Opening.HELLO

    def __post_init__(self) -> None:
        object.__setattr__(self, "opening", Opening.coerce(self.opening))

    @classmethod
    def default(cls) -> ClientConfig:
        """Heartbeat 15 s / 10 s / 2 misses, the default backoff, 1024
        pending messages, tether's TCP options, each transport's defaults."""
        c = _ffi.tether_client_config()
        check(_ffi.lib().tether_client_config_default(byref(c)))
        return cls(
            heartbeat_interval=_units.seconds(c.heartbeat_interval_ms),
            heartbeat_timeout=_units.seconds(c.heartbeat_timeout_ms),
            heartbeat_max_missed=c.heartbeat_max_missed,
            backoff=BackoffConfig._from_c(c.backoff),
            max_pending=c.max_pending,
            tcp=TcpOptions._from_c(c.tcp),
            opening=Opening(c.opening),
        )

    def replace(self, **changes: Any) -> ClientConfig:
        """A copy with ``changes``; ``backoff``, ``tcp``, ``tls``, ``quic``
        and ``udp`` also take a mapping of their own fields to change, e.g.
        ``backoff={"initial": 0.05, "jitter": "none"}``."""
        return _config.replace(self, changes)

    def _to_c(self) -> _ffi.tether_client_config:
        c = _ffi.tether_client_config()
        c.heartbeat_interval_ms = _units.ms("heartbeat_interval", self.heartbeat_interval)
        c.heartbeat_timeout_ms = _units.ms("heartbeat_timeout", self.heartbeat_timeout)
        c.heartbeat_max_missed = _units.count("heartbeat_max_missed", self.heartbeat_max_missed)
        c.backoff = self.backoff._to_c()
        c.max_pending = _units.count("max_pending", self.max_pending, _units.LEN_MAX)
        c.tcp = self.tcp._to_c()
        c.opening = self.opening
        return c


class Client(Managed):
    """A supervised connection to ``url``: ``"tcp://host:port"``,
    ``"tls://..."``, ``"quic://..."`` or ``"udp://..."`` (IPv6 as
    ``"tcp://[::1]:port"``; the name is resolved again on every attempt). It
    starts connecting at once.

    ``Client(url, **changes)`` starts from :meth:`ClientConfig.default`;
    pass ``config=`` to start from another :class:`ClientConfig`. Transport
    settings are keywords too: ``tls={"ca_file": ..., "server_name": ...}``,
    ``quic={...}``, ``udp={"psk": ...}`` (see :mod:`tether.transports`).
    Events are polled (:meth:`poll_event`, :meth:`events`, :meth:`aevents`,
    :meth:`fileno`) unless ``on_event`` is given (callback mode, see
    :mod:`tether._managed`).

    Lifecycle: :meth:`close` closes the connection in an orderly way and
    keeps the object valid, so that the remaining events (DISCONNECTED,
    then the terminal CLOSED) can still be read; :meth:`free` releases it.
    ``with Client(...) as c:`` and ``async with Client(...) as c:`` close and
    free on exit.

    Raises :class:`TypeError` for a ``url`` that is not a ``str``,
    :class:`~tether.InvalidAddressError` (unparsable, unknown scheme, port
    0, an embedded NUL), :class:`~tether.InvalidConfigError` (the message
    names the field or file: e.g. an unreadable CA file, a missing or short
    UDP PSK, a negative duration), :class:`~tether.NotSupportedError` (a
    transport not compiled into libtether).
    """

    _free_name = "tether_client_free"
    _poll_name = "tether_client_poll_event"
    _event_fd_name = "tether_client_event_fd"

    def __init__(
        self,
        url: str,
        *,
        config: ClientConfig | None = None,
        on_event: EventCallback | None = None,
        **changes: Any,
    ) -> None:
        address = _args.c_text("url", url, Result.INVALID_ADDRESS)
        self.url = url
        self.config: ClientConfig = (config or ClientConfig.default()).replace(**changes)
        c = self.config._to_c()
        self._max_message = max_message(url, self.config.udp)
        self._connected = False

        def create(callback: Any) -> _ffi.tether_client:
            handle = _ffi.tether_client()
            check(_ffi.lib().tether_client_new(address, byref(c), callback, None, byref(handle)))
            return handle

        # C copies the transport options: they are freed right after.
        with transport_options(self.config.tls, self.config.quic, self.config.udp) as options:
            c.transport = options.c
            self._start(create, on_event)

    def _is_terminal(self, event: Event) -> bool:
        return event.kind in (EventKind.CLOSED, EventKind.GAVE_UP, EventKind.FAILED)

    def _track(self, event: Event) -> None:
        if event.kind == EventKind.CONNECTED:
            self._connected = True
        elif event.kind in (EventKind.DISCONNECTED, EventKind.CLOSED, EventKind.GAVE_UP, EventKind.FAILED):
            self._connected = False

    @property
    def connected(self) -> bool:
        """True between a CONNECTED event and the DISCONNECTED that follows
        it, as seen from the events delivered so far: in poll mode the ones
        taken with :meth:`poll_event` / :meth:`next_event` / :meth:`events`
        (by any thread), in callback mode the ones passed to ``on_event``
        (already True inside the callback for CONNECTED, False inside the one
        for DISCONNECTED). The connection may already be gone while its
        DISCONNECTED event waits unread, so this is the state of your event
        handling, not a live probe; ``send`` works either way (messages wait
        while down). False after :meth:`free`."""
        return self._connected and not self._freed

    def send(self, data: BytesLike) -> None:
        """Queues a copy of ``data`` as one message; while disconnected up
        to ``max_pending`` messages wait for the next connection. Never
        blocks.

        ``data`` is bytes-like: ``bytes``, ``bytearray``, ``memoryview`` or
        any other object with the buffer protocol (a non-contiguous view is
        sent in C order); a ``str`` must be encoded first
        (``data.encode()``). Raises :class:`TypeError` for anything else,
        :class:`~tether.MessageTooLargeError` (before any copy) for a message
        larger than the transport carries, :class:`~tether.FullError` (retry
        later, or use :meth:`send_async`), :class:`~tether.ClosedError`
        (closed or gave up), :class:`~tether.StaleHandleError` (freed)."""
        self._send(_args.Message(data, self._max_message))

    async def send_async(self, data: BytesLike, *, timeout: float | None = None) -> None:
        """As :meth:`send`, but while the pending buffer is full it waits
        (pausing 1 ms, doubling up to 50 ms, without blocking the loop) and
        tries again, instead of raising :class:`~tether.FullError`.

        The message is what ``data`` holds when this is called (a mutable
        buffer is copied once). Raises :class:`TimeoutError` when the buffer
        stayed full for ``timeout`` seconds (None: no limit); cancelling the
        await leaves the message unsent. Other errors as for :meth:`send`."""
        limit = _args.timeout("timeout", timeout)
        message = _args.Message(data, self._max_message, snapshot=True)
        await self._send_when_room(lambda: self._send(message), limit)

    def _send(self, message: _args.Message) -> None:
        check(self._call("tether_client_send")(self._handle, message.pointer, message.length))

    def feed(self, data: BytesLike) -> None:
        """Queues a copy of ``data`` like :meth:`send`, but leaves the
        writing to the next :meth:`flush`, as a buffered writer does: a
        burst fed and then flushed is one write. Fed inside one of this
        client's callbacks it is flushed when the callback's batch ends.
        Until then it also goes out with any write the connection makes (a
        :meth:`send`), at the latest on its next heartbeat turn; nothing fed
        is dropped. Errors as for :meth:`send`."""
        message = _args.Message(data, self._max_message)
        check(self._call("tether_client_feed")(self._handle, message.pointer, message.length))

    def flush(self) -> None:
        """Writes every message fed so far (see :meth:`feed`). Cheap when
        nothing was fed. Raises :class:`~tether.StaleHandleError` once
        freed."""
        check(self._call("tether_client_flush")(self._handle))

    def close(self) -> None:
        """Closes the connection in an orderly way; the events end with
        DISCONNECTED (when connected) and CLOSED (unless it had given up),
        which can still be read. The object stays valid until :meth:`free`:
        :meth:`send` then raises :class:`~tether.ClosedError`. Idempotent:
        closing a closed or freed client does nothing."""
        if self._handle is None or self._freed:
            return
        rc = self._call("tether_client_close")(self._handle)
        if rc not in (Result.OK, Result.CLOSED, Result.STALE_HANDLE):
            raise_last(rc)

    def __repr__(self) -> str:
        return f"<Client {self.url} handle={self.handle:#x} {'freed' if self.freed else 'live'}>"
