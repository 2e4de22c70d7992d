"""Headers on every response: no sniffing, no framing, no referrer, no version banner."""

from __future__ import annotations

from aiohttp import web

#: The ``Server`` header: the product, never the Python or aiohttp version.
SERVER_NAME = "sense_plugin"
#: Defaults for every response; the web page's files set a CSP of their own (see ``web.py``).
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; sandbox",
    "Referrer-Policy": "no-referrer",
}


def secure_headers(headers: dict[str, str] | None = None) -> dict[str, str]:
    """``headers`` plus the security headers and the ``Server`` name (for hand-made answers)."""
    return {**SECURITY_HEADERS, **(headers or {}), "Server": SERVER_NAME}


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare`` hook: runs for every response the application answers."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers["Server"] = SERVER_NAME
