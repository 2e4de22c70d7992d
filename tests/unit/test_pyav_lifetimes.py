"""The PyAV object lifetimes the media code relies on (``docs/pyav-lifetimes.rst``).

Closing an input container frees its streams: a stream field read afterwards is freed memory
(any number, now and then a crash), so the code reads what it needs while the file is open.
What it keeps past a close is safe for a reason PyAV could change, and these tests pin it:

- an output container's streams stay readable once it is closed (a split cut maps each
  packet through the stream index of the part it rotated away from);
- a decoder taken from an input stream keeps working once its file is closed (the cut's
  timeline keeps the last segment's audio decoder);
- decoded frames and demuxed packets own their data and timing (a snapshot encodes the
  frame after its segment is closed; a cut holds a GOP's packets across segments).

Each check runs many times, with allocations in between, because freed memory often still
holds the old value: one read proves nothing.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import pytest

from tests.ffmpegtools import ENCODE, ffmpeg

ROUNDS = 60
WIDTH, HEIGHT = 160, 90


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One second of H.264 with AAC audio, written by the ffmpeg CLI."""
    path = tmp_path_factory.mktemp("lifetimes") / "clip.mp4"
    video_input, video_encoder = ENCODE[:4], ENCODE[4:]
    subprocess.run([ffmpeg(), "-hide_banner", "-loglevel", "error", *video_input,
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000",
                    *video_encoder, "-c:a", "aac", "-t", "1", str(path)], check=True,
                   timeout=60)
    return path


def _churn() -> list[bytearray]:
    """Allocations that reuse whatever memory a close freed."""
    return [bytearray(256) for _ in range(2000)]


def test_output_streams_stay_readable_after_their_container_closes(
        clip: Path, tmp_path: Path) -> None:
    wrong = 0
    for round_number in range(ROUNDS):
        with av.open(str(clip)) as source:
            packets = [p for p in source.demux(source.streams.video[0]) if p.size][:3]
            with av.open(str(tmp_path / f"out{round_number % 2}.mkv"), "w") as output:
                stream = output.add_stream_from_template(source.streams.video[0])
                for packet in packets:
                    packet.stream = stream
                    output.mux(packet)
        _churn()
        wrong += (stream.index, stream.type, stream.time_base is None) != (0, "video", False)
    assert wrong == 0


def test_a_decoder_keeps_working_after_its_file_closes(clip: Path) -> None:
    for _ in range(ROUNDS // 6):
        with av.open(str(clip)) as source:
            audio = source.streams.audio[0]
            decoder = audio.codec_context
            rate = decoder.sample_rate
            packets = [p for p in source.demux(audio) if p.size]
        _churn()
        samples = sum(frame.samples for packet in packets for frame in decoder.decode(packet))
        assert decoder.sample_rate == rate == 16000
        assert samples > 10_000  # about a second at 16 kHz, less the encoder's priming


def test_frames_and_packets_keep_their_own_fields_after_the_close(clip: Path) -> None:
    wrong = 0
    for _ in range(ROUNDS):
        with av.open(str(clip)) as source:
            video = source.streams.video[0]
            index = video.index
            frame = next(iter(source.decode(video)))
            packet = next(p for p in source.demux(video) if p.size)
            expected = (packet.stream_index, packet.pts, packet.dts, packet.time_base,
                        packet.is_keyframe, bytes(packet))
        _churn()
        wrong += (frame.width, frame.height, frame.format.name) != (WIDTH, HEIGHT, "yuv420p")
        wrong += frame.to_ndarray(format="rgb24").shape != (HEIGHT, WIDTH, 3)
        wrong += (packet.stream_index, packet.pts, packet.dts, packet.time_base,
                  packet.is_keyframe, bytes(packet)) != expected
        wrong += packet.stream_index != index
    assert wrong == 0
