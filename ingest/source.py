"""One camera's reader thread: an explicit state machine over an OpenCV capture.

connecting -> streaming -> (lost/stalled) reconnecting -> streaming ... -> ended | failed.
Live sources reconnect with capped exponential backoff and jitter; files end (or loop),
and so does an HLS playlist that says it is complete (a VOD). A still source (an image, or
a folder of them: moodstream.stills) hands on one frame per readable image, one second of
session time apart, and ends.
The reader samples and paces frames and hands them to a bounded FrameQueue; it always
closes the queue with a sentinel, whatever happens.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from ingest import hls
from ingest.config import CameraConfig, PacingMode
from ingest.sampling import DropPolicy, FrameQueue, FrameSampler, RealtimePacer
from moodstream.settings import redact
from moodstream.stills import STILL_SPACING_S, StillError, is_still_source, read_still, still_paths

log = logging.getLogger(__name__)

# A jump in stream time bigger than this (or backwards) is a discontinuity, not a wait.
MAX_STREAM_JUMP_S = 5.0


class SourceState(str, Enum):
    CONNECTING = "connecting"
    STREAMING = "streaming"
    RECONNECTING = "reconnecting"
    ENDED = "ended"
    FAILED = "failed"


@dataclass(frozen=True)
class StatusEvent:
    """A state change of one source, as logged and exported to metrics."""

    camera_id: str
    state: SourceState
    previous: SourceState | None
    ts: float
    detail: str = ""


@dataclass(frozen=True)
class RawFrame:
    """A sampled frame as read: media_s is seconds since the source started (loops add up)."""

    image: np.ndarray
    media_s: float
    capture_ts: float
    index: int
    still: bool = False  # an independent image: nothing carries over from the last frame


@dataclass(frozen=True)
class ReaderTuning:
    stall_timeout_s: float = 10.0
    open_timeout_s: float = 10.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    reconnect_max_attempts: int = 0  # 0 = keep trying (a camera may come back any time)


def is_live(url: str) -> bool:
    """Anything but a local file is live: webcam index, rtsp://, http(s)://, HLS ..."""
    return url.isdigit() or "://" in url


def check_file(url: str) -> str | None:
    """Why a file or webcam cannot be used at all, or None. Network sources are not
    checked: a camera that is down at start-up is retried like one that drops later."""
    if url.isdigit():
        capture = cv2.VideoCapture(int(url))
        try:
            return None if capture.isOpened() else f"cannot open webcam {url}"
        finally:
            capture.release()
    if is_live(url):
        return None
    if is_still_source(url):
        return _check_stills(url)
    path = Path(url)
    if not path.is_file():
        return f"video file not found: {url}"
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened() or not capture.read()[0]:
            return f"cannot read video file {url} (not a video, or an unsupported codec)"
    finally:
        capture.release()
    return None


def _check_stills(url: str) -> str | None:
    path = Path(url)
    if not path.exists():
        return f"image not found: {url}"
    if path.is_dir() and not still_paths(path):
        return f"no .jpg, .jpeg, .png or .webp image in folder {url}"
    return None


class Backoff:
    """Capped exponential backoff with jitter, so many cameras don't reconnect in lockstep."""

    def __init__(self, initial_s: float, max_s: float, rng: random.Random | None = None):
        self.initial_s, self.max_s = initial_s, max_s
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        ceiling = min(self.max_s, self.initial_s * (2 ** self.attempt))
        self.attempt += 1
        return ceiling * self._rng.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.attempt = 0


def open_capture(url: str, tuning: ReaderTuning) -> cv2.VideoCapture:
    if url.isdigit():
        return cv2.VideoCapture(int(url))
    if not is_live(url):
        return cv2.VideoCapture(url)
    # RTSP over TCP (interleaved): UDP RTP is lost behind NAT and firewalls, and the
    # OpenCV default gives no frames at all there. An operator's own value wins.
    os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
    # FFmpeg-level timeouts turn a hung network read into a failed read we can act on.
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(tuning.open_timeout_s * 1000),
              cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(tuning.stall_timeout_s * 1000)]
    return cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)


class FrameReader(threading.Thread):
    """Reads one source until it ends, fails or `stop` is set; see the module docstring."""

    def __init__(self, camera: CameraConfig, out: FrameQueue, stop: threading.Event,
                 tuning: ReaderTuning, on_status: Callable[[StatusEvent], None],
                 on_read: Callable[[], None], on_dropped: Callable[[int], None],
                 on_reconnect: Callable[[], None]):
        super().__init__(name=f"reader-{camera.id}", daemon=True)
        self.camera, self.out, self.stop, self.tuning = camera, out, stop, tuning
        self.live = is_live(camera.url)
        self.still = is_still_source(camera.url)
        self.state: SourceState | None = None
        self.end_reason = "eof"
        self._on_status, self._on_read = on_status, on_read
        self._on_dropped, self._on_reconnect = on_dropped, on_reconnect
        self._sampler = FrameSampler(camera.fps)
        self._pacer = RealtimePacer(stop) if self._paced() else None
        # HLS arrives in segment-sized bursts; released at stream time, its frames reach
        # the wall-clock sampler and the drop-oldest queue as a real-time stream would.
        self.hls = hls.is_hls(camera.url)
        self._stream_pacer = RealtimePacer(stop) if self.hls else None
        self._stream_pos: float | None = None
        self._backoff = Backoff(tuning.backoff_initial_s, tuning.backoff_max_s)
        self._started_mono = time.monotonic()
        self._media_base = 0.0  # media seconds of the loops already played
        self._index = 0

    @staticmethod
    def drop_policy(camera: CameraConfig) -> DropPolicy:
        return DropPolicy.DROP_OLDEST if is_live(camera.url) else DropPolicy.WAIT

    def _paced(self) -> bool:
        return not self.live and not self.still and self.camera.mode is PacingMode.REALTIME

    def run(self) -> None:
        try:
            self._run_states()
        except Exception as exc:  # noqa: BLE001 - a broken camera must not kill the process
            log.exception("camera %s: reader crashed", self.camera.id)
            self.end_reason = "error"
            self._set_state(SourceState.FAILED, f"{type(exc).__name__}: {redact(str(exc))}")
        finally:
            self._on_dropped(self.out.close())

    def _run_states(self) -> None:
        self._set_state(SourceState.CONNECTING, redact(self.camera.url))
        if self.still:
            self._read_stills()
            return
        while not self.stop.is_set():
            capture = open_capture(self.camera.url, self.tuning)
            try:
                outcome = self._stream(capture) if capture.isOpened() else "unreachable"
            finally:
                capture.release()
            if self.stop.is_set():
                break
            if not self._next_step(outcome):
                return
        self.end_reason = "shutdown"
        self._set_state(SourceState.ENDED, "stopped")

    def _next_step(self, outcome: str) -> bool:
        """Decide after a capture closed; False when the reader is finished."""
        if not self.live:
            if outcome == "eof" and self.camera.loop and self._index > 0:
                return True
            if outcome == "unreachable" or self._index == 0:
                self.end_reason = "error"
                self._set_state(SourceState.FAILED, f"cannot read {redact(self.camera.url)}")
                return False
            self._set_state(SourceState.ENDED, "end of file")
            return False
        if outcome == "eof" and self.hls and self._playlist_ended():
            return self._vod_playlist_ended()
        limit = self.tuning.reconnect_max_attempts
        if limit and self._backoff.attempt >= limit:
            self.end_reason = "error"
            self._set_state(SourceState.FAILED, f"gave up after {limit} reconnect attempts")
            return False
        delay = self._backoff.next_delay()
        why = "unreachable" if outcome == "unreachable" else "stream lost or stalled"
        self._set_state(SourceState.RECONNECTING, f"{why}; retry in {delay:.1f}s")
        self._on_reconnect()
        self.stop.wait(delay)
        return True

    def _read_stills(self) -> None:
        """Each readable image once, as frame `index` s into the session; an unreadable
        one is skipped with one line (its second stays empty, so indexes keep to files)."""
        images = still_paths(self.camera.url)
        self._set_state(SourceState.STREAMING, f"{len(images)} still image(s)")
        unreadable = 0
        for position, path in enumerate(images):
            if self.stop.is_set():
                self.end_reason = "shutdown"
                self._set_state(SourceState.ENDED, "stopped")
                return
            self._on_read()
            try:
                image = read_still(path)
            except StillError as exc:
                unreadable += 1
                log.warning("camera %s: skipped image %s: %s", self.camera.id, path.name, exc)
                continue
            self._hand_on(image, position * STILL_SPACING_S, time.time(), still=True)
        if self._index == 0:
            self.end_reason = "error"
            self._set_state(SourceState.FAILED, f"no readable image in {redact(self.camera.url)}")
            return
        self._set_state(SourceState.ENDED, f"{self._index} image(s) read, {unreadable} unreadable")

    def _playlist_ended(self) -> bool:
        return hls.playlist_has_ended(self.camera.url, self.tuning.open_timeout_s)

    def _vod_playlist_ended(self) -> bool:
        """A complete HLS playlist played to its end: replay it when looping, else end."""
        if self.camera.loop and self._index > 0:
            return True
        if self._index == 0:
            self.end_reason = "error"
            self._set_state(SourceState.FAILED, f"no frame in {redact(self.camera.url)}")
            return False
        self._set_state(SourceState.ENDED, "end of HLS playlist")
        return False

    def _stream(self, capture: cv2.VideoCapture) -> str:
        """Read until the capture stops giving frames; returns 'eof' or 'stopped'."""
        native_fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
        if self._stream_pacer:
            self._stream_pacer.reset()
            self._stream_pos = None
        last_media = -1.0
        pass_index = 0
        while not self.stop.is_set():
            # grab() now, retrieve() (the colour conversion, ~0.7 ms of 3.7 per 720p frame)
            # only for a frame the sampler keeps: a 25 fps camera sampled at 5 fps
            # converts a fifth of its frames.
            ok = capture.grab()
            if not ok:
                if not self.live and pass_index:
                    # Next loop starts one frame after the last one of this pass.
                    step = 1.0 / native_fps if native_fps > 0 else 0.04
                    self._media_base = last_media + step
                    if self._pacer:
                        self._pacer.reset()
                return "eof"
            if self._stream_pacer:
                self._pace_stream(capture)
            if pass_index == 0:
                self._backoff.reset()
                if self.state is not SourceState.STREAMING:  # a looping file stays streaming
                    self._set_state(SourceState.STREAMING, self._describe(capture))
            media_s = self._media_time(capture, pass_index, native_fps, last_media)
            last_media = media_s
            pass_index += 1
            self._on_read()
            if self._sampler.keep(media_s):
                ok, image = capture.retrieve()
                if not ok or image is None:  # grabbed but not decodable: that frame only
                    continue
                self._hand_on(image, media_s, self._capture_time(capture))
        return "stopped"

    def _pace_stream(self, capture: cv2.VideoCapture) -> None:
        """Hold an HLS frame until its stream time, re-anchoring at discontinuities."""
        pos = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        if self._stream_pos is not None and not 0 <= pos - self._stream_pos <= MAX_STREAM_JUMP_S:
            self._stream_pacer.reset()
        self._stream_pos = pos
        self._stream_pacer.wait_for(pos)

    def _media_time(self, capture, pass_index: int, native_fps: float, last: float) -> float:
        if self.live:
            return time.monotonic() - self._started_mono
        pos = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        media = self._media_base + pos
        if pos <= 0 and pass_index > 0 or media <= last:  # container without usable timestamps
            media = self._media_base + pass_index / (native_fps or 25.0)
        return media

    def _capture_time(self, capture: cv2.VideoCapture) -> float:
        """The source's own clock when it gives wall time (an RTSP stream with RTCP sender
        reports, FFmpeg wall-clock timestamps); otherwise the host clock at read."""
        now = time.time()
        if self.live:
            source_ts = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            if abs(source_ts - now) < 600:  # plausible epoch time, not a stream offset
                return source_ts
        return now

    def _hand_on(self, image: np.ndarray, media_s: float, capture_ts: float,
                 still: bool = False) -> None:
        if self._pacer:
            self._pacer.wait_for(media_s)
            capture_ts = time.time()  # a paced file frame is "captured" when released
        dropped = self.out.put(RawFrame(image, media_s, capture_ts, self._index, still))
        self._index += 1
        if dropped:
            self._on_dropped(dropped)

    def _describe(self, capture: cv2.VideoCapture) -> str:
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        return f"{width}x{height} @ {capture.get(cv2.CAP_PROP_FPS) or 0:.1f} fps"

    def _set_state(self, state: SourceState, detail: str = "") -> None:
        event = StatusEvent(self.camera.id, state, self.state, time.time(), detail)
        self.state = state
        self._on_status(event)
