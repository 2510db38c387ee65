"""`moodstream analyze` of still images: which inputs are stills, how they become ingest
jobs, and the detections (boxes) collected for their per-image report entries.

A folder is one job (one session, its camera named after the folder); images named on
the command line together are one more ("stills"). Each job's images are linked, in the
order given, into a folder of its own that ingest reads as a still source, so image i
is the frame at session time i s. Unreadable images are skipped here, each with one line.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from moodstream.schemas import DetectionMessage, MessageError
from moodstream.settings import CommonSettings
from moodstream.stills import StillError, is_still_file, list_stills, read_still
from moodstream.topics import Topics

log = logging.getLogger(__name__)

LOOSE_STILLS = "stills"  # the job (and camera) name of images named one by one


class InputError(ValueError):
    """An input that names nothing usable (missing path, folder without images)."""


@dataclass(frozen=True)
class Still:
    path: Path
    width: int
    height: int


@dataclass
class StillJob:
    name: str  # base of the camera id
    label: str  # what the report calls its source: the folder, or "N images"
    stills: list[Still] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)  # (image, reason)

    def link_folder(self, parent: Path) -> Path:
        """A folder of links 000000.jpg, 000001.png, ... to the readable images, in order:
        the still source ingest reads (names sort as the images were given)."""
        folder = parent / secrets.token_hex(4)
        folder.mkdir(parents=True)
        for index, still in enumerate(self.stills):
            os.symlink(still.path.resolve(), folder / f"{index:06d}{still.path.suffix.lower()}")
        return folder


def split_inputs(inputs: list[Path]) -> tuple[list[Path], list[StillJob]]:
    """(videos, still jobs) in the order given; InputError for a path that names nothing."""
    videos, jobs = [], []
    loose = StillJob(LOOSE_STILLS, "")
    for path in inputs:
        if path.is_dir():
            images = list_stills(path)
            if not images:
                raise InputError(f"no .jpg, .jpeg, .png or .webp image in folder {path}")
            jobs.append(_checked(StillJob(path.resolve().name or "stills", str(path)), images))
        elif is_still_file(path):
            if not path.exists():
                raise InputError(f"image not found: {path}")
            _checked(loose, [path])
        else:
            videos.append(path)
    if loose.stills or loose.unreadable:
        count = len(loose.stills) + len(loose.unreadable)
        loose.label = f"{count} image{'s' if count != 1 else ''}"
        jobs.append(loose)
    return videos, jobs


def _checked(job: StillJob, images: list[Path]) -> StillJob:
    for image in images:
        try:
            pixels = read_still(image)
        except StillError as exc:
            job.unreadable.append((image, str(exc)))
            continue
        job.stills.append(Still(image, pixels.shape[1], pixels.shape[0]))
    return job


class DetectionCollector:
    """Reads the detections topic next to the aggregator and keeps those of the given
    sessions: the per-image boxes of a stills report (numbers only, never pixels).

    It starts at the topic's end, so only this run's detections are read; a broker that
    restarts empty puts it back at the start (earliest), where the replayed frames come
    again under the same (run, seq) and replace what they repeat."""

    def __init__(self, settings: CommonSettings, session_ids: list[str]):
        from moodstream.clients import kafka_consumer
        self.wanted = set(session_ids)
        self._found: dict[str, dict[tuple[str, int], DetectionMessage]] = {
            s: {} for s in session_ids}
        self._lock = threading.Condition()
        self._stop = threading.Event()
        group = f"{settings.topic_prefix}.analyze-{secrets.token_hex(4)}"  # never committed
        self._consumer = kafka_consumer(settings, group, [Topics(settings.topic_prefix).detections],
                                        assign="all")
        self._consumer.seek_to_end()
        for tp in self._consumer.assignment():
            self._consumer.position(tp)  # resolve "end" now, before any frame is published
        self._thread = threading.Thread(target=self._run, name="still-detections", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                polled = self._consumer.poll(timeout_ms=200)
            except Exception as exc:  # noqa: BLE001 - a restarting broker: try again
                log.debug("detections poll failed: %s", exc)
                self._stop.wait(0.5)
                continue
            for record in (r for batch in polled.values() for r in batch):
                self._keep(record.value)

    def _keep(self, value: bytes | None) -> None:
        try:
            message = DetectionMessage.from_bytes(value)
        except MessageError:
            return  # the aggregator dead-letters it; nothing of ours
        if message.session_id in self.wanted:
            with self._lock:
                self._found[message.session_id][(message.run_id, message.seq)] = message
                self._lock.notify_all()

    def wait_for(self, session_id: str, count: int, timeout_s: float) -> list[DetectionMessage]:
        """The session's detections once `count` have arrived (fewer at the timeout)."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            self._lock.wait_for(lambda: len(self._found[session_id]) >= count,
                                timeout=max(0.0, deadline - time.monotonic()))
            return list(self._found[session_id].values())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._consumer.close(autocommit=False)
