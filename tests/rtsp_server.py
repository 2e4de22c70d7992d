"""A real RTSP server for tests: GStreamer's, serving files made by ffmpeg at real time.

Run by Debian's ``/usr/bin/python3`` (``python3-gi``, ``gir1.2-gst-rtsp-server-1.0``), not the
project's interpreter: ``rtsp_server.py PORT NAME=KIND:FILE ...`` where KIND is one of
``h264-pcmu`` (Matroska), ``h264-aac`` (MP4), ``h264`` or ``h265`` (MP4, video only),
``h264-ts`` (MPEG-TS, video only: a resolution change inside the file goes out as new
parameter sets) or ``h264-aac-mkv``
(Matroska; its video may end before its audio). A ``udp+`` before KIND makes that mount
refuse RTSP over TCP (SETUP answers 461), as UDP-only cameras do. Every client gets its own
pipeline (``set_shared(False)``), like a camera. Prints ``ready PORT`` once listening.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
gi.require_version("GstRtsp", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

PIPELINES = {
    "h264-pcmu": ("filesrc location={file} ! matroskademux name=d "
                  "d.video_0 ! queue ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 "
                  "d.audio_0 ! queue ! rtppcmupay name=pay1 pt=0"),
    "h264-aac": ("filesrc location={file} ! qtdemux name=d "
                 "d.video_0 ! queue ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 "
                 "d.audio_0 ! queue ! aacparse ! rtpmp4gpay name=pay1 pt=97"),
    "h264-ts": ("filesrc location={file} ! tsdemux ! h264parse "
                "! rtph264pay name=pay0 pt=96 config-interval=-1"),
    "h264-aac-mkv": ("filesrc location={file} ! matroskademux name=d "
                     "d.video_0 ! queue ! h264parse ! rtph264pay name=pay0 pt=96 "
                     "config-interval=-1 "
                     "d.audio_0 ! queue ! aacparse ! rtpmp4gpay name=pay1 pt=97"),
    "h264": ("filesrc location={file} ! qtdemux name=d "
             "d.video_0 ! queue ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1"),
    "h265": ("filesrc location={file} ! qtdemux name=d "
             "d.video_0 ! queue ! h265parse ! rtph265pay name=pay0 pt=96 config-interval=1"),
}


def main(argv):
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(argv[1])
    mounts = server.get_mount_points()
    for item in argv[2:]:
        name, spec = item.split("=", 1)
        kind, path = spec.split(":", 1)
        factory = GstRtspServer.RTSPMediaFactory()
        bare = kind.removeprefix("udp+")
        factory.set_launch("( " + PIPELINES[bare].format(file=path) + " )")
        factory.set_shared(False)
        if kind != bare:
            factory.set_protocols(GstRtsp.RTSPLowerTrans.UDP)
        mounts.add_factory("/" + name, factory)
    if server.attach(None) == 0:
        print("cannot listen on port", argv[1], flush=True)
        return 1
    print("ready", server.get_bound_port(), flush=True)
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
