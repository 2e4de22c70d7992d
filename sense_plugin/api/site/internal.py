"""The internal endpoints other servers of the site call, under ``/cluster/``.

Every request there must carry a valid ``X-Sense-Proof`` (``signing``): a missing or wrong
one is answered 401 with an XML error document (the authentication result code), before any handler.
A proof is checked against this server's own address, the authority of ``[cluster] node_url``
(how the other servers reach it, and what they sign), never against the request's ``Host``: a
proof made for another server of the site is refused here even when its Host is sent along.
``GET /cluster/ping`` answers this server's id and time: the end-to-end proof of signing.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web
from lxml.builder import E

from sense_plugin.api.keys import CONFIG
from sense_plugin.api.middleware import Handler, xml_response
from sense_plugin.api.render import document
from sense_plugin.cluster.signing import HEADER, ProofError, Verifier
from sense_plugin.errors import AuthRequiredError, ResultCode
from sense_plugin.timestamps import format_timestamp, now_us

PREFIX = "/cluster/"
VERIFIER = web.AppKey("cluster_verifier", Verifier)


class ClusterProofError(AuthRequiredError):
    """A server-to-server call without a valid proof of the site secret (401)."""


@web.middleware
async def proof_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Verify the proof of every ``/cluster/`` request; others pass untouched."""
    if not request.path.startswith(PREFIX):
        return await handler(request)
    body = await request.read()
    cluster = request.app[CONFIG].cluster
    own = urlsplit(cluster.node_url).netloc if cluster is not None else request.host
    try:
        request.app[VERIFIER].verify(request.headers.get(HEADER), request.method, own,
                                     request.path_qs, body)
    except ProofError as exc:
        raise ClusterProofError(f"server-to-server call refused: {exc}") from None
    return await handler(request)


async def ping(request: web.Request) -> web.Response:
    """``GET /cluster/ping``: this server's id and time, for a signed caller."""
    config = request.app[CONFIG]
    pong = E.pong(E.serverid(str(config.server.server_id)), E.utc(format_timestamp(now_us())))
    return xml_response(document(ResultCode.OK, pong))


def setup_internal(app: web.Application, secret: str) -> None:
    """Mount ``/cluster/`` with its proof check (call before the app is frozen)."""
    app[VERIFIER] = Verifier(secret)
    app.middlewares.append(proof_middleware)
    app.router.add_get(PREFIX + "ping", ping)
