"""Frame identity across ingest restarts: seq restarts at 0 in every process, so every
process start draws its own run id and (session, run_id, seq) never repeats."""

from __future__ import annotations

import re

import pytest

from tests.conftest import VIDEOS, require
from tests.ingest.helpers import read_topics
from tests.ingest.test_cli import run_ingest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NO_FACE = VIDEOS / "no_face.mp4"


def test_each_ingest_start_gets_its_own_run_id(stack_env, kafka_server, unique_prefix):
    args = ("--source", str(require(NO_FACE)), "--camera-id", "till", "--session-id", "same-1",
            "--fps", "2", "--mode", "fast")
    for _ in range(2):  # the same file and session twice, as after a crash and restart
        result = run_ingest(stack_env, *args)
        assert result.returncode == 0, result.stderr
    got = read_topics(kafka_server.bootstrap, unique_prefix, lambda g: g.complete(2), timeout_s=20)
    headers = [h for _, h, _ in got.frames]
    runs = {h.run_id for h in headers}
    assert len(runs) == 2 and all(re.fullmatch(r"[0-9a-f]{12}", run) for run in runs)
    for run in runs:  # seq restarts at 0 in each run ...
        seqs = sorted(h.seq for h in headers if h.run_id == run)
        assert seqs == list(range(len(seqs))) and seqs
    identities = [(h.session_id, h.run_id, h.seq) for h in headers]
    assert len(set(identities)) == len(identities)  # ... yet no frame identity repeats


def test_a_pinned_run_id_replays_the_same_identities(stack_env, kafka_server, unique_prefix):
    """What the launcher does for a crashed file job: the replay dedupes instead of adding up."""
    env = dict(stack_env, MOODSTREAM_INGEST_RUN_ID="replay-7")
    args = ("--source", str(require(NO_FACE)), "--camera-id", "till", "--session-id", "same-2",
            "--fps", "2", "--mode", "fast")
    for _ in range(2):
        assert run_ingest(env, *args).returncode == 0
    got = read_topics(kafka_server.bootstrap, unique_prefix, lambda g: g.complete(2), timeout_s=20)
    identities = [(h.session_id, h.run_id, h.seq) for _, h, _ in got.frames]
    assert {run for _, run, _ in identities} == {"replay-7"}
    assert len(identities) == 2 * len(set(identities))  # each frame twice, same identity


def test_an_unsafe_run_id_is_one_clear_line(stack_env):
    result = run_ingest(dict(stack_env, MOODSTREAM_INGEST_RUN_ID="../x"), "--source",
                        str(require(NO_FACE)))
    assert result.returncode == 2 and "run_id" in result.stderr and "Traceback" not in result.stderr
