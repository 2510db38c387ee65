"""Fills a real Redis with realistic sessions through the aggregator's own apply code.

Control events and detection messages (the wire formats of moodstream.schemas) are fed to
aggregator.service.Aggregator.process exactly as the consumer loop would feed Kafka
records, so the dashboard tests read what the real aggregator writes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import redis

from aggregator.alerts import AlertMonitor, AlertRule, AlertStore
from aggregator.service import Aggregator
from aggregator.store import SessionStore
from moodstream.emotions import DEFAULT_VALENCE, EMOTIONS
from moodstream.redis_keys import RedisKeys
from moodstream.schemas import ControlEvent, DetectionMessage, Face
from moodstream.topics import Topics

FPS = 2


@dataclass
class Record:
    """The few attributes of a Kafka ConsumerRecord that the aggregator reads."""

    topic: str
    value: bytes
    partition: int = 0
    offset: int = 0


def face_probs(mood: float) -> dict[str, float]:
    """An emotion distribution for a face whose mood runs from -1 (angry) to +1 (happy)."""
    raw = {"angry": max(0.0, -mood) * 0.6 + 0.02, "disgust": 0.02, "fear": 0.03,
           "happy": max(0.0, mood) * 0.8 + 0.03, "neutral": 0.5 - abs(mood) * 0.35,
           "sad": max(0.0, -mood) * 0.3 + 0.02, "surprise": 0.05}
    total = sum(raw.values())
    return {e: round(raw[e] / total, 5) for e in EMOTIONS}


class Filler:
    def __init__(self, client: redis.Redis, prefix: str):
        self.keys, self.topics = RedisKeys(prefix), Topics(prefix)
        store = SessionStore(client, self.keys, DEFAULT_VALENCE, bucket_ttl_s=86400,
                             summary_ttl_s=7 * 86400, ema_alpha=0.3)
        self.aggregator = Aggregator(
            store, self.topics, idle_timeout_s=3600, end_grace_s=5,
            monitor=AlertMonitor(AlertRule(cooldown_s=3600)),
            alert_store=AlertStore(client, self.keys, ttl_s=3600))

    def _control(self, kind: str, camera: str, session: str, ts: float, **extra) -> Record:
        event = ControlEvent(type=kind, camera_id=camera, session_id=session, ts=ts, **extra)
        return Record(self.topics.control, event.to_bytes())

    def session(self, camera: str, session: str, started_at: float, seconds: int,
                mood_start: float, mood_end: float, people: int = 2, end: bool = False,
                min_people: int | None = None) -> None:
        """One session: start event (with the camera file's min_people, if given), FPS
        frames a second (every 7th second without faces)."""
        self.aggregator.process([self._control("session_start", camera, session, started_at,
                                               source=f"rtsp://cams.example/{camera}",
                                               min_people=min_people)])
        seq = self.frames(camera, session, started_at, range(seconds), mood_start, mood_end,
                          people)
        if end:
            self.aggregator.process([self._control(
                "session_end", camera, session, started_at + seconds, frames_published=seq,
                reason="eof")])

    def frames(self, camera: str, session: str, started_at: float, seconds: range,
               mood_start: float, mood_end: float, people: int = 2, seq: int = 0) -> int:
        """FPS detections a second of the session for each second t in seconds (every 7th
        without faces), the first numbered seq; returns the next seq."""
        records = []
        for t in seconds:
            mood = mood_start + (mood_end - mood_start) * t / max(1, seconds.stop - 1)
            for frame in range(FPS):
                offset = t + frame / FPS
                faces = [] if t % 7 == 6 else [
                    Face(box=(40 + 90 * i, 60, 64, 64), score=0.9, track_id=i + 1,
                         probs=face_probs(max(-1.0, min(1.0, mood + 0.1 * math.sin(seq + i)))))
                    for i in range(people)]
                msg = DetectionMessage(camera_id=camera, session_id=session, seq=seq,
                                       capture_ts=started_at + offset, offset_s=offset,
                                       frame_w=640, frame_h=360, faces=faces)
                records.append(Record(self.topics.detections, msg.to_bytes()))
                seq += 1
        for start in range(0, len(records), 100):  # consumer-sized batches
            self.aggregator.process(records[start:start + 100])
        return seq
