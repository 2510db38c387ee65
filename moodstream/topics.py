"""Kafka topic names, derived from one prefix so several deployments can share a broker."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topics:
    prefix: str = "moodstream"

    @property
    def frames(self) -> str:  # key: camera id; value: JPEG; headers: see schemas.FrameHeaders
        return f"{self.prefix}.frames"

    @property
    def detections(self) -> str:  # key: camera id; value: DetectionMessage JSON
        return f"{self.prefix}.detections"

    @property
    def control(self) -> str:  # key: camera id; value: ControlEvent JSON (session start/end)
        return f"{self.prefix}.control"

    @property
    def deadletter(self) -> str:  # key: original key; value: original bytes; headers: reason
        return f"{self.prefix}.deadletter"

    def all(self) -> list[str]:
        return [self.frames, self.detections, self.control, self.deadletter]
