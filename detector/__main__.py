"""python -m detector: faces + batched emotions from the frames topic to the detections topic.

Runs until SIGTERM or SIGINT. Exit codes: 0 clean stop, 1 runtime failure (e.g. broker
unreachable), 2 bad configuration (missing model, bad setting or camera file).
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from kafka.errors import KafkaError  # noqa: E402

from detector.classifier import ModelError, resolve_serving  # noqa: E402
from detector.faces import DetectorError  # noqa: E402
from detector.settings import CPU_BATCH, GPU_BATCH, DetectorSettings  # noqa: E402
from moodstream.clients import ServiceUnavailable  # noqa: E402
from moodstream.lifecycle import process_age_s, stop_on_signals  # noqa: E402
from moodstream.logs import setup_logging  # noqa: E402
from moodstream.settings import SettingsError  # noqa: E402

log = logging.getLogger("detector")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m detector", description=__doc__.splitlines()[0])
    p.add_argument("--model", help="emotion model (.keras/.tflite) or its .card.json "
                                   "(default models/emotion.card.json: the artefact its card names)")
    p.add_argument("--max-batch", type=int, help="most face crops per inference call "
                                                 "(64 on CPU, 256 on GPU)")
    p.add_argument("--max-wait-ms", type=float, help="longest a frame waits for its batch (50)")
    p.add_argument("--detector", help="face detector backend: yunet (default) or haar")
    p.add_argument("--min-face", type=int, help="smallest face side in frame pixels (20)")
    p.add_argument("--confidence", type=float, help="face detector confidence 0..1 (0.6)")
    p.add_argument("--downscale", type=int,
                   help="detect on frames shrunk to this width, 0 = never (640)")
    p.add_argument("--detect-refresh-frames", type=int,
                   help="while faces are in view, detect smaller and at full width every "
                        "N-th frame; 1 = every frame at full width (8)")
    p.add_argument("--decode-threads", type=int,
                   help="threads that decode and detect frames beside the main thread; "
                        "0 or 1 = all on the main thread (2)")
    p.add_argument("--cameras", help="cameras YAML/TOML whose `roi` polygons mark excluded zones")
    p.add_argument("--group-id", help="Kafka consumer group (detector)")
    p.add_argument("--assign", choices=("group", "all"),
                   help="group: join the consumer group, workers share the partitions "
                        "(default); all: read every partition with no group join, committing "
                        "to the group's offsets: only for ONE detector per group (analyze)")
    p.add_argument("--max-lag-s", type=float,
                   help="a live frame older than this when read is skipped, counted as "
                        "stale, not analysed; files never skip; 0 = off (2)")
    p.add_argument("--smoothing-alpha", type=float, help="EMA weight of the newest frame (0.4)")
    p.add_argument("--detector-id", help="name in each detection (default host:pid)")
    p.add_argument("--delivery-timeout-ms", type=int,
                   help="longest a send may wait for the broker's ack before its batch is "
                        "re-read instead of committed (20000)")
    p.add_argument("--metrics-port", type=int,
                   help="/metrics, /healthz and /readyz on this port (default 0 = off)")
    return p


def check_config(settings: DetectorSettings):
    """The cheap checks, before any connection or slow import: model files, cameras, backend."""
    from detector.faces import build_detector
    from detector.roi import load_masks
    resolve_serving(settings.model)
    masks = load_masks(settings.cameras) if settings.cameras else {}
    detector = build_detector(settings.detector, settings.confidence, settings.min_face,
                              settings.downscale)
    settings.require_kafka()
    return detector, masks


def build_pipeline(settings: DetectorSettings, detector, masks):
    """Loads the model (the slow part); raises ModelError."""
    from detector.classifier import EmotionModel
    from detector.pipeline import FramePipeline
    from detector.scaling import DetectionScaler
    from detector.tracking import Trackers
    model = EmotionModel(settings.model)
    max_batch = settings.max_batch or (GPU_BATCH if model.device.startswith("gpu") else CPU_BATCH)
    trackers = Trackers(settings.track_iou, settings.track_max_age_s, settings.smoothing_alpha)
    pipeline = FramePipeline(detector, model, trackers, masks, max_batch,
                             settings.max_jpeg_bytes, settings.max_pixels,
                             settings.detector_id or f"{socket.gethostname()}:{os.getpid()}",
                             DetectionScaler(settings.downscale, settings.detect_refresh_frames),
                             threads=settings.decode_threads)
    pipeline.warm_up()  # model and face detector, before the first frame arrives
    return pipeline


class PipelineLoader:
    """build_pipeline() in a thread, so the model loads and warms up while the service
    connects to Kafka; result() waits for it and re-raises its error (ModelError)."""

    def __init__(self, settings: DetectorSettings, detector, masks):
        self._args = (settings, detector, masks)
        self._pipeline = self._error = None
        self.seconds = 0.0
        self._thread = threading.Thread(target=self._load, name="model-loader", daemon=True)

    def start(self) -> "PipelineLoader":
        self._thread.start()
        return self

    def _load(self) -> None:
        start = time.monotonic()
        try:
            self._pipeline = build_pipeline(*self._args)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread by result()
            self._error = exc
        self.seconds = time.monotonic() - start

    def result(self):
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._pipeline


def _secs(value: float | None) -> str:
    return "?" if value is None else f"{value:.2f} s"


def main(argv: list[str] | None = None) -> int:
    entered = process_age_s()
    args = _parser().parse_args(argv)
    stop = threading.Event()
    stop_on_signals(stop, log)
    service = None
    try:
        settings = DetectorSettings.load(**{k: v for k, v in vars(args).items()})
        setup_logging(settings.log_level, "detector")
        checked = time.monotonic()
        detector, masks = check_config(settings)
        checked = time.monotonic() - checked
        # The model loads and warms up while we connect: neither waits for the other.
        loader = PipelineLoader(settings, detector, masks).start()
        from detector.service import DetectorService
        service = DetectorService(settings, stop=stop)
        # /healthz from now on; /readyz once connected, assigned and the model is loaded.
        service.metrics.ready_when(service).health.start_from(settings)
        connect_start = time.monotonic()
        try:
            service.connect()
        finally:
            # A broken model is a configuration error (exit 2, never restarted): it wins
            # over an unreachable broker.
            pipeline = loader.result()
        connect_s = time.monotonic() - connect_start
        logging.getLogger("kafka").setLevel(max(logging.WARNING, logging.getLogger().level))
        service.attach(pipeline)
        log.info("serving %s (%s) on %s; faces by %s; batch %d / %.0f ms; group %s (%s); "
                 "max lag %.1f s", pipeline.model.path, pipeline.model.format,
                 pipeline.model.device, settings.detector, pipeline.max_batch,
                 settings.max_wait_ms, settings.group_id,
                 "all partitions, no join" if settings.assign == "all" else "joined on poll",
                 settings.max_lag_s)
        age = process_age_s()
        log.info("ready %s after process start (Python start-up and imports %s, config "
                 "checks %.2f s, then model loaded and warmed in %.2f s while connecting in "
                 "%.2f s)", _secs(age), _secs(entered), checked, loader.seconds, connect_s)
        service.run()
        return 0
    except (SettingsError, ModelError, DetectorError) as exc:
        print(f"detector: {exc}", file=sys.stderr)
        return 2
    except ServiceUnavailable as exc:
        print(f"detector: {exc}", file=sys.stderr)
        return 1
    except KafkaError as exc:  # the broker went away mid-run: stop; uncommitted frames replay
        print(f"detector: Kafka failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        if service is not None:
            service.close()


if __name__ == "__main__":
    sys.exit(main())
