"""Scenario S3: kernel keepalive, TCP_USER_TIMEOUT and TCP_NODELAY on real
loopback sockets, checked against getsockopt independently of tether."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tether import (
    InvalidArgumentError,
    InvalidConfigError,
    TcpOptions,
    TetherIOError,
    read_socket_options,
    tune_socket,
)


@pytest.fixture
def tcp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        accepted, _ = listener.accept()
        with client, accepted:
            yield client, accepted


def test_defaults() -> None:
    d = TcpOptions.default()
    assert d == TcpOptions(
        keepalive=True,
        keepalive_idle=10.0,
        keepalive_interval=5.0,
        keepalive_count=3,
        user_timeout=30.0,
        nodelay=True,
    )


def test_tune_a_python_socket_and_read_it_back(tcp_pair: tuple[socket.socket, socket.socket]) -> None:
    client, _ = tcp_pair
    assert read_socket_options(client).keepalive is False
    applied = tune_socket(
        client,
        keepalive=True,
        keepalive_idle=30,
        keepalive_interval=7,
        keepalive_count=4,
        user_timeout=12.5,
        nodelay=True,
    )
    got = read_socket_options(client)
    assert got == applied.replace(keepalive_idle=30.0, keepalive_interval=7.0)
    # The kernel agrees, asked without tether.
    assert client.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 30
    assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 7
    assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 4
    assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 12500
    assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


def test_tune_by_file_descriptor_with_defaults(tcp_pair: tuple[socket.socket, socket.socket]) -> None:
    _, accepted = tcp_pair
    tune_socket(accepted.fileno())
    assert read_socket_options(accepted.fileno()) == TcpOptions.default()
    assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 10


def test_rejections(tcp_pair: tuple[socket.socket, socket.socket]) -> None:
    client, _ = tcp_pair
    before = read_socket_options(client)
    with pytest.raises(InvalidConfigError, match="keepalive_idle"):
        tune_socket(client, keepalive=True, keepalive_idle=1.5)
    with pytest.raises(InvalidConfigError, match="user_timeout"):
        tune_socket(client, user_timeout=-1)
    assert read_socket_options(client) == before  # nothing applied
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        with pytest.raises(TetherIOError):
            tune_socket(udp)
    closed = socket.socket()
    closed.close()
    with pytest.raises(InvalidArgumentError):
        read_socket_options(closed)  # fileno() is -1
    with pytest.raises(TypeError):
        tune_socket("not a socket")  # type: ignore[arg-type]
