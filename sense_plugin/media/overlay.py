"""Burned-in text and privacy masks on YUV 4:2:0 frames held as numpy planes.

The bundled FFmpeg has no ``drawtext`` (no FreeType), so text is drawn with Pillow's own
TrueType font: every glyph is rasterised once per painter and strings are composed from the
cached glyph masks, so a timestamp that changes every frame costs a few array copies, not a
font rasterisation. Text sits on a darkened box, legible on any picture.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

from sense_plugin.media.renderoptions import Mask, Text

Plane = npt.NDArray[np.uint8]
#: Margin around the text box and between the box and the frame edge, in text heights.
MARGIN = 0.25
#: Text boxes keep this share of the picture underneath (0 = opaque black box).
BOX_KEEP = 0.35
MIN_TEXT_PX = 8


@dataclass
class Planes:
    """The three planes of one yuv420p frame (views into one contiguous array)."""

    y: Plane
    u: Plane
    v: Plane


def split_planes(data: Plane, width: int, height: int) -> Planes:
    """Views of Y, U and V in PyAV's ``to_ndarray(format="yuv420p")`` layout."""
    flat = data.reshape(-1)
    luma, chroma = width * height, (width // 2) * (height // 2)
    u = flat[luma:luma + chroma].reshape(height // 2, width // 2)
    v = flat[luma + chroma:luma + 2 * chroma].reshape(height // 2, width // 2)
    return Planes(flat[:luma].reshape(height, width), u, v)


def join_planes(y: Plane, u: Plane, v: Plane) -> Plane:
    """One contiguous array in the layout ``VideoFrame.from_ndarray(..., "yuv420p")`` reads."""
    height, width = y.shape
    return np.concatenate((y.reshape(-1), u.reshape(-1), v.reshape(-1))).reshape(
        height * 3 // 2, width)


def rgb_to_yuv(color: tuple[int, int, int]) -> tuple[int, int, int]:
    """BT.601 limited range, as H.264 cameras send it."""
    r, g, b = color
    y = 16 + (65.738 * r + 129.057 * g + 25.064 * b) / 256
    u = 128 + (-37.945 * r - 74.494 * g + 112.439 * b) / 256
    v = 128 + (112.439 * r - 94.154 * g - 18.285 * b) / 256
    return round(y), round(u), round(v)


class TextPainter:
    """Draws one overlay (position, colour, size) on frames of one size."""

    def __init__(self, style: Text, width: int, height: int) -> None:
        self.style, self.width, self.height = style, width, height
        self.px = max(MIN_TEXT_PX, round(style.size * height))
        font = ImageFont.load_default(size=self.px)
        if not isinstance(font, ImageFont.FreeTypeFont):
            raise RuntimeError("Pillow was built without FreeType: no scalable font for overlays")
        self.font = font
        ascent, descent = self.font.getmetrics()
        self.line_h = ascent + descent
        self.pad = max(1, round(self.px * MARGIN))
        self.yuv = rgb_to_yuv(style.color)
        self._glyphs: dict[str, tuple[Plane, int]] = {}
        self._last: tuple[str, Plane] | None = None

    def _glyph(self, char: str) -> tuple[Plane, int]:
        """The alpha mask of one character and its advance in pixels (rasterised once)."""
        cached = self._glyphs.get(char)
        if cached is None:
            advance = max(1, round(self.font.getlength(char)))
            left, _, right, _ = self.font.getbbox(char)
            width = int(max(advance, right) - min(0, left)) + 1
            image = Image.new("L", (width, self.line_h), 0)
            ImageDraw.Draw(image).text((-min(0, int(left)), 0), char, font=self.font, fill=255)
            cached = (np.asarray(image, dtype=np.uint8), advance)
            self._glyphs[char] = cached
        return cached

    def mask(self, text: str) -> Plane:
        """The alpha mask of ``text`` on one line, with the box padding around it."""
        if self._last is not None and self._last[0] == text:
            return self._last[1]
        glyphs = [self._glyph(c) for c in text]
        width = sum(a for _, a in glyphs) + max((g.shape[1] - a for g, a in glyphs[-1:]), default=0)
        canvas = np.zeros((self.line_h + 2 * self.pad, width + 2 * self.pad), np.uint8)
        x = self.pad
        for glyph, advance in glyphs:
            h, w = glyph.shape
            region = canvas[self.pad:self.pad + h, x:x + w]
            np.maximum(region, glyph[:, :region.shape[1]], out=region)
            x += advance
        self._last = (text, canvas)
        return canvas

    def paint(self, planes: Planes, text: str) -> None:
        """Blend ``text`` on its darkened box into ``planes`` (in place), clipped to the frame."""
        alpha = self.mask(text)
        margin = self.pad // 2 * 2
        if 2 * margin >= min(self.width, self.height):  # a tiny picture: no room for margins
            margin = 0
        # Clipped to what fits inside the margin: longer text is cut at the picture's edge.
        h = min(alpha.shape[0], self.height - margin) // 2 * 2
        w = min(alpha.shape[1], self.width - margin) // 2 * 2
        if h <= 0 or w <= 0:
            return
        x0, y0 = self._origin(w, h, margin)
        a = alpha[:h, :w].astype(np.float32) * (1 / 255)
        ty, tu, tv = self.yuv
        box = planes.y[y0:y0 + h, x0:x0 + w].astype(np.float32)
        box = 16 + (box - 16) * BOX_KEEP
        planes.y[y0:y0 + h, x0:x0 + w] = (box + (ty - box) * a).astype(np.uint8)
        ca = a.reshape(h // 2, 2, w // 2, 2).max(axis=(1, 3))
        for plane, target in ((planes.u, tu), (planes.v, tv)):
            part = plane[y0 // 2:(y0 + h) // 2, x0 // 2:(x0 + w) // 2].astype(np.float32)
            part = 128 + (part - 128) * BOX_KEEP
            plane[y0 // 2:(y0 + h) // 2, x0 // 2:(x0 + w) // 2] = (
                part + (target - part) * ca).astype(np.uint8)

    def _origin(self, w: int, h: int, margin: int) -> tuple[int, int]:
        right = self.style.position.endswith("right")
        bottom = self.style.position.startswith("bottom")
        x0 = self.width - w - margin if right else margin
        y0 = self.height - h - margin if bottom else margin
        return max(0, x0) // 2 * 2, max(0, y0) // 2 * 2


def apply_mask(planes: Planes, mask: Mask, width: int, height: int) -> None:
    """Fill (``solid``: black, no detail left) or pixelate one area, in place."""
    x0, y0, w, h = mask.area.pixels(width, height)
    if mask.style == "solid":
        planes.y[y0:y0 + h, x0:x0 + w] = 16
        planes.u[y0 // 2:(y0 + h) // 2, x0 // 2:(x0 + w) // 2] = 128
        planes.v[y0 // 2:(y0 + h) // 2, x0 // 2:(x0 + w) // 2] = 128
        return
    block = max(8, min(w, h) // 8) // 2 * 2
    _pixelate(planes.y[y0:y0 + h, x0:x0 + w], block)
    for plane in (planes.u, planes.v):
        _pixelate(plane[y0 // 2:(y0 + h) // 2, x0 // 2:(x0 + w) // 2], block // 2)


def _pixelate(region: Plane, block: int) -> None:
    """Replace every ``block``×``block`` tile of ``region`` by its mean (in place)."""
    h, w = region.shape
    for by in range(0, h, block):
        rows = region[by:by + block]
        full = w // block * block
        if full:
            tiles = rows[:, :full].reshape(rows.shape[0], full // block, block)
            means = tiles.mean(axis=(0, 2)).astype(np.uint8)
            rows[:, :full] = np.repeat(means, block)[None, :]
        if full < w:
            rows[:, full:] = np.uint8(rows[:, full:].mean())
