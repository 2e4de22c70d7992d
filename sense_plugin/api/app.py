"""The application factory: routes, the error middleware and every resource's lifetime."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from urllib.parse import parse_qsl

from aiohttp import web

from sense_plugin import __version__
from sense_plugin.api import exportxml, render
from sense_plugin.api.accesslog import access_middleware
from sense_plugin.api.auth import SESSION_COOKIE, Authenticator
from sense_plugin.api.bundle import BUNDLE_CRCS, BUNDLE_ZIP64_FROM
from sense_plugin.api.callbacksend import audit_login_failure, callbacks_ctx, status_body
from sense_plugin.api.commands import all_commands
from sense_plugin.api.connections import mark_busy
from sense_plugin.api.headers import add_security_headers
from sense_plugin.api.keys import ARCHIVE, AUTH, CONFIG, ENGINE, EXECUTOR, REGISTRY, SNAPSHOT_POOL
from sense_plugin.api.metrics import metrics_ctx, setup_metrics
from sense_plugin.api.middleware import error_middleware, xml_response
from sense_plugin.api.origin import check_same_origin
from sense_plugin.api.registry import CommandContext, CommandRegistry
from sense_plugin.api.results import ApiInfo, SessionKey
from sense_plugin.api.snapshotpool import SnapshotPool
from sense_plugin.api.statuscache import STATUS_CACHE, StatusListCache, with_status_cache
from sense_plugin.api.web import setup_web
from sense_plugin.archive.service import Archive
from sense_plugin.cluster.keys import SITE_STORE
from sense_plugin.config import Config
from sense_plugin.errors import (
    BodyTooLargeError,
    NotImplementedCommandError,
    OutOfRangeError,
    PermissionDeniedError,
)
from sense_plugin.export.audit import CURRENT_ACTOR, Actor
from sense_plugin.export.bundle import ZIP64_FROM, CrcMemo
from sense_plugin.export.engine import ExportEngine
from sense_plugin.params import Params
from sense_plugin.timestamps import now_us
from sense_plugin.xmlin import child_text, parse_body

log = logging.getLogger(__name__)
IO_THREADS = 4
__all__ = ["create_app", "exportxml"]  # exportxml registers the export renderers


def create_app(config: Config) -> web.Application:
    """Build the aiohttp application for ``config`` (used by ``serve`` and by the tests)."""
    app = web.Application(
        middlewares=[access_middleware, mark_busy, error_middleware],
        client_max_size=config.http.max_body_kb * 1024,
    )
    app[CONFIG] = config
    app[STATUS_CACHE] = StatusListCache()
    app[BUNDLE_CRCS] = CrcMemo()
    app[BUNDLE_ZIP64_FROM] = ZIP64_FROM
    app[REGISTRY] = CommandRegistry(with_status_cache(all_commands(), app[STATUS_CACHE]))
    app.router.add_get("/info", info)
    app.router.add_post("/webservice", webservice)
    app.router.add_route("GET", "/command", command)
    app.router.add_route("POST", "/command", command)
    # downloads: the headers of the GET (docs/operations.rst)
    app.router.add_route("HEAD", "/command", command)
    setup_web(app)  # the browser export page under /web/
    app.on_response_prepare.append(add_security_headers)
    setup_metrics(app)  # GET /metrics
    app.cleanup_ctx.extend([executor_ctx, auth_ctx, archive_ctx, engine_ctx, metrics_ctx,
                            callbacks_ctx, snapshot_pool_ctx])
    if config.cluster is not None:  # a site of several servers (docs/site.rst): PostgreSQL
        from sense_plugin.api.site.ctx import setup_cluster

        setup_cluster(app, engine_ctx)
    return app


async def executor_ctx(app: web.Application) -> AsyncIterator[None]:
    """The bounded thread pool for disk, hashing and short media probes."""
    executor = ThreadPoolExecutor(IO_THREADS, thread_name_prefix="sense-io")
    app[EXECUTOR] = executor
    yield
    await asyncio.get_running_loop().run_in_executor(None, executor.shutdown)


async def auth_ctx(app: web.Application) -> AsyncIterator[None]:
    """Sessions and credential checks (own scrypt pool); idle state is swept once a minute."""
    auth = Authenticator(app[CONFIG].auth)
    app[AUTH] = auth

    async def sweep() -> None:
        while True:
            await asyncio.sleep(60)
            auth.sweep()

    task = asyncio.create_task(sweep(), name="session-sweeper")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    auth.close()


async def archive_ctx(app: web.Application) -> AsyncIterator[None]:
    archive = Archive(app[CONFIG], app[EXECUTOR])
    app[ARCHIVE] = archive
    await archive.start()
    yield
    await archive.close()


async def engine_ctx(app: web.Application) -> AsyncIterator[None]:
    site_store = app.get(SITE_STORE)  # a site of several servers: the shared job store
    engine = ExportEngine(app[CONFIG], app[ARCHIVE], app[EXECUTOR], site_store)
    app[ENGINE] = engine
    engine.custody.callbacks.status_body = status_body  # the XML is this layer's
    app[AUTH].on_failure = partial(audit_login_failure, engine)
    await engine.start()
    yield
    await engine.close()


async def read_body(request: web.Request) -> bytes:
    """The request body, or 413 past ``http.max_body_kb``, or -22 when it arrives too slowly."""
    if not request.body_exists:  # a GET poll: no timer to arm and cancel
        return b""
    http = request.app[CONFIG].http
    try:
        async with asyncio.timeout(http.body_timeout_s):
            return await request.read()
    except web.HTTPRequestEntityTooLarge:
        limit = f"{http.max_body_kb} KiB"
        raise BodyTooLargeError(f"request body exceeds the limit of {limit}") from None
    except TimeoutError:
        raise BodyTimeoutError(
            f"request body did not arrive within {http.body_timeout_s:g} s") from None


class BodyTimeoutError(OutOfRangeError):
    """A body that trickles in too slowly (-22); the connection is closed after the answer."""

    close_connection = True


async def info(request: web.Request) -> web.Response:
    """``GET /info``: server time and version, without authentication."""
    return xml_response(render.success(ApiInfo(now_us(), __version__)))


async def webservice(request: web.Request) -> web.Response:
    """``POST /webservice``: AuthenticateUser → session key (XML and cookie).

    The password is taken exactly as sent; a login replaces the caller's previous session.
    """
    check_same_origin(request, "login")  # no login CSRF: a foreign page cannot log you in
    document = parse_body(await read_body(request), "AuthenticateUser")
    username = child_text(document, "username", required=True) or ""
    password = child_text(document, "password", required=True, strip=False) or ""
    auth = request.app[AUTH]
    key = await auth.login(username, password, request.remote or "?",
                           request.cookies.get(SESSION_COOKIE))
    response = xml_response(render.success(SessionKey(key)))
    response.set_cookie(SESSION_COOKIE, key, httponly=True, samesite="Strict",
                        secure=request.secure, path="/")
    return response


async def command(request: web.Request) -> web.StreamResponse:
    """``GET|POST /command?command=NAME``: authenticate, check permission, dispatch."""
    body = await read_body(request)
    items = list(request.query.items())
    # curl -d sends XML labelled as a form: a body that starts like XML is XML.
    is_form = request.content_type == "application/x-www-form-urlencoded"
    if is_form and body and not body.lstrip().startswith(b"<"):
        items += parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        body = b""
    params = Params(items)
    user = await request.app[AUTH].authenticate(request)
    CURRENT_ACTOR.set(Actor(user.name, request.remote or ""))  # for the audit trail
    name = params.text("command", required=True) or ""
    entry = request.app[REGISTRY].get(name)
    if entry is None:
        raise NotImplementedCommandError(f"command '{name[:64]}' is not implemented")
    if not entry.read_only:
        check_same_origin(request, entry.name)
    if not user.can(entry.permission):
        raise PermissionDeniedError(
            f"user '{user.name}' lacks the '{entry.permission}' permission for {entry.name}"
        )
    result = await entry.handler(CommandContext(request, params, body, user))
    if isinstance(result, web.StreamResponse):
        return result
    return xml_response(render.success(result))


async def snapshot_pool_ctx(app: web.Application) -> AsyncIterator[None]:
    """The application's snapshot pool, sized by ``[http]``."""
    http = app[CONFIG].http
    pool = SnapshotPool(http.snapshot_threads, http.max_pending_snapshots,
                        http.max_snapshots_per_user)
    app[SNAPSHOT_POOL] = pool
    yield
    pool.close()
