"""Parse ``<render>`` (docs/rendering.rst) into :class:`RenderOptions`; every problem is a coded
error."""

from __future__ import annotations

import math

from lxml import etree

from sense_plugin.errors import EmptyValueError, OutOfRangeError, quote_input
from sense_plugin.media.renderoptions import (
    CODECS,
    DEFAULT_TIMESTAMP_FORMAT,
    MASK_STYLES,
    MIN_WIDTH,
    QUALITY_CRF,
    Comment,
    Mask,
    Rect,
    RenderOptions,
    Timestamp,
    parse_color,
    validate_choice,
    validate_format,
    validate_position,
    validate_rect,
    validate_timezone,
)
from sense_plugin.params import parse_int
from sense_plugin.xmlin import child_text

#: No camera sends more than 8K; a larger width is a typo.
MAX_WIDTH = 7680
MAX_FPS = 120.0
MAX_MASKS = 32
MAX_COMMENT_CHARS = 200
SIZE_RANGE = (0.01, 0.25)


def parse_render(element: etree._Element) -> RenderOptions:
    """The options of one ``<render>`` element (children in any order, all optional)."""
    masks = tuple(_mask(m, n) for n, m in enumerate(element.findall("mask"), 1))
    if len(masks) > MAX_MASKS:
        raise OutOfRangeError(f"render has {len(masks)} masks, at most {MAX_MASKS} are allowed")
    crop_el = element.find("crop")
    width = child_text(element, "width")
    fps = child_text(element, "fps")
    return RenderOptions(
        timestamp=_timestamp(element.find("timestamp")),
        comment=_comment(element.find("comment")),
        masks=masks,
        crop=None if crop_el is None else validate_rect(_rect(crop_el, "render/crop"),
                                                        "render/crop"),
        width=None if width is None else parse_int(width, "render/width", MIN_WIDTH, MAX_WIDTH),
        fps=None if fps is None else _number(fps, "render/fps", 0.0, MAX_FPS, open_low=True),
        codec=validate_choice(child_text(element, "codec") or "h264", "render/codec",
                              list(CODECS)),
        quality=validate_choice(child_text(element, "quality") or "medium", "render/quality",
                                list(QUALITY_CRF)),
    )


def _timestamp(element: etree._Element | None) -> Timestamp | None:
    if element is None:
        return None
    name = "render/timestamp"
    fmt = _raw_text(element, "format")
    return Timestamp(
        fmt=validate_format(fmt, f"{name}/format") if fmt is not None
        else DEFAULT_TIMESTAMP_FORMAT,
        position=validate_position(child_text(element, "position") or "top-left",
                                   f"{name}/position"),
        color=parse_color(child_text(element, "color") or "#FFFFFF", f"{name}/color"),
        size=_size(child_text(element, "size"), f"{name}/size"),
        timezone=validate_timezone(child_text(element, "timezone") or "UTC",
                                   f"{name}/timezone"),
    )


def _comment(element: etree._Element | None) -> Comment | None:
    if element is None:
        return None
    name = "render/comment"
    text = child_text(element, "text", required=True) or ""
    if len(text) > MAX_COMMENT_CHARS:
        raise OutOfRangeError(f"{name}/text is longer than {MAX_COMMENT_CHARS} characters")
    if any(ord(c) < 32 for c in text):
        raise OutOfRangeError(f"{name}/text must be one line without control characters")
    return Comment(
        text=text,
        position=validate_position(child_text(element, "position") or "bottom-left",
                                   f"{name}/position"),
        color=parse_color(child_text(element, "color") or "#FFFFFF", f"{name}/color"),
        size=_size(child_text(element, "size"), f"{name}/size"),
    )


def _mask(element: etree._Element, number: int) -> Mask:
    name = f"render/mask[{number}]"
    style = validate_choice(child_text(element, "style") or "solid", f"{name}/style",
                            MASK_STYLES)
    return Mask(validate_rect(_rect(element, name), name), style)


def _rect(element: etree._Element, name: str) -> Rect:
    values = [_number(child_text(element, key, required=True) or "", f"{name}/{key}", 0.0, 1.0)
              for key in ("x", "y", "w", "h")]
    return Rect(*values)


def _size(text: str | None, name: str) -> float:
    if text is None:
        return 0.04
    return _number(text, name, *SIZE_RANGE)


def _raw_text(parent: etree._Element, name: str) -> str | None:
    """A child's text with its spaces kept (a strftime format may end in a space)."""
    child = parent.find(name)
    if child is None:
        return None
    text = "".join(child.itertext())
    if not text.strip():
        raise EmptyValueError(f"element <{name}> in <{parent.tag}> is empty")
    return text


def _number(text: str, name: str, low: float, high: float, open_low: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        raise OutOfRangeError(f"{name} '{quote_input(text, 30)}' is not a number") from None
    if not math.isfinite(value) or value > high or value < low or (open_low and value <= low):
        bound = f"above {low:g}" if open_low else f"at least {low:g}"
        raise OutOfRangeError(f"{name} {quote_input(text, 30)} must be {bound} and at most "
                              f"{high:g}")
    return value
