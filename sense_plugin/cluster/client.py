"""Signed calls to another server of the site (the caller's half of ``signing``)."""

from __future__ import annotations

from urllib.parse import urlsplit

import aiohttp

from sense_plugin.cluster.signing import HEADER, sign


async def signed_request(session: aiohttp.ClientSession, secret: str, method: str, url: str,
                         body: bytes = b"") -> tuple[int, bytes]:
    """``method url`` with a proof of ``secret``; the status and body of the answer."""
    parts = urlsplit(url)
    path_qs = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    proof = sign(secret, method, parts.netloc, path_qs, body)
    async with session.request(method, url, data=body or None,
                               headers={HEADER: proof}) as response:
        return response.status, await response.read()
