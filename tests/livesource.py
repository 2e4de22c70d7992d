"""A server recording a real source for live tests: a clip the recorder plays at real time."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from apiclient import command
from conftest import ARCHIVE_DEVICE_IDS, WriteSegment
from lxml import etree

from sense_plugin.config import config_from_dict

DEVICE = ARCHIVE_DEVICE_IDS[0]


async def live_client(make_client: Any, tmp_path: Path, write_segment: WriteSegment,
                      clip_s: float, segment_s: float = 1, **export: Any) -> Any:
    """A client of a server recording a clip played at real time (looped by reconnects)."""
    clip = write_segment(tmp_path / "src", 1_795_168_800_000_000, duration_s=clip_s,
                         label="LIVE")
    data = {"server": {"serverid": "7015498111931795223", "data_dir": "data"},
            "archive": {"demo": False, "segment_seconds": segment_s},
            "export": export,
            "devices": [{"deviceid": str(DEVICE), "name": "Live", "source": str(clip)}]}
    client = await make_client(config_from_dict(data, base_dir=tmp_path))
    deadline = asyncio.get_running_loop().time() + 10
    while True:  # until the recording has begun (the open segment counts, SPEC §12)
        root = await command(client, "getRecordings", deviceid=DEVICE)
        if root.find(".//recording") is not None or root.find(".//interval") is not None:
            break
        assert asyncio.get_running_loop().time() < deadline, etree.tostring(root)
        await asyncio.sleep(0.1)
    return client
