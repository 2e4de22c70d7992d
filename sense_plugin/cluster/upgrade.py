"""``sense-plugin db upgrade``: apply the schema migrations once, outside the server."""

from __future__ import annotations

import asyncio

from sense_plugin.cluster.db import open_pool, redacted
from sense_plugin.cluster.schema import LATEST, current_version, upgrade


def upgrade_database(url: str) -> str:
    """Upgrade the database at ``url``; a one-line summary for the operator."""
    return asyncio.run(_upgrade(url))


async def _upgrade(url: str) -> str:
    pool = await open_pool(url, max_size=1)
    try:
        async with pool.connection() as conn:
            applied = await upgrade(conn)
            version = await current_version(conn)
    finally:
        await pool.close()
    where = redacted(url)
    if not applied:
        return f"{where}: schema is up to date (version {version} of {LATEST})"
    return f"{where}: applied migration(s) {', '.join(map(str, applied))}; schema version {version}"
