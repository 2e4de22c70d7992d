"""Progress of device jobs: aligned tqdm bars on a terminal, plain lines on change otherwise.

A bar reads ``export 5 Entrance  SYNCING    42%|█████     | 3.1 MB 1.2 MB/s ETA 0:04``: the
labels of all bars are padded to one width so the bars line up; bytes are the device's
``<bytes>``, the rate its measured ``<bandwidth>``, the ETA extrapolated from progress since the
device was first seen running. A bar is created already labelled and at its current value, so
no unlabelled ``0%|`` line flashes first.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

#: tqdm's ``{postfix}`` starts with ", "; the free-form ``{unit}`` field carries the detail.
BAR_FORMAT = "{desc} {percentage:3.0f}%|{bar}| {unit}"


@dataclass
class _Device:
    """What is known of one device job between polls."""

    label: str
    status: str = ""
    progress: int = 0
    bytes_written: int = 0
    rate_bps: float = 0.0
    running_since: tuple[float, int] | None = None  # (monotonic s, progress) when first running


def human_bytes(count: float) -> str:
    """``812 B``, ``3.1 MB``, ``1.4 GB`` (decimal units, as network rates are)."""
    for unit in ("B", "kB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


def eta_text(device: _Device, now_s: float) -> str:
    """``ETA 0:04`` from progress since the device was first seen running; ``ETA -`` unknown."""
    if device.status != "SYNCING" or device.running_since is None:
        return ""
    began_s, began_progress = device.running_since
    done = device.progress - began_progress
    if done <= 0 or device.progress >= 100:
        return "ETA -"
    remaining_s = (now_s - began_s) * (100 - device.progress) / done
    minutes, seconds = divmod(int(remaining_s + 0.5), 60)
    return f"ETA {minutes}:{seconds:02d}"


def detail(device: _Device, now_s: float) -> str:
    """The text after the bar: bytes, rate while running, ETA."""
    parts = [human_bytes(device.bytes_written)]
    if device.status == "SYNCING":
        parts.append(f"{human_bytes(device.rate_bps)}/s")
    eta = eta_text(device, now_s)
    if eta:
        parts.append(eta)
    return " ".join(parts)


def parse_device(export_id: str, device: Any, known: _Device | None, now_s: float) -> _Device:
    """Fold one ``<device>`` of a status answer into what was known."""
    name = device.findtext("name") or device.findtext("deviceid") or "?"
    state = known or _Device(label=f"export {export_id} {name}")
    state.status = device.findtext("status") or ""
    state.progress = int(device.findtext("progress") or 0)
    state.bytes_written = int(device.findtext("bytes") or 0)
    state.rate_bps = int(device.findtext("bandwidth") or 0) * 1000 / 8
    if state.status == "SYNCING" and state.running_since is None:
        state.running_since = (now_s, state.progress)
    return state


class ProgressView:
    """A bar per device when ``out`` is a terminal; ``export N DEVICE: STATUS P%`` lines on
    change otherwise."""

    def __init__(self, out: TextIO, clock: Callable[[], float] = time.monotonic) -> None:
        self._out = out
        self._clock = clock
        self._tty = out.isatty()
        self._devices: dict[tuple[str, int], _Device] = {}
        self._bars: dict[tuple[str, int], Any] = {}
        self._last: dict[tuple[str, int], str] = {}

    def update(self, exports: list[Any]) -> None:
        """Show the devices of these ``<export>`` elements."""
        now_s = self._clock()
        for export in exports:
            export_id = export.findtext("exportid") or "?"
            for index, element in enumerate(export.iterfind("devices/device")):
                key = (export_id, index)
                self._devices[key] = parse_device(export_id, element, self._devices.get(key),
                                                  now_s)
        if self._tty:
            self._draw(now_s)
            return
        for key, device in self._devices.items():
            line = f"{device.label}: {device.status} {device.progress}%"
            if self._last.get(key) != line:
                self._last[key] = line
                print(line, file=self._out, flush=True)

    def _draw(self, now_s: float) -> None:
        from tqdm import tqdm  # type: ignore[import-untyped]

        width = max(len(d.label) for d in self._devices.values())
        # A pty of unknown size reports 0x0 (tqdm then draws nothing): assume 80x24.
        size = shutil.get_terminal_size((80, 24))
        for key, device in self._devices.items():
            desc = f"{device.label:<{width}} {device.status:<9}"
            bar = self._bars.get(key)
            if bar is None:
                bar = tqdm(total=100, initial=device.progress, desc=desc, file=self._out,
                           position=len(self._bars), ncols=size.columns or 80,
                           nrows=size.lines or 24, unit=detail(device, now_s),
                           bar_format=BAR_FORMAT)
                self._bars[key] = bar
                continue
            bar.n = device.progress
            bar.set_description_str(desc, refresh=False)
            bar.unit = detail(device, now_s)
            bar.refresh()

    def close(self) -> None:
        """Leave the bars on screen, the cursor below them."""
        for bar in self._bars.values():
            bar.close()
