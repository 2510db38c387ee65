"""Typed detector settings, built once in main() from env (MOODSTREAM_DETECTOR_*) and CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from moodstream.settings import ServiceSettings, service_config

DETECTOR_BACKENDS = ("yunet", "haar")
# The repo's model, found from any working directory (the launcher may start us elsewhere).
# On the 2-core CPU a call costs ~1 ms per face whatever the batch, so 64 keeps latency
# low; a GPU amortises its launch cost over far bigger batches.
CPU_BATCH, GPU_BATCH = 64, 256
DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "models" / "emotion.card.json"


class DetectorSettings(ServiceSettings):
    """Env: MOODSTREAM_DETECTOR_<FIELD> only (a bare MODEL or GROUP_ID is ignored)."""

    model_config = service_config("detector")

    model: Path = Field(DEFAULT_MODEL)
    # Dynamic batching: one inference call per max_batch crops or per max_wait_ms.
    # Unset: per device, GPU_BATCH with a GPU, CPU_BATCH without.
    max_batch: int | None = Field(None, ge=1, le=4096)
    max_wait_ms: float = Field(50.0, ge=0, le=10_000)
    detector: str = Field("yunet", pattern=f"^({'|'.join(DETECTOR_BACKENDS)})$")
    min_face: int = Field(20, ge=1)
    confidence: float = Field(0.6, ge=0.0, le=1.0)
    # Frames wider than this are shrunk for detection only; crops come from full resolution.
    # 640 by measurement (benchmarks/face_detectors.py, WIDER subset): recall of faces
    # >= 40 px 0.845 vs 0.861 at 960, >= 20 px 0.70 vs 0.79, at under half the time.
    # Raise it for far-away cameras with small faces.
    downscale: int = Field(640, ge=0)
    # While a camera shows faces, detect at a width where its smallest face is still ~40 px,
    # with a full-width pass every this many frames (detector/scaling.py); 1 = always full.
    # 8: a new face too small for the reduced pass waits <= 7 frames (0.28 s at 25 fps);
    # single_face_smile stages 142 fps at 5, ~170-180 at 8 vs 48 at 1 (detector_bench).
    detect_refresh_frames: int = Field(8, ge=1, le=1000)
    # Threads that decode and detect frames while the main thread polls, classifies and
    # sends (detector/overlap.py); each camera's frames still settle in order, so the
    # detections are the same as with 0 or 1 (everything on the main thread).
    decode_threads: int = Field(2, ge=0, le=64)
    cameras: Path | None = Field(None)
    group_id: str = Field("detector", min_length=1)
    # "group": join the consumer group (workers share the partitions; the join takes
    # ~session_timeout/2 on Tansu). "all": read every partition with no join, offsets still
    # committed to group_id: for ONE detector per group, e.g. `moodstream analyze` on its
    # embedded broker (moodstream.clients.kafka_consumer).
    assign: Literal["group", "all"] = Field("group")
    # A LIVE frame (FrameHeaders.live) this many seconds old when read is not analysed: it
    # becomes a "stale" skipped detection, so a detector that fell behind catches up with
    # the newest frames and every skipped frame is still counted. Files never skip. 0 = off.
    max_lag_s: float = Field(2.0, ge=0, le=86_400)
    # EMA weight of the newest frame in a track's smoothed probabilities (1 = no smoothing).
    smoothing_alpha: float = Field(0.4, gt=0.0, le=1.0)
    track_iou: float = Field(0.3, gt=0.0, lt=1.0)
    track_max_age_s: float = Field(1.5, gt=0.0)
    # Poison-frame limits: bigger JPEGs or decoded frames go to the dead-letter topic.
    max_jpeg_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    max_pixels: int = Field(4096 * 4096, ge=64 * 64)
    # Longest a detection or dead letter may take to be acknowledged before its batch
    # counts as undelivered (not committed, re-read). Kept well under the consumer's
    # 60 s max poll interval, so a broker outage does not also cost the group membership.
    delivery_timeout_ms: int = Field(20_000, ge=1000, le=60_000)
    detector_id: str = Field("")
