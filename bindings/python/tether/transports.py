"""Settings of the ``tls://``, ``quic://`` and ``udp://`` transports
(``tether_transport_options``): certificate and key files, trust roots, the
server name, ALPN, 0-RTT, the QUIC reset key, the UDP pre-shared key.

They are fields of :class:`~tether.ClientConfig` / :class:`~tether.ServerConfig`
and so keywords of :class:`~tether.Client` / :class:`~tether.Server`, taking a
mapping of their own fields (or an instance)::

    Client("tls://127.0.0.1:7000", tls={"ca_file": "ca.pem", "server_name": "localhost"})
    Server("quic://127.0.0.1:0", quic={"cert_file": "c.pem", "key_file": "k.pem",
                                       "reset_key_file": "quic-reset.key"})
    Client("udp://127.0.0.1:7000", udp={"psk": psk})  # 16+ bytes, the same on the server

A client reads only the settings of its address's scheme, and so does a
server. Paths are ``str`` or an :class:`os.PathLike` giving ``str``
(:class:`pathlib.Path`), passed to C as UTF-8; ``bytes`` paths are a
:class:`TypeError` (decode them with :func:`os.fsdecode`), an embedded NUL
an :class:`~tether.InvalidConfigError`. Other text (server names, ALPN
entries) must be ``str``.
Values C rejects (an empty path, a PSK under 16 bytes, a file that cannot be
read or holds no certificate, a missing certificate on a server) raise
:class:`~tether.InvalidConfigError` naming the field or path, when the
client or server is created.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from ctypes import byref, c_char_p
from dataclasses import dataclass
from typing import Any

from . import _args, _config, _ffi, _units
from ._handle import Owned
from .errors import Result, check, error

Path = str | os.PathLike[str]


@dataclass(frozen=True, slots=True)
class TlsClientOptions:
    """``tls://`` client settings. The server's certificate is always
    verified: against ``ca_file``, or the platform's roots when it is None."""

    #: PEM file with the CA certificates to trust instead of the platform's
    #: roots (or the server's self-signed certificate).
    ca_file: Path | None = None
    #: Name sent as SNI and checked against the certificate; None uses the
    #: address's host (an IP is checked against the certificate's IPs).
    server_name: str | None = None
    #: PEM certificate chain presented when the server asks for one; needs
    #: ``client_key_file``.
    client_cert_file: Path | None = None
    #: PEM private key (PKCS#8, PKCS#1 or SEC1) of ``client_cert_file``.
    client_key_file: Path | None = None
    #: ALPN protocols offered, most preferred first; None offers none.
    alpn: Sequence[str] | None = None

    def replace(self, **changes: Any) -> TlsClientOptions:
        """A copy with ``changes``."""
        return _config.replace(self, changes)

    def _apply(self, o: _Options) -> None:
        o.path("tls_ca_file", "tls_client.ca_file", self.ca_file)
        o.text("tls_server_name", "tls_client.server_name", self.server_name)
        o.pair(
            "tls_client_cert",
            ("tls_client.client_cert_file", self.client_cert_file),
            ("tls_client.client_key_file", self.client_key_file),
        )
        o.alpn("tls_alpn", "tls.alpn", self.alpn)


@dataclass(frozen=True, slots=True)
class TlsServerOptions:
    """``tls://`` server settings; ``cert_file`` and ``key_file`` are required."""

    #: PEM certificate chain of the server, leaf first.
    cert_file: Path | None = None
    #: PEM private key (PKCS#8, PKCS#1 or SEC1) of ``cert_file``.
    key_file: Path | None = None
    #: When set, every client must present a certificate that chains to a CA
    #: in this PEM file.
    client_ca_file: Path | None = None
    #: ALPN protocols accepted, most preferred first; a client offering none
    #: of them fails the handshake. None accepts any (or no) protocol.
    alpn: Sequence[str] | None = None

    def replace(self, **changes: Any) -> TlsServerOptions:
        """A copy with ``changes``."""
        return _config.replace(self, changes)

    def _apply(self, o: _Options) -> None:
        o.pair("tls_cert", ("tls_server.cert_file", self.cert_file), ("tls_server.key_file", self.key_file))
        o.path("tls_client_ca_file", "tls_server.client_ca_file", self.client_ca_file)
        o.alpn("tls_alpn", "tls.alpn", self.alpn)


@dataclass(frozen=True, slots=True)
class QuicClientOptions:
    """``quic://`` client settings. The QUIC keep-alive and idle timeout
    follow the client's heartbeat (keep-alive = interval, idle timeout = the
    heartbeat's detection bound)."""

    #: PEM file with the certificates (CA or self-signed server
    #: certificates) to trust instead of the platform's roots.
    ca_file: Path | None = None
    #: Name sent as SNI and checked against the certificate; None uses the
    #: address's host.
    server_name: str | None = None
    #: ALPN protocols offered; None keeps the default ``["tether"]``.
    alpn: Sequence[str] | None = None
    #: Resume with 0-RTT when the server allows it.
    zero_rtt: bool = True

    def replace(self, **changes: Any) -> QuicClientOptions:
        """A copy with ``changes``."""
        return _config.replace(self, changes)

    def _apply(self, o: _Options) -> None:
        o.path("quic_ca_file", "quic_client.ca_file", self.ca_file)
        o.text("quic_server_name", "quic_client.server_name", self.server_name)
        o.alpn("quic_alpn", "quic.alpn", self.alpn)
        o.flag("quic_zero_rtt", "quic.zero_rtt", self.zero_rtt)


@dataclass(frozen=True, slots=True)
class QuicServerOptions:
    """``quic://`` server settings; ``cert_file`` and ``key_file`` are
    required. The QUIC keep-alive and idle timeout follow the server's
    policy."""

    #: PEM certificate chain of the server, leaf first.
    cert_file: Path | None = None
    #: PEM private key (PKCS#8, PKCS#1 or SEC1) of ``cert_file``.
    key_file: Path | None = None
    #: ALPN protocols accepted; None keeps the default ``["tether"]``.
    alpn: Sequence[str] | None = None
    #: Let resuming clients use 0-RTT.
    zero_rtt: bool = True
    #: File holding the stateless-reset key (64 random bytes, created with
    #: mode 0600 on first start). A server restarted with the same file tells
    #: its predecessor's clients at once that their connections are gone;
    #: None uses a random key per start (they notice by their idle timeout).
    reset_key_file: Path | None = None

    def replace(self, **changes: Any) -> QuicServerOptions:
        """A copy with ``changes``."""
        return _config.replace(self, changes)

    def _apply(self, o: _Options) -> None:
        o.pair(
            "quic_cert", ("quic_server.cert_file", self.cert_file), ("quic_server.key_file", self.key_file)
        )
        o.alpn("quic_alpn", "quic.alpn", self.alpn)
        o.flag("quic_zero_rtt", "quic.zero_rtt", self.zero_rtt)
        o.path("quic_reset_key_file", "quic_server.reset_key_file", self.reset_key_file)


@dataclass(frozen=True, slots=True)
class UdpOptions:
    """``udp://`` settings, both sides; ``psk`` is required."""

    #: Pre-shared key, the same on client and server: at least 16 bytes (32
    #: random bytes recommended, e.g. ``os.urandom(32)``).
    psk: bytes | None = None
    #: Server only: file with the 32-byte static key that signs "unknown
    #: session" replies (created on first start) instead of deriving it from
    #: the PSK.
    static_key_file: Path | None = None
    #: Largest payload per message in bytes, 1..=65000; None keeps the
    #: default (1193, which crosses any IPv6 path unfragmented).
    max_payload: int | None = None
    #: Client only: give up a handshake that heard no authenticated answer
    #: after this many seconds (millisecond resolution, up to 7 days). None
    #: or 0, the default, follow the client's connect timeout, as on every
    #: other transport. A wrong key and no server both end as
    #: CONNECT_TIMEOUT (the server stays silent to packets it cannot
    #: authenticate).
    handshake_timeout: float | None = None

    def replace(self, **changes: Any) -> UdpOptions:
        """A copy with ``changes``."""
        return _config.replace(self, changes)

    def _apply(self, o: _Options) -> None:
        if self.psk is not None:
            psk = _args.Message(self.psk, name="udp.psk")
            o.set("udp_psk", psk.pointer, psk.length)
        o.path("udp_static_key_file", "udp.static_key_file", self.static_key_file)
        if self.max_payload is not None:
            o.set("udp_max_payload", _units.count("udp.max_payload", self.max_payload, _units.LEN_MAX))
        if self.handshake_timeout is not None:
            o.set("udp_handshake_timeout", _units.ms("udp.handshake_timeout", self.handshake_timeout))


_OPTION_TYPES = (TlsClientOptions, TlsServerOptions, QuicClientOptions, QuicServerOptions, UdpOptions)


class _Options(Owned):
    """A ``tether_transport_options`` object for one client or server
    creation; freed right after it (C keeps a copy)."""

    _free_name = "tether_transport_options_free"

    def __init__(self, *parts: Any) -> None:
        handle = _ffi.tether_transport_options()
        check(_ffi.lib().tether_transport_options_new(byref(handle)))
        self._adopt(handle)
        try:
            for part in parts:
                if part is None:
                    continue
                if not isinstance(part, _OPTION_TYPES):
                    raise TypeError(
                        f"transport options: expected a mapping of fields or one of "
                        f"{[t.__name__ for t in _OPTION_TYPES]}, got {type(part).__name__}"
                    )
                part._apply(self)
        except BaseException:
            self.free()
            raise

    @property
    def c(self) -> _ffi.tether_transport_options:
        """The handle struct for a config's ``transport`` field."""
        handle: _ffi.tether_transport_options = self._handle
        return handle

    def set(self, setter: str, *args: Any) -> None:
        check(self._call(f"tether_transport_options_set_{setter}")(self._handle, *args))

    def path(self, setter: str, field: str, value: Path | None) -> None:
        if value is not None:
            self.set(setter, _args.c_path(field, value))

    def text(self, setter: str, field: str, value: str | None) -> None:
        if value is not None:
            self.set(setter, _args.c_text(field, value))

    def pair(self, setter: str, first: tuple[str, Path | None], second: tuple[str, Path | None]) -> None:
        (f1, v1), (f2, v2) = first, second
        if v1 is None and v2 is None:
            return
        for field, value, other in ((f1, v1, f2), (f2, v2, f1)):
            if value is None:
                raise error(Result.INVALID_CONFIG, f"invalid configuration: {field}: required with {other}")
        self.set(setter, _args.c_path(f1, v1), _args.c_path(f2, v2))

    def alpn(self, setter: str, field: str, value: Sequence[str] | None) -> None:
        if value is None:
            return
        if isinstance(value, (str, bytes, bytearray)) or not isinstance(value, Iterable):
            raise TypeError(f"{field}: expected a list of str, got {type(value).__name__}")
        items = [_args.c_text(f"{field}[{i}]", p) for i, p in enumerate(value)]
        array = (c_char_p * max(len(items), 1))(*items)
        self.set(setter, array, len(items))

    def flag(self, setter: str, field: str, value: bool) -> None:
        self.set(setter, _units.flag(field, value))


def transport_options(*parts: Any) -> _Options:
    """The C options object holding ``parts`` (dataclasses of this module or
    None); use it as a context manager around the creation."""
    return _Options(*parts)


#: Largest payload of a ``tcp://`` or ``tls://`` message (the frame limit).
STREAM_MAX_MESSAGE = 16 * 1024 * 1024
#: ``udp://``: the payload limit when ``max_payload`` is not set.
UDP_DEFAULT_MAX_PAYLOAD = 1193


def max_message(url: str, udp: UdpOptions) -> int | None:
    """The largest message the transport of ``url`` carries, when Python
    knows it (``quic://``: None, C decides per connection)."""
    scheme = url.partition("://")[0].lower()
    if scheme in ("tcp", "tls"):
        return STREAM_MAX_MESSAGE
    if scheme == "udp":
        payload = getattr(udp, "max_payload", None)
        return payload if isinstance(payload, int) else UDP_DEFAULT_MAX_PAYLOAD
    return None
