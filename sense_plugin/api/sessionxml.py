"""Result and XML of the ``logout`` command (schema ``schemas/logout.xsd``)."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree
from lxml.builder import E

from sense_plugin.api import render


@dataclass(frozen=True)
class LoggedOut:
    revoked: int


@render.render.register
def _(result: LoggedOut) -> etree._Element:
    return E.revoked(str(result.revoked))
