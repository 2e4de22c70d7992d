"""The application keys of the cluster layer (no psycopg import: read by the commands)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from sense_plugin.cluster.nodes import Site
    from sense_plugin.cluster.sitestore import SiteJobStore

#: Present only when the configuration has ``[cluster]``.
SITE: web.AppKey[Site] = web.AppKey("site")
#: The site's shared job store (with ``SITE``); the engine is built on it.
SITE_STORE: web.AppKey[SiteJobStore] = web.AppKey("site_store")
