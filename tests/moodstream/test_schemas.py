"""Wire formats: round trips, and every bound on untrusted input (moodstream.schemas)."""

import json
import time

import pytest

from moodstream.emotions import DEFAULT_VALENCE, EMOTIONS, sentiment
from moodstream.schemas import (MAX_EXCLUDED_FACES, MAX_FACES, MAX_FRAME_SIDE, MAX_HEADER_BYTES,
                                MAX_JSON_DEPTH, MAX_LABEL_CHARS, MAX_MESSAGE_BYTES, MAX_OFFSET_S,
                                MAX_REASON_CHARS, MAX_SEQ, MAX_SOURCE_CHARS, MAX_TRACK_ID,
                                PROB_SUM_TOLERANCE, TS_MAX_AHEAD_S, TS_MIN, ControlEvent,
                                DetectionMessage, Face, FrameHeaders, MessageError, valid_id)

PROBS = {e: 1 / 7 for e in EMOTIONS}
NOW = time.time()
FACE = {"box": [1, 2, 3, 4], "score": 0.9, "track_id": 7, "probs": PROBS}
DETECTION = {"v": 1, "camera_id": "c1", "session_id": "s1", "seq": 3, "capture_ts": NOW - 5,
             "offset_s": 0.1, "frame_w": 640, "frame_h": 360, "faces": [FACE]}
CONTROL = {"v": 1, "type": "session_end", "camera_id": "c", "session_id": "s", "ts": NOW,
           "frames_published": 9, "reason": "eof", "source": "clip.mp4"}


def detection_bytes(**changes) -> bytes:
    return json.dumps({**DETECTION, **changes}).encode()


def face_bytes(**changes) -> bytes:
    return detection_bytes(faces=[{**FACE, **changes}])


def control_bytes(**changes) -> bytes:
    return json.dumps({**CONTROL, **changes}).encode()


def nested(depth: int) -> bytes:
    return b'{"v": 1, "x": ' + b"[" * depth + b"]" * depth + b"}"


def headers(**changes) -> list[tuple[str, bytes]]:
    fields = {"camera_id": b"cam-1", "session_id": b"s1", "seq": b"42",
              "capture_ts": repr(NOW).encode(), "offset_s": b"1.4", "width": b"640",
              "height": b"360", "run_id": b"r-1", **changes}
    return [(k, v) for k, v in fields.items() if v is not None]


# --- round trips ---

def test_frame_headers_round_trip():
    h = FrameHeaders("cam-1", "cam-1-s1", 42, NOW, 1.4, 640, 360, run_id="run-7")
    assert FrameHeaders.from_kafka(h.to_kafka()) == h


def test_detection_round_trip_and_frame_key():
    msg = DetectionMessage(camera_id="c1", session_id="s1", seq=3, capture_ts=NOW, offset_s=0.1,
                           run_id="r9", faces=[{"box": (1, 2, 3, 4), "score": 0.9, "track_id": 7,
                                                "probs": PROBS, "smoothed": PROBS}])
    back = DetectionMessage.from_bytes(msg.to_bytes())
    assert back == msg
    assert back.frame_key == "c1|s1|r9|3"
    assert json.loads(msg.to_bytes())["v"] == 1


def test_skipped_detection_round_trip():
    msg = DetectionMessage(camera_id="c1", session_id="s1", seq=3, capture_ts=NOW, offset_s=0.1,
                           skipped="corrupt frame")
    assert DetectionMessage.from_bytes(msg.to_bytes()).skipped == "corrupt frame"


def test_control_event_round_trip():
    ev = ControlEvent(type="session_end", camera_id="c", session_id="s", ts=NOW, frames_published=9)
    assert ControlEvent.from_bytes(ev.to_bytes()) == ev


# --- frame headers ---

@pytest.mark.parametrize("drop", ["camera_id", "session_id", "seq", "capture_ts"])
def test_frame_headers_missing_field_is_a_message_error(drop):
    with pytest.raises(MessageError, match=drop):
        FrameHeaders.from_kafka(headers(**{drop: None}))


@pytest.mark.parametrize("name, value, reason", [
    ("camera_id", b"../../etc", "camera_id"),
    ("run_id", b"a b", "run_id"),
    ("seq", b"-1", "seq"),
    ("seq", str(MAX_SEQ + 1).encode(), "seq"),
    ("seq", b"1.5", "bad frame header"),
    ("capture_ts", b"nan", "capture_ts"),
    ("capture_ts", b"1e300", "capture_ts"),
    ("capture_ts", b"0.0", "capture_ts"),
    ("offset_s", b"inf", "offset_s"),
    ("offset_s", b"1e17", "offset_s"),
    ("offset_s", b"-0.5", "offset_s"),
    ("width", str(MAX_FRAME_SIDE + 1).encode(), "width"),
    ("height", b"-1", "height"),
    ("seq", b"9" * (MAX_HEADER_BYTES + 1), "too long"),
    ("camera_id", b"\xff\xfe", "bad frame header"),
])
def test_frame_headers_out_of_bounds_are_message_errors(name, value, reason):
    with pytest.raises(MessageError, match=reason):
        FrameHeaders.from_kafka(headers(**{name: value}))


def test_frame_headers_null_or_malformed_values_are_message_errors():
    with pytest.raises(MessageError, match="null"):
        FrameHeaders.from_kafka(headers()[:-1] + [("run_id", None)])
    with pytest.raises(MessageError, match="malformed"):
        FrameHeaders.from_kafka(headers() + [("x",)])


# --- size, nesting, JSON itself ---

@pytest.mark.parametrize("raw, reason", [
    (b"", "empty"),
    (None, "empty"),
    (b"not json", "not JSON"),
    (b"\xff\xfe\x00garbage", "not JSON"),
    (b"[1, 2]", "not a JSON object"),
    (b'{"v": 99}', "schema version"),
    (b'{"v": true}', "schema version"),
    (b'{"v": "1"}', "schema version"),
    (b'{"v": 1, "camera_id": "c"}', "session_id"),
    (b'{"v": 1, "a": NaN}', "NaN"),
    (b'{"v": 1, "a": -Infinity}', "Infinity"),
    (b'{"v": 1, "a": ' + b"9" * 5000 + b"}", "not JSON"),
])
def test_malformed_messages_raise_message_error(raw, reason):
    for model in (DetectionMessage, ControlEvent):
        with pytest.raises(MessageError, match=reason):
            model.from_bytes(raw)


def test_numbers_beyond_float_range_are_rejected_in_every_float_field():
    for field in ("capture_ts", "offset_s"):  # 1e400 parses as inf
        raw = detection_bytes(**{field: 12345.5}).replace(b"12345.5", b"1e400")
        with pytest.raises(MessageError, match=f"{field}: Input should be a finite number"):
            DetectionMessage.from_bytes(raw)
    raw = face_bytes(score=12345.5).replace(b"12345.5", b"-1e400")
    with pytest.raises(MessageError, match="score"):
        DetectionMessage.from_bytes(raw)


def test_size_limit_is_checked_before_parsing():
    padding = " " * MAX_MESSAGE_BYTES
    with pytest.raises(MessageError, match="too large"):
        DetectionMessage.from_bytes(detection_bytes()[:-1] + padding.encode() + b"}")


def test_deep_nesting_never_escapes_as_recursion_error():
    # ~200 KB of nesting used to raise RecursionError out of the parser.
    for raw in (nested(100_000), b"[" * 200_000, b'{"a":' * 50_000):
        with pytest.raises(MessageError, match="nested|not JSON"):
            DetectionMessage.from_bytes(raw)


def test_nesting_depth_limit():
    with pytest.raises(MessageError, match="nested deeper"):
        ControlEvent.from_bytes(nested(MAX_JSON_DEPTH))
    with pytest.raises(MessageError, match="Field required"):  # within the limit: parsed
        ControlEvent.from_bytes(nested(MAX_JSON_DEPTH - 2))


# --- detection bounds ---

@pytest.mark.parametrize("changes, reason", [
    ({"seq": -1}, "seq"),
    ({"seq": MAX_SEQ + 1}, "seq"),
    ({"seq": "3"}, "seq"),
    ({"seq": True}, "seq"),
    ({"seq": 2.5}, "seq"),
    ({"offset_s": -0.1}, "offset_s"),
    ({"offset_s": 1e17}, "offset_s"),
    ({"offset_s": MAX_OFFSET_S + 1}, "offset_s"),
    ({"capture_ts": 1e300}, "capture_ts"),
    ({"capture_ts": -1e20}, "capture_ts"),
    ({"capture_ts": TS_MIN - 1}, "capture_ts"),
    ({"capture_ts": NOW + TS_MAX_AHEAD_S + 3600}, "capture_ts"),
    ({"capture_ts": "1700000000"}, "capture_ts"),
    ({"frame_w": MAX_FRAME_SIDE + 1}, "frame_w"),
    ({"frame_h": -1}, "frame_h"),
    ({"excluded_faces": -1}, "excluded_faces"),
    ({"excluded_faces": MAX_EXCLUDED_FACES + 1}, "excluded_faces"),
    ({"faces": [FACE] * (MAX_FACES + 1)}, "faces"),
    ({"faces": "many"}, "faces"),
    ({"detector_id": "d" * (MAX_LABEL_CHARS + 1)}, "detector_id"),
    ({"skipped": "s" * (MAX_REASON_CHARS + 1)}, "skipped"),
    ({"skipped": "corrupt frame"}, "skipped frame has no faces"),
    ({"run_id": "../x"}, "run_id"),
    ({"run_id": ""}, "run_id"),
    ({"camera_id": "a b"}, "camera_id"),
    ({"timing": {"e2e_ms": -1}}, "e2e_ms"),
    ({"timing": {"decode_ms": 1e300}}, "decode_ms"),
])
def test_detection_bounds(changes, reason):
    with pytest.raises(MessageError, match=reason):
        DetectionMessage.from_bytes(detection_bytes(**changes))


@pytest.mark.parametrize("changes, reason", [
    ({"probs": {**PROBS, "happy": 1.5}}, "probs"),
    ({"probs": {**PROBS, "happy": -0.1}}, "probs"),
    ({"probs": {e: 1e308 for e in EMOTIONS}}, "probs"),
    ({"probs": {e: 0.5 for e in EMOTIONS}}, "sum to 1"),
    ({"probs": {e: 0.0 for e in EMOTIONS}}, "sum to 1"),
    ({"probs": {"happy": 1.0}}, "exactly"),
    ({"probs": {**PROBS, "joy": 0.0}}, "exactly"),
    ({"smoothed": {**PROBS, "sad": 2.0}}, "smoothed"),
    ({"smoothed": {e: 0.3 for e in EMOTIONS}}, "sum to 1"),
    ({"score": 1.5}, "score"),
    ({"score": -0.1}, "score"),
    ({"track_id": -1}, "track_id"),
    ({"track_id": MAX_TRACK_ID + 1}, "track_id"),
    ({"box": [1, 2, 3]}, "box"),
    ({"box": [1, 2, 0, 4]}, "at least 1 pixel"),
    ({"box": [1, 2, 3, -4]}, "at least 1 pixel"),
    ({"box": [700, 2, 30, 40]}, "outside"),
    ({"box": [-50, 2, 30, 40]}, "outside"),
    ({"box": [1, 400, 30, 40]}, "outside"),
    ({"box": [1, 2, MAX_FRAME_SIDE + 1, 40]}, "box"),
    ({"box": [1.5, 2, 3, 4]}, "box"),
])
def test_face_bounds(changes, reason):
    with pytest.raises(MessageError, match=reason):
        DetectionMessage.from_bytes(face_bytes(**changes))


def test_probabilities_may_miss_one_by_the_int8_tolerance():
    ok = {**PROBS, "happy": PROBS["happy"] + PROB_SUM_TOLERANCE * 0.9}
    assert DetectionMessage.from_bytes(face_bytes(probs=ok)).faces[0].probs == ok


def test_a_face_cut_by_the_frame_edge_is_clipped_into_the_frame():
    msg = DetectionMessage.from_bytes(face_bytes(box=[-10, 340, 50, 40]))
    assert msg.faces[0].box == (0, 340, 40, 20)
    unknown_size = DetectionMessage.from_bytes(
        detection_bytes(frame_w=0, frame_h=0, faces=[{**FACE, "box": [-5, -5, 20, 20]}]))
    assert unknown_size.faces[0].box == (0, 0, 15, 15)
    built = Face(box=(630, 1, 20, 20), score=1.0, probs=PROBS)  # in-process: same rule
    msg = DetectionMessage(camera_id="c", session_id="s", seq=0, capture_ts=NOW, offset_s=0,
                           frame_w=640, frame_h=360, faces=[built])
    assert msg.faces[0].box == (630, 1, 10, 20)


def test_receive_window_is_checked_at_parse_time_only():
    old = DetectionMessage(camera_id="c", session_id="s", seq=0, capture_ts=1.0, offset_s=0)
    with pytest.raises(MessageError, match="capture_ts"):
        DetectionMessage.from_bytes(old.to_bytes())
    later = NOW + 10 * TS_MAX_AHEAD_S
    msg = detection_bytes(capture_ts=later - 60)
    with pytest.raises(MessageError, match="capture_ts"):
        DetectionMessage.from_bytes(msg)
    assert DetectionMessage.from_bytes(msg, now=later).capture_ts == later - 60


# --- control bounds ---

@pytest.mark.parametrize("changes, reason", [
    ({"ts": 1e20}, "ts"),
    ({"ts": -1e20}, "ts"),
    ({"ts": TS_MIN - 1}, "ts"),
    ({"ts": True}, "ts"),
    ({"type": "session_pause"}, "type"),
    ({"frames_published": -1}, "frames_published"),
    ({"frames_published": MAX_SEQ + 2}, "frames_published"),
    ({"frames_published": 1.5}, "frames_published"),
    ({"source": "x" * (MAX_SOURCE_CHARS + 1)}, "source"),
    ({"reason": "r" * (MAX_REASON_CHARS + 1)}, "reason"),
    ({"session_id": "s" * 129}, "session_id"),
])
def test_control_bounds(changes, reason):
    with pytest.raises(MessageError, match=reason):
        ControlEvent.from_bytes(control_bytes(**changes))


def test_control_nan_ts_is_rejected():
    raw = control_bytes().replace(repr(NOW).encode(), b"NaN")
    with pytest.raises(MessageError, match="NaN"):
        ControlEvent.from_bytes(raw)


def test_non_finite_numbers_are_rejected_when_built_in_process_too():
    with pytest.raises(ValueError, match="finite"):
        ControlEvent(type="session_start", camera_id="c", session_id="s", ts=float("nan"))
    with pytest.raises(ValueError, match="offset_s"):
        DetectionMessage(camera_id="c", session_id="s", seq=0, capture_ts=NOW, offset_s=1e17)


@pytest.mark.parametrize("value, ok", [("cam-1", True), ("a.b:c_d", True), ("", False),
                                       ("a b", False), ("../x", False), ("x" * 129, False),
                                       ("x\n", False), (None, False), (5, False)])
def test_valid_id(value, ok):
    assert valid_id(value) is ok


def test_sentiment_is_bounded_and_signed():
    assert sentiment({**{e: 0.0 for e in EMOTIONS}, "happy": 1.0}) == 1.0
    assert sentiment({**{e: 0.0 for e in EMOTIONS}, "angry": 1.0}) == -1.0
    assert -1.0 <= sentiment(PROBS) <= 1.0
    assert sentiment({e: 0.0 for e in EMOTIONS}) == 0.0
    assert set(DEFAULT_VALENCE) == set(EMOTIONS)
