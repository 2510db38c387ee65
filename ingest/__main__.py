"""`python -m ingest --source SRC --camera-id ID ...` or `python -m ingest --config cameras.yaml`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading

import cv2

from ingest.config import IngestSettings
from ingest.metrics import IngestMetrics
from ingest.publisher import make_producer
from ingest.service import EXIT_BAD_INPUT, EXIT_FAILED, IngestService, usable_cameras
from moodstream.clients import ServiceUnavailable, ensure_topics, kafka_producer
from moodstream.lifecycle import stop_on_signals
from moodstream.logs import setup_logging
from moodstream.settings import SettingsError, redact

log = logging.getLogger("ingest")


def configure_logging(level: str) -> None:
    setup_logging(level, "ingest")
    # FFmpeg and OpenCV print their own stderr lines for each bad file or dropped stream;
    # the reader reports those itself, once, as a state change.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    cv2.setLogLevel(0)  # 0 = silent


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m ingest", description=__doc__)
    p.add_argument("--source", help="video file, rtsp/http(s) URL, or webcam index")
    p.add_argument("--camera-id", help="camera id (default cam1)")
    p.add_argument("--session-id", help="explicit session id (default: automatic per camera)")
    p.add_argument("--config", help="camera config file (.yaml/.yml/.toml) listing many cameras")
    p.add_argument("--fps", type=float, help="target frames per second, 0 = every frame (default 5)")
    p.add_argument("--mode", choices=["realtime", "fast"], help="file pacing (default realtime)")
    p.add_argument("--loop", action="store_true", default=None, help="replay files forever")
    p.add_argument("--max-width", type=int, help="downscale wider frames (default 1280)")
    p.add_argument("--jpeg-quality", type=int, help="1..100 (default 85)")
    p.add_argument("--session-gap", type=float, dest="session_gap_s",
                   help="seconds without frames that start a new automatic session")
    p.add_argument("--session-every", type=float, dest="session_every_s",
                   help="live sources: also start a new automatic session every N s, "
                        "wall-clock aligned (default 3600; 0 = never); a file is one session")
    p.add_argument("--metrics-port", type=int,
                   help="/metrics, /healthz and /readyz on this port (default 0 = off)")
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING, ERROR")
    return p.parse_args(argv)


def _fail(message: str, code: int) -> int:
    print(f"ingest: error: {redact(message)}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = IngestSettings.load(**vars(args))
        cameras = settings.cameras()
    except SettingsError as exc:
        return _fail(str(exc), EXIT_BAD_INPUT)
    configure_logging(settings.log_level)
    metrics = IngestMetrics()
    cameras = usable_cameras(cameras, metrics)
    if not cameras:
        return EXIT_BAD_INPUT  # each camera's problem is already on stderr, one line each
    producer = None
    stop = threading.Event()
    try:
        ensure_topics(settings)
        producer = make_producer(settings, kafka_producer)
        metrics.kafka_connected = True
        service = IngestService(settings, cameras, producer, metrics, stop=stop)
        stop_on_signals(stop, log)
        return service.run()
    except ServiceUnavailable as exc:
        return _fail(str(exc), EXIT_FAILED)
    except KeyboardInterrupt:  # Ctrl-C before the service took over the signals
        return 130
    except SettingsError as exc:
        return _fail(str(exc), EXIT_BAD_INPUT)
    finally:
        if producer is not None:
            producer.close(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
