#!/bin/sh
# System packages the tests drive for real: Debian's headless Chromium + ChromeDriver (browser
# tests), GStreamer's RTSP server (ingest's RTSP test) and ffmpeg (ingest's HEVC and HLS tests
# make their clips with it). As root they are installed with apt; without root Chromium is
# unpacked into .cache/chromium, and the RTSP and ffmpeg tests fail saying what to install.
set -e
PKGS_BROWSER="chromium chromium-driver"
PKGS_RTSP="python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp gstreamer1.0-plugins-good gstreamer1.0-plugins-bad"
PKGS_FFMPEG="ffmpeg"

have_browser() {
  { command -v chromium && command -v chromedriver; } >/dev/null 2>&1 \
    || { [ -x .cache/chromium/usr/bin/chromium ] && [ -x .cache/chromium/usr/bin/chromedriver ]; }
}
have_rtsp() {
  /usr/bin/python3 -c 'import gi; gi.require_version("GstRtspServer", "1.0"); from gi.repository import GstRtspServer' >/dev/null 2>&1
}
have_ffmpeg() {
  command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1
}

missing=""
have_browser || missing="$missing $PKGS_BROWSER"
have_rtsp || missing="$missing $PKGS_RTSP"
have_ffmpeg || missing="$missing $PKGS_FFMPEG"
[ -z "$missing" ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian packages for the tests:$missing" >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  exit 0
fi
if ! have_browser && command -v apt-get >/dev/null 2>&1; then
  echo "fetching Debian chromium into .cache/chromium (no root)" >&2
  mkdir -p .cache/chromium/debs && (cd .cache/chromium/debs && apt-get download chromium chromium-common chromium-driver >/dev/null \
    && for f in *.deb; do dpkg-deb -x "$f" ..; done)
fi
have_rtsp || echo "note: the RTSP ingest test needs (as root): apt-get install $PKGS_RTSP" >&2
have_ffmpeg || echo "note: the HEVC and HLS ingest tests need (as root): apt-get install $PKGS_FFMPEG" >&2
exit 0
