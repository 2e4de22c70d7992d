"""The one error middleware: coded errors become XML documents, the unexpected becomes -18.

It also refuses, before any handler runs, a request for a host name this server does not answer
to (DNS rebinding, :func:`sense_plugin.api.origin.check_host`), so no route can forget to.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from sense_plugin.api import render
from sense_plugin.api.origin import check_host
from sense_plugin.errors import ResultCode, SenseError, incident_error, quote_input

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def xml_response(body: bytes, status: int = 200) -> web.Response:
    """A response carrying a rendered XML document."""
    return web.Response(body=body, status=status, headers={"Content-Type": render.CONTENT_TYPE})


def error_response(exc: SenseError) -> web.Response:
    """Render a coded error, with the HTTP status and headers its class asks for."""
    response = xml_response(render.error(exc.code, exc.description, exc.incident),
                            exc.http_status)
    if exc.http_status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="sense_plugin", charset="UTF-8"'
    if getattr(exc, "close_connection", False):
        response.force_close()  # the rest of the request is in an unknown state
    retry_after_s = getattr(exc, "retry_after_s", None)
    if isinstance(retry_after_s, int):
        response.headers["Retry-After"] = str(retry_after_s)
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map :class:`SenseError` to its XML document and anything unexpected to -18."""
    try:
        check_host(request)
        return await handler(request)
    except SenseError as exc:
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # redirects stay redirects
        return http_error_response(request, exc)
    except Exception:
        error = incident_error(log, f"while handling {request.method} {request.path}",
                               "unexpected server error")
        return xml_response(render.error(error.code, error.description, error.incident))


def http_error_response(request: web.Request, exc: web.HTTPException) -> web.Response:
    """An HTTP error raised by aiohttp itself (404, 405, ...) as an XML document, same status."""
    path = quote_input(request.path)
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        method = quote_input(request.method, 16)
        code = ResultCode.NOT_IMPLEMENTED
        text = f"method {method} is not allowed for {path} (allowed: {allowed})"
    elif exc.status == 404:
        code, text = ResultCode.NOT_IMPLEMENTED, f"no such resource: {path}"
    elif exc.status >= 500:
        code, text = ResultCode.GENERAL_ERROR, f"server error (HTTP {exc.status})"
    else:
        code, text = ResultCode.OUT_OF_RANGE, f"request refused (HTTP {exc.status} {exc.reason})"
    response = xml_response(render.error(code, text), exc.status)
    if "Allow" in exc.headers:
        response.headers["Allow"] = exc.headers["Allow"]
    return response
