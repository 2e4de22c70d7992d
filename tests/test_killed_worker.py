"""A worker killed while it splits leaves no file behind: the runner deletes what the run
began, and a start deletes such files of every finished export (export/files.py)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from apiclient import command, wait_export
from test_export_names import BUSY, BUSY_S, device, public_key

from sense_plugin.cli import main


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (read from /proc: children of each of its threads)."""
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            found += [child, *descendants(child)]
    return found


def part_writer(directory: Path) -> int | None:
    """The process below this one that holds a ``.pNNN.part`` file of ``directory`` open."""
    for pid in descendants(os.getpid()):
        try:
            links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:
            continue  # gone meanwhile
        if any(link.startswith(f"{directory}/") and link.endswith(".part") for link in links):
            return pid
    return None


async def kill_while_splitting(directory: Path) -> list[str]:
    """SIGKILL the worker once it writes its second part; the files there then."""
    for _ in range(1200):
        names = [p.name for p in directory.iterdir()] if directory.is_dir() else []
        if any(".p002." in name for name in names):
            pid = part_writer(directory)
            assert pid is not None, names
            os.kill(pid, signal.SIGKILL)
            return names
        await asyncio.sleep(0.05)
    raise AssertionError(f"no worker wrote a second part into {directory}: {names}")


async def test_a_worker_killed_during_a_split_leaves_no_file(
        make_client: Callable[..., Any], busy_config: Any, busy_archive: tuple[Path, int],
        tmp_path: Path, capsys: Any) -> None:
    t0 = busy_archive[1]
    client = await make_client(busy_config)
    body = (f"<export><devices>{device(t0, t0 + BUSY_S * 1_000_000)}</devices>"
            "<maxfilesize>1</maxfilesize><bandwidth>2000</bandwidth>"
            "<path>killed</path></export>")
    export_id = int((await command(client, "exportVideo", body=body)).findtext("exportid"))
    directory = busy_config.server.export_roots[0] / "killed" / str(export_id)
    held = await kill_while_splitting(directory)
    export = await wait_export(client, export_id, 60)
    assert export.findtext("devices/device/status") == "FAILED"
    assert "worker" in export.findtext("devices/device/description")
    assert held and sorted(p.name for p in directory.iterdir()) == ["manifest.sig",
                                                                    "manifest.xml"]
    code = main(["verify", str(directory), "--key", str(public_key(busy_config, tmp_path))])
    out = capsys.readouterr().out
    assert "EXTRA" not in out and "SIGNATURE OK" in out and code == 1, out  # the device failed


async def test_a_start_deletes_what_killed_runs_left_in_finished_exports(
        make_client: Callable[..., Any], busy_config: Any, busy_archive: tuple[Path, int],
        tmp_path: Path, capsys: Any) -> None:
    """Files an older version's killed worker left: parts under their final names, temporary
    parts and the whole cut; a file the export never wrote is left alone."""
    t0 = busy_archive[1]
    client = await make_client(busy_config)
    body = (f"<export><devices>{device(t0 + 2_000_000, t0 + 6_000_000)}"
            f"{device(t0 - 60_000_000, t0 - 50_000_000)}</devices><path>old</path></export>")
    export_id = int((await command(client, "exportVideo", body=body)).findtext("exportid"))
    export = await wait_export(client, export_id, 60)
    assert [d.findtext("status") for d in export.iterfind("devices/device")] == \
        ["COMPLETED", "FAILED"]
    await client.close()
    directory = busy_config.server.export_roots[0] / "old" / str(export_id)
    before = sorted(p.name for p in directory.iterdir())
    stem = f"Busy_{BUSY}_20000101T000000.000Z"
    planted = [f"{stem}_part002.mp4", f"{stem}.mp4", f"{stem}.mp4.p003.part",
               f"{stem}.mp4.p001.part.p002.part"]
    for name in [*planted, "notes.txt"]:
        (directory / name).write_bytes(b"left over")
    client = await make_client(busy_config)  # a start of the server
    await command(client, "getExportVideoStatus", exportid=export_id)
    assert sorted(p.name for p in directory.iterdir()) == sorted([*before, "notes.txt"])
    code = main(["verify", str(directory), "--key", str(public_key(busy_config, tmp_path))])
    out = capsys.readouterr().out
    assert "EXTRA notes.txt" in out and out.count("EXTRA") == 1 and code == 1, out
