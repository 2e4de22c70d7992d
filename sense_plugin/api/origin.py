"""CSRF defence: a browser request that changes state must prove it comes from our own page.

Browsers attach cookies (and remembered Basic credentials) to requests that other pages start,
so a request that creates, removes or stops exports, logs in or out, must show it is not such a
forgery. Proof is any of:

* ``X-Requested-With`` (the page's ``fetch`` calls send it) or an XML ``Content-Type``: another
  origin cannot send either without a CORS preflight, which this server never grants;
* no ``Origin`` and no ``Sec-Fetch-Site`` at all: not a browser (VDG Sense, curl, scripts), or
  a browser too old to send them (SameSite=Strict cookies still keep cross-site pages out);
* ``Origin`` equal to this server's own origin and ``Sec-Fetch-Site`` ``same-origin`` or
  ``none`` (typed by the user), when present.

Anything else answers -1002 naming the header that gave the request away.
"""

from __future__ import annotations

from aiohttp import web

from sense_plugin.errors import PermissionDeniedError, quote_input

PROOF_HEADER = "X-Requested-With"
XML_TYPES = frozenset({"text/xml", "application/xml"})
SAFE_FETCH_SITES = frozenset({"same-origin", "none"})
DEFAULT_PORTS = {"http": "80", "https": "443"}


class CrossOriginError(PermissionDeniedError):
    """A state-changing request that another web page may have started (-1002)."""


def check_same_origin(request: web.Request, action: str) -> None:
    """Raise :class:`CrossOriginError` unless ``request`` proves it is not a forgery."""
    if request.headers.get(PROOF_HEADER) or request.content_type in XML_TYPES:
        return
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site.strip().lower() not in SAFE_FETCH_SITES:
        raise CrossOriginError(
            f"{action} refused: the browser says another site started it "
            f"(Sec-Fetch-Site: {quote_input(site, 20)}); this server's own page sends "
            f"{PROOF_HEADER}")
    origin = request.headers.get("Origin")
    own = own_origin(request)
    if origin is not None and _normalise(origin) != own:
        raise CrossOriginError(
            f"{action} refused: it comes from the page of another origin "
            f"(Origin: {quote_input(origin)}, this server is {quote_input(own)})")


def own_origin(request: web.Request) -> str:
    return _normalise(f"{request.scheme}://{request.host}")


def _normalise(origin: str) -> str:
    scheme, sep, rest = origin.strip().lower().partition("://")
    if not sep:
        return origin.strip().lower()
    authority = rest.rstrip("/")
    host, colon, port = authority.rpartition(":")
    if colon and port == DEFAULT_PORTS.get(scheme):  # http://h:80 is http://h
        authority = host
    return f"{scheme}://{authority}"
