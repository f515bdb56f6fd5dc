"""Finding libtether: TETHER_LIBRARY first, then the workspace's target/,
and a clear error listing what was tried. Each case runs in a fresh
interpreter (the library is loaded once per process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def run(code: str, env_changes: dict[str, str | None]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TETHER_LIBRARY"}
    env["PYTHONPATH"] = str(PACKAGE_ROOT)
    for k, v in env_changes.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd="/")


def test_a_missing_explicit_library_is_reported_not_replaced() -> None:
    r = run(
        "import tether\n"
        "try:\n    tether.now_ms()\n"
        "except tether.LibraryNotFoundError as e:\n    print('ERR', e)\n",
        {"TETHER_LIBRARY": "/nonexistent/libtether.so"},
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ERR") and "TETHER_LIBRARY='/nonexistent/libtether.so'" in r.stdout


def test_without_the_variable_the_workspace_build_is_found() -> None:
    explicit = os.environ.get("TETHER_LIBRARY")
    r = run(
        "import tether; print(tether.library_path()); print(tether.now_ms() >= 0)", {"TETHER_LIBRARY": None}
    )
    assert r.returncode == 0, r.stderr
    path, ok = r.stdout.split()
    assert ok == "True" and "/target/" in path and Path(path).name == "libtether.so"
    if explicit:
        assert Path(path).parent.parent == Path(explicit).resolve().parent.parent


def test_import_works_without_the_library() -> None:
    r = run("import tether; print(tether.Client.__name__)", {"TETHER_LIBRARY": "/nonexistent/libtether.so"})
    assert r.returncode == 0 and r.stdout.strip() == "Client"
