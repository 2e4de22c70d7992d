"""The PostgreSQL job store's connections: a bounded pool, and database failures as codes.

Every call is bounded: a connection is waited for, and a statement runs, at most
``timeout_s`` (PostgreSQL's ``statement_timeout`` too). A database that is down, refuses
us or does not answer in time raises :class:`NotAvailableError` (-1006) naming the database
— the answer the site lists give too — and any other database failure a
:class:`GeneralError` (-18); both are logged with an incident id. The pool checks each
connection before handing it out, so after a PostgreSQL restart the next call reconnects;
after a failure each call first tries one direct connection, so that while the database is
still down calls fail at once with the reason (connection refused) rather than after the bound.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from sense_plugin.cluster.db import CONNECT_TIMEOUT_S, open_pool, redacted
from sense_plugin.cluster.errors import DatabaseUnavailableError
from sense_plugin.errors import GeneralError, NotAvailableError, SenseError, incident_error

#: The longest any store call waits for the database (admission answers within this).
STORE_TIMEOUT_S = 3.0
#: A lost connection is retried for this long, then re-made by the next call.
RECONNECT_S = 1.0
_UNAVAILABLE = (psycopg.OperationalError, psycopg.InterfaceError, TimeoutError, OSError)


class StoreConnections:
    """The job store's pool to ``url``: one bounded connection per call, failures coded.

    Incidents are logged to ``log`` (the store's logger).
    """

    def __init__(self, url: str, log: logging.Logger, *, pool_size: int = 4,
                 timeout_s: float = STORE_TIMEOUT_S) -> None:
        self.url = url
        self.description = f"PostgreSQL {redacted(url)}"
        self.pool_size = pool_size
        self.timeout_s = timeout_s
        self._log = log
        self._pool: AsyncConnectionPool | None = None
        #: The last call found the database unavailable.
        self._down = False

    async def open(self, prepare: Callable[[AsyncConnection[Any]], Awaitable[None]]) -> None:
        """Open the pool and run ``prepare`` on one of its connections (migrations); a
        database we cannot use raises ``DatabaseUnavailableError``."""
        pool = await open_pool(
            self.url, max_size=self.pool_size, timeout_s=self.timeout_s, name="sense-store",
            statement_timeout_s=max(0.5, self.timeout_s - 0.5),  # PostgreSQL cancels first
            reconnect_timeout_s=RECONNECT_S)
        try:
            async with pool.connection() as conn:
                await prepare(conn)
        except (psycopg.Error, OSError) as exc:
            await pool.close()
            raise DatabaseUnavailableError(
                f"[cluster] database_url: cannot use {redacted(self.url)}: "
                f"{_first_line(exc)}") from None
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @asynccontextmanager
    async def connection(self, action: str) -> AsyncIterator[AsyncConnection[Any]]:
        """A pooled connection for one call, bounded by ``timeout_s``; failures coded."""
        if self._pool is None:
            raise GeneralError(f"the job store ({self.description}) is not open")
        try:
            async with asyncio.timeout(self.timeout_s):
                if self._down:
                    await self._probe()
                async with self._pool.connection() as conn:
                    yield conn
        except _UNAVAILABLE as exc:
            self._down = True
            raise self._error(NotAvailableError, action, exc, "is not available") from None
        except psycopg.Error as exc:
            raise self._error(GeneralError, action, exc, "failed") from None

    async def _probe(self) -> None:
        """After a failure, one direct connection first: while the database is still down
        the call fails at once with the reason (instead of waiting for the pool's bound)."""
        conn = await psycopg.AsyncConnection.connect(self.url, connect_timeout=CONNECT_TIMEOUT_S)
        await conn.close()
        self._down = False

    def _error(self, kind: type[SenseError], action: str, exc: BaseException, what: str
               ) -> SenseError:
        why = _first_line(exc) if not isinstance(exc, TimeoutError) else (
            f"no answer within {self.timeout_s:g} s")
        return incident_error(
            self._log, f"job store {self.description} could not {action}: {why}",
            f"the job store ({self.description}) {what}: could not {action} ({why})",
            traceback=False, kind=kind)


def _first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
