"""The live demo's back-fill plan (archive/backfill.py), the synthetic source's stream, and
the demo devices a configuration without devices gets."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av

from sense_plugin.archive import backfill
from sense_plugin.archive.demo_archive import DemoSpec
from sense_plugin.archive.index import ArchiveIndex, Segment
from sense_plugin.archive.probe import probe_segment
from sense_plugin.archive.synthetic import LiveSpec, SyntheticSource
from sense_plugin.config import config_from_dict

S = 1_000_000
END_US = 1_796_000_000_000_000
SPEC = DemoSpec(minutes=0.5, width=64, height=64, fps=10, bitrate_bps=50_000, segment_s=10.0,
                gop_s=1.0)


def test_interrupted_backfill_resumes_with_the_missing_segments(
        archive_config: Callable[..., Any], tmp_path: Path) -> None:
    config = archive_config(devices=[{"name": "Entrance"}, {"name": "Parking"}], demo=True)
    data_dir = config.server.data_dir
    index = ArchiveIndex(tmp_path / "index.sqlite3")
    targets = list(config.devices)
    plan = backfill.decide(data_dir, index, targets, SPEC.minutes, END_US)
    assert plan is not None and not plan.done
    stop = threading.Event()
    stop.set()  # stopped before anything is written: the plan stays open
    assert backfill.run(data_dir, index, targets, SPEC, plan, stop, join_wait_s=0) == 0
    again = backfill.decide(data_dir, index, targets, SPEC.minutes, END_US + 60 * S)
    assert again == plan  # the same range, not a new one ending later
    assert not list(data_dir.glob("archive/*/*.mp4"))
    assert backfill.run(data_dir, index, targets, SPEC, again, threading.Event(),
                        join_wait_s=0) == 6
    # no live recording: each device's back-fill ends at the plan's end
    assert backfill.load(data_dir) == backfill.Backfill(END_US, 0.5,
                                                       tuple(d.device_id for d in targets),
                                                       done=True, ends_us=(END_US, END_US))
    for device in targets:
        assert index.intervals(device.device_id, 0, END_US * 2) == [(END_US - 30 * S, END_US)]
    # Half the files lost before the plan was marked done: only those are written again.
    (targets[1].archive_dir / sorted(p.name for p in targets[1].archive_dir.iterdir())[1]
     ).unlink()
    backfill.save(data_dir, backfill.Backfill(END_US, 0.5, plan.device_ids))
    resumed = backfill.decide(data_dir, index, targets, SPEC.minutes, END_US)
    assert resumed is not None
    assert backfill.run(data_dir, index, targets, SPEC, resumed, threading.Event(),
                        join_wait_s=0) == 1
    assert backfill.decide(data_dir, index, targets, SPEC.minutes, END_US) is None  # done
    index.close()


def test_no_backfill_for_an_archive_that_has_recordings(
        archive_config: Callable[..., Any], write_segment: Callable[..., Path],
        tmp_path: Path) -> None:
    config = archive_config(devices=[{"name": "Entrance"}], demo=True)
    device = config.devices[0]
    path = write_segment(device.archive_dir, END_US - 10 * S, duration_s=1.0)
    index = ArchiveIndex(tmp_path / "index.sqlite3")
    info = probe_segment(path)
    index.add(Segment(device.device_id, info.start_us, info.end_us, path, info.size_bytes))
    assert backfill.decide(config.server.data_dir, index, [device], 1.0, END_US) is None
    assert not backfill.marker_path(config.server.data_dir).exists()
    index.close()


def test_unreadable_marker_is_not_resumed(archive_config: Callable[..., Any],
                                          tmp_path: Path) -> None:
    config = archive_config(devices=[{"name": "Entrance"}], demo=True)
    marker = backfill.marker_path(config.server.data_dir)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("{not json")
    index = ArchiveIndex(tmp_path / "index.sqlite3")
    assert backfill.decide(config.server.data_dir, index, list(config.devices), 1.0,
                           END_US) is None
    index.close()


def test_synthetic_source_streams_h264_with_a_keyframe_first() -> None:
    source = SyntheticSource(["Door"], LiveSpec(width=160, height=90, fps=10))
    (url,) = source.start()
    try:
        with av.open(url, timeout=(5.0, 5.0)) as container:
            stream = container.streams.video[0]
            assert (stream.codec_context.name, stream.width, stream.height) == ("h264", 160, 90)
            packets = []
            for packet in container.demux(stream):
                packets.append(packet)
                if len(packets) == 12:
                    break
        assert packets[0].is_keyframe and packets[10].is_keyframe  # one a second
        assert not any(p.is_keyframe for p in packets[1:10])
    finally:
        source.stop()
    assert source.pid is None


def test_demo_devices_added_only_when_none_configured(tmp_path: Path) -> None:
    base = {"server": {"serverid": "1", "data_dir": "data"}}
    added = config_from_dict({**base, "archive": {"demo": True}}, base_dir=tmp_path)
    assert added.demo_devices_added
    assert [(d.device_id, d.name) for d in added.devices] == [
        (9890179877273119875, "Entrance"), (9890179877273119876, "Parking"),
        (9890179877273119877, "Lobby")]
    assert config_from_dict({**base, "archive": {"demo": False}}, base_dir=tmp_path).devices == ()
    own = config_from_dict({**base, "devices": [{"deviceid": "5", "name": "Mine"}]},
                           base_dir=tmp_path)
    assert not own.demo_devices_added and [d.name for d in own.devices] == ["Mine"]
    assert added.archive.demo_keep_hours == 24
