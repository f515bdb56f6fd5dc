"""Every ```python block of the READMEs runs as written.

Each block runs in its own interpreter, in a scratch directory that holds
``cert.pem`` and ``key.pem`` (a self-signed certificate for ``db.internal``,
``localhost`` and 127.0.0.1, and its key) and ``ca.pem`` (the same
certificate, as the trust root), so the TLS and QUIC examples can name
those files. Examples use loopback only.

A block that cannot run here (it needs another host, say) is marked by an
HTML comment on the last non-blank line before its opening fence, with the
reason, which the rendered README does not show::

    <!-- not run: needs the database host -->

Such a block is reported as skipped, with its reason. Use it sparingly:
rewriting an example to loopback usually keeps it meaningful.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
READMES = [ROOT.parents[1] / "README.md", ROOT / "README.md"]

FENCE = re.compile(r"^[ \t]*```[ \t]*(\S*)[ \t]*$")
NOT_RUN = re.compile(r"^<!--\s*not run:\s*(.*?)\s*-->$")


@dataclass(frozen=True)
class Block:
    readme: Path
    line: int  # of the opening fence
    code: str
    not_run: str | None  # the marker's reason

    @property
    def name(self) -> str:
        return f"{self.readme.relative_to(ROOT.parents[1])}:{self.line}"


def python_blocks(readme: Path) -> list[Block]:
    blocks: list[Block] = []
    lines = readme.read_text().splitlines()
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if fence is None:
            i += 1
            continue
        start = i
        i += 1
        while i < len(lines) and FENCE.match(lines[i]) is None:
            i += 1
        if i == len(lines):
            raise AssertionError(f"{readme}:{start + 1}: unterminated code block")
        if fence.group(1) == "python":
            before = next((s.strip() for s in reversed(lines[:start]) if s.strip()), "")
            marker = NOT_RUN.match(before)
            reason = marker.group(1) if marker else None
            if marker and not reason:
                raise AssertionError(f"{readme}:{start + 1}: a 'not run' marker needs a reason")
            blocks.append(Block(readme, start + 1, "\n".join(lines[start + 1 : i]) + "\n", reason))
        i += 1  # past the closing fence
    return blocks


BLOCKS = [b for readme in READMES for b in python_blocks(readme)]


@pytest.fixture(scope="module")
def example_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("readme")
    if shutil.which("openssl") is not None:
        # CA:FALSE: OpenSSL's default marks a self-signed certificate as a
        # CA, which rustls refuses as a server's own certificate.
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-subj", "/CN=db.internal",
                "-addext", "subjectAltName=DNS:db.internal,DNS:localhost,IP:127.0.0.1",
                "-addext", "basicConstraints=critical,CA:FALSE",
                "-days", "2", "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"),
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        shutil.copy(d / "cert.pem", d / "ca.pem")
    return d


def test_readmes_have_python_examples() -> None:
    for readme in READMES:
        assert any(b.readme == readme for b in BLOCKS), f"{readme} has no ```python block"


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.name)
def test_readme_example_runs(block: Block, example_dir: Path) -> None:
    if block.not_run is not None:
        pytest.skip(f"marked not run: {block.not_run}")
    if ".pem" in block.code and not (example_dir / "cert.pem").exists():
        pytest.skip("the openssl command is not installed (needed to make the example's certificate)")
    path = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    # Blank lines in front make a traceback's line numbers the README's.
    r = subprocess.run(
        [sys.executable, "-c", "\n" * block.line + block.code],
        cwd=example_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if r.returncode != 0:
        pytest.fail(f"{block.name} failed (exit {r.returncode}):\n{r.stderr}", pytrace=False)
