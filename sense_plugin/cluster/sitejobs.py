"""What one server of a site does every second for the exports it takes part in.

- writes the progress figures of its running jobs (other servers answer status from them);
- reads what other servers asked of them: REMOVED (``action=remove`` elsewhere) stops the
  job and deletes its file here, a stop ends it keeping the file;
- once an export it ran jobs of is finished by another server, writes the manifest beside
  its own files (the finisher wrote one beside its files);
- deletes its files of exports removed or expired on any server (its holdings);
- shares the status requests and downloads it saw (keepalive counts those of every server);
- writes again what the store refused while the database was away;
- fails (-1008) the jobs of servers not seen for ``node_timeout_s``, finishing their exports;
- refreshes the status tallies of ``/metrics`` from the store.
"""

from __future__ import annotations

import asyncio
import logging

from sense_plugin.cluster.sitestore import SiteJobStore
from sense_plugin.errors import SenseError
from sense_plugin.export.model import Status
from sense_plugin.export.siterole import SiteRole

log = logging.getLogger(__name__)
TICK_S = 1.0
#: Holdings are looked at every this many ticks (a remove deletes everywhere within 5 s).
LET_GO_TICKS = 5


class SiteJobs:
    """The per-second upkeep of this server's part in the site's exports."""

    def __init__(self, role: SiteRole, store: SiteJobStore, node_timeout_s: float) -> None:
        self.role, self.store, self.book = role, store, role.book
        self.node_timeout_s = node_timeout_s
        self._acting: set[asyncio.Task[None]] = set()
        self._ticks = 0

    async def run(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            try:
                await self.tick()
            except SenseError as exc:  # the database is away: the next tick tries again
                log.debug("site upkeep: %s", exc.description)

    async def tick(self) -> None:
        await self.book.save_unsaved()
        for export_id in await self.store.fail_absent(self.node_timeout_s):
            export = await self.book.get(export_id)
            if export is not None:
                log.info("export %s: jobs of a server offline past node_timeout_s failed "
                         "(-1008)", export_id)
                await self.book.finish_if_done(export)
        running = [j for e in self.book.active() for j in e.jobs
                   if j.server_id == self.store.server_id and j.status is Status.SYNCING]
        await self.store.save_progress(running)
        asked = await self.store.asked(running)
        for job in running:
            status, stop = asked.get(job.key, (Status.SYNCING, False))
            if status is not Status.REMOVED and not stop:
                continue
            action = self.role.ask_here(self.book.active_export(job.export_id), job,
                                        cancel=status is Status.REMOVED)
            if action is None:  # its run was asked that already
                continue
            task = asyncio.ensure_future(action)
            self._acting.add(task)
            task.add_done_callback(self._acting.discard)
        await self._copy_manifests()
        self._ticks += 1
        if self._ticks % LET_GO_TICKS == 0:
            await self.role.let_go()
        await self.role.share_keepalive()
        exports, jobs = await self.store.count_by_status()
        self.book.export_counts.clear()
        self.book.export_counts.update(exports)
        self.book.job_counts.clear()
        self.book.job_counts.update(jobs)

    async def _copy_manifests(self) -> None:
        for export_id in list(self.book.awaiting_finish):
            export = await self.book.get(export_id)
            if export is None or export.finished_us is not None:
                self.book.awaiting_finish.discard(export_id)
            if export is None or export.finished_us is None:
                continue
            if await self.store.finisher(export_id) != self.store.server_id:
                await self.role.write_copy_of_manifest(export)

    async def close(self) -> None:
        for task in self._acting:
            task.cancel()
        await asyncio.gather(*self._acting, return_exceptions=True)
