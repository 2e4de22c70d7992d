"""``sense-plugin audit-verify FILE`` (and ``verify --audit FILE``): recompute the audit chain
of a saved ``getAuditLog`` answer (``docs/custody.rst``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lxml import etree

from sense_plugin.export.audit import ListedRecord, first_broken
from sense_plugin.export.auditxml import FIELDS, read_records
from sense_plugin.export.manifest import MANIFEST_NAME


def check_chain(path: Path) -> tuple[bool, list[str], list[ListedRecord]]:
    """(whole chain intact, report lines, the records) of a saved answer."""
    try:
        records = read_records(path.read_bytes())
    except OSError as exc:
        return False, [f"ERROR cannot read {path}: {exc.strerror}"], []
    except ValueError as exc:
        return False, [f"ERROR {path}: {exc}"], []
    broken = first_broken(records)
    if broken is not None:
        position, why = broken
        return False, [f"BROKEN at record seq {position}: {why}"], records
    return True, [f"OK {len(records)} records chain from the first to the last"], records


def manifest_in_log(directory: Path, records: list[ListedRecord]) -> list[str]:
    """Lines naming each of the manifest's ``<audit>`` records the log lacks or differs in."""
    try:
        data = (directory / MANIFEST_NAME).read_bytes()
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        root = etree.fromstring(data, parser)
    except (OSError, etree.XMLSyntaxError) as exc:
        return [f"ERROR cannot read the manifest's audit records: {exc}"]
    by_seq = {r.seq: r for r in records}
    problems = []
    for element in root.iterfind("audit/record"):
        listed = ListedRecord(*((element.findtext(name) or "") for name in FIELDS))
        if by_seq.get(listed.seq) != listed:
            problems.append(f"MISMATCH manifest audit record seq {listed.seq} is not in the "
                            "audit log as listed")
    return problems


def cmd_audit_verify(args: argparse.Namespace) -> int:
    """Print whether the chain holds; 1 naming the first record that breaks it."""
    ok, lines, _ = check_chain(args.file)
    for line in lines:
        print(line)
    print(f"audit-verify: {'PASSED' if ok else 'FAILED'}")
    return 0 if ok else 1


def verify_audit(directory: Path, audit_file: Path) -> bool:
    """``verify --audit``: the chain holds and holds the manifest's own records."""
    ok, lines, records = check_chain(audit_file)
    if ok:
        problems = manifest_in_log(directory, records)
        lines.extend(problems)
        ok = not problems
    for line in lines:
        print(line)
    return ok
