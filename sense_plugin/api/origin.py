"""CSRF defence: a browser request that changes state must prove it comes from our own page.

Browsers attach cookies (and remembered Basic credentials) to requests that other pages start,
so a request that creates, removes or stops exports, logs in or out, must show it is not such a
forgery. Proof is any of:

* ``X-Requested-With`` (the page's ``fetch`` calls send it) or an XML ``Content-Type``: another
  origin cannot send either without a CORS preflight, which this server never grants;
* no ``Origin`` and no ``Sec-Fetch-Site`` at all: not a browser (VDG Sense, curl, scripts), or
  a browser too old to send them (SameSite=Strict cookies still keep cross-site pages out);
* ``Origin`` equal to one of this server's configured origins and ``Sec-Fetch-Site``
  ``same-origin`` or ``none`` (typed by the user), when present.

Anything else answers -1002 naming the header that gave the request away.

Before all of that, every request must name this server in its ``Host`` header (DNS
rebinding: a page of ``rebind.attacker.example`` whose name now points at 127.0.0.1 is
"same origin" to the browser, proofs and all, but its requests still say whose page it is in
``Host``). The names this server answers to are configured, never taken from a request:
``[http] host``, ``localhost``, the loopback addresses, the host of ``[cluster] node_url`` and
``[http] allowed_hosts``; any IP address literal is also accepted, since no name was resolved to
reach it. Its own origins are those names (and the address the client connected to) with the
scheme and port of the socket that took the request. See docs/security.rst, "Host names".
"""

from __future__ import annotations

import functools
import ipaddress
from urllib.parse import urlsplit

from aiohttp import web

from sense_plugin.api.keys import CONFIG
from sense_plugin.config import Config
from sense_plugin.errors import PermissionDeniedError, quote_input

PROOF_HEADER = "X-Requested-With"
XML_TYPES = frozenset({"text/xml", "application/xml"})
SAFE_FETCH_SITES = frozenset({"same-origin", "none"})
DEFAULT_PORTS = {"http": "80", "https": "443"}
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})


class CrossOriginError(PermissionDeniedError):
    """A state-changing request that another web page may have started (-1002)."""


class UnknownHostError(PermissionDeniedError):
    """A request for a host name this server is not configured to answer to (-1002, 421)."""

    http_status = 421


def server_names(config: Config) -> frozenset[str]:
    """The host names (lower case) this server answers to, all from its configuration."""
    names = set(LOOPBACK_NAMES)
    if config.http.host.lower() not in WILDCARD_HOSTS:
        names.add(_host_name(config.http.host))
    if config.cluster is not None:
        names.add(_host_name(urlsplit(config.cluster.node_url).netloc))
    names.update(_host_name(urlsplit(h).netloc if "://" in h else h)
                 for h in config.http.allowed_hosts)
    return frozenset(names)


def check_host(request: web.Request) -> None:
    """Raise :class:`UnknownHostError` unless ``Host`` names this server (or is an address)."""
    host = request.headers.get("Host")
    if host is None:  # HTTP/1.0 without Host: not a browser
        return
    name = _host_name(host)
    if _is_address(name) or name in server_names(request.app[CONFIG]):
        return
    raise UnknownHostError(
        f"request refused: this server does not answer to the host name "
        f"{quote_input(name, 80)} (Host header); an operator may add it to [http] allowed_hosts")


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
    if origin is not None and _normalise(origin) not in own_origins(request):
        raise CrossOriginError(
            f"{action} refused: it comes from the page of another origin "
            f"(Origin: {quote_input(origin)}), not from one of this server's configured names")


def own_origins(request: web.Request) -> frozenset[str]:
    """This server's origins: its configured names with the scheme and port of the socket
    that took ``request`` (never its ``Host``), and the origins listed in ``allowed_hosts``."""
    config: Config = request.app[CONFIG]
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    names = set(server_names(config))
    port = str(config.http.port)
    if isinstance(sockname, tuple):
        names.add(str(sockname[0]).lower())
        port = str(sockname[1])
    origins = {_normalise(f"{request.scheme}://{_authority(n)}:{port}") for n in names}
    origins.update(_normalise(h) for h in config.http.allowed_hosts if "://" in h)
    return frozenset(origins)


def _authority(name: str) -> str:
    return f"[{name}]" if ":" in name else name


def _host_name(host: str) -> str:
    """The name of a ``Host`` value or authority: no port, no brackets, lower case."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    if host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


@functools.lru_cache(maxsize=256)  # a pure function of the text; every request asks it
def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _normalise(origin: str) -> str:
    scheme, sep, rest = origin.strip().lower().partition("://")
    if not sep:
        return origin.strip().lower()
    authority = rest.rstrip("/")
    host, colon, port = authority.rpartition(":")
    if colon and port == DEFAULT_PORTS.get(scheme):  # http://h:80 is http://h
        authority = host
    return f"{scheme}://{authority}"
