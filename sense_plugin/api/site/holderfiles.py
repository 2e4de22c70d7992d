"""``GET|HEAD /cluster/files/{exportid}/{name}``: one of this server's export files, for the site.

The other servers of the site call it (with a proof of the site secret, checked for every
``/cluster/`` request by ``internal.proof_middleware``) to relay a download to their client.
It serves exactly like ``downloadExportVideo`` (``api/fileserve.py``: Range, If-Range,
If-None-Match, HEAD, 416, the symlink-proof open and the recorded-size check, the chunked
form); the caller names the user it acts for (``user``, ``admin=1``), so the same exports are
visible as on the caller (-57 otherwise), and answers that serve the file carry
``X-Sense-Export-Directory`` (for a caller that reads the shared export root itself, and to
tell a file from a coded error document, which never carries it).
"""

from __future__ import annotations

from aiohttp import web

from sense_plugin.api.commands.exports import parse_export_id
from sense_plugin.api.fileserve import (
    allowed_file,
    check_file_name,
    chunk_params,
    serve_export_file,
)
from sense_plugin.api.keys import ENGINE
from sense_plugin.api.site.relay import DIRECTORY_HEADER, ROUTE
from sense_plugin.params import Params


async def export_file(request: web.Request) -> web.StreamResponse:
    """Serve ``name`` of export ``exportid`` for the user the calling server names."""
    engine = request.app[ENGINE]
    params = Params(request.query.items())
    export_id = parse_export_id(request.match_info["exportid"])
    export = await engine.get(export_id, params.text("user") or "", params.text("admin") == "1")
    name = request.match_info["name"]
    check_file_name(name)
    expected = allowed_file(export, name)
    return await serve_export_file(request, export.directory, engine.roots, name, expected,
                                   engine.download_stop(export_id), chunk_params(params),
                                   {DIRECTORY_HEADER: str(export.directory)})


def setup_files(app: web.Application) -> None:
    """Mount the route (GET, and HEAD with the same headers)."""
    app.router.add_get(ROUTE, export_file)
