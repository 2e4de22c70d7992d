"""Export XML: the cached serialisation of finished exports equals a fresh rendering."""

from __future__ import annotations

from apiclient import parse_result
from lxml import etree

from sense_plugin.api import exportxml, render
from sense_plugin.api.results import ExportStatusList
from sense_plugin.export.model import Export, Job, Status
from sense_plugin.filemodel import FileInfo


def finished_export(export_id: int) -> Export:
    export = Export(export_id, "anonymous", 1_795_168_800_000_000, "case", "/x", "mp4", "n", 0)
    export.jobs = [Job(export_id, 0, 1, 2, "Cam", 1_795_168_800_000_000, 1_795_168_810_000_000,
                       status=Status.COMPLETED, progress=100,
                       file=FileInfo("a.mp4", 10, "0" * 64, 1_795_168_800_000_000,
                                     1_795_168_809_900_000, 100))]
    export.finished_us, export.expires_us = 1_795_168_900_000_000, 1_795_255_300_000_000
    return export


def test_cached_bytes_match_fresh_rendering_and_follow_changes() -> None:
    export = finished_export(7)
    body = render.success(ExportStatusList((export, export)))
    root = parse_result(body, "getExportVideoStatus")
    fresh = etree.tostring(exportxml.export_element(export), encoding="utf-8")
    assert [etree.tostring(e, encoding="utf-8") for e in root.iterfind("exports/export")] == \
        [fresh, fresh]
    export.jobs[0].status = Status.EXPIRED  # retention: the cache must not serve the old state
    root = parse_result(render.success(ExportStatusList((export,))), "getExportVideoStatus")
    assert root.findtext("exports/export/status") == "EXPIRED"
