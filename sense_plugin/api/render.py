"""XML rendering: pure functions from result objects to ``<result errorcode="N">`` documents."""

from __future__ import annotations

from functools import singledispatch
from typing import Any

from lxml import etree
from lxml.builder import E

from sense_plugin.api import results as r
from sense_plugin.errors import ResultCode
from sense_plugin.timestamps import format_timestamp

XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
CONTENT_TYPE = "text/xml; charset=utf-8"


def document(code: int, *children: etree._Element) -> bytes:
    """Serialise a complete result document with the XML declaration."""
    root = E.result(*children, errorcode=str(int(code)))
    body: bytes = etree.tostring(root, encoding="utf-8")
    return XML_DECLARATION + body


def success(result: Any) -> bytes:
    """The document for a successful command returning ``result`` (None: empty result)."""
    if result is None:
        return document(ResultCode.OK)
    rendered = render(result)
    if isinstance(rendered, bytes):  # a pre-serialised fragment (see exportxml)
        return wrap_success(rendered)
    children = rendered if isinstance(rendered, list) else [rendered]
    return document(ResultCode.OK, *children)


def wrap_success(fragment: bytes) -> bytes:
    """The success document around an already serialised child element."""
    return XML_DECLARATION + b'<result errorcode="0">' + fragment + b"</result>"


def error(code: int, description: str, incident: str | None = None) -> bytes:
    """The document for a failed command."""
    children = [E.description(_clean(description))]
    if incident:
        children.append(E.incident(incident))
    return document(code, *children)


def ts(instant_us: int | None) -> str:
    """Wire form of an optional instant (empty when unknown)."""
    return "" if instant_us is None else format_timestamp(instant_us)


def _clean(text: str) -> str:
    """Drop characters XML 1.0 cannot carry (client input may be echoed in descriptions)."""
    return "".join(ch for ch in text if ch in "\t\n\r" or (ch >= " " and ch not in "\ufffe\uffff"
                                                           and not "\ud800" <= ch <= "\udfff"))


@singledispatch
def render(result: Any) -> etree._Element | list[etree._Element] | bytes:
    """Render a result object into the children of ``<result>``."""
    raise TypeError(f"no renderer for {type(result).__name__}")


@render.register
def _(result: r.ApiInfo) -> etree._Element:
    return E.apiinfo(E.utc(format_timestamp(result.utc_us)), E.version(result.version))


@render.register
def _(result: r.SessionKey) -> etree._Element:
    return E.sessionkey(result.key)


@render.register
def _(result: r.DeviceList) -> etree._Element:
    return E.devices(
        *(E.device(E.name(d.name), E.serverid(str(d.server_id)), E.deviceid(str(d.device_id)),
                   E.status(d.status), E.type(d.type)) for d in result.devices),
        count=str(len(result.devices)),
    )


@render.register
def _(result: r.DivaList) -> etree._Element:
    return E.divas(
        *(E.diva(E.divaid(str(s.server_id)), E.type(s.type), E.name(s.name),
                 *([] if s.status is None else [E.status(s.status)]))
          for s in result.servers),
        count=str(len(result.servers)),
    )


@render.register
def _(result: r.ServerOptions) -> etree._Element:
    return E.serveroptions(
        E.serverid(str(result.server_id)), E.description(result.description),
        E.title(result.title), E.version(result.version), E.cameracount(str(result.camera_count)),
        E.maxspan(str(result.max_span_s)),
        E.signingkey(result.signing_key_pem),
        E.signingkeyfingerprint(result.signing_key_fingerprint),
    )


@render.register
def _(result: r.ServerStatus) -> etree._Element:
    return E.serverstatus(
        E.serverid(str(result.server_id)),
        E.devices(
            *(E.device(E.deviceid(str(d.device_id)), E.name(d.name),
                       E.firstrecordedimage(ts(d.first_us)), E.lastrecordedimage(ts(d.last_us)))
              for d in result.devices),
            count=str(len(result.devices)),
        ),
    )


def _held(start_us: int, end_us: int, held: tuple[tuple[int, int], ...]
          ) -> list[etree._Element]:
    """``<held>true</held>`` for an interval an evidence hold keeps out of retention."""
    if any(s < end_us and start_us < e for s, e in held):
        return [E.held("true")]
    return []


@render.register
def _(result: r.Recordings) -> etree._Element:
    gaps = []
    cursor = result.start_us
    for start, end in result.intervals:
        if start > cursor:
            gaps.append((cursor, start))
        cursor = max(cursor, end)
    if cursor < result.end_us:
        gaps.append((cursor, result.end_us))
    return E.recordings(
        E.serverid(str(result.server_id)), E.deviceid(str(result.device_id)),
        E.starttime(ts(result.start_us)), E.endtime(ts(result.end_us)),
        E.intervals(*(E.interval(E.starttime(ts(s)), E.endtime(ts(e)),
                                 *_held(s, e, result.held))
                      for s, e in result.intervals), count=str(len(result.intervals))),
        E.gaps(*(E.gap(E.starttime(ts(s)), E.endtime(ts(e))) for s, e in gaps),
               count=str(len(gaps))),
    )
