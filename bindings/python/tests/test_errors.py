"""Result codes become exceptions with the C detail; bad addresses and bad
configurations are rejected before anything connects."""

from __future__ import annotations

import socket

import pytest
from support import FAST

import tether
from tether import (
    Client,
    ClientConfig,
    InvalidAddressError,
    InvalidConfigError,
    Result,
    Server,
    TetherError,
    TetherIOError,
)
from tether.errors import describe, error


def test_every_code_maps_to_its_class_and_description() -> None:
    for code in Result:
        if code == Result.OK:
            continue
        e = error(code, "detail text")
        assert isinstance(e, TetherError) and e.code == code
        assert e.description == describe(code) != ""
        assert "detail text" in str(e) and f"TETHER_RESULT_{code.name}" in str(e)
    assert type(error(Result.STALE_HANDLE, "")) is tether.StaleHandleError
    assert type(error(Result.GAVE_UP, "")) is tether.GaveUpError
    unknown = error(999, "")
    assert type(unknown) is TetherError and unknown.code == 999 and "unknown" in str(unknown)


@pytest.mark.parametrize(
    "url",
    [
        "nonsense",
        "127.0.0.1:7000",
        "tcp://127.0.0.1",
        "tcp://127.0.0.1:99999",
        "tcp://:1",
        "tcp://127.0.0.1:0",
    ],
)
def test_client_bad_addresses(url: str) -> None:
    with pytest.raises(InvalidAddressError) as info:
        Client(url, **FAST)
    assert info.value.code == Result.INVALID_ADDRESS and isinstance(info.value, ValueError)


def test_client_port_zero_says_why() -> None:
    with pytest.raises(InvalidAddressError, match="port 0"):
        Client("tcp://127.0.0.1:0")


def test_server_bad_addresses_and_schemes() -> None:
    with pytest.raises(InvalidAddressError, match="IP address"):
        Server("tcp://localhost:0")  # a server listens on an IP literal
    with pytest.raises(InvalidAddressError, match="unknown scheme"):
        Client("sctp://127.0.0.1:1")
    # Every transport is compiled in: udp:// is refused only for want of a PSK.
    with pytest.raises(InvalidConfigError, match="udp.psk"):
        Client("udp://127.0.0.1:1")


def test_server_address_in_use() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(TetherIOError, match="cannot bind"):
            Server(f"tcp://127.0.0.1:{port}")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"heartbeat_max_missed": 0}, "max_missed"),
        ({"heartbeat_interval": 0}, "interval"),
        ({"max_pending": 0}, "max_pending"),
        ({"backoff": {"multiplier": 0.9}}, "backoff.multiplier"),
        ({"tcp": {"keepalive_idle": 2.5}}, "tcp.keepalive_idle"),
        ({"tcp": {"keepalive_count": 0}}, "keepalive"),
        ({"heartbeat_timeout": -0.5}, "heartbeat_timeout"),
    ],
)
def test_client_bad_config_names_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidConfigError) as info:
        Client("tcp://127.0.0.1:9", **changes)  # type: ignore[arg-type]  # rejected before dialling
    assert field in str(info.value), str(info.value)


def test_server_bad_config() -> None:
    with pytest.raises(InvalidConfigError, match="send_queue"):
        Server(send_queue=0)
    with pytest.raises(InvalidConfigError):
        Server(policy=tether.HeartbeatPolicy(interval=0, timeout=1, max_missed=1))
    with pytest.raises(TypeError):
        Server(policy_kind="heartbeat")


def test_configs_from_the_library() -> None:
    c = ClientConfig.default()
    assert (c.heartbeat_interval, c.heartbeat_timeout, c.heartbeat_max_missed) == (15.0, 10.0, 2)
    assert c.max_pending == 1024 and c.backoff == tether.BackoffConfig.default()
    s = tether.ServerConfig.default()
    assert s.policy == tether.HeartbeatPolicy(15.0, 10.0, 2) and s.send_queue == 1024
    fast = c.replace(**FAST)
    assert fast.backoff.initial == 0.02 and fast.backoff.multiplier == 2.0  # nested change


def test_out_of_range_ids_and_times_are_argument_errors(server: Server) -> None:
    with pytest.raises(tether.InvalidArgumentError, match="conn"):
        server.send(-1, b"x")
    with pytest.raises(tether.InvalidHandleError):
        server.send(0, b"x")  # 0 means "no connection"
    reg = tether.Registry(now_ms=0)
    with pytest.raises(tether.InvalidArgumentError, match="tag"):
        reg.insert(tag=2**64)
    with pytest.raises(ValueError, match="now_ms"):
        reg.insert(now_ms=-5)
