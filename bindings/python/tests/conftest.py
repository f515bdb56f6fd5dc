"""Shared fixtures. The library comes from TETHER_LIBRARY (see the README);
a missing library fails the first test loudly instead of skipping."""

from __future__ import annotations

import gc
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import tether


@pytest.fixture(scope="session", autouse=True)
def _library_loaded() -> None:
    tether.library_path()  # raises LibraryNotFoundError with what was tried


@pytest.fixture
def server() -> Iterator[tether.Server]:
    with tether.Server("tcp://127.0.0.1:0") as s:
        yield s


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    # Objects a failed test leaves behind are freed here, not in a later test.
    yield
    gc.collect()


def make_certificate(cert: Path, key: Path, name: str = "localhost") -> None:
    """A self-signed certificate for ``name`` and 127.0.0.1, and its key."""
    # CA:FALSE: OpenSSL's default marks a self-signed certificate as a CA,
    # which rustls refuses as a server's own certificate.
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-subj", f"/CN={name}",
            "-addext", f"subjectAltName=DNS:{name},IP:127.0.0.1",
            "-addext", "basicConstraints=critical,CA:FALSE",
            "-days", "2", "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A self-signed certificate for localhost and 127.0.0.1 (``cert``) and
    its key (``key``); two unrelated self-signed certificates, for
    other.example (``other``) and for localhost again (``twin``)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed (needed to make a test certificate)")
    d = tmp_path_factory.mktemp("certs")
    make_certificate(d / "c.pem", d / "k.pem")
    # Same subject as the server's: a verifier takes it for the issuer, and
    # the signature check fails.
    make_certificate(d / "twin.pem", d / "twin-key.pem")
    make_certificate(d / "other.pem", d / "other-key.pem", name="other.example")
    return {
        "cert": d / "c.pem",
        "key": d / "k.pem",
        "other": d / "other.pem",
        "twin": d / "twin.pem",
        "dir": d,
    }
