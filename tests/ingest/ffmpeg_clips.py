"""Test clips made at test time with Debian's ffmpeg: HEVC files and HLS playlists.

ffmpeg is a test dependency (scripts/ensure_test_deps.sh installs it); without it the
tests that need it fail with the install command, they never skip.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from moodstream.embedded import free_port

QUIET = ["-hide_banner", "-loglevel", "error", "-nostdin", "-y"]


def require_ffmpeg() -> str:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.fail("this test makes its clips with ffmpeg: apt-get install --no-install-recommends "
                    "ffmpeg (or run scripts/ensure_test_deps.sh as root)")
    return ffmpeg


def run_ffmpeg(*args: str) -> None:
    done = subprocess.run([require_ffmpeg(), *QUIET, *args], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, f"ffmpeg {' '.join(args)} failed: {done.stderr.strip()}"


def probe_codec(path: Path) -> str:
    """The codec of the first video stream, as ffprobe names it (hevc, h264 ...)."""
    ffprobe = Path(require_ffmpeg()).with_name("ffprobe")
    done = subprocess.run([str(ffprobe), "-v", "error", "-select_streams", "v:0", "-show_entries",
                           "stream=codec_name", "-of", "default=nw=1:nk=1", str(path)],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def encode_hevc(source: Path, target: Path) -> Path:
    """Re-encode `source` to H.265 (libx265) in target's container, video only. The hvc1
    tag is what Apple devices write into MP4/MOV; MKV carries no tag."""
    tag = ["-tag:v", "hvc1"] if target.suffix in (".mp4", ".mov") else []
    run_ffmpeg("-i", str(source), "-an", "-c:v", "libx265", "-preset", "ultrafast",
               "-x265-params", "log-level=error", *tag, str(target))
    return target


def make_hls_vod(source: Path, folder: Path, segment_s: float = 0.5) -> Path:
    """An HLS VOD rendition of `source` (H.264 in MPEG-TS segments, #EXT-X-ENDLIST at the end);
    returns the playlist."""
    folder.mkdir(parents=True, exist_ok=True)
    playlist = folder / "index.m3u8"
    run_ffmpeg("-i", str(source), "-an", "-c:v", "libx264", "-preset", "ultrafast",
               "-g", "15", "-f", "hls", "-hls_time", str(segment_s), "-hls_playlist_type", "vod",
               "-hls_segment_filename", str(folder / "seg%03d.ts"), str(playlist))
    return playlist


def start_live_hls(source: Path, folder: Path) -> tuple[subprocess.Popen, Path]:
    """A live HLS encoder: `source` looped in real time (-re) into a sliding 6-segment playlist
    without #EXT-X-ENDLIST; returns the process and the playlist once 3 segments exist."""
    folder.mkdir(parents=True, exist_ok=True)
    playlist = folder / "live.m3u8"
    encoder = subprocess.Popen([require_ffmpeg(), *QUIET, "-re", "-stream_loop", "-1",
                                "-i", str(source), "-an", "-c:v", "libx264", "-preset", "ultrafast",
                                "-g", "15", "-f", "hls", "-hls_time", "0.5", "-hls_list_size", "6",
                                "-hls_flags", "delete_segments", str(playlist)],
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 15
    while not playlist.exists() or playlist.read_text().count("#EXTINF") < 3:
        if encoder.poll() is not None or time.monotonic() > deadline:
            encoder.kill()
            pytest.fail(f"live HLS encoder did not start: {encoder.communicate()[1].strip()}")
        time.sleep(0.1)
    return encoder, playlist


class StaticHttpServer:
    """Serves one folder over HTTP on a free loopback port, like a CDN origin; counts GETs."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.port = free_port()
        self.requests: list[str] = []
        self._server: ThreadingHTTPServer | None = None

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def start(self) -> "StaticHttpServer":
        server = self

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                server.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port),
                                           partial(Handler, directory=str(self.folder)))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
