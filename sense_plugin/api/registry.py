"""The command registry: lower-cased command name → handler and required permission."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from sense_plugin.api.users import User
from sense_plugin.params import Params


@dataclass(frozen=True)
class CommandContext:
    """What a handler gets: the request, its parameters, the body and the caller."""

    request: web.Request
    params: Params
    body: bytes
    user: User

    @property
    def app(self) -> web.Application:
        return self.request.app


Handler = Callable[[CommandContext], Awaitable[Any]]


@dataclass(frozen=True)
class Command:
    name: str
    handler: Handler
    permission: str
    #: Only reads: a foreign page gains nothing by starting it (it cannot read the answer),
    #: so no proof of same origin is asked for. Every other command needs it (api/origin.py).
    read_only: bool = False


class CommandRegistry:
    """Maps command names (case-insensitive) to :class:`Command` entries."""

    def __init__(self, commands: Iterable[Command] = ()) -> None:
        self._commands: dict[str, Command] = {}
        for command in commands:
            self.add(command)

    def add(self, command: Command) -> None:
        key = command.name.lower()
        if key in self._commands:
            raise ValueError(f"command {command.name} registered twice")
        self._commands[key] = command

    def get(self, name: str) -> Command | None:
        return self._commands.get(name.lower())
