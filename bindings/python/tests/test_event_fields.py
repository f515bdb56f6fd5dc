"""What an event tells beyond its kind: the cause in words (``detail``),
the object that reported it (``handle``, ``source``), the TLS reasons, and
the UDP handshake timeout that turns a wrong key into a quick failure."""

from __future__ import annotations

import gc
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from support import FAST, WAIT, Echo, Recorder, check_lifecycle

from tether import Client, DisconnectReason, Event, EventKind, Server

PSK = b"tether-python-test-psk-32-bytes!"
ONE_TRY = {**FAST, "backoff": {**FAST["backoff"], "max_attempts": 1}}


def down_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"tcp://127.0.0.1:{port}"


def test_a_failure_says_why_in_words() -> None:
    with Client(down_url(), **ONE_TRY) as client:
        events = list(client.events(timeout=WAIT))
    by_kind = {e.kind: e for e in events}
    failed, gave_up = by_kind[EventKind.CONNECT_FAILED], by_kind[EventKind.GAVE_UP]
    assert failed.reason == DisconnectReason.CONNECT_REFUSED
    assert isinstance(failed.detail, str) and failed.detail
    assert gave_up.reason == DisconnectReason.CONNECT_REFUSED and gave_up.detail
    assert by_kind[EventKind.CONNECTING].detail is None


def test_disconnected_and_server_closed_carry_a_detail() -> None:
    server = Server()
    echo = Echo(server)
    client = Client(server.url, **FAST)
    rec = Recorder(client)
    rec.until_kind(EventKind.CONNECTED)
    client.close()
    disconnected = rec.until_kind(EventKind.DISCONNECTED)
    assert disconnected.reason == DisconnectReason.CLOSED_LOCALLY and disconnected.detail
    echo.wait_kind(EventKind.CLOSED)
    [closed] = [e for e in echo.events if e.kind == EventKind.CLOSED]
    assert closed.detail and closed.reason is not None
    assert all(e.detail is None for e in echo.events if e.kind != EventKind.CLOSED)
    client.free()
    echo.stop()


def test_every_event_names_its_object(server: Server) -> None:
    echo = Echo(server)
    client = Client(server.url, **FAST)
    rec = Recorder(client)
    rec.until_kind(EventKind.CONNECTED)
    client.send(b"x")
    rec.until_kind(EventKind.MESSAGE)
    client.close()
    rec.until_kind(EventKind.CLOSED)
    check_lifecycle(rec.events)  # generation on MESSAGE, WAITING and CLOSED too
    assert {e.handle for e in rec.events} == {client.handle}
    assert all(e.source is client for e in rec.events)
    echo.wait_kind(EventKind.CLOSED)
    assert {e.handle for e in echo.events} == {server.handle}
    assert all(e.source is server for e in echo.events)
    client.free()
    echo.stop()


def test_the_first_callback_already_knows_its_object(server: Server) -> None:
    seen: list[Event] = []
    done = threading.Event()

    def on_event(ev: Event) -> None:
        seen.append(ev)
        if ev.kind == EventKind.CONNECTED:
            done.set()

    client = Client(server.url, on_event=on_event, **FAST)
    assert done.wait(WAIT)
    assert seen[0].kind == EventKind.CONNECTING
    assert [e.handle for e in seen] == [client.handle] * len(seen)
    assert seen[0].source is client
    client.free()


def test_events_do_not_keep_their_object_alive(server: Server) -> None:
    client = Client(server.url, **FAST)
    ev = client.next_event(WAIT)
    assert ev.source is client
    handle = client.handle
    del client
    gc.collect()
    assert ev.source is None and ev.handle == handle


def test_events_made_in_python_convert_both_ways() -> None:
    ev = Event(EventKind.CLOSED, reason=DisconnectReason.TLS_NAME_MISMATCH, conn=7, peer="1.2.3.4:5",
               detail="why", handle=99)  # fmt: skip
    raw, _keep = ev._to_c()
    assert Event._from_c(raw) == ev


def tls_failure(scheme: str, certs: dict[str, Path], client_opts: dict[str, Any]) -> Event:
    server_kw: dict[str, Any] = {scheme: {"cert_file": certs["cert"], "key_file": certs["key"]}}
    with Server(f"{scheme}://127.0.0.1:0", **server_kw) as server:
        client_kw: dict[str, Any] = {scheme: client_opts, **ONE_TRY}
        with Client(server.url, **client_kw) as client:
            events = list(client.events(timeout=WAIT))
    [failed] = [e for e in events if e.kind == EventKind.CONNECT_FAILED]
    assert events[-1].kind == EventKind.GAVE_UP and events[-1].reason == failed.reason
    return failed


@pytest.mark.parametrize("scheme", ["tls", "quic"])
def test_an_untrusted_certificate_is_named(scheme: str, certs: dict[str, Path]) -> None:
    # Trusting another certificate only: the server's has an unknown issuer.
    failed = tls_failure(scheme, certs, {"ca_file": certs["other"], "server_name": "localhost"})
    assert failed.reason == DisconnectReason.TLS_CERTIFICATE, failed
    assert failed.detail and "certificate" in failed.detail.lower()


@pytest.mark.parametrize(
    "scheme",
    ["tls", "quic"],
)
def test_a_certificate_with_a_bad_signature_is_refused_as_such(scheme: str, certs: dict[str, Path]) -> None:
    """The trusted certificate has the server certificate's subject but not
    its key: the chain fails on the signature, a refused certificate too."""
    failed = tls_failure(scheme, certs, {"ca_file": certs["twin"], "server_name": "localhost"})
    assert failed.reason == DisconnectReason.TLS_CERTIFICATE, failed


@pytest.mark.parametrize("scheme", ["tls", "quic"])
def test_a_wrong_server_name_is_named(scheme: str, certs: dict[str, Path]) -> None:
    failed = tls_failure(scheme, certs, {"ca_file": certs["cert"], "server_name": "db.example"})
    assert failed.reason == DisconnectReason.TLS_NAME_MISMATCH, failed
    assert failed.detail


def test_udp_handshake_timeout_ends_a_wrong_key_quickly() -> None:
    with Server("udp://127.0.0.1:0", udp={"psk": PSK}) as server:
        wrong = {"psk": b"another-key-of-32-bytes-length!!", "handshake_timeout": 0.3}
        changes = {**ONE_TRY, "backoff": {**ONE_TRY["backoff"], "min_connect_timeout": 30}}
        with Client(server.url, udp=wrong, **changes) as client:
            assert client.config.udp.handshake_timeout == 0.3
            start = time.monotonic()
            events = list(client.events(timeout=WAIT))
            elapsed = time.monotonic() - start
    [failed] = [e for e in events if e.kind == EventKind.CONNECT_FAILED]
    assert failed.reason == DisconnectReason.CONNECT_TIMEOUT and failed.detail
    assert elapsed < 3, elapsed  # not the 30 s connect timeout


def test_udp_handshake_timeout_zero_is_the_default() -> None:
    psk = {"psk": PSK}
    with Server("udp://127.0.0.1:0", udp=psk) as server:
        for timeout in (None, 0, 0.0):
            with Client(server.url, udp={**psk, "handshake_timeout": timeout}, **FAST) as client:
                Recorder(client).until_kind(EventKind.CONNECTED)
