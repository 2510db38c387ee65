"""The ingest process: one worker per camera, a shared producer, metrics, orderly shutdown."""

from __future__ import annotations

import logging
import secrets
import threading
import time

from ingest.camera import CameraWorker
from ingest.config import CameraConfig, IngestSettings
from ingest.metrics import IngestMetrics, MetricsServer
from ingest.publisher import Publisher
from ingest.source import ReaderTuning, SourceState, StatusEvent, check_file, is_live
from moodstream.clients import ensure_topics
from moodstream.settings import SettingsError
from moodstream.topics import Topics

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def new_run_id() -> str:
    """12 hex chars: this process's frames stay distinct from an earlier run's same seqs."""
    return secrets.token_hex(6)


def tuning_from(settings: IngestSettings) -> ReaderTuning:
    return ReaderTuning(stall_timeout_s=settings.stall_timeout_s,
                        open_timeout_s=settings.open_timeout_s,
                        backoff_initial_s=settings.backoff_initial_s,
                        backoff_max_s=settings.backoff_max_s,
                        reconnect_max_attempts=settings.reconnect_max_attempts)


def usable_cameras(cameras: list[CameraConfig], metrics: IngestMetrics) -> list[CameraConfig]:
    """Drop cameras whose video file is missing or unreadable; each gets one error line."""
    usable = []
    for camera in cameras:
        problem = check_file(camera.url)
        if problem:
            log.error("camera %s: %s", camera.id, problem)
            metrics.status(StatusEvent(camera.id, SourceState.FAILED, None, time.time(), problem))
        else:
            usable.append(camera)
    return usable


def warn_missing_notices(cameras: list[CameraConfig]) -> None:
    """One warning per live camera whose file says no notice (signage) is posted: people
    in view must be told (docs/PRIVACY.md). A recording's notice was the recording's."""
    for camera in cameras:
        if not camera.notice and is_live(camera.url):
            log.warning("camera %s: notice is false: post a notice where it films before "
                        "analysing people (purpose: %s)", camera.id, camera.purpose or "not set")


class IngestService:
    def __init__(self, settings: IngestSettings, cameras: list[CameraConfig], producer,
                 metrics: IngestMetrics | None = None, stop: threading.Event | None = None):
        self.settings, self.cameras, self.producer = settings, cameras, producer
        self.run_id = settings.run_id or new_run_id()
        self.metrics = metrics or IngestMetrics()
        self.stop = stop or threading.Event()
        self.publisher = Publisher(producer, Topics(settings.topic_prefix),
                                   settings.publish_buffer, self.metrics, self.stop,
                                   restore_topics=lambda: ensure_topics(settings))
        tuning = tuning_from(settings)
        queue_sizes = (settings.queue_size, settings.live_queue_size)
        self.workers = [CameraWorker(camera, self.publisher, self.metrics, self.stop, tuning,
                                     queue_sizes, self.run_id) for camera in cameras]
        self.metrics_server: MetricsServer | None = None

    def run(self) -> int:
        """Run until every camera has ended or failed, or until stop; returns the exit code."""
        self._start_metrics()
        log.info("ingest run %s: %d camera(s)", self.run_id, len(self.workers))
        warn_missing_notices(self.cameras)
        try:
            for worker in self.workers:
                worker.start()
            # Short joins keep the main thread free to take SIGINT/SIGTERM.
            while any(worker.is_alive() for worker in self.workers):
                for worker in self.workers:
                    worker.join(0.2)
        finally:
            self._shutdown()
        return self._exit_code()

    def request_stop(self) -> None:
        self.stop.set()

    def _start_metrics(self) -> None:
        if self.settings.metrics_port:
            host, port = self.settings.metrics_host, self.settings.metrics_port
            try:
                self.metrics_server = MetricsServer(self.metrics, host, port).start()
            except OSError as exc:
                raise SettingsError(f"cannot serve metrics on {host}:{port}: "
                                    f"{exc.strerror or exc}") from None
            log.info("metrics on http://%s:%d/metrics, health on /healthz",
                     self.settings.metrics_host, self.metrics_server.port)

    def _shutdown(self) -> None:
        self.stop.set()
        for worker in self.workers:
            # Workers end their sessions (flush + session_end) before returning.
            worker.join(timeout=60)
        self.publisher.flush(timeout_s=10)
        if self.metrics_server:
            self.metrics_server.stop()

    def _exit_code(self) -> int:
        states = [worker.state for worker in self.workers]
        if states and all(state in (SourceState.FAILED, None) for state in states):
            log.error("no camera could be ingested")
            return EXIT_FAILED
        return EXIT_OK
