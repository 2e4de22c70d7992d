"""What a rendered (re-encoded) export applies: overlays, masks, crop, scale, rate, codec.

Plain frozen dataclasses, validated on construction (``validate_*`` raise the coded errors the
API answers with), and a flat description of every option for the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sense_plugin.errors import OutOfRangeError, quote_input

POSITIONS = ("top-left", "top-right", "bottom-left", "bottom-right")
MASK_STYLES = ("solid", "pixelate")
CODECS = {"h264": "libx264", "h265": "libx265"}
#: quality → x264/x265 constant rate factor (lower is better and larger)
QUALITY_CRF = {"high": 18, "medium": 23, "low": 28}
MAX_FORMAT_CHARS = 100
MIN_WIDTH = 16
#: Frames per second at least: one frame a second is the slowest rendered rate.
MIN_FPS = 1.0
#: A crop or mask edge is at least this many pixels (chroma planes are half size).
MIN_EDGE_PX = 2
#: The widest picture a render may start from; an edge under 2 px even there is a typo.
MAX_SOURCE_WIDTH = 7680
#: The smallest picture each encoder opens for (libx265 refuses anything under 16 px).
CODEC_MIN_SIZE = {"h264": (2, 2), "h265": (16, 16)}
DEFAULT_TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


@dataclass(frozen=True)
class Rect:
    """A rectangle in relative coordinates (0..1 of the frame's width and height)."""

    x: float
    y: float
    w: float
    h: float

    def pixels(self, width: int, height: int, align: int = 2) -> tuple[int, int, int, int]:
        """``(x0, y0, w, h)`` in pixels, aligned to ``align`` (chroma planes are half size)."""
        x0 = min(int(self.x * width) // align * align, width - align)
        y0 = min(int(self.y * height) // align * align, height - align)
        x1 = min(width, -(-round((self.x + self.w) * width) // align) * align)
        y1 = min(height, -(-round((self.y + self.h) * height) // align) * align)
        # Never outside the picture, never empty: an edge at x=1 is the last column pair.
        return x0, y0, max(align, x1 - x0), max(align, y1 - y0)


@dataclass(frozen=True)
class Text:
    """A text overlay: position, ``#RRGGBB`` colour as a triple, size as a fraction of height."""

    position: str = "top-left"
    color: tuple[int, int, int] = (255, 255, 255)
    size: float = 0.04


@dataclass(frozen=True)
class Timestamp(Text):
    """The frame's archive (wall-clock) time, formatted with strftime (``%f`` = milliseconds)."""

    fmt: str = DEFAULT_TIMESTAMP_FORMAT
    timezone: str = "UTC"

    def format(self, archive_us: int) -> str:
        """The overlay text of a frame at ``archive_us`` µs since the epoch."""
        moment = datetime.fromtimestamp(archive_us // 1_000_000, ZoneInfo(self.timezone))
        millis = f"{archive_us % 1_000_000 // 1000:03d}"
        return moment.strftime(self.fmt.replace("%f", millis))


@dataclass(frozen=True)
class Comment(Text):
    """A fixed comment line (the case number, the operator's note)."""

    text: str = ""
    position: str = "bottom-left"


@dataclass(frozen=True)
class Mask:
    """A privacy mask: ``solid`` fills the area, ``pixelate`` keeps only coarse blocks."""

    area: Rect
    style: str = "solid"


@dataclass(frozen=True)
class RenderOptions:
    """Everything ``<render>`` asks for; an empty one still re-encodes (exact start)."""

    timestamp: Timestamp | None = None
    comment: Comment | None = None
    masks: tuple[Mask, ...] = field(default_factory=tuple)
    crop: Rect | None = None
    width: int | None = None
    fps: float | None = None
    codec: str = "h264"
    quality: str = "medium"

    def describe(self) -> list[tuple[str, str]]:
        """Every option as ``(name, value)`` pairs, for the manifest's ``<rendering>``."""
        items: list[tuple[str, str]] = [("codec", self.codec), ("quality", self.quality),
                                        ("crf", str(QUALITY_CRF[self.quality]))]
        if self.timestamp is not None:
            t = self.timestamp
            items += [("timestamp.format", t.fmt), ("timestamp.position", t.position),
                      ("timestamp.color", hex_color(t.color)), ("timestamp.size", f"{t.size:g}"),
                      ("timestamp.timezone", t.timezone)]
        if self.comment is not None:
            c = self.comment
            items += [("comment.text", c.text), ("comment.position", c.position),
                      ("comment.color", hex_color(c.color)), ("comment.size", f"{c.size:g}")]
        for n, mask in enumerate(self.masks, 1):
            a = mask.area
            items.append((f"mask{n}", f"{mask.style} x={a.x:g} y={a.y:g} w={a.w:g} h={a.h:g}"))
        if self.crop is not None:
            c2 = self.crop
            items.append(("crop", f"x={c2.x:g} y={c2.y:g} w={c2.w:g} h={c2.h:g}"))
        if self.width is not None:
            items.append(("width", str(self.width)))
        if self.fps is not None:
            items.append(("fps", f"{self.fps:g}"))
        return items


# -- validation (raises the coded errors the API answers with) -----------------------------------


def validate_position(value: str, name: str) -> str:
    position = value.strip().lower()
    if position not in POSITIONS:
        raise OutOfRangeError(
            f"{name} '{quote_input(value, 30)}' is not one of {', '.join(POSITIONS)}")
    return position


def parse_color(value: str, name: str) -> tuple[int, int, int]:
    """``#RRGGBB`` only (docs/rendering.rst)."""
    text = value.strip()
    digits = text[1:]
    if (len(text) != 7 or text[0] != "#" or not digits.isascii()
            or any(c not in "0123456789abcdefABCDEF" for c in digits)):
        raise OutOfRangeError(f"{name} '{quote_input(value, 30)}' is not a #RRGGBB colour")
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)


def hex_color(color: tuple[int, int, int]) -> str:
    return "#{:02X}{:02X}{:02X}".format(*color)


_STRFTIME_FIELDS = frozenset("aAwdbBmyYHIpMSfzZjUWcxXGuVeFTRDnt%")


def validate_format(value: str, name: str) -> str:
    """A strftime format of known fields (``%f`` = milliseconds), at most 100 characters."""
    if len(value) > MAX_FORMAT_CHARS:
        raise OutOfRangeError(f"{name} is longer than {MAX_FORMAT_CHARS} characters")
    i = value.find("%")
    while i >= 0:
        field_char = value[i + 1:i + 2]
        if field_char not in _STRFTIME_FIELDS or not field_char:
            raise OutOfRangeError(
                f"{name} '{quote_input(value, 40)}' has an unknown field '%{field_char}'")
        i = value.find("%", i + 2)
    return value


def validate_timezone(value: str, name: str) -> str:
    try:
        ZoneInfo(value.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise OutOfRangeError(
            f"{name} '{quote_input(value, 40)}' is not a known time zone") from None
    return value.strip()


def validate_rect(rect: Rect, name: str) -> Rect:
    """Inside the frame: 0 ≤ x, y; w, h > 0; x + w ≤ 1; y + h ≤ 1 (docs/rendering.rst)."""
    eps = 1e-9
    if not (rect.x >= 0 and rect.y >= 0 and rect.w > 0 and rect.h > 0
            and rect.x + rect.w <= 1 + eps and rect.y + rect.h <= 1 + eps):
        raise OutOfRangeError(
            f"{name} x={rect.x:g} y={rect.y:g} w={rect.w:g} h={rect.h:g} does not lie inside "
            "the frame (0..1, w and h > 0, x+w and y+h at most 1)")
    return rect


def validate_request(options: RenderOptions) -> RenderOptions:
    """What a new request must also meet (not checked again on options read back from a
    manifest): ``fps`` at least :data:`MIN_FPS`, crop and mask edges of 2 px or more even on
    an 8K picture (smaller ones are typos or denormals)."""
    if options.fps is not None and not options.fps >= MIN_FPS:
        raise OutOfRangeError(f"render/fps {options.fps:g} is below the minimum of "
                              f"{MIN_FPS:g} frames per second")
    areas = [("render/crop", options.crop)] if options.crop is not None else []
    areas += [(f"render/mask[{n}]", m.area) for n, m in enumerate(options.masks, 1)]
    for name, rect in areas:
        if min(rect.w, rect.h) * MAX_SOURCE_WIDTH < MIN_EDGE_PX:
            raise OutOfRangeError(f"{name} w={rect.w:g} h={rect.h:g} is smaller than "
                                  f"{MIN_EDGE_PX} pixels on any picture")
    return options


def check_picture(options: RenderOptions, source: tuple[int, int],
                  output: tuple[int, int]) -> None:
    """-22 unless every crop and mask edge is 2 px or more on the ``source`` picture and
    the ``output`` picture is one the codec can encode (docs/security.rst, "Render admission")."""
    width, height = source
    areas = [("render/crop", options.crop)] if options.crop is not None else []
    areas += [(f"render/mask[{n}]", m.area) for n, m in enumerate(options.masks, 1)]
    for name, area in areas:
        edge_w, edge_h = area.w * width, area.h * height
        if min(edge_w, edge_h) < MIN_EDGE_PX:
            raise OutOfRangeError(
                f"{name} is {edge_w:.3g}x{edge_h:.3g} pixels on the {width}x{height} picture; "
                f"each edge must be at least {MIN_EDGE_PX} pixels")
    min_w, min_h = CODEC_MIN_SIZE.get(options.codec, (2, 2))
    if output[0] < min_w or output[1] < min_h:
        raise OutOfRangeError(
            f"render/codec {options.codec} encodes pictures of at least {min_w}x{min_h}; this "
            f"render makes {output[0]}x{output[1]} (crop less or ask for a larger width)")


def validate_choice(value: str, name: str, choices: tuple[str, ...] | list[str]) -> str:
    choice = value.strip().lower()
    if choice not in choices:
        raise OutOfRangeError(
            f"{name} '{quote_input(value, 30)}' is not one of {', '.join(choices)}")
    return choice
