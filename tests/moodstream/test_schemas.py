import json

import pytest

from moodstream.emotions import DEFAULT_VALENCE, EMOTIONS, sentiment
from moodstream.schemas import ControlEvent, DetectionMessage, FrameHeaders, MessageError, valid_id

PROBS = {e: 1 / 7 for e in EMOTIONS}


def test_frame_headers_round_trip():
    h = FrameHeaders("cam-1", "cam-1-s1", 42, 1700000000.25, 1.4, 640, 360)
    assert FrameHeaders.from_kafka(h.to_kafka()) == h


@pytest.mark.parametrize("drop", ["camera_id", "session_id", "seq", "capture_ts"])
def test_frame_headers_missing_field_is_a_message_error(drop):
    headers = [(k, v) for k, v in FrameHeaders("c", "s", 1, 1.0, 0.0).to_kafka() if k != drop]
    with pytest.raises(MessageError, match=drop):
        FrameHeaders.from_kafka(headers)


def test_frame_headers_reject_unsafe_ids():
    headers = FrameHeaders("c", "s", 1, 1.0, 0.0).to_kafka()
    headers[0] = ("camera_id", b"../../etc")
    with pytest.raises(MessageError, match="camera_id"):
        FrameHeaders.from_kafka(headers)


def test_detection_round_trip_and_frame_key():
    msg = DetectionMessage(camera_id="c1", session_id="s1", seq=3, capture_ts=1.0, offset_s=0.1,
                           faces=[{"box": (1, 2, 3, 4), "score": 0.9, "track_id": 7,
                                   "probs": PROBS, "smoothed": PROBS}])
    back = DetectionMessage.from_bytes(msg.to_bytes())
    assert back == msg
    assert back.frame_key == "c1|s1|0|3"
    assert json.loads(msg.to_bytes())["v"] == 1


@pytest.mark.parametrize("raw, reason", [
    (b"", "empty"),
    (b"not json", "not JSON"),
    (b"[1, 2]", "not a JSON object"),
    (b'{"v": 99}', "schema version"),
    (b'{"v": 1, "camera_id": "c"}', "session_id"),
    (json.dumps({"v": 1, "camera_id": "c", "session_id": "s", "seq": 1, "capture_ts": 1,
                 "offset_s": 0, "faces": [{"box": [1, 2, 3, 4], "score": 1,
                                           "probs": {"happy": 1.0}}]}).encode(), "probs"),
])
def test_malformed_detections_raise_message_error(raw, reason):
    with pytest.raises(MessageError, match=reason):
        DetectionMessage.from_bytes(raw)


def test_control_event_round_trip():
    ev = ControlEvent(type="session_end", camera_id="c", session_id="s", ts=2.0, frames_published=9)
    assert ControlEvent.from_bytes(ev.to_bytes()) == ev


@pytest.mark.parametrize("value, ok", [("cam-1", True), ("a.b:c_d", True), ("", False),
                                       ("a b", False), ("../x", False), ("x" * 129, False)])
def test_valid_id(value, ok):
    assert valid_id(value) is ok


def test_sentiment_is_bounded_and_signed():
    assert sentiment({**{e: 0.0 for e in EMOTIONS}, "happy": 1.0}) == 1.0
    assert sentiment({**{e: 0.0 for e in EMOTIONS}, "angry": 1.0}) == -1.0
    assert -1.0 <= sentiment(PROBS) <= 1.0
    assert sentiment({e: 0.0 for e in EMOTIONS}) == 0.0
    assert set(DEFAULT_VALENCE) == set(EMOTIONS)
