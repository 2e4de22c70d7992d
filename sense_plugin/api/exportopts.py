"""Parse the ``<export>`` elements of docs/exports.rst, docs/rendering.rst into
:class:`ExportOptions`.

Every problem is a coded error naming the element (-10 missing, -22 bad value, -23 empty);
the device ranges, whose rules depend on the kind, are checked in ``commands.exports``.
"""

from __future__ import annotations

from lxml import etree

from sense_plugin.config import Config
from sense_plugin.errors import OutOfRangeError, quote_input
from sense_plugin.export.callbacks import check_callback
from sense_plugin.export.renderxml import parse_render
from sense_plugin.media.exportoptions import (
    MODES,
    OUTPUTS,
    SNAPSHOT_FORMATS,
    STREAM_FORMATS,
    ExportOptions,
)
from sense_plugin.media.renderoptions import RenderOptions, validate_request
from sense_plugin.params import parse_int
from sense_plugin.xmlin import child_text

#: 10^6 MB = one terabyte per part: more is a typo.
MAX_FILE_SIZE_MB = 1_000_000
MAX_KEEPALIVE_S = 7 * 86400
AUDIO_VALUES = {"true": True, "1": True, "false": False, "0": False}


def parse_options(document: etree._Element, config: Config) -> tuple[ExportOptions, str]:
    """The options and the output format (``mp4`` … or ``jpg``/``png``) of a request."""
    mode = _choice(document, "mode", MODES, "archive")
    output = _choice(document, "output", OUTPUTS, "stream")
    snapshot = output == "snapshot"
    formats = SNAPSHOT_FORMATS if snapshot else STREAM_FORMATS
    fmt = _choice(document, "format", formats, formats[0],
                  what=f"for {output} output")
    size_text = child_text(document, "maxfilesize")
    maxfilesize = 0 if size_text is None else parse_int(size_text, "maxfilesize", 0,
                                                        MAX_FILE_SIZE_MB)
    if snapshot and maxfilesize:
        raise OutOfRangeError("maxfilesize applies to stream output only, not to a snapshot")
    keepalive_text = child_text(document, "keepalive")
    keepalive = (config.export.live_keepalive_s if mode == "live" else 0) \
        if keepalive_text is None else parse_int(keepalive_text, "keepalive", 0,
                                                 MAX_KEEPALIVE_S)
    render_el = document.find("render")
    if snapshot and render_el is not None:
        _check_snapshot_render(render_el)
    timestamps = "none"
    if child_text(document, "timestamps") is not None:
        timestamps = _choice(document, "timestamps", ("subtitle",), "subtitle")
        if snapshot or fmt == "ts":
            raise OutOfRangeError(
                "timestamps subtitle needs an mp4 or mkv stream "
                f"({'a snapshot has no subtitle track' if snapshot else 'format ts has none'})")
    render = None if render_el is None else validate_request(parse_render(render_el))
    options = ExportOptions(
        mode=mode, output=output, audio=_audio(document), maxfilesize_mb=maxfilesize,
        keepalive_s=keepalive, render=render, timestamps=timestamps,
        device_renders=_device_renders(document, snapshot),
        callback=_callback(document, config),
    )
    return options, fmt


def _device_renders(document: etree._Element, snapshot: bool) -> tuple[
        tuple[int, RenderOptions], ...]:
    """``<devices><device><render>``: per position, replacing the export's ``<render>``."""
    found = []
    for index, device in enumerate(document.findall("devices/device")):
        element = device.find("render")
        if element is None:
            continue
        if snapshot:
            _check_snapshot_render(element)
        found.append((index, validate_request(parse_render(element))))
    return tuple(found)


def _check_snapshot_render(render_el: etree._Element) -> None:
    """A still has no frame rate or encoder."""
    for tag in ("fps", "codec", "quality"):
        if render_el.find(tag) is not None:
            raise OutOfRangeError(f"render/{tag} does not apply to a snapshot (timestamp, "
                                  "comment, mask, crop and width do)")


def _callback(document: etree._Element, config: Config) -> str:
    """``<callback>``: a URL to an allowed host (-22 otherwise), or ""."""
    url = child_text(document, "callback")
    return "" if url is None else check_callback(url, config)


def keepalive_given(document: etree._Element) -> bool:
    return document.find("keepalive") is not None


def _choice(document: etree._Element, name: str, choices: tuple[str, ...], default: str,
            what: str = "") -> str:
    text = child_text(document, name)
    if text is None:
        return default
    value = text.lower()
    if value not in choices:
        suffix = f" {what}" if what else ""
        raise OutOfRangeError(
            f"{name} '{quote_input(text, 20)}' is not one of {', '.join(choices)}{suffix}")
    return value


def _audio(document: etree._Element) -> bool:
    text = child_text(document, "audio")
    if text is None:
        return True
    value = AUDIO_VALUES.get(text.lower())
    if value is None:
        raise OutOfRangeError(
            f"audio '{quote_input(text, 20)}' is not one of true, false, 1, 0")
    return value
