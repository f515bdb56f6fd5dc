"""Shared fixtures. The library comes from TETHER_LIBRARY (see the README);
a missing library fails the first test loudly instead of skipping."""

from __future__ import annotations

import gc
from collections.abc import Iterator

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
