"""Gaps in the stores' rows: the reason survives the round trip, and rows written before gaps
had a reason still load (with none)."""

from __future__ import annotations

import json
from dataclasses import asdict

from sense_plugin.cluster.storerows import _file as cluster_file
from sense_plugin.export.storerows import file_from_dict
from sense_plugin.filemodel import FileInfo, Gap

INFO = FileInfo(name="Gate.mp4", size_bytes=1_000, sha256="ab" * 32, first_frame_us=0,
                last_frame_us=9_960_000, frame_count=250,
                gaps=(Gap(2_000_000, 2_700_000, "no recording"),
                      Gap(9_000_000, 10_000_000,
                          "the recording had not reached the end after 63 s")))


def test_reasons_survive_both_stores_rows() -> None:
    assert file_from_dict(json.loads(json.dumps(asdict(INFO)))) == INFO
    assert cluster_file(json.loads(json.dumps(asdict(INFO)))) == INFO


def test_rows_without_reasons_load() -> None:
    old = asdict(INFO)
    for gap in old["gaps"]:
        del gap["reason"]
    plain = tuple(Gap(g.start_us, g.end_us) for g in INFO.gaps)
    assert file_from_dict(json.loads(json.dumps(old))).gaps == plain
    assert cluster_file(json.loads(json.dumps(old))).gaps == plain
