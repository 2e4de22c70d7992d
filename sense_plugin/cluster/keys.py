"""The application keys of the cluster layer (no psycopg import: read by the commands)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from sense_plugin.cluster.nodes import Site

#: Present only when the configuration has ``[cluster]``.
SITE: web.AppKey[Site] = web.AppKey("site")
