"""One camera's worker: takes sampled frames from its reader, keeps sessions, encodes, publishes."""

from __future__ import annotations

import logging
import threading
import time

import cv2
import numpy as np

from ingest.config import CameraConfig
from ingest.metrics import IngestMetrics
from ingest.publisher import Publisher
from ingest.sampling import SENTINEL, DropPolicy, FrameQueue
from ingest.sessions import Session, SessionTracker
from ingest.source import FrameReader, RawFrame, ReaderTuning, SourceState, StatusEvent, is_live
from moodstream.schemas import ControlEvent, FrameHeaders
from moodstream.settings import redact

log = logging.getLogger(__name__)


def encode_jpeg(image: np.ndarray, max_width: int, quality: int) -> tuple[bytes, int, int] | None:
    """Downscale to max_width (keeping aspect) and JPEG-encode; None if OpenCV refuses."""
    height, width = image.shape[:2]
    if width > max_width:
        height = max(1, round(height * max_width / width))
        width = max_width
        # Bilinear: ~3x faster than INTER_AREA at 1080p -> 1280, and a 1.5x downscale
        # keeps faces sharp enough for the detector.
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return (buffer.tobytes(), width, height) if ok else None


class CameraWorker:
    def __init__(self, camera: CameraConfig, publisher: Publisher, metrics: IngestMetrics,
                 stop: threading.Event, tuning: ReaderTuning, queue_sizes: tuple[int, int],
                 run_id: str, flush_timeout_s: float = 10.0):
        self.camera, self.publisher, self.metrics = camera, publisher, metrics
        self.run_id = run_id  # seq restarts in every run: (session, run_id, seq) is unique
        self.flush_timeout_s = flush_timeout_s
        policy = FrameReader.drop_policy(camera)
        file_size, live_size = queue_sizes
        self.queue = FrameQueue(live_size if policy is DropPolicy.DROP_OLDEST else file_size,
                                policy, stop)
        cam = camera.id
        self.reader = FrameReader(
            camera, self.queue, stop, tuning, on_status=self._on_status,
            on_read=lambda: metrics.read(cam),
            on_dropped=lambda n: metrics.dropped(cam, "queue_full", n) if n else None,
            on_reconnect=lambda: metrics.reconnect(cam))
        self.live = is_live(camera.url)  # in every frame's headers: a late one may be skipped
        self.sessions = SessionTracker(cam, camera.session, live=self.live)
        self._seq = 0
        self._submitted = 0  # frames of the current session handed to the producer
        self._thread = threading.Thread(target=self._run, name=f"worker-{cam}", daemon=True)

    def start(self) -> None:
        log.info("camera %s: starting %s (fps=%s, mode=%s, policy=%s, loop=%s)", self.camera.id,
                 redact(self.camera.url), self.camera.fps or "all", self.camera.mode.value,
                 self.queue.policy.value, self.camera.loop)
        self.reader.start()
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        if self._thread.ident is not None:  # started
            self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def state(self) -> SourceState | None:
        return self.reader.state

    def _on_status(self, event: StatusEvent) -> None:
        self.metrics.status(event)
        level = logging.WARNING if event.state in (SourceState.RECONNECTING,
                                                   SourceState.FAILED) else logging.INFO
        log.log(level, "camera %s: %s -> %s%s", event.camera_id,
                event.previous.value if event.previous else "new", event.state.value,
                f" ({redact(event.detail)})" if event.detail else "")

    def _run(self) -> None:
        try:
            while True:
                item = self.queue.get()
                if item is SENTINEL:
                    break
                self._process(item)
        except Exception:  # noqa: BLE001 - keep the other cameras going
            log.exception("camera %s: worker crashed", self.camera.id)
            self.reader.end_reason = "error"
        finally:
            self._end_session(self.reader.end_reason)
            self._log_summary()

    def _process(self, frame: RawFrame) -> None:
        rollover = self.sessions.on_frame(frame.media_s, frame.capture_ts)
        if rollover.ended:
            self._close(rollover.ended, rollover.reason)
        if rollover.started:
            self._open(rollover.started)
        encoded = encode_jpeg(frame.image, self.camera.max_width, self.camera.jpeg_quality)
        if encoded is None:
            self.metrics.dropped(self.camera.id, "encode_failed")
            return
        jpeg, width, height = encoded
        session = self.sessions.current
        headers = FrameHeaders(self.camera.id, session.id, self._seq, frame.capture_ts,
                               round(frame.media_s - session.start_media_s, 6), width, height,
                               run_id=self.run_id, live=self.live, still=frame.still)
        if self.publisher.publish_frame(headers, jpeg, self.queue.policy):
            self._seq += 1
            self._submitted += 1

    def _open(self, session: Session) -> None:
        self._seq, self._submitted = 0, 0
        log.info("camera %s: session %s started", self.camera.id, session.id)
        self.publisher.publish_control(ControlEvent(
            type="session_start", camera_id=self.camera.id, session_id=session.id,
            ts=session.started_at, source=redact(self.camera.url),
            purpose=self.camera.purpose, notice=self.camera.notice,
            min_people=self.camera.min_people))

    def _end_session(self, reason: str) -> None:
        session = self.sessions.finish()
        if session is not None:
            self._close(session, reason)

    def _close(self, session: Session, reason: str) -> None:
        # Count only what the broker acknowledged, so consumers wait for exactly that many.
        published = self.publisher.settle(self.camera.id, session.id, self._submitted,
                                          self.flush_timeout_s)
        log.info("camera %s: session %s ended (%s): %d frames published", self.camera.id,
                 session.id, reason, published)
        self.publisher.publish_control(ControlEvent(
            type="session_end", camera_id=self.camera.id, session_id=session.id,
            ts=time.time(), source=redact(self.camera.url), frames_published=published,
            reason=reason))

    def _log_summary(self) -> None:
        counts = self.metrics.counts(self.camera.id)
        dropped = ", ".join(f"{k}={v}" for k, v in sorted(counts.dropped.items())) or "none"
        log.info("camera %s: done (%s): read=%d published=%d dropped=%d [%s] reconnects=%d",
                 self.camera.id, self.state.value if self.state else "never started",
                 counts.read, counts.published, counts.dropped_total, dropped, counts.reconnects)
