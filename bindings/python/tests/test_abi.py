"""The ctypes structs mirror include/tether.h: a C program compiled against
the header prints every struct's size and field offsets, and ctypes must
agree, field for field."""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
from enum import IntEnum
from pathlib import Path

import pytest

from tether import DisconnectReason, EventKind, Opening, _ffi

HEADER_DIR = Path(__file__).resolve().parents[3] / "include"

STRUCTS = [
    _ffi.tether_backoff_config,
    _ffi.tether_tcp_options,
    _ffi.tether_client_config,
    _ffi.tether_event,
    _ffi.tether_policy,
    _ffi.tether_liveness_action,
    _ffi.tether_registry_event,
    _ffi.tether_server_config,
    _ffi.tether_backoff,
    _ffi.tether_monitor,
    _ffi.tether_registry,
    _ffi.tether_client,
    _ffi.tether_server,
    _ffi.tether_transport_options,
]


def c_program() -> str:
    lines = ["#include <stdio.h>", "#include <stddef.h>", '#include "tether.h"', "int main(void) {"]
    for s in STRUCTS:
        name = s.__name__
        lines.append(f'printf("{name} size %zu\\n", sizeof(struct {name}));')
        for field in (f[0] for f in s._fields_):
            lines.append(f'printf("{name}.{field} %zu\\n", offsetof(struct {name}, {field}));')
    lines += ["return 0;", "}"]
    return "\n".join(lines)


def ctypes_layout() -> list[str]:
    out = []
    for s in STRUCTS:
        out.append(f"{s.__name__} size {ctypes.sizeof(s)}")
        for field in (f[0] for f in s._fields_):
            out.append(f"{s.__name__}.{field} {getattr(s, field).offset}")
    return out


def test_struct_layouts_match_the_header(tmp_path: Path) -> None:
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None or not (HEADER_DIR / "tether.h").is_file():
        pytest.skip("needs a C compiler and the workspace's include/tether.h")
    src = tmp_path / "layout.c"
    src.write_text(c_program())
    exe = tmp_path / "layout"
    subprocess.run([cc, "-Wall", "-Werror", f"-I{HEADER_DIR}", "-o", str(exe), str(src)], check=True)
    c_side = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split("\n")
    assert [line for line in c_side if line] == ctypes_layout()


def header_fields(header: str, name: str) -> list[str]:
    """The field names of ``typedef struct name { ... } name;``, in order."""
    body = re.search(rf"typedef struct {name} {{(.*?)\n}} {name};", header, re.S)
    assert body is not None, name
    text = re.sub(r"/\*.*?\*/", "", body.group(1), flags=re.S)
    return [m.group(1) for m in re.finditer(r"(\w+)(?:\[\w*\])?\s*;", text)]


def test_every_header_field_is_mirrored() -> None:
    """No field of the header is missing from (or extra in) the ctypes
    structs, in the header's order: a field appended to the C struct, like
    tether_event's detail and object, must be appended here too."""
    if not (HEADER_DIR / "tether.h").is_file():
        pytest.skip("needs the workspace's include/tether.h")
    header = (HEADER_DIR / "tether.h").read_text()
    for s in STRUCTS:
        assert header_fields(header, s.__name__) == [f[0] for f in s._fields_], s.__name__


def test_the_event_struct_ends_with_detail_and_object() -> None:
    names = [f[0] for f in _ffi.tether_event._fields_]
    assert names[-3:] == ["peer", "detail", "object"]
    assert _ffi.tether_event.detail.size == ctypes.sizeof(ctypes.c_char_p)
    assert _ffi.tether_event.object.size == 8


@pytest.mark.parametrize(
    ("prefix", "enum", "skip"),
    [
        ("TETHER_EVENT_KIND_", EventKind, set()),
        ("TETHER_REASON_", DisconnectReason, {"NONE"}),
        ("TETHER_OPENING_", Opening, set()),
    ],
)
def test_enums_match_the_header(prefix: str, enum: type[IntEnum], skip: set[str]) -> None:
    """Every event kind and reason of the header, by name and number."""
    if not (HEADER_DIR / "tether.h").is_file():
        pytest.skip("needs the workspace's include/tether.h")
    header = (HEADER_DIR / "tether.h").read_text()
    values = {m[1]: int(m[2]) for m in re.finditer(rf"^\s*{prefix}(\w+) = (\d+),", header, re.M)}
    assert values, prefix
    assert {k: v for k, v in values.items() if k not in skip} == {m.name: m.value for m in enum}


def test_every_header_function_used_is_declared() -> None:
    lib = _ffi.lib()
    for name, (restype, argtypes) in _ffi._PROTOTYPES.items():
        fn = getattr(lib, name)
        assert fn.restype is restype and fn.argtypes == argtypes, name
        if (HEADER_DIR / "tether.h").is_file():
            assert f"{name}(" in (HEADER_DIR / "tether.h").read_text(), name
