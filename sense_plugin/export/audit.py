"""The audit trail: canonical record bytes, the hash chain, and who is acting now.

Every record's ``hash`` is the lowercase hex SHA-256 of the previous record's hash (64 ASCII
hex characters; 64 zeros before the first record) followed by the record's canonical bytes:
for each field in the order seq, time, user, address, action, exportid, detail, its UTF-8
text as ``getAuditLog`` shows it, preceded by its byte length in decimal and a colon and
followed by a newline (``docs/custody.rst``). Text is cleaned of characters an XML document
cannot carry before it is stored, so the answer always holds exactly the hashed text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass

from sense_plugin.export.custodystore import AuditEntry, AuditRecord
from sense_plugin.timestamps import format_timestamp, now_us

GENESIS_HASH = "0" * 64
MAX_FIELD_CHARS = 500
#: The actions a record can name.
ACTIONS = ("create", "stop", "remove", "retry", "expiry", "download", "hold", "release",
           "loginfailure", "play")


@dataclass(frozen=True)
class Actor:
    """Who asks for what is being done: a user name and a network address."""

    user: str = ""
    address: str = ""


#: Set by the HTTP layer for each request; empty for the server's own work (expiry).
CURRENT_ACTOR: ContextVar[Actor | None] = ContextVar("sense_actor", default=None)


def clean_text(text: str) -> str:
    """Printable text only (others become '?'), at most ``MAX_FIELD_CHARS``."""
    return "".join(ch if ch.isprintable() else "?" for ch in text[:MAX_FIELD_CHARS])


def entry(action: str, export_id: int | None, detail: str = "",
          actor: Actor | None = None) -> AuditEntry:
    """A record to append now, by ``actor`` (default: the current request's)."""
    who = actor or CURRENT_ACTOR.get() or Actor()
    time_us = now_us() // 1000 * 1000  # the wire form shows milliseconds: hash what is shown
    return AuditEntry(time_us, clean_text(who.user), clean_text(who.address), action,
                      export_id, clean_text(detail))


def fields_of(seq: int, time_text: str, user: str, address: str, action: str,
              export_id_text: str, detail: str) -> bytes:
    """The canonical bytes of a record from its fields as text."""
    out = bytearray()
    for value in (str(seq), time_text, user, address, action, export_id_text, detail):
        data = value.encode("utf-8")
        out += f"{len(data)}:".encode("ascii") + data + b"\n"
    return bytes(out)


def canonical_bytes(seq: int, item: AuditEntry | AuditRecord) -> bytes:
    """The canonical bytes of a stored (or about to be stored) record."""
    export_id = "" if item.export_id is None else str(item.export_id)
    return fields_of(seq, format_timestamp(item.time_us), item.user, item.address,
                     item.action, export_id, item.detail)


def chain_hash(previous_hash: str, canonical: bytes) -> str:
    """The hash of a record whose canonical bytes follow ``previous_hash``."""
    return hashlib.sha256(previous_hash.encode("ascii") + canonical).hexdigest()


def chained(previous: AuditRecord | None, item: AuditEntry) -> AuditRecord:
    """The record ``item`` becomes when appended after ``previous`` (None: the first)."""
    seq = 1 if previous is None else previous.seq + 1
    prev_hash = GENESIS_HASH if previous is None else previous.hash
    digest = chain_hash(prev_hash, canonical_bytes(seq, item))
    return AuditRecord(seq, item.time_us, item.user, item.address, item.action,
                       item.export_id, item.detail, digest)


@dataclass(frozen=True)
class ListedRecord:
    """A record as a saved ``getAuditLog`` answer shows it (all text)."""

    seq: str
    time: str
    user: str
    address: str
    action: str
    export_id: str
    detail: str
    hash: str


def first_broken(records: Iterable[ListedRecord]) -> tuple[int, str] | None:
    """(position counted from 1, why) of the first record that breaks the chain, or None.

    The first record listed must be seq 1 (chained to 64 zeros): a page that starts later
    cannot be checked from its beginning.
    """
    prev_hash = GENESIS_HASH
    for position, record in enumerate(records, start=1):
        if record.seq != str(position):
            return position, f"seq is '{record.seq}', expected {position} (a record is missing)"
        canonical = fields_of(position, record.time, record.user, record.address,
                              record.action, record.export_id, record.detail)
        expected = chain_hash(prev_hash, canonical)
        if record.hash != expected:
            return position, f"hash is {record.hash[:16]}…, recomputed {expected[:16]}…"
        prev_hash = record.hash
    return None
