"""``<maxfilesize>`` split while cutting (media/parts.py): parts equal the whole, in bounds."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import av
import pytest
from conftest import MEDIA_T0_US
from oracle import Claim, check_file

from sense_plugin.media.cutspec import CutRequest, SourceRange, SourceSegment
from sense_plugin.media.parts import cut_parts
from sense_plugin.media.remux import cut
from sense_plugin.naming import parse_segment_filename

LIMIT = 600_000


def digests(path: Path) -> list[str]:
    with av.open(str(path)) as container:
        frames = [(f.pts, hashlib.sha256(f.to_ndarray(format="gray").tobytes()).hexdigest())
                  for f in container.decode(container.streams.video[0])]
    return [d for _, d in sorted(frames)]


def segments_of(paths: list[Path]) -> tuple[SourceSegment, ...]:
    starts = [parse_segment_filename(p.name) or 0 for p in paths]
    ends = [*starts[1:], MEDIA_T0_US + 12_000_000]
    return tuple(SourceSegment(str(p), s, e) for p, s, e in zip(paths, starts, ends, strict=True))


@pytest.fixture(scope="module")
def source(make_segments: Any) -> tuple[SourceSegment, ...]:
    return segments_of(make_segments(end_us=MEDIA_T0_US + 12_000_000, segment_s=4.0, width=320,
                                     height=240, fps=25, gop_frames=12,
                                     bitrate_bps=2_000_000, audio=True))


@pytest.mark.parametrize(("fmt", "overhead"), [("mp4", None), ("mkv", None), ("ts", None),
                                               ("mp4", (0, 0, -0.5))])
def test_parts_written_in_one_pass_equal_the_whole(tmp_path: Path, source: Any, fmt: str,
                                                   overhead: Any) -> None:
    """``overhead`` (0, 0, -0.5) makes the size estimate far too small: parts that come out
    over the limit are split again from their own file, and still add up to the whole."""
    t0, t1 = MEDIA_T0_US + 300_000, MEDIA_T0_US + 11_500_000
    whole = cut(CutRequest(SourceRange(source, t0, t1), str(tmp_path / f"whole.{fmt}"), fmt),
                fsync=False)
    (tmp_path / "parts").mkdir()
    out = tmp_path / "parts" / f"cam.{fmt}"
    result, parts = cut_parts(CutRequest(SourceRange(source, t0, t1), str(out), fmt,
                                         title="Cam"), LIMIT, device_id=7, fsync=False,
                              overhead=overhead)
    check_file(tmp_path / f"whole.{fmt}", Claim.of_result(whole), requested=(t0, t1))
    assert result.first_frame_us == whole.first_frame_us
    assert result.last_frame_us == whole.last_frame_us
    assert len(parts) >= 3 and whole.size_bytes > 2 * LIMIT
    names = sorted(p.name for p in (tmp_path / "parts").iterdir())
    assert names == sorted(p.name for p in parts)  # no temporary left, no plain file
    joined: list[str] = []
    for number, part in enumerate(parts, 1):
        path = tmp_path / "parts" / part.name
        assert part.path == str(path) and part.info().name == part.name
        data = path.read_bytes()
        assert part.name.endswith(f"_part{number:03d}.{fmt}")
        assert len(data) == part.size_bytes <= LIMIT and not part.oversize
        assert hashlib.sha256(data).hexdigest() == part.sha256
        assert (path.stat().st_dev, path.stat().st_ino) == (part.file_dev, part.file_ino)
        check_file(path, Claim.of_result(part),
                   requested=(t0, t1) if number == len(parts) else None)
        frames = digests(path)
        assert len(frames) == part.frame_count
        joined += frames
        with av.open(str(path)) as container:
            assert container.streams.audio
    assert joined == digests(tmp_path / f"whole.{fmt}")
    starts = [p.first_frame_us for p in parts]
    assert starts == sorted(starts) and starts[0] == whole.first_frame_us


def test_a_cut_that_fits_one_part_keeps_the_plain_name(tmp_path: Path, source: Any) -> None:
    out = tmp_path / "cam.mp4"
    result, parts = cut_parts(CutRequest(SourceRange(source, MEDIA_T0_US, MEDIA_T0_US + 1_000_000),
                                         str(out), "mp4"), LIMIT, device_id=7, fsync=False)
    assert parts == [] and [p.name for p in tmp_path.iterdir()] == ["cam.mp4"]
    assert hashlib.sha256(out.read_bytes()).hexdigest() == result.sha256
    assert out.stat().st_size == result.size_bytes


async def test_remove_deletes_part_temporaries_a_hard_interrupted_split_left(
        make_client: Any, archive_config: Any, make_segments: Any) -> None:
    from apiclient import command, export_body, wait_export
    from conftest import ARCHIVE_DEVICE_IDS

    from sense_plugin.outputpaths import output_name
    from sense_plugin.timestamps import format_timestamp

    paths = make_segments(end_us=MEDIA_T0_US + 6_000_000)
    config = archive_config(devices=[{"name": "Cam", "archive_dir": str(paths[0].parent)}])
    client = await make_client(config)
    device, start_us = ARCHIVE_DEVICE_IDS[0], MEDIA_T0_US + 1_000_000
    root = await command(client, "exportVideo", body=export_body(
        [(device, format_timestamp(start_us), format_timestamp(start_us + 2_000_000))],
        maxfilesize="1", path="left"))
    export = await wait_export(client, int(root.findtext("exportid")))
    directory = config.server.export_roots[0] / "left" / export.findtext("exportid")
    planned = output_name("Cam", device, start_us, "mp4")
    for leftover in (f"{planned}.p002.part", f"{planned}.p001.part.000.part"):
        (directory / leftover).write_bytes(b"partial")  # as a SIGKILLed worker leaves them
    await command(client, "exportVideo", action="remove", exportid=export.findtext("exportid"))
    assert not directory.exists()


def test_hevc_with_b_frames_every_part_tagged_hvc1(tmp_path: Path, make_segments: Any) -> None:
    source = segments_of(make_segments(end_us=MEDIA_T0_US + 12_000_000, segment_s=4.0,
                                       width=320, height=240, fps=25, gop_frames=12,
                                       bitrate_bps=1_500_000, codec="hevc", bframes=2))
    t0, t1 = MEDIA_T0_US, MEDIA_T0_US + 11_000_000
    cut(CutRequest(SourceRange(source, t0, t1), str(tmp_path / "whole.mp4")), fsync=False)
    (tmp_path / "parts").mkdir()
    _, parts = cut_parts(CutRequest(SourceRange(source, t0, t1),
                                    str(tmp_path / "parts" / "cam.mp4")), LIMIT, device_id=7,
                         fsync=False)
    assert len(parts) >= 2
    joined = []
    for part in parts:
        path = tmp_path / "parts" / part.name
        with av.open(str(path)) as container:
            assert container.streams.video[0].codec_tag == "hvc1"
        joined += digests(path)
    assert joined == digests(tmp_path / "whole.mp4")


def test_a_re_split_part_holding_one_gop_over_the_limit_is_marked_oversize(
        tmp_path: Path, source: Any) -> None:
    """The estimate falls far short (overhead -0.9) and every GOP (~120 kB) is larger than
    the limit: each part of several GOPs is split again from its own file into one-GOP
    pieces, and each piece over the limit says so (the only kind of part allowed over it)."""
    limit = 60_000
    t0, t1 = MEDIA_T0_US, MEDIA_T0_US + 4_000_000
    _, parts = cut_parts(CutRequest(SourceRange(source, t0, t1), str(tmp_path / "cam.mp4")),
                         limit, device_id=7, fsync=False, overhead=(0, 0, -0.9))
    on_disk = {p.name: p.stat().st_size for p in tmp_path.iterdir()}
    assert on_disk == {p.name: p.size_bytes for p in parts}
    assert len(parts) >= 4 and any(p.oversize for p in parts)
    assert [p.oversize for p in parts] == [p.size_bytes > limit for p in parts]
    assert all(p.gops == 1 for p in parts if p.oversize)


def test_a_finished_cut_split_in_a_second_pass_gets_final_names(tmp_path: Path,
                                                                 source: Any) -> None:
    """The two-pass path (rendered or subtitled cuts): ``split_file`` names the parts
    itself, beside the whole file, which it leaves for the caller."""
    from sense_plugin.media.split import split_file

    t0, t1 = MEDIA_T0_US + 300_000, MEDIA_T0_US + 11_500_000
    whole_path = tmp_path / "whole.mp4"
    whole = cut(CutRequest(SourceRange(source, t0, t1), str(whole_path), title="Cam",
                           comment="export 3"), fsync=False)
    parts = split_file(str(whole_path), whole, "mp4", LIMIT, "Cam", 7, "Cam", "export 3",
                       lambda: False)
    assert len(parts) >= 3
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["whole.mp4", *(p.name for p in parts)])
    for number, part in enumerate(parts, 1):
        assert part.path == str(tmp_path / part.name)
        assert part.name.endswith(f"_part{number:03d}.mp4") and part.size_bytes <= LIMIT
        check_file(Path(part.path), Claim.of_result(part),
                   requested=(t0, t1) if number == len(parts) else None)
        with av.open(part.path) as container:
            assert container.metadata["title"] == "Cam"
            assert container.metadata["comment"] == "export 3"
    assert [d for p in parts for d in digests(Path(p.path))] == digests(whole_path)
