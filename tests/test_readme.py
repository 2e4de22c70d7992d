"""The README's walkthrough, run as printed against the real ``sense-plugin serve``.

Every ``.. code-block:: sh`` of the "Walkthrough" section is run in one bash session (so its
variables carry over), in a directory where ``sense-data`` is the server's data directory, with
``sense-plugin`` being this checkout's CLI and the server's address in place of
``127.0.0.1:8080``. Each block's ``# `` lines are its printed answer: they must appear in the
real answer in order, digits aside (ids, times and sizes differ from run to run); a printed
line ending in ``...`` matches any real line starting with the text before it. Run with
``-s`` to see the real answers (what to paste when the walkthrough changes).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from sense_plugin.archive.backfill import MARKER_NAME
from sense_plugin.config import default_config_path
from sense_plugin.testing.serverprocess import ServerProcess

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.rst"
DEFAULT_URL = "http://127.0.0.1:8080"


def walkthrough_blocks(text: str) -> list[tuple[list[str], list[str]]]:
    """(commands, printed answer lines) of each shell block in the Walkthrough section."""
    section = text.split("\nWalkthrough\n-----------\n", 1)[1]
    section = re.split(r"\n[^\n]+\n(?:=+|-+)\n", section, maxsplit=1)[0]
    blocks = []
    for body in re.findall(r"\.\. code-block:: sh\n\n((?:    .*\n|\n)+)", section):
        lines = [line[4:] for line in body.rstrip("\n").split("\n")]
        commands = [line for line in lines if not line.startswith("#")]
        printed = [line[2:] if line.startswith("# ") else line[1:]
                   for line in lines if line.startswith("#")]
        blocks.append((commands, printed))
    return blocks


def shape(line: str) -> str:
    """The line with SHA-256 digests as ``H`` and digit runs as ``N``."""
    return re.sub(r"\d+", "N", re.sub(r"\b[0-9a-f]{64}\b", "H", line.rstrip()))


def missing_lines(printed: list[str], real: list[str]) -> list[str]:
    """Printed lines not found, in order, among the real ones (empty: the answer matches)."""
    shapes = [shape(line) for line in real]
    position = 0
    for line in printed:
        want = shape(line)
        prefix = want[:-3] if want.endswith("...") else None
        while position < len(shapes) and not (
                shapes[position] == want if prefix is None
                else shapes[position].startswith(prefix)):
            position += 1
        if position == len(shapes):
            return printed[printed.index(line):]
        position += 1
    return []


def start_server(tmp_path: Path) -> ServerProcess:
    """The shipped default configuration, its data directory under ``tmp_path``."""
    text = default_config_path().read_text()
    data_dir = tmp_path / "sense-data"
    config = tmp_path / "default.toml"
    config.write_text(text.replace('data_dir = "sense-data"', f'data_dir = "{data_dir}"', 1))
    assert str(data_dir) in config.read_text(), "the default's data_dir line has changed"
    server = ServerProcess(config, tmp_path / "server.log")
    server.start()
    deadline = time.monotonic() + 120
    marker = data_dir / MARKER_NAME
    while not (marker.exists() and json.loads(marker.read_text())["done"]):
        assert time.monotonic() < deadline, server.log_path.read_text()
        time.sleep(0.25)
    return server


def run_blocks(blocks: list[tuple[list[str], list[str]]], server: ServerProcess,
               cwd: Path) -> list[str]:
    """Run every block in one bash; returns each block's output."""
    script = [f'sense-plugin() {{ "{sys.executable}" -m sense_plugin "$@"; }}']
    for number, (commands, _) in enumerate(blocks):
        script.append(f"echo; echo '@@block {number}@@'")  # curl prints no final newline
        script.extend(line.replace(DEFAULT_URL, server.url) for line in commands)
    scratch = cwd / "scratch"  # where the walkthrough's mktemp -d makes its directory
    scratch.mkdir(exist_ok=True)
    env = {**os.environ, "SENSE_SERVER": server.url, "LC_ALL": "C.UTF-8",
           "PYTHONPATH": str(ROOT), "TMPDIR": str(scratch)}
    done = subprocess.run(["bash", "-c", "\n".join(script)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.stderr == "", done.stderr
    outputs = re.split(r"^@@block \d+@@\n", done.stdout, flags=re.M)
    return [output.rstrip("\n") + "\n" for output in outputs[1:]]


def test_readme_walkthrough_runs_as_printed(tmp_path: Path) -> None:
    blocks = walkthrough_blocks(README.read_text())
    assert len(blocks) >= 6 and all(commands for commands, _ in blocks)
    server = start_server(tmp_path)
    before = {p.name for p in tmp_path.iterdir()} | {"scratch"}
    try:
        outputs = run_blocks(blocks, server, tmp_path)
    finally:
        assert server.stop() == 0
    # the checkout (here: the directory the walkthrough runs in) keeps nothing it wrote
    assert {p.name for p in tmp_path.iterdir()} == before
    assert len(outputs) == len(blocks)
    for (commands, printed), output in zip(blocks, outputs, strict=True):
        print(f"\n$ {commands[-1]}\n" + "".join(f"# {line}\n" for line in output.splitlines()))
        assert printed, f"no answer printed in the README for: {commands}"
        missing = missing_lines(printed, output.splitlines())
        assert not missing, f"{commands}\nREADME prints:\n{missing}\nreal:\n{output}"


def test_matching_rules() -> None:
    real = ["export 12 created (2026-12-02 03:40:01.123)", "noise", "sizes 3100000 ...",
            "<sha256>" + "0a" * 32 + "</sha256>"]
    assert missing_lines(["export 1 created (2026-01-01 00:00:00.000)"], real) == []
    assert missing_lines(["noise", "sizes 1 ..."], real) == []
    assert missing_lines(["sizes ...", "noise"], real) == ["noise"]  # order matters
    assert missing_lines(["export 1 removed"], real) == ["export 1 removed"]
    assert missing_lines(["<sha256>" + "9f" * 32 + "</sha256>"], real) == []
