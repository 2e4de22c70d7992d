"""The export kind and options of docs/exports.rst, docs/rendering.rst, one typed home
(``<export>`` elements).

A plain VDG Sense request means the defaults (``archive`` + ``stream``, audio, no split, no
keepalive, no rendering). The options travel as JSON: in the job store's ``options`` column
and in the payload a worker process receives.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Any

from sense_plugin.media.renderoptions import Comment, Mask, Rect, RenderOptions, Timestamp

MODES = ("archive", "live")
OUTPUTS = ("stream", "snapshot")
STREAM_FORMATS = ("mp4", "mkv", "ts")
SNAPSHOT_FORMATS = ("jpg", "png", "pdf")
TIMESTAMPS = ("none", "subtitle")
MB = 1_000_000


@dataclass(frozen=True)
class ExportOptions:
    """What kind of export this is and how its files are written."""

    mode: str = "archive"
    output: str = "stream"
    audio: bool = True
    maxfilesize_mb: int = 0
    keepalive_s: int = 0
    render: RenderOptions | None = None
    timestamps: str = "none"
    #: An export's own completion callback URL (``docs/custody.rst``); "" = none.
    callback: str = ""
    #: ``<device><render>``: (position of the device in the request, from 0, its options),
    #: each replacing ``render`` for that device's job.
    device_renders: tuple[tuple[int, RenderOptions], ...] = ()

    def for_device(self, index: int) -> ExportOptions:
        """The options of the job of the request's ``index``-th device (from 0)."""
        own = dict(self.device_renders).get(index)
        if own is None and not self.device_renders:
            return self
        return replace(self, render=own if own is not None else self.render, device_renders=())

    @property
    def live(self) -> bool:
        return self.mode == "live"

    @property
    def snapshot(self) -> bool:
        return self.output == "snapshot"

    @property
    def maxfilesize_bytes(self) -> int:
        return self.maxfilesize_mb * MB

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (every field; ``render`` as nested dicts or None)."""
        data = asdict(self)
        if self.render is not None:
            data["render"] = render_to_json(self.render)
        data["device_renders"] = [[i, render_to_json(r)] for i, r in self.device_renders]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> ExportOptions:
        """The options a :meth:`to_json` dict describes; None or {} = the defaults."""
        if not data:
            return cls()
        render = data.get("render")
        return cls(
            mode=str(data.get("mode", "archive")), output=str(data.get("output", "stream")),
            audio=bool(data.get("audio", True)),
            maxfilesize_mb=int(data.get("maxfilesize_mb", 0)),
            keepalive_s=int(data.get("keepalive_s", 0)),
            render=None if render is None else render_from_json(render),
            timestamps=str(data.get("timestamps", "none")),
            device_renders=tuple((int(i), render_from_json(r))
                                 for i, r in data.get("device_renders", ())),
            callback=str(data.get("callback", "")),
        )

    def dumps(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True)

    @classmethod
    def loads(cls, text: str | None) -> ExportOptions:
        return cls.from_json(json.loads(text) if text else None)

    def describe(self) -> list[tuple[str, str]]:
        """``(element, value)`` pairs for status and manifest, in docs/exports.rst order."""
        return [("mode", self.mode), ("output", self.output),
                ("maxfilesize", str(self.maxfilesize_mb)),
                ("audio", "true" if self.audio else "false"),
                ("keepalive", str(self.keepalive_s))]


def render_to_json(render: RenderOptions) -> dict[str, Any]:
    return asdict(render)


def render_from_json(data: dict[str, Any]) -> RenderOptions:
    """The inverse of :func:`render_to_json` (tuples restored: lists in JSON)."""
    stamp = data.get("timestamp")
    comment = data.get("comment")
    crop = data.get("crop")
    return RenderOptions(
        timestamp=None if stamp is None else Timestamp(
            position=stamp["position"], color=_color(stamp["color"]), size=stamp["size"],
            fmt=stamp["fmt"], timezone=stamp["timezone"]),
        comment=None if comment is None else Comment(
            position=comment["position"], color=_color(comment["color"]),
            size=comment["size"], text=comment["text"]),
        masks=tuple(Mask(Rect(**m["area"]), m["style"]) for m in data.get("masks", ())),
        crop=None if crop is None else Rect(**crop),
        width=data.get("width"), fps=data.get("fps"),
        codec=data.get("codec", "h264"), quality=data.get("quality", "medium"),
    )


def _color(value: list[int] | tuple[int, ...]) -> tuple[int, int, int]:
    red, green, blue = (int(v) for v in value)
    return red, green, blue
