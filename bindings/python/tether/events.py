"""What managed clients and servers report (``tether_event``), and why
connections end (``DisconnectReason``)."""

from __future__ import annotations

import ctypes
import weakref
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Self

from . import _ffi, _units


class _OpenEnum(IntEnum):
    """An IntEnum that keeps a number appended by a newer libtether as
    ``UNKNOWN_<n>`` instead of failing (the C API only ever appends), and
    prints as its short lowercase name (``peer_closed``), as tether's other
    APIs do."""

    def __str__(self) -> str:
        return self.name.lower()

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if not isinstance(value, int):
            return None
        member = int.__new__(cls, value)
        member._name_ = f"UNKNOWN_{value}"
        member._value_ = value
        return member


class EventKind(_OpenEnum):
    """``tether_event_kind``.

    A client reports, per connection attempt (``generation`` 1, 2, ...):
    CONNECTING, then CONNECT_FAILED or CONNECTED ... DISCONNECTED; WAITING
    between attempts; MESSAGEs while connected; finally exactly one CLOSED,
    GAVE_UP or FAILED, after which nothing follows. A server reports per
    connection one ACCEPTED, any MESSAGEs, then exactly one CLOSED (with
    ``conn``); a server that fails inside tether closes every connection
    (reason INTERNAL) and reports FAILED last.
    """

    CONNECTING = 1
    CONNECTED = 2
    CONNECT_FAILED = 3
    DISCONNECTED = 4
    WAITING = 5
    CLOSED = 6
    GAVE_UP = 7
    MESSAGE = 8
    ACCEPTED = 9
    #: The object failed inside tether (reason INTERNAL, ``detail`` the
    #: panic message) and stopped; terminal, for clients and servers.
    FAILED = 10


class DisconnectReason(_OpenEnum):
    """Why a connection ended or an attempt failed."""

    #: The peer closed the connection in an orderly way (TCP FIN).
    PEER_CLOSED = 1
    #: The connection was reset abruptly (TCP RST).
    RESET = 2
    #: The peer stopped proving it is alive (heartbeat, idle timeout, kernel).
    TIMEOUT = 3
    #: A connection attempt was refused by the peer.
    CONNECT_REFUSED = 4
    #: A connection attempt did not finish within the connect timeout.
    CONNECT_TIMEOUT = 5
    #: The peer's network or host could not be reached.
    UNREACHABLE = 6
    #: The peer broke the protocol (bad frame, frame too long).
    PROTOCOL_ERROR = 7
    #: This side closed the connection on purpose.
    CLOSED_LOCALLY = 8
    #: Any other I/O failure.
    IO = 9
    #: The server replaced this connection with a newer one (same client id).
    TAKEN_OVER = 10
    #: tether failed internally (a panic); ``detail`` has the panic message.
    INTERNAL = 11
    #: A TLS certificate was refused: an untrusted issuer, an expired
    #: certificate, a CA used as an end entity, ... (or the peer refused ours).
    TLS_CERTIFICATE = 12
    #: The peer's certificate is not valid for the server name.
    TLS_NAME_MISMATCH = 13

    @classmethod
    def from_c(cls, value: int) -> DisconnectReason | None:
        """The reason for a C ``reason`` field; None for 0 ("no reason")."""
        return cls(value) if value else None


@dataclass(frozen=True, slots=True)
class Event:
    """One event of a :class:`~tether.Client` or :class:`~tether.Server`.

    Fields that do not apply to the kind are 0, None or empty. ``data`` is a
    copy: it stays valid for as long as you keep it.
    """

    #: What happened.
    kind: EventKind
    #: Client: the connection generation (1 for the first connection): of
    #: the attempt or connection the event belongs to, on every client event
    #: (WAITING: the last attempt's; 0 on a CLOSED before any attempt).
    generation: int = 0
    #: Client: the attempt number within the current failure streak.
    attempt: int = 0
    #: Why the connection ended or the attempt failed.
    reason: DisconnectReason | None = None
    #: WAITING: the delay before the next attempt, in seconds.
    delay: float = 0.0
    #: Server: the connection id (generation-checked, never 0).
    conn: int = 0
    #: MESSAGE: the payload.
    data: bytes = b""
    #: Server: the peer's address, ``"ip:port"`` (IPv6 as ``"[ip]:port"``),
    #: on every event of a connection, so a CLOSED with reason TIMEOUT names
    #: the peer that went silent. None for client events.
    peer: str | None = None
    #: Why, in words: on CONNECT_FAILED, DISCONNECTED, GAVE_UP, FAILED and a
    #: server's CLOSED (e.g. the certificate error behind TLS_CERTIFICATE,
    #: the panic message behind INTERNAL); None on other kinds.
    detail: str | None = None
    #: The handle value (``.handle``) of the client or server that reported
    #: the event.
    handle: int = 0
    # A weak reference to that object (see `source`); not compared.
    _source: weakref.ref[Any] | None = field(default=None, compare=False, repr=False)

    @property
    def source(self) -> Any:
        """The :class:`~tether.Client` or :class:`~tether.Server` that
        reported the event, while it exists (held weakly: keeping events
        keeps no object alive); None for an event made by hand."""
        return self._source() if self._source is not None else None

    @classmethod
    def _from_c(cls, e: _ffi.tether_event, source: Any = None) -> Self:
        # `e.data` is borrowed (until the next poll, or the end of the
        # callback): copy it out now.
        data = ctypes.string_at(e.data, e.len) if e.len else b""
        return cls(
            kind=EventKind(e.kind),
            generation=e.generation,
            attempt=e.attempt,
            reason=DisconnectReason.from_c(e.reason),
            delay=_units.seconds(e.delay_ms),
            conn=e.conn,
            data=data,
            peer=_text(e.peer),
            detail=_text(e.detail),
            handle=e.object,
            _source=weakref.ref(source) if source is not None else None,
        )

    def _to_c(self) -> tuple[_ffi.tether_event, list[Any]]:
        """The C form (for events made in Python), and what must stay alive
        with it."""
        keep: list[Any] = []
        e = _ffi.tether_event()
        e.kind = int(self.kind)
        e.generation = self.generation
        e.attempt = self.attempt
        e.reason = int(self.reason) if self.reason is not None else 0
        e.delay_ms = round(self.delay * 1000)
        e.conn = self.conn
        if self.data:
            buf = (ctypes.c_uint8 * len(self.data)).from_buffer_copy(self.data)
            keep.append(buf)
            e.data = buf
            e.len = len(self.data)
        for name in ("peer", "detail"):
            text = getattr(self, name)
            if text is not None:
                keep.append(raw := text.encode("utf-8"))
                setattr(e, name, raw)
        e.object = self.handle
        return e, keep


def _text(raw: bytes | None) -> str | None:
    return raw.decode("utf-8", "replace") if raw is not None else None
