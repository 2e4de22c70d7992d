"""``logout`` (ext): revoke the caller's session, or with ``scope=all`` every session of theirs."""

from __future__ import annotations

from aiohttp import web

from sense_plugin.api import render
from sense_plugin.api.auth import SESSION_COOKIE
from sense_plugin.api.keys import AUTH
from sense_plugin.api.middleware import xml_response
from sense_plugin.api.registry import Command, CommandContext
from sense_plugin.api.sessionxml import LoggedOut
from sense_plugin.api.users import ANY
from sense_plugin.errors import OutOfRangeError, quote_input

SCOPES = ("session", "all")


async def logout(ctx: CommandContext) -> web.StreamResponse:
    """End the session of the cookie; ``scope=all`` also every other session of the user.

    Answers how many sessions ended and clears the cookie. ``scope=all`` works with HTTP
    Basic too, so a user who lost track of a session key can still revoke it.
    """
    if ctx.body.strip():
        raise OutOfRangeError("logout takes no request body (use the query: &scope=all)")
    scope = (ctx.params.text("scope") or "session").lower()
    if scope not in SCOPES:
        raise OutOfRangeError(f"scope '{quote_input(scope, 20)}' is not one of {', '.join(SCOPES)}")
    sessions = ctx.app[AUTH].sessions
    key = ctx.request.cookies.get(SESSION_COOKIE)
    revoked = int(sessions.revoke(key)) if key else 0
    if scope == "all":
        revoked += sessions.revoke_user(ctx.user.name)
    response = xml_response(render.success(LoggedOut(revoked)))
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


COMMANDS = [Command("logout", logout, ANY)]
