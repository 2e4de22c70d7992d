"""Chain-of-custody commands: ``getAuditLog`` and ``exportVideo`` ``action=hold|release``.

Reference: ``docs/custody.rst``.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree
from lxml.builder import E

from sense_plugin.api.keys import ENGINE
from sense_plugin.api.registry import Command, CommandContext
from sense_plugin.api.render import render
from sense_plugin.api.results import ExportChanged
from sense_plugin.errors import InvalidExportIdError, OutOfRangeError
from sense_plugin.export.auditxml import record_element
from sense_plugin.export.custodystore import AuditQuery, AuditRecord
from sense_plugin.permissions import ADMIN

MAX_AUDIT_PAGE = 10_000


@dataclass(frozen=True)
class AuditLog:
    """A page of audit records and how many match the filters."""

    records: tuple[AuditRecord, ...]
    total: int


@render.register
def _(result: AuditLog) -> etree._Element:
    return E.auditlog(*(record_element(r) for r in result.records),
                      count=str(len(result.records)), total=str(result.total))


async def get_audit_log(ctx: CommandContext) -> AuditLog:
    """Audit records, oldest first, filtered by exportid, user, starttime, endtime."""
    params = ctx.params
    export_id = params.u64("exportid", InvalidExportIdError)
    start_us = params.timestamp("starttime")
    end_us = params.timestamp("endtime")
    if start_us is not None and end_us is not None and start_us > end_us:
        raise OutOfRangeError("starttime must not be after endtime")
    limit = params.integer("limit", minimum=1, maximum=MAX_AUDIT_PAGE)
    offset = params.integer("offset", minimum=0, maximum=2**62)
    query = AuditQuery(export_id=export_id, user=params.text("user"), start_us=start_us,
                       end_us=end_us, offset=offset or 0, limit=limit)
    records, total = await ctx.app[ENGINE].custody.store.audit_page(query)
    return AuditLog(tuple(records), total)


async def hold_or_release(ctx: CommandContext, action: str, export_id: int) -> ExportChanged:
    """``action=hold`` / ``release`` of an export the user may change (own, or any: admin)."""
    engine = ctx.app[ENGINE]
    user = ctx.user
    export = await engine.get(export_id, user.name, user.is_admin)
    if action == "hold":
        await engine.custody.hold(export, user.name)
    else:
        await engine.custody.release(export)
    return ExportChanged(export.export_id, export.status)


COMMANDS = (Command("getAuditLog", get_audit_log, ADMIN, read_only=True),)
