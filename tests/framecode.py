"""Test footage whose frames carry their own number, readable back after any codec.

Each frame shows its number as 16 bits, one black or white cell each in a row across the
middle of the picture (cells big enough to survive H.264/MJPEG at low quality), so a test can
decode a recording or an export and compare the numbers it finds with what the source sent.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

BITS = 16


def picture(number: int, width: int, height: int) -> np.ndarray:
    """A grey RGB picture with ``number`` drawn as a row of black/white cells."""
    image = np.full((height, width, 3), 96, dtype=np.uint8)
    cell_w = width // BITS
    top, bottom = height // 3, 2 * height // 3
    for bit in range(BITS):
        value = 255 if number >> (BITS - 1 - bit) & 1 else 0
        image[top:bottom, bit * cell_w:(bit + 1) * cell_w] = value
    return image


def read_number(frame: av.VideoFrame) -> int:
    """The number :func:`picture` drew into ``frame``."""
    gray = frame.to_ndarray(format="gray")
    height, width = gray.shape
    cell_w = width // BITS
    row = gray[height // 3 + 2:2 * height // 3 - 2]
    number = 0
    for bit in range(BITS):
        cell = row[:, bit * cell_w + 2:(bit + 1) * cell_w - 2]
        number = number << 1 | int(cell.mean() > 128)
    return number


def write_clip(path: Path, frames: int, width: int = 320, height: int = 180, *,
               first: int = 0, fps: int = 25, gop_frames: int = 25, fmt: str | None = None,
               codec: str = "libx264", audio_s: float = 0.0) -> None:
    """Encode frames numbered ``first`` .. ``first + frames - 1`` (pts counting on from
    ``first``, so MPEG-TS files of consecutive runs concatenate into one stream), with
    optional 8 kHz AAC audio of ``audio_s`` seconds (it may outlast the video)."""
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        if codec == "libx264":
            stream.codec_context.gop_size = gop_frames
            stream.options = {"preset": "ultrafast", "bf": "0", "sc_threshold": "0",
                              "keyint_min": str(gop_frames)}
        audio = out.add_stream("aac", rate=8000) if audio_s else None
        for number in range(first, first + frames):
            frame = av.VideoFrame.from_ndarray(picture(number, width, height), format="rgb24")
            frame.pts = number
            frame.time_base = Fraction(1, fps)
            frame.pict_type = av.video.frame.PictureType.NONE
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        if audio is not None:
            for packet in _tone(audio, audio_s, first / fps):
                out.mux(packet)


def jpeg_frames(count: int, width: int = 320, height: int = 180) -> list[bytes]:
    """``count`` numbered JPEG pictures (what an MJPEG camera sends, one per part)."""
    codec = av.CodecContext.create("mjpeg", "w")
    assert isinstance(codec, av.VideoCodecContext)
    codec.width, codec.height, codec.pix_fmt = width, height, "yuvj420p"
    codec.time_base = Fraction(1, 25)
    codec.open()
    pictures = []
    for number in range(count):
        frame = av.VideoFrame.from_ndarray(picture(number, width, height), format="rgb24")
        frame = frame.reformat(format="yuvj420p")
        frame.pts = number
        pictures.extend(bytes(p) for p in codec.encode(frame))
    return pictures


def _tone(stream: av.AudioStream, seconds: float, first_s: float) -> Iterator[av.Packet]:
    rate = 8000
    samples = 1024
    t = int(first_s * rate)
    while t < (first_s + seconds) * rate:
        wave = (np.sin(np.arange(t, t + samples) * 2 * np.pi * 440 / rate) * 0.3)
        frame = av.AudioFrame.from_ndarray(wave.astype(np.float32).reshape(1, -1),
                                           format="fltp", layout="mono")
        frame.sample_rate, frame.pts = rate, t
        frame.time_base = Fraction(1, rate)
        yield from stream.encode(frame)
        t += samples
    yield from stream.encode(None)


def numbers_in(path: Path) -> list[int]:
    """The frame numbers of every decoded frame of ``path``, in presentation order."""
    found: list[tuple[int, int]] = []
    with av.open(str(path)) as container:
        for frame in container.decode(container.streams.video[0]):
            found.append((frame.pts or 0, read_number(frame)))
    return [number for _, number in sorted(found)]


def ts_chunks(frames: int, width: int = 320, height: int = 180, *, fps: int = 25,
              gop_frames: int = 25) -> list[bytes]:
    """An MPEG-TS stream of numbered frames cut after each frame: what a camera sends per
    frame (header tables included in the first chunk)."""
    chunks: list[bytes] = []
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mpegts", options={"flush_packets": "1"}) as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = gop_frames
        stream.options = {"preset": "ultrafast", "tune": "zerolatency", "bf": "0",
                          "sc_threshold": "0"}  # one chunk per frame, at once
        taken = 0
        for number in range(frames + 1):
            frame = None
            if number < frames:
                frame = av.VideoFrame.from_ndarray(picture(number, width, height),
                                                   format="rgb24")
                frame.pts, frame.time_base = number, Fraction(1, fps)
                frame.pict_type = av.video.frame.PictureType.NONE
            out.mux(stream.encode(frame))
            if buffer.tell() > taken:
                chunks.append(buffer.getvalue()[taken:])
                taken = buffer.tell()
    if len(buffer.getvalue()) > taken:
        chunks[-1] += buffer.getvalue()[taken:]
    return chunks
