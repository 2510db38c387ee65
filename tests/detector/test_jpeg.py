"""JPEG dimensions from the frame header, checked before any pixel is decoded."""

from __future__ import annotations

import random

import cv2
import numpy as np
import pytest

from detector.jpeg import MAX_SEGMENTS, JpegHeaderError, read_jpeg_header
from detector.pipeline import FramePipeline, PoisonFrame
from detector.tracking import Trackers
from moodstream.schemas import FrameHeaders

HEADERS = FrameHeaders("c", "s", 0, 0.0, 0.0, 64, 48)


def encode(width=64, height=48, grey=False, progressive=False) -> bytes:
    image = np.random.default_rng(0).integers(0, 255, (height, width) if grey else (height, width, 3),
                                              dtype=np.uint8)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90,
                                            cv2.IMWRITE_JPEG_PROGRESSIVE, int(progressive)])
    assert ok
    return data.tobytes()


def sof_at(data: bytes) -> int:
    """Where the SOF marker is (found by walking segments, as a decoder does)."""
    pos = 2
    while data[pos + 1] not in (0xC0, 0xC2):
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
    return pos


def patched(data: bytes, *, marker=None, precision=None, width=None, height=None) -> bytes:
    out, at = bytearray(data), sof_at(data)
    if marker is not None:
        out[at + 1] = marker
    if precision is not None:
        out[at + 4] = precision
    if height is not None:
        out[at + 5:at + 7] = height.to_bytes(2, "big")
    if width is not None:
        out[at + 7:at + 9] = width.to_bytes(2, "big")
    return bytes(out)


@pytest.mark.parametrize("kwargs, components, progressive", [
    (dict(), 3, False), (dict(grey=True), 1, False), (dict(progressive=True), 3, True)])
def test_the_header_gives_the_real_size(kwargs, components, progressive):
    header = read_jpeg_header(encode(640, 360, **kwargs))
    assert (header.width, header.height, header.pixels) == (640, 360, 640 * 360)
    assert (header.components, header.progressive) == (components, progressive)


def test_a_decompression_bomb_is_refused_before_the_decoder_runs(yunet, emotion_model, monkeypatch):
    bomb = patched(encode(), width=30_000, height=30_000)  # ~1 KB declaring 900 Mpx (2.7 GB)
    assert len(bomb) < 4096
    decoded = []
    monkeypatch.setattr(cv2, "imdecode", lambda *a: decoded.append(a))
    pipeline = FramePipeline(yunet, emotion_model, Trackers(), max_pixels=4096 * 4096)
    with pytest.raises(PoisonFrame, match=r"^oversized frame: 30000x30000 \(JPEG header\)"):
        pipeline.prepare(bomb, HEADERS)  # the Kafka headers claim 64x48: the file decides
    assert decoded == []


def test_a_frame_at_the_limit_still_decodes(yunet, emotion_model):
    pipeline = FramePipeline(yunet, emotion_model, Trackers(), max_pixels=64 * 48)
    assert pipeline.decode(encode(), HEADERS).shape == (48, 64, 3)


@pytest.mark.parametrize("data, reason", [
    (patched(encode(), marker=0xC3), "unsupported frame: not a baseline or progressive JPEG (SOF3)"),
    (patched(encode(), marker=0xC9), "unsupported frame: not a baseline or progressive JPEG (SOF9)"),
    (patched(encode(), precision=12), "unsupported frame: 12-bit samples"),
    (patched(encode(), height=0), "unsupported frame: size 64x0"),
    (cv2.imencode(".png", np.zeros((8, 8), np.uint8))[1].tobytes(), "corrupt frame: not a JPEG"),
    (encode()[:sof_at(encode()) + 5], "corrupt frame: segment 0xC0"),
    (encode()[:20], "corrupt frame"),
    (b"\xff\xd8\xff\xda\x00\x02", "corrupt frame: marker 0xDA before the frame header"),
    (b"\xff\xd8" + b"\xff\xfe\x00\x02" * (MAX_SEGMENTS + 1), "corrupt frame: no frame header"),
])
def test_unusable_headers_are_named(data, reason):
    with pytest.raises(JpegHeaderError) as caught:
        read_jpeg_header(data)
    assert str(caught.value).startswith(reason)


def test_mangled_jpegs_only_ever_raise_the_named_error():
    rng, good = random.Random(7), encode(progressive=True)
    for _ in range(3000):
        data = bytearray(good[:rng.randrange(len(good))])
        for _ in range(rng.randrange(4)):
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            header = read_jpeg_header(bytes(data))
        except JpegHeaderError as exc:
            assert str(exc).startswith(("corrupt frame: ", "unsupported frame: "))
        else:
            assert 0 < header.pixels < 1 << 32
