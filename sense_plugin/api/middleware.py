"""The one error middleware: coded errors become XML documents, the unexpected becomes -18."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

from sense_plugin.api import render
from sense_plugin.errors import ResultCode, SenseError

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def xml_response(body: bytes, status: int = 200) -> web.Response:
    """A response carrying a rendered XML document."""
    return web.Response(body=body, status=status, headers={"Content-Type": render.CONTENT_TYPE})


def error_response(exc: SenseError) -> web.Response:
    """Render a coded error, with the HTTP status and headers its class asks for."""
    response = xml_response(render.error(exc.code, exc.description), exc.http_status)
    if exc.http_status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="sense_plugin", charset="UTF-8"'
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map :class:`SenseError` to its XML document and anything unexpected to -18."""
    try:
        return await handler(request)
    except SenseError as exc:
        return error_response(exc)
    except web.HTTPException:
        raise
    except Exception:
        incident = uuid.uuid4().hex[:12]
        log.exception("incident %s while handling %s %s", incident, request.method, request.path)
        body = render.error(
            ResultCode.GENERAL_ERROR,
            f"unexpected server error; reported as incident {incident}",
            incident,
        )
        return xml_response(body)
