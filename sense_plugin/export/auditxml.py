"""Audit records as XML: ``<record>`` elements (getAuditLog, a manifest's ``<audit>``) and
reading them back from a saved answer (``audit-verify``)."""

from __future__ import annotations

from collections.abc import Sequence

from lxml import etree
from lxml.builder import E

from sense_plugin.export.audit import ListedRecord
from sense_plugin.export.custodystore import AuditRecord
from sense_plugin.timestamps import format_timestamp

MAX_AUDIT_BYTES = 512 * 1024 * 1024
FIELDS = ("seq", "time", "user", "address", "action", "exportid", "detail", "hash")


def record_element(record: AuditRecord) -> etree._Element:
    return E.record(
        E.seq(str(record.seq)), E.time(format_timestamp(record.time_us)), E.user(record.user),
        E.address(record.address), E.action(record.action),
        E.exportid("" if record.export_id is None else str(record.export_id)),
        E.detail(record.detail), E.hash(record.hash))


def audit_element(records: Sequence[AuditRecord]) -> etree._Element:
    """A manifest's ``<audit>``: the export's own records (not a chain by themselves: each
    hash links into the server's whole trail)."""
    return E.audit(*(record_element(r) for r in records), count=str(len(records)))


def read_records(data: bytes) -> list[ListedRecord]:
    """The ``<record>`` elements of a saved ``getAuditLog`` answer, in document order;
    ``ValueError`` naming the problem if it is not one."""
    if len(data) > MAX_AUDIT_BYTES:
        raise ValueError("the file is too large to be an audit log answer")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             huge_tree=True)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise ValueError(f"not well-formed XML: {exc}") from None
    log = root if root.tag == "auditlog" else root.find("auditlog")
    if log is None:
        raise ValueError(f"no <auditlog> in <{root.tag}>")
    records = []
    for position, element in enumerate(log.iterfind("record"), start=1):
        values = [element.findtext(name) for name in FIELDS]
        if values[0] is None or values[-1] is None:
            raise ValueError(f"record #{position} lacks <seq> or <hash>")
        records.append(ListedRecord(*(v or "" for v in values)))
    return records
