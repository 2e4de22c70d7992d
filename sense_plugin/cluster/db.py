"""The connection pool to the site's PostgreSQL (psycopg 3, async, psycopg_pool)."""

from __future__ import annotations

import re

import psycopg
from psycopg_pool import AsyncConnectionPool

from sense_plugin.cluster.errors import DatabaseUnavailableError

CONNECT_TIMEOUT_S = 5
#: Waiting for a free connection longer than this is an error, never a hang.
POOL_TIMEOUT_S = 10.0


def redacted(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", url)


async def open_pool(url: str, *, max_size: int = 4) -> AsyncConnectionPool:
    """An open pool to ``url``; raises :class:`DatabaseUnavailableError` naming the key."""
    pool = AsyncConnectionPool(
        url, min_size=1, max_size=max_size, open=False, timeout=POOL_TIMEOUT_S,
        kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S},
        name="sense-cluster", check=AsyncConnectionPool.check_connection,
    )
    try:
        await pool.open(wait=True, timeout=CONNECT_TIMEOUT_S * 2)
        async with pool.connection() as conn:
            await conn.execute("SELECT 1")
    except (psycopg.Error, TimeoutError, OSError) as exc:
        await pool.close()
        raise DatabaseUnavailableError(
            f"[cluster] database_url: cannot use {redacted(url)}: "
            f"{str(exc).strip() or type(exc).__name__}") from None
    return pool
