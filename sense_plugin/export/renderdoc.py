"""The render options in the manifest, machine-readable (docs/rendering.rst): ``<render>`` as
requested.

``<rendering>`` describes the options for a reader; ``<render>`` (and ``<timestamps>``) repeat
them in the request's own syntax, so an export rebuilt from its manifest when the job store
is lost (``rebuild``) keeps them, and a retry of it renders the same way. Numbers are written
with ``repr`` (exact round trip); the manifest is signed, so they cannot change unnoticed.
Read back with the request's parser: older manifests without ``<render>`` mean none.
"""

from __future__ import annotations

from lxml import etree
from lxml.builder import E

from sense_plugin.media.exportoptions import ExportOptions
from sense_plugin.media.renderoptions import Rect, RenderOptions, Text, hex_color


def render_elements(options: ExportOptions) -> list[etree._Element]:
    """``<render>`` and ``<timestamps>`` of the manifest (none for a stream copy)."""
    elements: list[etree._Element] = []
    if options.render is not None:
        elements.append(_render(options.render))
    if options.timestamps != "none":
        elements.append(E.timestamps(options.timestamps))
    return elements


def _render(render: RenderOptions) -> etree._Element:
    element = E.render()
    if render.timestamp is not None:
        t = render.timestamp
        element.append(E.timestamp(E.format(t.fmt), *_text(t), E.timezone(t.timezone)))
    if render.comment is not None:
        element.append(E.comment(E.text(render.comment.text), *_text(render.comment)))
    for mask in render.masks:
        element.append(E.mask(*_rect(mask.area), E.style(mask.style)))
    if render.crop is not None:
        element.append(E.crop(*_rect(render.crop)))
    if render.width is not None:
        element.append(E.width(str(render.width)))
    if render.fps is not None:
        element.append(E.fps(repr(render.fps)))
    element.extend([E.codec(render.codec), E.quality(render.quality)])
    return element


def _text(text: Text) -> list[etree._Element]:
    return [E.position(text.position), E.color(hex_color(text.color)), E.size(repr(text.size))]


def _rect(rect: Rect) -> list[etree._Element]:
    return [E.x(repr(rect.x)), E.y(repr(rect.y)), E.w(repr(rect.w)), E.h(repr(rect.h))]


def read_render(root: etree._Element) -> tuple[RenderOptions | None, str]:
    """The render options and ``timestamps`` value a manifest states (defaults if absent).

    Raises the request parser's coded error (a ``SenseError``) for a ``<render>`` that does
    not parse.
    """
    from sense_plugin.export.renderxml import parse_render  # the request's own parser

    element = root.find("render")
    timestamps = root.findtext("timestamps") or "none"
    return (None if element is None else parse_render(element)), timestamps
