"""The exports held in memory are the book's own objects: whichever read hands out a finished
export (by id, a page, the retention's queries), it is the one object, so a change made to
it is what every later read shows, with nothing to invalidate; a purge forgets it; the bound
lets the least recently read go first."""

from __future__ import annotations

import pytest

from sense_plugin.export import held
from sense_plugin.export.book import JobBook
from sense_plugin.export.model import Export, Status
from sense_plugin.export.outcome import Completed
from sense_plugin.export.storage import ExportQuery
from tests.store_contract import T0, file_info, make_export
from tests.unit.memstore import MemoryJobStore

RETENTION_US = 3_600_000_000


async def finalize(export: Export, status: Status, at_us: int) -> None:
    """No manifest here."""


async def finished_in_store(store: MemoryJobStore) -> Export:
    """An export completed by one book, as another book (a restarted server) finds it."""
    book = JobBook(store, finalize, RETENTION_US, clock=lambda: T0 + 10_000_000)
    await book.open()
    export = make_export(await store.new_id(), "alice", jobs=1)
    await book.add(export)
    job = export.jobs[0]
    await book.start(job)
    await book.complete(job, Completed((file_info("a.mp4", job.start_us),), None, False, 8000))
    return export


async def test_every_read_hands_out_the_one_held_object() -> None:
    store = MemoryJobStore()
    done = await finished_in_store(store)
    book = JobBook(store, finalize, RETENTION_US)
    await book.open()
    (listed,), _total = await book.page(ExportQuery())
    assert listed is not done and listed.export_id == done.export_id
    assert await book.get(done.export_id) is listed
    assert done.expires_us is not None
    (due,) = await book.expiring(done.expires_us)
    assert due is listed
    await book.expire(due)  # retention, through its own query
    again = await book.get(done.export_id)
    assert again is listed and again.status is Status.EXPIRED
    (paged,), _total = await book.page(ExportQuery())
    assert paged is listed
    await book.purge([done.export_id])
    assert await book.get(done.export_id) is None


async def test_the_least_recently_read_finished_export_goes_first(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A finished export read again by id is kept before one read once (status polls of a
    recent export keep it in memory)."""
    monkeypatch.setattr(held, "CACHED_FINISHED", 2)
    store = MemoryJobStore()
    first, second, third = [await finished_in_store(store) for _ in range(3)]
    book = JobBook(store, finalize, RETENTION_US)
    await book.open()
    a = await book.get(first.export_id)
    b = await book.get(second.export_id)
    assert await book.get(first.export_id) is a  # read again: now the most recent
    await book.get(third.export_id)  # over the bound: the second goes, not the first
    assert await book.get(first.export_id) is a
    reread = await book.get(second.export_id)
    assert reread is not None and reread is not b and reread == b
