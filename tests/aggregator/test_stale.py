"""Stale live frames on a real Valkey: the detector's "stale" skipped detections count as
handled and skipped (totals.skipped_frames) and, per session, in meta.stale_frames; once
per frame, however often they are redelivered."""

from __future__ import annotations

import json

import pytest

from aggregator.settings import AggregatorSettings
from aggregator.store import skipped_flag
from moodstream.schemas import SKIPPED_STALE, DetectionMessage
from moodstream.settings import SettingsError
from tests.aggregator.conftest import T0, control, detection
from tests.aggregator.test_lifecycle import make_aggregator, record  # noqa: F401

pytestmark = pytest.mark.integration


def skipped(seq: int, kind: str, session: str = "s1") -> DetectionMessage:
    return DetectionMessage(camera_id="cam1", session_id=session, seq=seq,
                            capture_ts=T0 + seq / 10, offset_s=seq / 10, skipped=kind)


def test_stale_frames_are_counted_in_the_session_meta_once_and_complete_the_session(
        make_aggregator, redis_conn, keys):
    agg = make_aggregator()
    frames = [detection(i, ["happy"]) for i in range(6)]
    for seq in (1, 2, 3):
        frames[seq] = skipped(seq, SKIPPED_STALE)
    frames[4] = skipped(4, "corrupt frame")
    agg.process([record(control("session_end", frames=6))] + [record(m) for m in frames[:5]])
    agg.process([record(m) for m in frames[1:]])  # a redelivery changes no count
    meta, totals = redis_conn.hgetall(keys.meta("s1")), redis_conn.hgetall(keys.totals("s1"))
    assert meta["stale_frames"] == "3"
    assert totals["skipped_frames"] == "4" and totals["frames"] == "2"
    assert meta["status"] == "closed"  # 2 analysed + 4 skipped = the 6 announced
    summary = json.loads(redis_conn.get(keys.summary("s1")))
    assert summary["skipped_frames"] == 4 and summary["frames_processed"] == 2
    assert agg.counters.stale_frames == 3 and agg.counters.skipped_frames == 4


def test_a_session_without_stale_frames_has_no_stale_count(make_aggregator, redis_conn, keys):
    agg = make_aggregator()
    agg.process([record(detection(0, ["sad"])), record(skipped(1, "oversized frame"))])
    assert "stale_frames" not in redis_conn.hgetall(keys.meta("s1"))


def test_skipped_flag_passed_to_the_script():
    assert [skipped_flag(m) for m in (detection(0, ["happy"]), skipped(1, "corrupt frame"),
                                      skipped(2, SKIPPED_STALE))] == [0, 1, 2]


def test_assign_setting_env_names(monkeypatch):
    assert AggregatorSettings.load().assign == "group"
    monkeypatch.setenv("MOODSTREAM_AGGREGATOR_ASSIGN", "all")
    assert AggregatorSettings.load().assign == "all"
    monkeypatch.delenv("MOODSTREAM_AGGREGATOR_ASSIGN")
    monkeypatch.setenv("AGGREGATOR_ASSIGN", "all")  # the old prefix no longer reconfigures it
    assert AggregatorSettings.load().assign == "group"
    with pytest.raises(SettingsError, match="assign"):
        AggregatorSettings.load(assign="static")
