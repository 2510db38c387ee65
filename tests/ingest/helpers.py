"""Real test servers and readers for ingest tests: an HTTP MJPEG camera and Kafka readers."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
from kafka import KafkaConsumer

from ingest.config import CameraConfig, IngestSettings
from ingest.metrics import IngestMetrics
from ingest.publisher import make_producer
from ingest.service import IngestService
from ingest.source import SourceState, StatusEvent
from moodstream.clients import ensure_topics, kafka_producer
from moodstream.embedded import free_port
from moodstream.schemas import ControlEvent, FrameHeaders
from moodstream.topics import Topics


def clip_jpegs(path, limit: int = 30, width: int = 320) -> list[bytes]:
    """The first frames of a shared clip, downscaled and JPEG-encoded once."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < limit:
        ok, image = capture.read()
        if not ok:
            break
        height = round(image.shape[0] * width / image.shape[1])
        frames.append(cv2.imencode(".jpg", cv2.resize(image, (width, height)))[1].tobytes())
    capture.release()
    assert frames, f"could not decode {path}"
    return frames


class MjpegServer:
    """A camera on HTTP: multipart/x-mixed-replace JPEG stream, restartable on the same port."""

    def __init__(self, frames: list[bytes], fps: float = 15.0, port: int | None = None):
        self.frames, self.fps = frames, fps
        self.port = port or free_port()
        self.connections = 0
        self._server: ThreadingHTTPServer | None = None
        self._alive = threading.Event()
        self.stalled = threading.Event()  # set: keep connections open but send nothing

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def start(self) -> "MjpegServer":
        self._alive.set()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Kill the stream mid-flight: open connections end, the port stops listening."""
        self._alive.clear()
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                server.connections += 1
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                index = 0
                try:
                    while server._alive.is_set():
                        if server.stalled.is_set():
                            time.sleep(0.05)
                            continue
                        jpeg = server.frames[index % len(server.frames)]
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n"
                                         b"Content-Length: %d\r\n\r\n" % len(jpeg) + jpeg + b"\r\n")
                        index += 1
                        time.sleep(1.0 / server.fps)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        return Handler


@dataclass
class Received:
    frames: list[tuple[bytes, FrameHeaders, bytes]]  # (key, headers, jpeg)
    control: list[ControlEvent]
    frame_times_ms: list[int]  # broker record timestamps (producer create time)

    def ends(self) -> list[ControlEvent]:
        return [e for e in self.control if e.type == "session_end"]

    def complete(self, sessions: int = 1) -> bool:
        """All `sessions` ended and every frame their session_end counted has arrived."""
        ends = self.ends()
        return len(ends) >= sessions and len(self.frames) >= sum(e.frames_published for e in ends)


def read_topics(bootstrap: str, prefix: str, until, timeout_s: float = 30.0) -> Received:
    """Read frames and control events from the beginning until `until(received)` or timeout."""
    topics = Topics(prefix)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=500)
    consumer.subscribe([topics.frames, topics.control])
    got = Received([], [], [])
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not until(got):
            for batch in consumer.poll(timeout_ms=300).values():
                for msg in batch:
                    if msg.topic == topics.frames:
                        got.frames.append((msg.key, FrameHeaders.from_kafka(msg.headers), msg.value))
                        got.frame_times_ms.append(msg.timestamp)
                    else:
                        got.control.append(ControlEvent.from_bytes(msg.value))
    finally:
        consumer.close()
    return got


def wait_until(predicate, timeout_s: float, step_s: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step_s)
    return predicate()


class RecordingMetrics(IngestMetrics):
    """Real metrics that also keep every state change, for assertions on the state machine."""

    def __init__(self):
        super().__init__()
        self.events: list[StatusEvent] = []

    def status(self, event: StatusEvent) -> None:
        self.events.append(event)
        super().status(event)

    def states(self, camera_id: str) -> list[SourceState]:
        return [e.state for e in self.events if e.camera_id == camera_id]


class RunningIngest:
    """An in-process IngestService on a real broker, run in a thread; stopped on exit."""

    def __init__(self, bootstrap: str, prefix: str, cameras: list[CameraConfig], **overrides):
        self.settings = IngestSettings.load(kafka_bootstrap_servers=bootstrap, topic_prefix=prefix,
                                            **overrides)
        ensure_topics(self.settings)
        self.producer = make_producer(self.settings, kafka_producer)
        self.metrics = RecordingMetrics()
        self.service = IngestService(self.settings, cameras, self.producer, self.metrics)
        self.exit_code: int | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        self.exit_code = self.service.run()

    def __enter__(self) -> "RunningIngest":
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.service.request_stop()
        self._thread.join(60)
        self.producer.close(timeout=5)

    def alive(self) -> bool:
        return self._thread.is_alive()

    def wait_done(self, timeout_s: float) -> int | None:
        self._thread.join(timeout_s)
        return self.exit_code

    def counts(self, camera_id: str):
        return self.metrics.counts(camera_id)
