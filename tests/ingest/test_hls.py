"""HLS through OpenCV/FFmpeg: a VOD playlist made from a shared clip with ffmpeg, and a live
ffmpeg HLS encoder, served by a real HTTP server on loopback. Ingest publishes at stream
speed (FFmpeg downloads segments in bursts), ends a VOD at #EXT-X-ENDLIST, loops when asked,
reconnects when the server goes away or a live encoder dies, and gives up when told to."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from ingest.config import CameraConfig
from ingest.hls import is_hls, playlist_has_ended
from ingest.source import SourceState
from moodstream.embedded import free_port
from tests.conftest import VIDEOS, require
from tests.ingest.ffmpeg_clips import StaticHttpServer, make_hls_vod, start_live_hls
from tests.ingest.helpers import RunningIngest, read_topics, wait_until

SMILE = VIDEOS / "single_face_smile.mp4"  # 640x360, 72 frames at 30 fps: 2.4 s


@pytest.fixture
def hls_vod(tmp_path):
    playlist = make_hls_vod(require(SMILE), tmp_path / "hls")
    server = StaticHttpServer(playlist.parent).start()
    try:
        yield server
    finally:
        server.stop()


def test_playlist_end_is_read_from_media_and_master_playlists(hls_vod):
    (hls_vod.folder / "master.m3u8").write_text(
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360\nindex.m3u8\n")
    (hls_vod.folder / "live.m3u8").write_text(
        (hls_vod.folder / "index.m3u8").read_text().replace("#EXT-X-ENDLIST", ""))
    assert playlist_has_ended(hls_vod.url("index.m3u8"), 5)
    assert playlist_has_ended(hls_vod.url("master.m3u8"), 5)
    assert playlist_has_ended(hls_vod.url("index.m3u8").replace("//", "//viewer:s3cret@"), 5)
    assert not playlist_has_ended(hls_vod.url("live.m3u8"), 5)  # live: reconnect, not end
    assert not playlist_has_ended(f"http://127.0.0.1:{free_port()}/index.m3u8", 5)  # unreachable
    assert is_hls(hls_vod.url("index.m3u8")) and not is_hls("http://cam/stream.mjpg")


class RecordingHttpServer:
    """A playlist origin on a loopback address that records each request's Authorization
    header and answers `redirects` (path -> Location) with 302, anything else with an ended
    media playlist."""

    PLAYLIST = b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\nseg0.ts\n#EXT-X-ENDLIST\n"

    def __init__(self, host: str, redirects: dict[str, str] | None = None):
        self.host, self.port = host, free_port(host)
        self.redirects = redirects or {}
        self.seen: list[tuple[str, str | None]] = []
        origin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                origin.seen.append((self.path, self.headers.get("Authorization")))
                target = origin.redirects.get(self.path)
                self.send_response(302 if target else 200)
                if target:
                    self.send_header("Location", target)
                self.send_header("Content-Length", "0" if target else str(len(origin.PLAYLIST)))
                self.end_headers()
                if not target:
                    self.wfile.write(origin.PLAYLIST)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str, userinfo: str = "") -> str:
        return f"http://{userinfo}{self.host}:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_credentials_follow_a_redirect_only_within_the_same_origin():
    cdn = RecordingHttpServer("127.0.0.2")  # another host, as a CDN would be
    other_port = RecordingHttpServer("127.0.0.1")  # same host, another port: another origin
    camera = RecordingHttpServer("127.0.0.1", {
        "/same.m3u8": "/index.m3u8",
        "/cross.m3u8": cdn.url("/index.m3u8"),
        "/port.m3u8": other_port.url("/index.m3u8")})
    try:
        basic = "Basic dmlld2VyOnMzL2NyZXRAeA=="  # viewer:s3/cret@x, sent as Basic auth
        for path in ("/same.m3u8", "/cross.m3u8", "/port.m3u8"):
            assert playlist_has_ended(camera.url(path, "viewer:s3%2Fcret%40x@"), 5), path
    finally:
        for server in (camera, cdn, other_port):
            server.close()
    assert camera.seen == [("/same.m3u8", basic), ("/index.m3u8", basic),  # same origin: kept
                           ("/cross.m3u8", basic), ("/port.m3u8", basic)]
    # Another host or port never gets the credentials.
    assert cdn.seen == other_port.seen == [("/index.m3u8", None)]


@pytest.mark.integration
@pytest.mark.slow
def test_hls_vod_is_published_at_stream_speed_and_ends(kafka_server, unique_prefix, hls_vod):
    url = hls_vod.url("index.m3u8")
    camera = CameraConfig(id="hls-cam", url=url, fps=10, session={"id": "hls-1"})
    started = time.time()
    with RunningIngest(kafka_server.bootstrap, unique_prefix, [camera]) as ingest:
        assert ingest.wait_done(20) == 0
    got = read_topics(kafka_server.bootstrap, unique_prefix, lambda g: g.complete())
    counts = ingest.counts("hls-cam")
    # Every frame read, none dropped: without stream-time pacing the 2.4 s playlist arrives
    # in ~0.1 s, the live queue drops most of it and 10 fps wall-clock sampling keeps ~2.
    assert (counts.read, counts.dropped_total, counts.reconnects) == (72, 0, 0)
    headers = sorted((h for _, h, _ in got.frames), key=lambda h: h.seq)
    assert 22 <= len(headers) <= 25 and counts.published == len(headers)
    assert [h.seq for h in headers] == list(range(len(headers)))
    assert {(k, h.camera_id, h.session_id, h.width, h.height) for k, h, _ in got.frames} == \
        {(b"hls-cam", "hls-cam", "hls-1", 640, 360)}
    offsets = [h.offset_s for h in headers]  # wall seconds since session start (live source)
    assert 2.0 <= offsets[-1] <= 3.5 and np.median(np.diff(offsets)) == pytest.approx(0.1, abs=0.02)
    assert all(started < h.capture_ts < time.time() for h in headers)
    assert ingest.metrics.states("hls-cam") == \
        [SourceState.CONNECTING, SourceState.STREAMING, SourceState.ENDED]
    [start, end] = got.control
    assert (start.type, end.type, end.frames_published) == ("session_start", "session_end",
                                                            len(headers))
    assert hls_vod.requests.count("/index.m3u8") == 2  # opened once, asked once at the end


@pytest.mark.integration
@pytest.mark.slow
def test_looping_hls_vod_replays_then_a_lost_server_is_retried_and_fails(
        kafka_server, unique_prefix, hls_vod):
    camera = CameraConfig(id="hls-loop", url=hls_vod.url("index.m3u8"), fps=5, loop=True)
    with RunningIngest(kafka_server.bootstrap, unique_prefix, [camera], backoff_initial_s=0.2,
                       backoff_max_s=0.5, reconnect_max_attempts=2) as ingest:
        counts = ingest.counts("hls-loop")
        assert wait_until(lambda: counts.read > 80, 10), counts  # into the second pass
        hls_vod.stop()
        assert ingest.wait_done(20) == 1  # the only camera failed
    got = read_topics(kafka_server.bootstrap, unique_prefix, lambda g: g.complete())
    states = ingest.metrics.states("hls-loop")
    # A replay is not a reconnect; the lost server is, reconnect_max_attempts times, then fails.
    assert states[:2] == [SourceState.CONNECTING, SourceState.STREAMING]
    assert states[2:] == [SourceState.RECONNECTING] * 2 + [SourceState.FAILED]
    assert counts.reconnects == 2 and counts.dropped_total == 0
    offsets = sorted(h.offset_s for _, h, _ in got.frames)
    assert offsets[-1] > 2.6 and len(offsets) == counts.published >= 14  # 5 fps past one pass
    assert np.diff(offsets).min() >= 0.15
    assert got.ends()[0].frames_published == counts.published


@pytest.mark.integration
@pytest.mark.slow
def test_live_hls_is_sampled_steadily_and_a_dead_encoder_is_reconnected(
        kafka_server, unique_prefix, tmp_path):
    encoder, playlist = start_live_hls(require(SMILE), tmp_path / "live")
    server = StaticHttpServer(playlist.parent).start()
    camera = CameraConfig(id="hls-live", url=server.url(playlist.name), fps=10)
    try:
        with RunningIngest(kafka_server.bootstrap, unique_prefix, [camera],
                           stall_timeout_s=2, backoff_initial_s=0.2, backoff_max_s=0.5) as ingest:
            counts = ingest.counts("hls-live")
            assert wait_until(lambda: counts.published >= 15, 10), counts
            live_counts = (counts.dropped_total, counts.reconnects)
            encoder.kill()  # dies without #EXT-X-ENDLIST: the playlist just goes stale
            encoder.wait(5)
            assert wait_until(lambda: counts.reconnects >= 1, 10), counts
        got = read_topics(kafka_server.bootstrap, unique_prefix, lambda g: g.complete())
    finally:
        encoder.kill()
        server.stop()
    assert live_counts == (0, 0)
    offsets = sorted(h.offset_s for _, h, _ in got.frames)
    # 10 fps by wall clock, steady across segment boundaries: no segment-sized bursts or holes.
    steady = np.diff(offsets[:15])
    assert np.median(steady) == pytest.approx(0.1, abs=0.02) and steady.max() < 0.3, steady
    states = ingest.metrics.states("hls-live")
    assert states[:3] == [SourceState.CONNECTING, SourceState.STREAMING, SourceState.RECONNECTING]
    assert SourceState.ENDED not in states[:-1]  # a stale live playlist is not the end
