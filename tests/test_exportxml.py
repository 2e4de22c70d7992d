"""Export XML: rendering is pure, and the status cache's memo of finished exports' elements
equals a fresh rendering and follows every change."""

from __future__ import annotations

from apiclient import parse_result
from lxml import etree

from sense_plugin.api import exportxml, render
from sense_plugin.api.results import ExportStatusList
from sense_plugin.api.statuscache import StatusListCache
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


def test_rendering_keeps_nothing_between_calls() -> None:
    """Export ids are unique per server only: two servers in one process (the tests run
    several) may each have an export 7, finished at the same instant. Each is rendered as it
    is; a memo keyed by id and state alone served the first one's name for the second."""
    first, second = finished_export(7), finished_export(7)
    second.name = "another case"
    names = [parse_result(render.success(ExportStatusList((e,))), "getExportVideoStatus")
             .findtext("exports/export/name") for e in (first, second)]
    assert names == ["n", "another case"]


def test_the_status_cache_memo_matches_fresh_rendering_and_follows_changes() -> None:
    cache = StatusListCache()
    export = finished_export(7)
    body = cache.render(ExportStatusList((export, export)))
    assert body == render.success(ExportStatusList((export, export)))
    root = parse_result(body, "getExportVideoStatus")
    fresh = etree.tostring(exportxml.export_element(export), encoding="utf-8")
    assert [etree.tostring(e, encoding="utf-8") for e in root.iterfind("exports/export")] == \
        [fresh, fresh]
    export.held = True  # a hold: no deadline shown
    root = parse_result(cache.render(ExportStatusList((export,))), "getExportVideoStatus")
    assert root.findtext("exports/export/hold") == "true"
    assert root.findtext("exports/export/expires") in ("", None)
    export.held = False
    export.jobs[0].status = Status.EXPIRED  # retention: the memo must not serve the old state
    root = parse_result(cache.render(ExportStatusList((export,))), "getExportVideoStatus")
    assert root.findtext("exports/export/status") == "EXPIRED"
    other = finished_export(7)  # another app's export 7: its own cache, its own bytes
    other.name = "another case"
    root = parse_result(StatusListCache().render(ExportStatusList((other,))),
                        "getExportVideoStatus")
    assert root.findtext("exports/export/name") == "another case"
