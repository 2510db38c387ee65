"""Aggregator test helpers: detection/control builders and a store on the real Redis."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import redis

from aggregator.store import SessionStore
from moodstream.emotions import DEFAULT_VALENCE, EMOTIONS
from moodstream.redis_keys import RedisKeys
from moodstream.schemas import ControlEvent, DetectionMessage

T0 = 1_700_000_000.0
REPO_ROOT = Path(__file__).resolve().parents[2]


def probs(dominant: str, weight: float = 0.7) -> dict[str, float]:
    rest = (1.0 - weight) / (len(EMOTIONS) - 1)
    return {e: (weight if e == dominant else rest) for e in EMOTIONS}


def detection(seq: int, emotions: list[str] = (), camera: str = "cam1", session: str = "s1",
              fps: float = 10.0, tracks: list[int] | None = None, **extra) -> DetectionMessage:
    faces = [{"box": (10 * i, 10, 40, 40), "score": 0.9, "probs": probs(e),
              "track_id": None if tracks is None else tracks[i]}
             for i, e in enumerate(emotions)]
    return DetectionMessage(camera_id=camera, session_id=session, seq=seq,
                            capture_ts=T0 + seq / fps, offset_s=seq / fps, faces=faces, **extra)


def control(kind: str, camera: str = "cam1", session: str = "s1", frames: int | None = None,
            ts: float = T0, source: str = "") -> ControlEvent:
    return ControlEvent(type=kind, camera_id=camera, session_id=session, ts=ts, source=source,
                        frames_published=frames, reason="eof" if kind == "session_end" else "")


@pytest.fixture
def redis_conn(redis_server):
    client = redis.Redis(host=redis_server.host, port=redis_server.port, db=15,
                         decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def keys() -> RedisKeys:
    return RedisKeys(f"t{uuid.uuid4().hex[:10]}")


@pytest.fixture
def make_store(redis_conn, keys):
    def make(bucket_ttl_s: int = 0, summary_ttl_s: int = 0, valence=DEFAULT_VALENCE,
             ema_alpha: float = 0.5) -> SessionStore:
        return SessionStore(redis_conn, keys, valence, bucket_ttl_s, summary_ttl_s, ema_alpha)
    return make


@pytest.fixture
def raw_conn(redis_server):
    """The tests' Redis db without decoding: seen bitmaps are binary strings."""
    client = redis.Redis(host=redis_server.host, port=redis_server.port, db=15)
    yield client
    client.close()


def snapshot(raw: redis.Redis, prefix: str) -> dict[bytes, bytes]:
    """Every key under the prefix with its serialized value (DUMP): equal snapshots mean
    nothing under the prefix changed."""
    return {key: raw.dump(key) for key in sorted(raw.scan_iter(f"{prefix}:*", count=1000))}


def keys_without_ttl(raw: redis.Redis, prefix: str) -> dict[bytes, int]:
    """Keys under the prefix that would live forever (TTL -1), with that TTL."""
    found = {key: raw.ttl(key) for key in raw.scan_iter(f"{prefix}:*", count=1000)}
    return {key: ttl for key, ttl in found.items() if ttl <= 0 and ttl != -2}
