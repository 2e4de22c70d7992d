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


async def open_pool(url: str, *, max_size: int = 4, timeout_s: float = POOL_TIMEOUT_S,
                    statement_timeout_s: float | None = None,
                    reconnect_timeout_s: float = 300.0, name: str = "sense-cluster"
                    ) -> AsyncConnectionPool:
    """An open pool to ``url``; raises :class:`DatabaseUnavailableError` naming the key.

    ``timeout_s`` bounds the wait for a free connection; ``statement_timeout_s`` (PostgreSQL's
    ``statement_timeout`` on every connection) the run time of each statement. A lost
    connection is re-made with backoff for ``reconnect_timeout_s``, then on demand (short:
    the next call after a database restart connects at once instead of waiting out a
    backoff delay).
    """
    kwargs: dict[str, object] = {"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S}
    if statement_timeout_s is not None:
        kwargs["options"] = f"-c statement_timeout={round(statement_timeout_s * 1000)}"
    pool = AsyncConnectionPool(
        url, min_size=1, max_size=max_size, open=False, timeout=timeout_s, kwargs=kwargs,
        reconnect_timeout=reconnect_timeout_s,
        name=name, check=AsyncConnectionPool.check_connection,
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
