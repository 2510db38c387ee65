"""Purpose, notice and min_people on the control topic: untrusted, so checked at parsing."""

from __future__ import annotations

import json
import time

import pytest

from moodstream.schemas import ControlEvent, FrameHeaders, MessageError


def start(**extra) -> bytes:
    return json.dumps({"v": 1, "type": "session_start", "camera_id": "door",
                       "session_id": "door-1", "ts": time.time(), **extra}).encode()


def test_a_session_start_carries_the_camera_privacy_fields():
    event = ControlEvent.from_bytes(start(purpose="  customer sentiment, door ", notice=True,
                                          min_people=3))
    assert (event.purpose, event.notice, event.min_people) == ("customer sentiment, door", True, 3)
    old = ControlEvent.from_bytes(start())  # an older ingest sends none of them
    assert (old.purpose, old.notice, old.min_people) == ("", None, None)


@pytest.mark.parametrize("extra, field", [
    ({"purpose": "x" * 201}, "purpose"), ({"purpose": "two\nlines"}, "purpose"),
    ({"purpose": 7}, "purpose"), ({"notice": "yes"}, "notice"), ({"notice": 1}, "notice"),
    ({"min_people": 0}, "min_people"), ({"min_people": 1001}, "min_people"),
    ({"min_people": "3"}, "min_people"),
])
def test_bad_privacy_fields_are_message_errors(extra, field):
    with pytest.raises(MessageError, match=field):
        ControlEvent.from_bytes(start(**extra))


def test_the_still_frame_header_round_trips_and_rejects_junk():
    headers = FrameHeaders("door", "door-1", 0, time.time(), 2.0, 640, 360, run_id="r", still=True)
    assert ("still", b"1") in headers.to_kafka()
    assert FrameHeaders.from_kafka(headers.to_kafka()).still
    assert not FrameHeaders.from_kafka(FrameHeaders("door", "door-1", 0, time.time(), 0.0)
                                       .to_kafka()).still
    with pytest.raises(MessageError, match="still"):
        FrameHeaders.from_kafka(headers.to_kafka()[:-1] + [("still", b"yes")])
