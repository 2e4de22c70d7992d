"""The demo's defaults in one place (docs/archive.rst): its devices, picture, segments and bit
rates.

Plain values, no imports: the configuration, the demo generators, the synthetic live source
and the command line all read them from here.
"""

from __future__ import annotations

#: The devices added when ``[archive] demo = true`` and no ``[[devices]]`` are configured
#: (the ids and names of the shipped default configuration).
DEMO_DEVICES = (
    {"deviceid": "9890179877273119875", "name": "Entrance"},
    {"deviceid": "9890179877273119876", "name": "Parking"},
    {"deviceid": "9890179877273119877", "name": "Lobby"},
)
#: Minutes of demo archive per device (``[archive] demo_minutes``, ``demo-archive --minutes``).
MINUTES = 10.0
#: The demo picture of every demo source: frame size, frame rate, a keyframe every second.
WIDTH, HEIGHT = 320, 180
FPS = 10
GOP_S = 1.0
GOP_FRAMES = round(GOP_S * FPS)
#: A generated demo archive (``demo-archive``, synthetic test segments): bit rate, segments.
ARCHIVE_BITRATE_BPS = 200_000
ARCHIVE_SEGMENT_S = 30.0
#: The live demo: the synthetic source's bit rate (its back-fill matches it) and the
#: recordings' segment length, short so that the index reaches close to now.
LIVE_BITRATE_BPS = 100_000
LIVE_SEGMENT_S = 10.0


def size_text() -> str:
    """The demo frame size as ``WxH`` (the command-line form)."""
    return f"{WIDTH}x{HEIGHT}"
