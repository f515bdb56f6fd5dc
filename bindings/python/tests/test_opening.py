"""How a connection starts: the hello/welcome exchange (the default) and
RAW, seen on the wire by a plain socket standing in for the server."""

from __future__ import annotations

import socket
import struct
import time

import pytest
from support import FAST, Recorder

from tether import Client, ClientConfig, EventKind, Opening, Server, ServerConfig

HELLO, WELCOME, DATA = 0x04, 0x05, 0x01


def read_frame(conn: socket.socket) -> tuple[int, bytes]:
    header = b""
    while len(header) < 5:
        chunk = conn.recv(5 - len(header))
        assert chunk, "the client closed before a whole frame"
        header += chunk
    kind, length = header[0], struct.unpack(">I", header[1:])[0]
    payload = b""
    while len(payload) < length:
        payload += conn.recv(length - len(payload))
    return kind, payload


def frame(kind: int, payload: bytes) -> bytes:
    return bytes([kind]) + struct.pack(">I", len(payload)) + payload


@pytest.fixture
def listener() -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    s.settimeout(10)
    return s


def test_both_configs_default_to_the_hello() -> None:
    assert ClientConfig.default().opening is Opening.HELLO
    assert ServerConfig.default().opening is Opening.HELLO


def test_opening_accepts_a_name_or_a_number_and_names_the_field() -> None:
    assert ClientConfig.default().replace(opening="raw").opening is Opening.RAW
    assert ServerConfig.default().replace(opening=1).opening is Opening.HELLO
    with pytest.raises(ValueError, match=r"opening: unknown opening 'quick'"):
        ClientConfig.default().replace(opening="quick")
    with pytest.raises(ValueError, match=r"opening: unknown opening 7"):
        ServerConfig.default().replace(opening=7)
    with pytest.raises(TypeError, match=r"opening: expected an? Opening"):
        ClientConfig.default().replace(opening=1.0)


def test_a_client_is_connected_only_once_the_welcome_arrives(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    with Client(f"tcp://127.0.0.1:{port}", **FAST) as client:
        rec = Recorder(client)
        conn, _ = listener.accept()
        with conn:
            kind, payload = read_frame(conn)
            assert kind == HELLO
            version, _capabilities = struct.unpack(">HQ", payload[:10])
            assert version == 1
            # The kernel completed the connection, but no welcome yet.
            time.sleep(0.3)
            while (ev := client.poll_event()) is not None:
                rec.events.append(ev)
            assert rec.count(EventKind.CONNECTED) == 0, rec.kinds()
            conn.sendall(frame(WELCOME, struct.pack(">HQ", 1, 0)) + frame(DATA, b"first"))
            rec.until_kind(EventKind.CONNECTED)
            assert rec.until_kind(EventKind.MESSAGE).data == b"first"
            client.send(b"up")
            assert read_frame(conn) == (DATA, b"up")
            client.close()


def test_a_raw_client_sends_frames_from_the_first_byte(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    with Client(f"tcp://127.0.0.1:{port}", opening="raw", **FAST) as client:
        rec = Recorder(client)
        conn, _ = listener.accept()
        with conn:
            rec.until_kind(EventKind.CONNECTED)
            client.send(b"straight away")
            assert read_frame(conn) == (DATA, b"straight away")
            client.close()


def test_raw_client_and_raw_server_exchange_messages() -> None:
    with Server("tcp://127.0.0.1:0", opening=Opening.RAW) as server:
        srv = Recorder(server)
        with Client(server.url, opening=Opening.RAW, **FAST) as client:
            cli = Recorder(client)
            conn = srv.until_kind(EventKind.ACCEPTED).conn
            cli.until_kind(EventKind.CONNECTED)
            client.send(b"ping")
            assert srv.until_kind(EventKind.MESSAGE).data == b"ping"
            server.send(conn, b"pong")
            assert cli.until_kind(EventKind.MESSAGE).data == b"pong"
            client.close()
