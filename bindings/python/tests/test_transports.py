"""tls://, quic:// and udp:// through the bindings: a round trip and a
server restart per transport (every lifecycle event exactly once), the
peer's address on server events, and bad transport options raising
InvalidConfigError that names the field or file.

The certificate is generated with the openssl command line; without it the
TLS and QUIC cases are skipped (UDP needs none)."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from support import FAST, WAIT, Echo, Recorder, check_lifecycle, hello_socket

from tether import (
    Client,
    DisconnectReason,
    EventKind,
    HeartbeatPolicy,
    InvalidConfigError,
    MessageTooLargeError,
    Server,
    TetherIOError,
    TlsClientOptions,
)

PSK = b"tether-python-test-psk-32-bytes!"


def transport_kwargs(scheme: str, request: pytest.FixtureRequest) -> tuple[dict[str, Any], dict[str, Any]]:
    """Server and client keywords for ``scheme``."""
    if scheme == "udp":
        return {"udp": {"psk": PSK}}, {"udp": {"psk": PSK}}
    c = request.getfixturevalue("certs")
    if scheme == "tls":
        # No server name: the IP of the address is checked against the
        # certificate's IP addresses.
        return (
            {"tls": {"cert_file": c["cert"], "key_file": c["key"]}},
            {"tls": {"ca_file": c["cert"]}},
        )
    return (
        {
            "quic": {
                "cert_file": c["cert"],
                "key_file": str(c["key"]),
                "reset_key_file": c["dir"] / "quic-reset.key",
            }
        },
        {"quic": {"ca_file": c["cert"], "server_name": "localhost"}},
    )


def bind_again(url: str, **kwargs: Any) -> Server:
    """A server on ``url`` again; the port of the one it replaces may be
    held for a moment longer (a UDP socket closes on the runtime)."""
    deadline = time.monotonic() + WAIT
    while True:
        try:
            return Server(url, **kwargs)
        except TetherIOError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@pytest.mark.parametrize("scheme", ["tls", "quic", "udp"])
def test_round_trip_and_server_restart(scheme: str, request: pytest.FixtureRequest) -> None:
    server_kw, client_kw = transport_kwargs(scheme, request)
    first = Server(f"{scheme}://127.0.0.1:0", **server_kw)
    url = first.url
    assert url.startswith(f"{scheme}://127.0.0.1:") and first.port != 0
    echo = Echo(first)
    client = Client(url, **FAST, **client_kw)
    rec = Recorder(client)
    rec.until_kind(EventKind.CONNECTED)
    client.send(b"one")
    assert rec.until_kind(EventKind.MESSAGE).data == b"one"
    accepted = next(e for e in echo.events if e.kind == EventKind.ACCEPTED)
    assert accepted.peer is not None and accepted.peer.startswith("127.0.0.1:")

    echo.stop()  # frees the server: its connection ends
    rec.until_kind(EventKind.DISCONNECTED)
    client.send(b"two")  # buffered while down
    with bind_again(url, **server_kw) as second:
        echo2 = Echo(second)
        rec.until_kind(EventKind.CONNECTED, timeout=2 * WAIT)
        assert rec.until_kind(EventKind.MESSAGE).data == b"two"
        client.send(b"three")
        assert rec.until_kind(EventKind.MESSAGE).data == b"three"
        client.close()
        rec.until_kind(EventKind.CLOSED)
        assert list(client.events(timeout=0.2)) == []  # nothing after CLOSED
        client.free()
        echo2.wait_kind(EventKind.CLOSED)
        echo2.stop()

    check_lifecycle(rec.events)
    assert rec.count(EventKind.CONNECTED) == 2 and rec.count(EventKind.DISCONNECTED) == 2
    assert rec.count(EventKind.CLOSED) == 1 and rec.events[-1].kind == EventKind.CLOSED
    ends = [e for e in rec.events if e.kind == EventKind.DISCONNECTED]
    assert ends[0].reason in (DisconnectReason.PEER_CLOSED, DisconnectReason.RESET), ends[0]
    assert ends[1].reason == DisconnectReason.CLOSED_LOCALLY
    assert [e.data for e in rec.events if e.kind == EventKind.MESSAGE] == [b"one", b"two", b"three"]
    assert all(e.peer is None for e in rec.events)
    # The restarted server: one connection, ACCEPTED and CLOSED with its peer.
    [acc] = [e for e in echo2.events if e.kind == EventKind.ACCEPTED]
    [closed] = [e for e in echo2.events if e.kind == EventKind.CLOSED]
    assert closed.conn == acc.conn and closed.peer == acc.peer is not None
    assert all(e.peer == acc.peer for e in echo2.events)


def test_timed_out_peer_is_named() -> None:
    """Complaint 11: the server says which peer went silent, and why."""
    policy = HeartbeatPolicy(interval=0.1, timeout=0.1, max_missed=1)
    with Server("tcp://127.0.0.1:0", policy=policy) as server:
        silent = hello_socket(server.port)
        try:
            host, port = silent.getsockname()
            me = f"{host}:{port}"
            rec = Recorder(server)
            assert rec.until_kind(EventKind.ACCEPTED).peer == me
            closed = rec.until_kind(EventKind.CLOSED)
            assert (closed.reason, closed.peer) == (DisconnectReason.TIMEOUT, me)
        finally:
            silent.close()


def bad_cases(c: dict[str, Path]) -> list[tuple[type[Any], str, dict[str, Any], str]]:
    missing = str(c["dir"] / "missing.pem")
    cert, key = str(c["cert"]), str(c["key"])
    return [
        (Server, "tls://127.0.0.1:0", {}, "tls_server.cert_file"),
        (Server, "quic://127.0.0.1:0", {"quic": {"cert_file": missing, "key_file": key}}, "missing.pem"),
        (Server, "tls://127.0.0.1:0", {"tls": {"cert_file": key, "key_file": key}}, "k.pem"),
        (Client, "tls://127.0.0.1:1", {"tls": {"ca_file": missing}}, "missing.pem"),
        (Client, "quic://127.0.0.1:1", {"quic": {"ca_file": missing}}, "missing.pem"),
        (Client, "tls://127.0.0.1:1", {"tls": {"ca_file": ""}}, "tls_client.ca_file"),
        (Client, "tls://127.0.0.1:1", {"tls": {"ca_file": "a\0b"}}, "null character"),
        (Client, "tls://127.0.0.1:1", {"tls": {"ca_file": cert, "server_name": "not a name"}}, "not a name"),
        (Client, "tls://127.0.0.1:1", {"tls": {"client_cert_file": cert}}, "tls_client.client_key_file"),
        (Client, "quic://127.0.0.1:1", {"quic": {"alpn": ["tether", ""]}}, r"quic\.alpn\[1\]"),
        (Server, "quic://127.0.0.1:0", {"quic": {"cert_file": cert, "key_file": key, "reset_key_file": ""}},
         "quic_server.reset_key_file"),
        (Client, "udp://127.0.0.1:1", {}, "udp.psk"),
        (Client, "udp://127.0.0.1:1", {"udp": {"psk": b"short"}}, "udp.psk"),
        (Server, "udp://127.0.0.1:0", {"udp": {"psk": PSK, "max_payload": 0}}, "udp.max_payload"),
    ]  # fmt: skip


def test_bad_options_raise_invalid_config(certs: dict[str, Path]) -> None:
    for cls, url, kwargs, match in bad_cases(certs):
        with pytest.raises(InvalidConfigError, match=match):
            cls(url, **kwargs).free()


def test_wrong_option_names_and_types_are_type_errors() -> None:
    with pytest.raises(TypeError):
        Client("tls://127.0.0.1:1", tls={"cert_file": "c.pem"})  # a server's field
    with pytest.raises(TypeError):
        Client("udp://127.0.0.1:1", udp={"psk": "text"})
    with pytest.raises(TypeError):
        Client("tls://127.0.0.1:1", tls={"alpn": "h2"})


def test_options_as_instances_and_config(certs: dict[str, Path]) -> None:
    """An options instance works as well as a mapping, and configs keep them."""
    with Server("tls://127.0.0.1:0", tls={"cert_file": certs["cert"], "key_file": certs["key"]}) as server:
        echo = Echo(server)
        opts = TlsClientOptions(ca_file=certs["cert"], server_name="localhost", alpn=None)
        with Client(server.url, **FAST, tls=opts) as client:
            assert client.config.tls == opts
            rec = Recorder(client)
            rec.until_kind(EventKind.CONNECTED)
            client.send(b"ping")
            assert rec.until_kind(EventKind.MESSAGE).data == b"ping"
        echo.stop()


def test_udp_payload_limit_is_applied() -> None:
    kw: dict[str, Any] = {"udp": {"psk": PSK, "max_payload": 64}}
    with Server("udp://127.0.0.1:0", **kw) as server, Client(server.url, **FAST, **kw) as client:
        with pytest.raises(MessageTooLargeError):
            client.send(b"x" * 65)
        client.send(b"x" * 64)  # queued


def test_quic_reset_key_file_is_created(certs: dict[str, Path], tmp_path: Path) -> None:
    key_file = tmp_path / "reset.key"
    quic = {"cert_file": certs["cert"], "key_file": certs["key"], "reset_key_file": key_file}
    with Server("quic://127.0.0.1:0", quic=quic):
        assert key_file.is_file() and os.stat(key_file).st_mode & 0o077 == 0
