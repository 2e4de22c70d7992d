"""Command handlers, grouped by domain; ``all_commands`` lists every registered command."""

from __future__ import annotations

from sense_plugin.api import downloads
from sense_plugin.api.commands import custody, devices, exports, playback, session, snapshots
from sense_plugin.api.registry import Command


def all_commands() -> list[Command]:
    """Every command the server answers."""
    return [*devices.COMMANDS, *exports.COMMANDS, *snapshots.COMMANDS, *playback.COMMANDS,
            *downloads.COMMANDS, *session.COMMANDS, *custody.COMMANDS]
