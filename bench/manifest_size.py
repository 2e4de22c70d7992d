"""``python -m bench.manifest_size``: the largest ``manifest.xml`` the export limits allow, and
what reading it back costs (the store rebuild and ``verify`` read every manifest whole).

A device split at the smallest ``maxfilesize`` (1 MB) over the longest span (``max_span_s``,
24 h) at a recording rate of 4 Mbit/s gives 43,200 parts; ``max_devices_per_export`` (64) such
devices make the largest export. The manifest is built by the server's own ``build_manifest``
(with realistic names, hashes, frame times, no gaps), its size measured per part, and the
one-device document parsed back by the rebuild (``export_from_manifest``) and by ``verify``'s
``parse_manifest``: wall time and peak RSS growth. Figures go to bench/results/manifest-size.*.
"""

from __future__ import annotations

import hashlib
import json
import resource
import tempfile
import time
from pathlib import Path

from sense_plugin.export.manifest import MANIFEST_NAME, build_manifest, parse_manifest
from sense_plugin.export.model import Export, Job, Status
from sense_plugin.export.rebuild import export_from_manifest
from sense_plugin.filemodel import FileInfo
from sense_plugin.media.exportoptions import ExportOptions

RESULTS = Path(__file__).resolve().parent / "results"
T0_US = 1_700_000_000_000_000
SPAN_S = 86_400
RATE_BPS = 4_000_000
PART_BYTES = 1_000_000
DEVICES = 64


def parts_of_one_day() -> int:
    return SPAN_S * RATE_BPS // 8 // PART_BYTES


def big_export(devices: int, parts: int) -> Export:
    """An export of ``devices`` devices, each split into ``parts`` 1-MB parts."""
    export = Export(export_id=123456, owner="operator", created_us=T0_US, path="incident-4711",
                    out_base="/srv/exports", fmt="mp4", name="Entrance, all day",
                    bandwidth_limit_kbps=0, finished_us=T0_US + 3_600_000_000,
                    options=ExportOptions(maxfilesize_mb=1))
    step_us = SPAN_S * 1_000_000 // parts
    for index in range(devices):
        files = tuple(FileInfo(
            name=f"Camera {index + 1:02d} 20260101-000000 part{n + 1:05d}.mp4",
            size_bytes=PART_BYTES - 1_234, sha256=hashlib.sha256(b"%d/%d" % (index, n)).hexdigest(),
            first_frame_us=T0_US + n * step_us, last_frame_us=T0_US + (n + 1) * step_us - 40_000,
            frame_count=step_us // 40_000) for n in range(parts))
        export.jobs.append(Job(
            export_id=export.export_id, index=index, server_id=7015498111931795223,
            device_id=9890179877273119875 + index, device_name=f"Camera {index + 1:02d}",
            start_us=T0_US, end_us=T0_US + SPAN_S * 1_000_000, status=Status.COMPLETED,
            progress=100, file=files[0], parts=files))
    return export


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parts = parts_of_one_day()
    one = build_manifest(big_export(1, parts), Status.COMPLETED, T0_US + 3_600_000_000)
    per_part_b = len(one) / parts
    figures: dict[str, float] = {"parts_per_device": parts, "bytes_per_part": round(per_part_b),
                                 "one_device_mib": round(len(one) / 2**20, 1),
                                 "largest_export_mib": round(per_part_b * parts * DEVICES / 2**20)}
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "123456"
        directory.mkdir()
        (directory / MANIFEST_NAME).write_bytes(one)
        before_mb, began = peak_rss_mb(), time.perf_counter()
        rebuilt = export_from_manifest(directory, 24.0)
        figures["rebuild_one_device_s"] = round(time.perf_counter() - began, 2)
        figures["rebuild_peak_rss_growth_mb"] = round(peak_rss_mb() - before_mb)
        assert len(rebuilt.jobs[0].files) == parts
        before_mb, began = peak_rss_mb(), time.perf_counter()
        assert len(parse_manifest(one)) == parts
        figures["verify_parse_one_device_s"] = round(time.perf_counter() - began, 2)
        figures["verify_peak_rss_growth_mb"] = round(peak_rss_mb() - before_mb)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "manifest-size.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
