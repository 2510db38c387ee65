"""An RTSP camera for tests: GStreamer's RTSP server replaying an H.264 MP4 clip in a loop.

Runs under the system Python (it needs PyGObject and gst-rtsp-server from Debian:
python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp gstreamer1.0-plugins-good
gstreamer1.0-plugins-bad). Usage: python3 rtsp_server.py PORT CLIP.mp4 -> rtsp://127.0.0.1:PORT/cam
Prints "ready" once it listens.
"""

import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> None:
    port, clip = sys.argv[1], sys.argv[2]
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    # The clip's own H.264 is repackaged, not re-encoded: no codec plugins beyond parsing.
    factory.set_launch(f'( filesrc location="{clip}" ! qtdemux ! h264parse config-interval=-1 '
                       f'! rtph264pay name=pay0 pt=96 config-interval=1 )')
    factory.set_shared(False)  # every client gets the clip from its start
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on port {port}")
    loop = GLib.MainLoop()
    signal.signal(signal.SIGTERM, lambda *_: loop.quit())
    print("ready", flush=True)
    loop.run()


if __name__ == "__main__":
    main()
