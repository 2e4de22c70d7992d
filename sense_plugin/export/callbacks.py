"""Completion callbacks, the durable half: which receivers an export event goes to.

An event (``completed``, ``failed``, ``removed``, ``expired``, ``held``) of an export becomes
one delivery per ``[[webhooks]]`` entry that asks for it, plus one to the export's own
``<callback>`` URL, each stored in the job store with the export's status document as its
body before anyone is told of the event. Sending them is the HTTP layer's
(``api/callbacksend.py``), so a receiver never slows an export (``docs/custody.rst``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from urllib.parse import urlsplit

from sense_plugin.config import Config
from sense_plugin.errors import OutOfRangeError
from sense_plugin.export.custodystore import CustodyStore, Delivery, DeliveryStats
from sense_plugin.export.model import Export
from sense_plugin.timestamps import now_us

log = logging.getLogger(__name__)
#: Retries go on at least this long after the event (then the delivery is abandoned).
GIVE_UP_AFTER_US = 25 * 3600 * 1_000_000


def check_callback(url: str, config: Config) -> str:
    """An export's ``<callback>`` URL: http(s) to a host in ``[export] callback_hosts``,
    else -22 naming the host."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise OutOfRangeError(f"callback '{url[:80]}' is not an http:// or https:// URL")
    allowed = config.export.callback_hosts
    if host not in allowed:
        raise OutOfRangeError(
            f"callback host '{host[:80]}' is not allowed ([export] callback_hosts: "
            f"{', '.join(allowed) or 'none'})")
    return url


class CallbackQueue:
    """Turns export events into stored deliveries and wakes the sender."""

    def __init__(self, config: Config, store: CustodyStore) -> None:
        self._webhooks = config.webhooks
        self._store = store
        #: Renders the export's status document (set by the HTTP layer, which owns XML).
        self.status_body: Callable[[Export], bytes] = lambda export: b""
        #: Set when a delivery is stored: the sender looks for due ones at once.
        self.wake = asyncio.Event()
        #: The delivery figures as last read (``/metrics`` refreshes them when scraped).
        self.stats = DeliveryStats(0, 0, 0, None)

    async def refresh_stats(self) -> DeliveryStats:
        self.stats = await self._store.delivery_stats()
        return self.stats

    @property
    def enabled(self) -> bool:
        return bool(self._webhooks)

    async def event(self, event: str, export: Export) -> None:
        """Store the deliveries of ``event`` (a store failure is logged, never raised:
        the export's own change has happened)."""
        urls = [w.url for w in self._webhooks if event in w.events]
        if export.options.callback:
            urls.append(export.options.callback)
        if not urls:
            return
        body = self.status_body(export)
        created = now_us()
        deliveries = [Delivery(uuid.uuid4().hex, export.export_id, event, url, body, created)
                      for url in urls]
        try:
            await self._store.add_deliveries(deliveries)
        except Exception:
            log.exception("export %s: cannot store the %s callbacks", export.export_id, event)
            return
        self.wake.set()
