"""Arguments are checked in Python before they reach C: messages must be
bytes-like (and fit the transport, checked before any copy), text must be
str without NUL, timeouts and numeric settings must be numbers in range,
and every error names the argument or field."""

from __future__ import annotations

import array
import asyncio
import math
import socket
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support import FAST, Echo, Recorder

import tether
from tether import (
    Client,
    EventKind,
    InvalidAddressError,
    InvalidConfigError,
    MessageTooLargeError,
    Result,
    Server,
)
from tether import _ffi
from tether.transports import STREAM_MAX_MESSAGE, UDP_DEFAULT_MAX_PAYLOAD

PSK = b"tether-python-test-psk-32-bytes!"


def down_url(scheme: str = "tcp") -> str:
    """An address nothing listens on (a kernel-chosen port, released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"{scheme}://127.0.0.1:{port}"


# ----- messages ---------------------------------------------------------------

NOT_BYTES: list[Any] = [5, 0, [1, 2, 3], (1,), None, 1.5, {"a": 1}, True, object()]


@pytest.mark.parametrize("data", NOT_BYTES, ids=repr)
def test_send_refuses_what_is_not_bytes_like(server: Server, data: Any) -> None:
    with Client(server.url, **FAST) as client:
        with pytest.raises(TypeError, match="data: expected a bytes-like object"):
            client.send(data)
        with pytest.raises(TypeError, match="bytes-like"):
            asyncio.run(client.send_async(data))
    with pytest.raises(TypeError, match="bytes-like"):
        server.send(1, data)


def test_send_of_a_str_says_to_encode_it(server: Server) -> None:
    with Client(server.url, **FAST) as client:
        with pytest.raises(TypeError, match=r"got str: encode it first, e\.g\. data\.encode\(\)"):
            client.send("hello")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"data\.encode\(\)"):
        server.send(1, "hello")  # type: ignore[arg-type]


def test_a_refused_send_queues_nothing(server: Server) -> None:
    """send(5) used to queue five NUL bytes: now the first message that
    arrives is the first valid one."""
    echo = Echo(server)
    with Client(server.url, **FAST) as client:
        rec = Recorder(client)
        rec.until_kind(EventKind.CONNECTED)
        bad: Any
        for bad in (5, [1, 2, 3], "text"):
            with pytest.raises(TypeError):
                client.send(bad)
        client.send(b"first")
        assert rec.until_kind(EventKind.MESSAGE).data == b"first"
    echo.stop()


def test_every_bytes_like_object_is_sent_as_its_bytes(server: Server) -> None:
    echo = Echo(server)
    grid = memoryview(bytearray(b"abcdefgh")).cast("B", (2, 4))
    cases: list[tuple[Any, bytes]] = [
        (b"bytes", b"bytes"),
        (bytearray(b"bytearray"), b"bytearray"),
        (memoryview(b"read-only view"), b"read-only view"),
        (memoryview(bytearray(b"0123456789"))[2:5], b"234"),
        (memoryview(b"0123456789")[::3], b"0369"),  # not contiguous: C order
        (array.array("H", [1, 2]), array.array("H", [1, 2]).tobytes()),
        (grid, b"abcdefgh"),
        (b"", b""),
        (bytearray(), b""),
    ]
    with Client(server.url, **FAST) as client:
        rec = Recorder(client)
        rec.until_kind(EventKind.CONNECTED)
        for data, _ in cases:
            client.send(data)
        got = [rec.until_kind(EventKind.MESSAGE).data for _ in cases]
        assert got == [want for _, want in cases]
    echo.stop()


def test_a_sent_bytearray_is_released_at_once(server: Server) -> None:
    """A writable buffer is passed to C without a copy; its export ends
    with the call (the bytearray can be resized right after)."""
    with Client(server.url, **FAST) as client:
        buf = bytearray(b"payload")
        client.send(buf)
        buf.extend(b" and more")  # BufferError if the export were still held
        asyncio.run(client.send_async(buf))
        buf.clear()


def test_known_limits_are_checked_before_any_copy() -> None:
    """A 17 MiB read-only view over tcp:// is refused without being copied
    (a copy would be the first thing to allocate 17 MiB)."""
    big = memoryview(bytes(STREAM_MAX_MESSAGE + 1))
    with Client(down_url(), **FAST) as client:
        tracemalloc.start()
        try:
            with pytest.raises(MessageTooLargeError) as info:
                client.send(big)
            with pytest.raises(MessageTooLargeError):
                asyncio.run(client.send_async(big))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 1024 * 1024, peak
    assert info.value.code == Result.MESSAGE_TOO_LARGE and isinstance(info.value, ValueError)
    assert f"maximum of {STREAM_MAX_MESSAGE}" in str(info.value)


@pytest.mark.parametrize(
    ("scheme", "udp", "limit"),
    [
        ("tcp", {}, STREAM_MAX_MESSAGE),
        ("udp", {"psk": PSK}, UDP_DEFAULT_MAX_PAYLOAD),
        ("udp", {"psk": PSK, "max_payload": 100}, 100),
    ],
)
def test_python_limits_agree_with_c(scheme: str, udp: dict[str, Any], limit: int) -> None:
    kwargs: dict[str, Any] = {"udp": udp} if udp else {}
    with Client(down_url(scheme), **FAST, max_pending=4, **kwargs) as client:
        client.send(bytes(limit))  # exactly the limit is queued
        with pytest.raises(MessageTooLargeError):
            client.send(bytes(limit + 1))
        # C itself, bypassing the Python check, refuses the same size.
        over = bytes(limit + 1)
        assert _ffi.lib().tether_client_send(client._handle, over, len(over)) == Result.MESSAGE_TOO_LARGE


def test_the_server_checks_its_transports_limit() -> None:
    with Server("udp://127.0.0.1:0", udp={"psk": PSK, "max_payload": 64}) as server:
        with pytest.raises(MessageTooLargeError, match="maximum of 64"):
            server.send(1, bytes(65))
        with pytest.raises(tether.InvalidHandleError):
            server.send(0, bytes(64))  # the size passes; the id does not


def test_psk_must_be_bytes_like() -> None:
    with pytest.raises(TypeError, match="udp.psk: .*got str"):
        Client("udp://127.0.0.1:1", udp={"psk": "a text key of more than 16 chars"})
    with pytest.raises(TypeError, match="udp.psk"):
        Client("udp://127.0.0.1:1", udp={"psk": 12345678901234567890})
    Client("udp://127.0.0.1:1", udp={"psk": bytearray(PSK)}).free()
    Client("udp://127.0.0.1:1", udp={"psk": memoryview(PSK)}).free()


# ----- text and paths -----------------------------------------------------------


@pytest.mark.parametrize("url", [b"tcp://127.0.0.1:1", 5, None, ["tcp://127.0.0.1:1"]], ids=repr)
@pytest.mark.parametrize("cls", [Client, Server])
def test_a_url_must_be_a_str(cls: type[Any], url: Any) -> None:
    with pytest.raises(TypeError, match="url: expected a str"):
        cls(url)


def test_a_bytes_url_says_to_decode_it() -> None:
    with pytest.raises(TypeError, match=r"decode it first"):
        Client(b"tcp://127.0.0.1:1")  # type: ignore[arg-type]


@pytest.mark.parametrize("cls", [Client, Server])
def test_a_url_with_a_nul_is_refused_not_cut_short(cls: type[Any]) -> None:
    with pytest.raises(ValueError, match="url: embedded null character") as info:
        cls("tcp://127.0.0.1:1\0junk")
    assert isinstance(info.value, InvalidAddressError)


# (options keyword, field, server side?) for every text or path setting.
TEXT_FIELDS = [
    ("tls", "ca_file", False),
    ("tls", "server_name", False),
    ("tls", "client_cert_file", False),
    ("tls", "client_key_file", False),
    ("tls", "cert_file", True),
    ("tls", "key_file", True),
    ("tls", "client_ca_file", True),
    ("quic", "ca_file", False),
    ("quic", "server_name", False),
    ("quic", "cert_file", True),
    ("quic", "key_file", True),
    ("quic", "reset_key_file", True),
    ("udp", "static_key_file", True),
]

def make(scheme: str, server_side: bool, fields: dict[str, Any]) -> Any:
    """Creates (and frees) a client or server with ``fields`` of ``scheme``."""
    options = dict(fields)
    if scheme == "udp":
        options.setdefault("psk", PSK)
    keywords: dict[str, Any] = {scheme: options}
    if server_side:
        return Server(f"{scheme}://127.0.0.1:0", **keywords).free()
    return Client(f"{scheme}://127.0.0.1:1", **keywords).free()


def paired(scheme: str, field: str, value: Any, partner_value: Any = "/nonexistent.pem") -> dict[str, Any]:
    """``field`` set to ``value``, with its partner (cert + key) set too so
    that the check reached is the one for ``value``."""
    partner = {
        "client_cert_file": "client_key_file",
        "client_key_file": "client_cert_file",
        "cert_file": "key_file",
        "key_file": "cert_file",
    }.get(field)
    fields = {field: value}
    if partner is not None:
        fields[partner] = partner_value
    return fields


@pytest.mark.parametrize(("scheme", "field", "server_side"), TEXT_FIELDS)
@pytest.mark.parametrize("value", [b"/tmp/x.pem", 5, ["x"]], ids=repr)
def test_text_settings_must_be_str(scheme: str, field: str, server_side: bool, value: Any) -> None:
    with pytest.raises(TypeError, match=field):
        make(scheme, server_side, paired(scheme, field, value))


@pytest.mark.parametrize(("scheme", "field", "server_side"), TEXT_FIELDS)
def test_text_settings_refuse_a_nul(scheme: str, field: str, server_side: bool) -> None:
    with pytest.raises(ValueError, match=f"{field}: embedded null character") as info:
        make(scheme, server_side, paired(scheme, field, "a\0b"))
    assert isinstance(info.value, InvalidConfigError)


# Each path field once, on the first side that has it.
PATH_FIELDS = {f: (scheme, side) for scheme, f, side in reversed(TEXT_FIELDS) if f.endswith("_file")}


@pytest.mark.parametrize("field", sorted(PATH_FIELDS))
def test_paths_take_path_objects(field: str, tmp_path: Path, certs: dict[str, Path]) -> None:
    """A pathlib.Path reaches C as its text: the unusable file is named."""
    scheme, server_side = PATH_FIELDS[field]
    missing = tmp_path / "no-such-dir" / "no-such-file.pem"
    fields = paired(scheme, field, missing, missing)
    if server_side and scheme != "udp" and field not in ("cert_file", "key_file"):
        fields.update(cert_file=certs["cert"], key_file=certs["key"])
    with pytest.raises(tether.TetherError, match="no-such-file.pem"):
        make(scheme, server_side, fields)


def test_a_bytes_path_says_how_to_decode_it() -> None:
    with pytest.raises(TypeError, match=r"os\.fsdecode"):
        Client("tls://127.0.0.1:1", tls={"ca_file": b"ca.pem"})


@pytest.mark.parametrize("scheme", ["tls", "quic"])
def test_alpn_entries(scheme: str) -> None:
    def client(alpn: Any) -> None:
        keywords: dict[str, Any] = {scheme: {"alpn": alpn}}
        Client(f"{scheme}://127.0.0.1:1", **keywords).free()

    with pytest.raises(TypeError, match=rf"{scheme}.alpn\[1\]: expected a str"):
        client(["h2", b"http/1.1"])
    with pytest.raises(ValueError, match=rf"{scheme}.alpn\[0\]: embedded null character"):
        client(["h2\0"])
    for wrong in ("h2", b"h2", 5):
        with pytest.raises(TypeError, match=f"{scheme}.alpn"):
            client(wrong)
    client(("h2", "tether"))


def test_options_of_the_wrong_type() -> None:
    with pytest.raises(TypeError, match="transport options"):
        Client("udp://127.0.0.1:1", udp=5)


# ----- timeouts -------------------------------------------------------------------


def timeout_calls(obj: Client | Server) -> list[tuple[str, Callable[[Any], Any]]]:
    async def first_async(timeout: Any) -> None:
        await obj.next_event_async(timeout)

    async def aevents(timeout: Any) -> None:
        obj.aevents(timeout)  # refused when called, before the first await

    calls: list[tuple[str, Callable[[Any], Any]]] = [
        ("next_event", lambda t: obj.next_event(t)),
        ("events", lambda t: obj.events(t)),  # refused at the call, not at the first next()
        ("next_event_async", lambda t: asyncio.run(first_async(t))),
        ("aevents", lambda t: asyncio.run(aevents(t))),
    ]
    if isinstance(obj, Client):
        calls.append(("send_async", lambda t: asyncio.run(obj.send_async(b"x", timeout=t))))
    else:
        calls.append(("send_async", lambda t: asyncio.run(obj.send_async(1, b"x", timeout=t))))
    return calls


@pytest.mark.parametrize("value", ["1", b"1", True, False, [1], object()], ids=repr)
def test_a_timeout_must_be_a_number(server: Server, value: Any) -> None:
    with Client(server.url, **FAST) as client:
        for obj in (client, server):
            for name, call in timeout_calls(obj):
                with pytest.raises(TypeError, match="timeout: expected seconds"):
                    call(value)
                assert name  # every call was checked


@pytest.mark.parametrize("value", [-1, -0.001, math.nan, -math.inf], ids=repr)
def test_a_timeout_must_not_be_negative(server: Server, value: Any) -> None:
    with Client(server.url, **FAST) as client:
        for obj in (client, server):
            for _, call in timeout_calls(obj):
                with pytest.raises(ValueError, match="timeout: must be >= 0"):
                    call(value)


def test_next_event_minus_one_no_longer_means_zero(server: Server) -> None:
    with Client(server.url, **FAST) as client:
        with pytest.raises(ValueError, match="timeout"):
            client.next_event(timeout=-1)


def test_an_infinite_timeout_means_no_limit(server: Server) -> None:
    with Client(server.url, **FAST) as client:
        assert client.next_event(timeout=math.inf).kind == EventKind.CONNECTING
        assert client.next_event(timeout=5).kind == EventKind.CONNECTED  # an int is fine


# ----- numeric settings -------------------------------------------------------------

U32_OVER = 2**32
U64_SECONDS_OVER = 2**64 / 1000 + 1e6  # more milliseconds than a uint64_t holds

# (keyword changes of Client(...), the field named in the error)
CLIENT_NEGATIVE = [
    ({"heartbeat_interval": -1}, "heartbeat_interval"),
    ({"heartbeat_timeout": -0.5}, "heartbeat_timeout"),
    ({"heartbeat_max_missed": -1}, "heartbeat_max_missed"),
    ({"max_pending": -1}, "max_pending"),
    ({"backoff": {"initial": -1}}, "backoff.initial"),
    ({"backoff": {"multiplier": -2}}, "backoff.multiplier"),
    ({"backoff": {"max_delay": -1}}, "backoff.max_delay"),
    ({"backoff": {"jitter_fraction": -0.1}}, "backoff.jitter_fraction"),
    ({"backoff": {"max_attempts": -1}}, "backoff.max_attempts"),
    ({"backoff": {"max_elapsed": -1}}, "backoff.max_elapsed"),
    ({"backoff": {"min_connect_timeout": -1}}, "backoff.min_connect_timeout"),
    ({"backoff": {"healthy_after": -1}}, "backoff.healthy_after"),
    ({"backoff": {"seed": -1}}, "backoff.seed"),
    ({"tcp": {"keepalive_idle": -1}}, "tcp.keepalive_idle"),
    ({"tcp": {"keepalive_interval": -1}}, "tcp.keepalive_interval"),
    ({"tcp": {"keepalive_count": -1}}, "tcp.keepalive_count"),
    ({"tcp": {"user_timeout": -1}}, "tcp.user_timeout"),
    ({"udp": {"psk": PSK, "max_payload": -1}}, "udp.max_payload"),
    ({"udp": {"psk": PSK, "handshake_timeout": -1}}, "udp.handshake_timeout"),
]

CLIENT_TOO_BIG = [
    ({"heartbeat_interval": U64_SECONDS_OVER}, "heartbeat_interval"),
    ({"heartbeat_timeout": 1e300}, "heartbeat_timeout"),
    ({"heartbeat_max_missed": U32_OVER}, "heartbeat_max_missed"),
    ({"max_pending": 2**64}, "max_pending"),
    ({"backoff": {"initial": U64_SECONDS_OVER}}, "backoff.initial"),
    ({"backoff": {"multiplier": math.inf}}, "backoff.multiplier"),
    ({"backoff": {"max_delay": math.inf}}, "backoff.max_delay"),
    ({"backoff": {"jitter_fraction": math.nan}}, "backoff.jitter_fraction"),
    ({"backoff": {"max_attempts": U32_OVER}}, "backoff.max_attempts"),
    ({"backoff": {"max_elapsed": U64_SECONDS_OVER}}, "backoff.max_elapsed"),
    ({"backoff": {"min_connect_timeout": U64_SECONDS_OVER}}, "backoff.min_connect_timeout"),
    ({"backoff": {"healthy_after": U64_SECONDS_OVER}}, "backoff.healthy_after"),
    ({"backoff": {"seed": 2**64}}, "backoff.seed"),
    ({"tcp": {"keepalive_idle": U64_SECONDS_OVER}}, "tcp.keepalive_idle"),
    ({"tcp": {"keepalive_interval": U64_SECONDS_OVER}}, "tcp.keepalive_interval"),
    ({"tcp": {"keepalive_count": U32_OVER}}, "tcp.keepalive_count"),
    ({"tcp": {"user_timeout": U64_SECONDS_OVER}}, "tcp.user_timeout"),
    ({"udp": {"psk": PSK, "max_payload": 2**64}}, "udp.max_payload"),
    ({"udp": {"psk": PSK, "handshake_timeout": U64_SECONDS_OVER}}, "udp.handshake_timeout"),
]


@pytest.mark.parametrize(("changes", "field"), CLIENT_NEGATIVE + CLIENT_TOO_BIG)
def test_client_numbers_out_of_range_name_the_field(changes: dict[str, Any], field: str) -> None:
    scheme = "udp" if "udp" in changes else "tcp"
    with pytest.raises(ValueError, match=field.replace(".", r"\.")) as info:
        Client(f"{scheme}://127.0.0.1:9", **changes)
    assert isinstance(info.value, InvalidConfigError)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"heartbeat_interval": "5"}, "heartbeat_interval"),
        ({"heartbeat_max_missed": 2.0}, "heartbeat_max_missed"),
        ({"max_pending": True}, "max_pending"),
        ({"backoff": {"multiplier": "2"}}, "backoff.multiplier"),
        ({"backoff": {"jitter": 2.5}}, "backoff.jitter"),
        ({"backoff": {"seed": 1.0}}, "backoff.seed"),
        ({"tcp": {"keepalive": "no"}}, "tcp.keepalive"),
        ({"tcp": {"nodelay": 1}}, "tcp.nodelay"),
        ({"tcp": {"keepalive_count": "3"}}, "tcp.keepalive_count"),
        ({"udp": {"psk": PSK, "handshake_timeout": "1"}}, "udp.handshake_timeout"),
    ],
)
def test_client_numbers_of_the_wrong_type_name_the_field(changes: dict[str, Any], field: str) -> None:
    scheme = "udp" if "udp" in changes else "tcp"
    with pytest.raises(TypeError, match=field.replace(".", r"\.")):
        Client(f"{scheme}://127.0.0.1:9", **changes)


def test_an_unknown_jitter_names_the_field() -> None:
    for jitter in (-1, 99, "wobbly"):
        with pytest.raises(ValueError, match=r"backoff\.jitter"):
            Client("tcp://127.0.0.1:9", backoff={"jitter": jitter})


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"send_queue": -1}, "send_queue"),
        ({"send_queue": 2**64}, "send_queue"),
        ({"policy": {"interval": -1}}, "policy.interval"),
        ({"policy": {"timeout": U64_SECONDS_OVER}}, "policy.timeout"),
        ({"policy": {"max_missed": -1}}, "policy.max_missed"),
        ({"policy": {"max_missed": U32_OVER}}, "policy.max_missed"),
        ({"policy": tether.IdleTimeoutPolicy(keepalive=-1)}, "policy.keepalive"),
        ({"policy": tether.IdleTimeoutPolicy(keepalive=1, factor=-1.5)}, "policy.factor"),
        ({"policy": tether.IdleTimeoutPolicy(keepalive=1, factor=math.inf)}, "policy.factor"),
        ({"tcp": {"user_timeout": -1}}, "tcp.user_timeout"),
    ],
)
def test_server_numbers_out_of_range_name_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field.replace(".", r"\.")) as info:
        Server(**changes)
    assert isinstance(info.value, InvalidConfigError)


def test_sans_io_numbers_are_checked_too() -> None:
    with pytest.raises(InvalidConfigError, match=r"backoff\.initial"):
        tether.Backoff(initial=-1)
    with pytest.raises(InvalidConfigError, match=r"policy\.max_missed"):
        tether.Monitor(tether.HeartbeatPolicy(interval=1, timeout=1, max_missed=-1), now_ms=0)
    with pytest.raises(InvalidConfigError, match="max_len"):
        tether.Registry(now_ms=0, max_len=-1)
    with pytest.raises(InvalidConfigError, match=r"tcp\.keepalive_idle"):
        tether.tune_socket(0, keepalive_idle=-5)
    with pytest.raises(ValueError, match="file descriptor"):
        tether.tune_socket(2**32 + 1)  # would reach C as fd 1
    with pytest.raises(ValueError, match="now_ms"):
        tether.Backoff().next_delay(now_ms=2**64)  # would reach C as 0


def test_c_still_names_what_only_it_checks() -> None:
    """In range for the C type, out of range for tether: C's own
    INVALID_CONFIG, naming the field."""
    with pytest.raises(InvalidConfigError, match="max_missed"):
        Client("tcp://127.0.0.1:9", heartbeat_max_missed=256)
    with pytest.raises(InvalidConfigError, match=r"udp\.handshake_timeout"):
        Client("udp://127.0.0.1:9", udp={"psk": PSK, "handshake_timeout": 8 * 86400})
