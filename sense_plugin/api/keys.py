"""Every piece of shared application state, as typed ``web.AppKey`` constants."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from aiohttp import web

from sense_plugin.api.auth import Authenticator
from sense_plugin.api.registry import CommandRegistry
from sense_plugin.config import Config

if TYPE_CHECKING:
    from sense_plugin.api.snapshotpool import SnapshotPool
    from sense_plugin.archive.service import Archive
    from sense_plugin.export.engine import ExportEngine

CONFIG = web.AppKey("config", Config)
REGISTRY = web.AppKey("registry", CommandRegistry)
EXECUTOR = web.AppKey("executor", ThreadPoolExecutor)
AUTH = web.AppKey("auth", Authenticator)
ARCHIVE: web.AppKey[Archive] = web.AppKey("archive")
ENGINE: web.AppKey[ExportEngine] = web.AppKey("engine")
SNAPSHOT_POOL: web.AppKey[SnapshotPool] = web.AppKey("snapshot_pool")
