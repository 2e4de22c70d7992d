"""Completion callbacks, the sending half: POST stored deliveries, signed, until one is taken.

A task of its own reads the due deliveries from the job store (only the oldest undelivered
one of each export, so each export's events arrive in order) and POSTs them a few at a time,
each bounded by a timeout: a receiver that hangs, is slow or answers 500 delays only its
own deliveries, never an export or a status request. A 2xx answer ends a delivery; anything
else is retried with a growing pause (up to an hour) for at least 25 hours after the event.
Reference: ``docs/custody.rst``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from sense_plugin import __version__
from sense_plugin.api import exportxml, render
from sense_plugin.api.keys import CONFIG, ENGINE
from sense_plugin.api.results import ExportStatusList
from sense_plugin.config import Config
from sense_plugin.export.audit import Actor
from sense_plugin.export.callbacks import GIVE_UP_AFTER_US
from sense_plugin.export.custodystore import CustodyStore, Delivery
from sense_plugin.export.model import Export
from sense_plugin.timestamps import now_us

if TYPE_CHECKING:
    from sense_plugin.export.engine import ExportEngine

log = logging.getLogger(__name__)
SEND_TIMEOUT_S = 10.0
PARALLEL_SENDS = 4
FIRST_PAUSE_S = 1.0
MAX_PAUSE_S = 3600.0
#: How long the sender sleeps when nothing is due (it is woken by a new delivery).
IDLE_S = 1.0
__all__ = ["exportxml"]


def signature(secret: str, body: bytes) -> str:
    """The ``X-Sense-Signature`` value: ``sha256=<hex HMAC-SHA256 of the body>``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def pause_s(attempts: int) -> float:
    """The pause after the ``attempts``-th failure: doubling from 1 s, at most an hour."""
    return float(min(MAX_PAUSE_S, FIRST_PAUSE_S * 2 ** min(attempts, 20)))


class CallbackSender:
    """The task that sends stored deliveries."""

    def __init__(self, config: Config, store: CustodyStore, wake: asyncio.Event) -> None:
        self._secrets = {w.url: w.secret for w in config.webhooks}
        self._fallback_secret = config.export.callback_secret
        self._store = store
        self._wake = wake
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    def start(self) -> None:
        timeout = aiohttp.ClientTimeout(total=SEND_TIMEOUT_S)
        self._session = aiohttp.ClientSession(timeout=timeout)
        self._task = asyncio.create_task(self._loop(), name="callback-sender")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._session is not None:
            await self._session.close()

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                due = await self._store.due_deliveries(now_us(), PARALLEL_SENDS)
                if due:
                    await asyncio.gather(*(self._send(d) for d in due))
                    continue
            except Exception:  # the store is away: try again later, never die
                log.exception("callback sender: cannot read the deliveries")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(IDLE_S):
                    await self._wake.wait()

    async def _send(self, delivery: Delivery) -> None:
        assert self._session is not None
        secret = self._secrets.get(delivery.url, self._fallback_secret)
        headers = {"Content-Type": render.CONTENT_TYPE, "X-Sense-Event": delivery.event,
                   "X-Sense-Delivery": delivery.delivery_id,
                   "X-Sense-Signature": signature(secret, delivery.body),
                   "User-Agent": f"sense_plugin/{__version__}"}
        why = ""
        try:
            async with self._session.post(delivery.url, data=delivery.body, headers=headers,
                                          allow_redirects=False) as answer:
                if 200 <= answer.status < 300:
                    await self._store.delivered(delivery.delivery_id)
                    return
                why = f"HTTP {answer.status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            why = type(exc).__name__
        now = now_us()
        give_up = now - delivery.created_us > GIVE_UP_AFTER_US
        next_try = now + int(pause_s(delivery.attempts) * 1_000_000)
        log.info("callback %s (%s of export %s) to %s failed (%s)%s", delivery.delivery_id,
                 delivery.event, delivery.export_id, delivery.url, why,
                 ": abandoned" if give_up else "")
        await self._store.retry_later(delivery.delivery_id, next_try, give_up)


def status_body(export: Export) -> bytes:
    """The ``getExportVideoStatus&exportid=N`` document of an export."""
    return render.success(ExportStatusList((export,)))


async def callbacks_ctx(app: web.Application) -> AsyncIterator[None]:
    """Send the stored callbacks while the server runs (also those of before a restart)."""
    custody = app[ENGINE].custody
    sender = CallbackSender(app[CONFIG], custody.store, custody.callbacks.wake)
    sender.start()
    yield
    await sender.close()


async def audit_login_failure(engine: ExportEngine, user: str, address: str) -> None:
    """A failed login is an audit record (the name as given, the caller's address)."""
    await engine.custody.record("loginfailure", None, "invalid user name or password",
                                Actor(user, address))
