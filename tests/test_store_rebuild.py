"""A lost job store is rebuilt from the manifests on disk without following a symlink; a
manifest that cannot be used is set aside with an ERROR naming it and the server starts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from test_store_loss import drop_store, one_export, write_toml

from sense_plugin.testing.serverprocess import ServerProcess


async def test_rebuild_skips_symlinked_and_broken_manifests_and_the_server_starts(
        make_client: Callable[..., Any], make_config: Callable[..., Any],
        api_archive: dict[str, Any], tmp_path: Path) -> None:
    config = make_config()
    client = await make_client(config)
    ids = [await one_export(client, api_archive, f"case-{n}") for n in range(3)]
    await client.close()
    drop_store(config.server.data_dir)
    root = config.server.export_roots[0]
    linked, broken, intact = (root / f"case-{n}" / str(i) / "manifest.xml"
                              for n, i in enumerate(ids))
    planted = tmp_path / "planted.xml"  # a valid manifest of that export, outside the roots
    planted.write_bytes(linked.read_bytes().replace(b"<owner>anonymous</owner>",
                                                    b"<owner>mallory</owner>"))
    assert b"mallory" in planted.read_bytes()
    linked.unlink()
    linked.symlink_to(planted)
    broken.write_bytes(broken.read_bytes()[:100])
    server = ServerProcess(write_toml(tmp_path, api_archive), tmp_path / "server.log")
    try:
        server.start()
        answers = {i: server.command(f"getExportVideoStatus&exportid={i}") for i in ids}
    finally:
        server.stop()
    assert answers[ids[2]].findtext("exports/export/status") == "COMPLETED"
    for export_id in ids[:2]:  # set aside: not rebuilt
        assert answers[export_id].get("errorcode") == "-57", answers[export_id]
    log = (tmp_path / "server.log").read_text()
    errors = [line for line in log.splitlines() if " ERROR " in line]
    assert any(str(linked) in line and f"symlink to {planted}" in line for line in errors), log
    assert any(str(broken) in line for line in errors), log
    assert "mallory" not in log and "Traceback" not in log
    assert linked.is_symlink() and broken.exists() and intact.is_file()  # evidence untouched
