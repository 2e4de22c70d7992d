"""The browser export page: packaged static files under ``/web/`` (no listing, no CDN).

The page is a plain client of the XML command API; this module only serves its files. They
are read into memory once, when the app is made: a reinstall of the package under a running
server (which replaces or moves the files) changes nothing until the server restarts, and a
missing file stops the start-up instead of answering 404 later.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
INDEX = "index.html"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
#: The page loads nothing from elsewhere and runs no inline script; ``blob:`` images are the
#: preview's snapshots, fetched by the page itself; videos play from this server.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
#: A request marked like this comes from the page's own ``fetch`` calls.
BROWSER_CLIENT_HEADER = "X-Requested-With"


def setup_web(app: web.Application) -> None:
    """Register ``/`` → ``/web/`` and the page's files; quiet Basic challenges for the page."""
    files = read_page_files(WEB_DIR)
    app.router.add_get("/", _redirect_to_page)
    app.router.add_get("/web", _redirect_to_page)
    app.router.add_get("/web/", _file_handler(INDEX, files[INDEX]))
    for name, body in files.items():
        app.router.add_get(f"/web/{name}", _file_handler(name, body))
    app.on_response_prepare.append(_quiet_basic_challenge)


async def _redirect_to_page(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/web/")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def read_page_files(directory: Path) -> dict[str, bytes]:
    """Name → contents of the page's files; raises ``RuntimeError`` when the page is missing."""
    try:
        files = {p.name: p.read_bytes() for p in sorted(directory.iterdir())
                 if p.is_file() and p.suffix in CONTENT_TYPES}
    except OSError as exc:
        raise RuntimeError(f"the web page's files cannot be read from {directory}: {exc}") \
            from exc
    if INDEX not in files:
        raise RuntimeError(f"the web page is incomplete: {directory / INDEX} is missing")
    return files


def _file_handler(name: str, body: bytes) -> Handler:
    headers = {"Content-Type": CONTENT_TYPES[Path(name).suffix], **SECURITY_HEADERS}

    async def serve(request: web.Request) -> web.StreamResponse:
        return web.Response(body=body, headers=headers)

    return serve


async def _quiet_basic_challenge(request: web.Request, response: web.StreamResponse) -> None:
    """Drop ``WWW-Authenticate`` from 401s to the page's requests.

    Browsers answer a Basic challenge on a ``fetch`` with their own password dialog, which would
    hide the page's login form. The page marks its requests with ``X-Requested-With``; every
    other client still gets the challenge (docs/protocol.rst).
    """
    if response.status == 401 and request.headers.get(BROWSER_CLIENT_HEADER):
        response.headers.pop("WWW-Authenticate", None)
