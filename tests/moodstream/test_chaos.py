"""Chaos on real servers: kill -9 a worker or an embedded server under the launcher while a
clip streams, let the launcher restart it, and check the session's final Redis totals
against the clip's ground truth: the frames, and the faces that an in-process run of the
detector's own pipeline finds on every frame. Equal totals mean nothing was lost and
nothing was counted twice (the aggregator dedupes on (session, run_id, seq)).

Two tests pin server behaviour instead: Valkey keeps all it acknowledged, and the embedded
broker is memory-only (its documented loss, which analyze makes up for by replaying its
files: test_analyze_replays_its_files_when_the_broker_restarts_empty)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest
import redis
from kafka import KafkaConsumer, KafkaProducer

from moodstream.cli import _start_file_ingest
from moodstream.clients import ensure_topics, redis_client
from moodstream.launcher import Stack
from moodstream.redis_keys import RedisKeys
from moodstream.supervision import LauncherSettings
from moodstream.topics import Topics
from tests.conftest import REPO, VIDEOS, require

pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.integration]

CHILD = "tests.moodstream.launcher_child"
CLIP = "single_face_smile.mp4"  # 72 frames, 2.4 s at its own pace, one face throughout


# ---------------------------------------------------------------- ground truth

@dataclass(frozen=True)
class Truth:
    """What the session's totals hash must hold once every frame is applied exactly once."""

    frames: int
    frames_with_faces: int
    faces: int
    excluded_faces: int = 0
    skipped_frames: int = 0


def pipeline_truth(clip: Path) -> Truth:
    """Every frame of the clip read and JPEG-encoded as a file ingest with fps 0 does (the
    camera defaults' width and quality), then through the detector's FramePipeline built as
    the detector service builds it: decode, detect, mask, track, crop, classify."""
    import cv2

    from detector.__main__ import build_pipeline
    from detector.faces import build_detector
    from detector.pipeline import PoisonFrame
    from detector.settings import DetectorSettings
    from ingest.camera import encode_jpeg
    from ingest.config import CameraConfig
    from moodstream.schemas import FrameHeaders

    camera = CameraConfig(id="truth", url=str(clip), fps=0)
    settings = DetectorSettings.load()
    pipeline = build_pipeline(settings, build_detector(settings.detector, settings.confidence,
                                                       settings.min_face, settings.downscale), {})
    frames = with_faces = faces = excluded = skipped = 0
    capture = cv2.VideoCapture(str(clip))
    try:
        while True:
            ok, image = capture.read()
            if not ok:
                break
            jpeg, width, height = encode_jpeg(image, camera.max_width, camera.jpeg_quality)
            headers = FrameHeaders("truth", "truth", frames, time.time(), frames / 30, width,
                                   height, run_id="truth")
            frames += 1
            try:
                pending = pipeline.prepare(jpeg, headers)
            except PoisonFrame:
                skipped += 1
                continue
            pipeline.classify([pending])
            message = pipeline.message(pending, 0.0)
            faces += len(message.faces)
            with_faces += bool(message.faces)
            excluded += message.excluded_faces
    finally:
        capture.release()
    return Truth(frames - skipped, with_faces, faces, excluded, skipped)


@pytest.fixture(scope="session")
def clip_truth() -> tuple[Path, Truth]:
    clip = require(VIDEOS / CLIP)
    truth = pipeline_truth(clip)
    assert truth.frames == 72 and truth.faces > 0, truth
    return clip, truth


@pytest.fixture(scope="session")
def long_clip_truth(tmp_path_factory) -> tuple[Path, Truth]:
    """The clip played forwards, backwards and forwards again (216 frames, 7.2 s): long
    enough for a second detector to load and join while it streams."""
    import cv2
    source = cv2.VideoCapture(str(require(VIDEOS / CLIP)))
    images = []
    while (frame := source.read())[0]:
        images.append(frame[1])
    source.release()
    path = tmp_path_factory.mktemp("clips") / "smile_x3.mp4"
    height, width = images[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (width, height))
    for image in images + images[::-1] + images:
        writer.write(image)
    writer.release()
    truth = pipeline_truth(path)
    assert truth.frames == 3 * len(images) and truth.faces > 0, truth
    return path, truth


# ---------------------------------------------------------------- helpers

def supervise_until(stack: Stack, predicate, timeout: float, what: str, detail=None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, (f"{what} within {timeout:.0f} s; "
                                             f"{detail() if detail else ''} {stack.health()}")
        stack.supervise()
        time.sleep(0.1)


def health(stack: Stack, name: str) -> dict:
    return next(record for record in stack.health() if record["name"] == name)


def restarted(stack: Stack, name: str) -> bool:
    # Restarts, not just "running": right after a kill the process may not be reaped yet.
    record = health(stack, name)
    return record["restarts"] == 1 and record["state"] == "running"


class Session:
    """One session's totals and status in Redis, read through a restart of Redis itself."""

    FIELDS = tuple(asdict(Truth(0, 0, 0)))

    def __init__(self, client: redis.Redis, keys: RedisKeys, session_id: str):
        self.r, self.keys, self.id = client, keys, session_id

    def totals(self) -> dict[str, int]:
        raw = self.r.hgetall(self.keys.totals(self.id))
        return {field: int(float(raw.get(field, 0))) for field in self.FIELDS}

    def frames(self) -> int:
        try:
            return int(self.r.hget(self.keys.totals(self.id), "frames") or 0)
        except redis.RedisError:
            return -1

    def closed(self) -> bool:
        try:
            return self.r.hget(self.keys.meta(self.id), "status") == "closed"
        except redis.RedisError:
            return False

    def describe(self) -> str:
        try:
            return f"totals {self.totals()}, meta {self.r.hgetall(self.keys.meta(self.id))}"
        except redis.RedisError as exc:
            return f"Redis unreachable: {exc}"


def chaos_settings(prefix: str, **servers) -> LauncherSettings:
    return LauncherSettings.load(topic_prefix=prefix, redis_prefix=prefix,
                                 backoff_initial_s=0.5, **servers)


@contextlib.contextmanager
def running_pipeline(settings: LauncherSettings, log_dir: Path, session_id: str):
    """Aggregator and one detector on the stack's servers, the detector ready for frames.
    Yields (stack, session, detector). Idle and end timers are long: only a complete
    session closes, so a lost frame shows as a timeout, never as a short total."""
    with Stack(settings, log_dir=log_dir) as stack:
        ensure_topics(stack.settings)
        client = redis_client(stack.settings, socket_timeout=2)
        session = Session(client, RedisKeys(settings.redis_prefix), session_id)
        prefix = settings.topic_prefix
        stack.start("aggregator", "--idle-timeout-s", "300", "--end-grace-s", "300",
                    "--group-id", f"{prefix}.agg")
        detector = stack.start("detector", "--group-id", f"{prefix}.det")
        supervise_until(stack, lambda: "partitions assigned" in detector.tail(100_000), 60,
                        "detector ready")
        try:
            yield stack, session, detector
        finally:
            client.close()


def finish(stack: Stack, session: Session, truth: Truth, timeout: float = 90) -> None:
    supervise_until(stack, session.closed, timeout, "session closed", session.describe)
    assert session.totals() == asdict(truth)  # none lost, none doubled


# ---------------------------------------------------------------- servers

def test_embedded_redis_restart_loses_nothing_acknowledged(kafka_server, unique_prefix):
    settings = LauncherSettings.load(kafka_bootstrap_servers=kafka_server.bootstrap,
                                     topic_prefix=unique_prefix)
    with Stack(settings) as stack:
        client = redis_client(stack.settings)
        for i in range(300):  # acknowledged one by one, the last just before the kill
            client.hincrby("totals", "frames", 1)
            client.set(f"frame:{i}", i)
        os.kill(health(stack, "valkey")["pid"], signal.SIGKILL)
        supervise_until(stack, lambda: restarted(stack, "valkey"), 20, "valkey restarted")
        assert client.hget("totals", "frames") == "300"
        assert client.mget([f"frame:{i}" for i in range(300)]) == [str(i) for i in range(300)]
        assert health(stack, "valkey")["kind"] == "server"


def test_embedded_broker_restart_loses_what_was_not_consumed(redis_server, unique_prefix):
    """Documented limit (README): Tansu as shipped stores in memory only."""
    settings = LauncherSettings.load(redis_url=redis_server.url, topic_prefix=unique_prefix,
                                     redis_prefix=unique_prefix)
    with Stack(settings) as stack:
        ensure_topics(stack.settings)
        bootstrap, topic = stack.settings.kafka_bootstrap_servers, Topics(unique_prefix).control
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
        producer.send(topic, b"acknowledged").get(10)
        producer.close(5)
        os.kill(health(stack, "tansu")["pid"], signal.SIGKILL)
        supervise_until(stack, lambda: restarted(stack, "tansu"), 20, "tansu restarted")
        consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                 consumer_timeout_ms=3000)
        try:
            assert [m.value for m in consumer] == []  # the acknowledged message is gone
            assert topic in consumer.topics()  # the launcher recreated the topics
        finally:
            consumer.close()


def test_an_empty_broker_restart_restarts_consumers_and_replays_file_jobs(redis_server,
                                                                           unique_prefix,
                                                                           tmp_path, caplog):
    """What the launcher does when the memory-only broker comes back empty: consumers are
    killed before it restarts (no old position can reach the new broker) and started
    again; replay jobs run again from the start, finished or not; nothing else is touched,
    and none of it counts as a crash."""
    caplog.set_level("WARNING", logger="moodstream")
    settings = chaos_settings(unique_prefix, redis_url=redis_server.url)
    starts = {name: tmp_path / f"{name}.starts" for name in ("det", "agg", "done", "running",
                                                             "plain", "dash")}

    def forever(name: str) -> dict[str, str]:  # a long-running worker
        return {"CHILD_FOREVER": "1", "CHILD_STARTS": str(starts[name])}

    def job(name: str, delay: str) -> dict[str, str]:  # exits 0 after delay seconds
        return {"CHILD_EXIT": "0", "CHILD_DELAY_S": delay, "CHILD_STARTS": str(starts[name])}

    def count(name: str) -> int:  # starts so far
        return len(starts[name].read_text().split()) if starts[name].exists() else 0

    with Stack(settings) as stack:
        detector = stack.start("detector", module=CHILD, env=forever("det"))
        aggregator = stack.start("aggregator", module=CHILD, env=forever("agg"))
        dashboard = stack.start("dashboard", module=CHILD, env=forever("dash"))
        finished = stack.start("ingest:done", module=CHILD, job=True, replay=True,
                               env=job("done", "0.1"))
        running = stack.start("ingest:running", module=CHILD, job=True, replay=True,
                              env=job("running", "600"))
        plain = stack.start("ingest:plain", module=CHILD, job=True, env=job("plain", "0.1"))
        supervise_until(stack, lambda: finished.state == plain.state == "done" and
                        count("running") == 1, 20, "jobs started")
        pids = {s.name: s.proc.pid for s in stack.services}
        os.kill(health(stack, "tansu")["pid"], signal.SIGKILL)
        supervise_until(stack, lambda: restarted(stack, "tansu") and count("done") == 2 and
                        finished.state == "done", 20, "broker restarted, finished job replayed")
        assert (count("det"), count("agg"), count("running")) == (2, 2, 2)
        assert (count("dash"), count("plain")) == (1, 1)
        assert dashboard.proc.pid == pids["dashboard"] and plain.state == "done"
        for service in (detector, aggregator, running):
            assert service.proc.pid != pids[service.name] and service.state == "running"
            assert service.crashes.restarts == 1 and not service.crashes.times  # not a crash
        assert finished.crashes.restarts == 1
    assert ("broker restarted empty: restarted detector, aggregator; replaying ingest:done, "
            "ingest:running from the start (same run id)") in caplog.messages


# ---------------------------------------------------------------- the pipeline under kill -9

def test_killed_detector_is_restarted_and_every_frame_counts_once(kafka_server, redis_server,
                                                                  unique_prefix, tmp_path,
                                                                  clip_truth):
    """kill -9 the detector while a clip streams: the launcher restarts it, frames it had
    not committed are replayed, and the totals are the clip's ground truth."""
    clip, truth = clip_truth
    settings = chaos_settings(unique_prefix, kafka_bootstrap_servers=kafka_server.bootstrap,
                              redis_url=redis_server.url)
    with running_pipeline(settings, tmp_path, f"det-{unique_prefix}") as (stack, session, det):
        _start_file_ingest(stack, clip, "smile", session.id, 0, mode="realtime")
        supervise_until(stack, lambda: session.frames() >= 5, 30, "first frames applied")
        os.kill(det.proc.pid, signal.SIGKILL)  # mid-stream: the clip is still playing
        at_kill = session.frames()
        finish(stack, session, truth)
        assert det.crashes.restarts == 1 and det.last_exit == -signal.SIGKILL
        assert at_kill < truth.frames


def test_killed_file_ingest_replays_and_no_frame_is_doubled(kafka_server, redis_server,
                                                            unique_prefix, tmp_path, clip_truth):
    """kill -9 ingest mid-file: the restarted job replays the file under the same pinned run
    id, so the frames it had already sent are recognised as repeats, not added twice."""
    clip, truth = clip_truth
    settings = chaos_settings(unique_prefix, kafka_bootstrap_servers=kafka_server.bootstrap,
                              redis_url=redis_server.url)
    with running_pipeline(settings, tmp_path, f"ing-{unique_prefix}") as (stack, session, _det):
        ingest = _start_file_ingest(stack, clip, "smile", session.id, 0, mode="realtime")
        supervise_until(stack, lambda: session.frames() >= 10, 60, "first frames applied")
        os.kill(ingest.proc.pid, signal.SIGKILL)
        at_kill = session.frames()
        supervise_until(stack, lambda: ingest.state == "done", 60, "replay done")
        finish(stack, session, truth)
        assert ingest.crashes.restarts == 1
        assert 10 <= at_kill < truth.frames


def test_killed_aggregator_is_restarted_and_every_frame_counts_once(kafka_server, redis_server,
                                                                    unique_prefix, tmp_path,
                                                                    clip_truth):
    """kill -9 the aggregator mid-stream, possibly inside a batch of Lua updates: the batch
    was not committed, so its detections come again, and the seen bitmaps drop the ones
    Redis already has."""
    clip, truth = clip_truth
    settings = chaos_settings(unique_prefix, kafka_bootstrap_servers=kafka_server.bootstrap,
                              redis_url=redis_server.url)
    with running_pipeline(settings, tmp_path, f"agg-{unique_prefix}") as (stack, session, _det):
        aggregator = next(s for s in stack.services if s.name == "aggregator")
        _start_file_ingest(stack, clip, "smile", session.id, 0, mode="realtime")
        supervise_until(stack, lambda: session.frames() >= 5, 30, "first frames applied")
        os.kill(aggregator.proc.pid, signal.SIGKILL)
        at_kill = session.frames()
        finish(stack, session, truth)
        assert aggregator.crashes.restarts == 1 and aggregator.last_exit == -signal.SIGKILL
        assert at_kill < truth.frames


def test_two_detectors_one_killed_during_a_rebalance(kafka_server, redis_server, unique_prefix,
                                                     tmp_path, long_clip_truth):
    """Detector A streams the clip alone; detector B starts, and once it is ready its first
    poll joins the group, which starts a rebalance: A is killed right then, holding frames
    it had not committed. The group hands everything to B once A's session times out, the
    restarted A joins again later, and the totals are still the ground truth."""
    clip, truth = long_clip_truth
    settings = chaos_settings(unique_prefix, kafka_bootstrap_servers=kafka_server.bootstrap,
                              redis_url=redis_server.url)
    with running_pipeline(settings, tmp_path, f"reb-{unique_prefix}") as (stack, session, first):
        _start_file_ingest(stack, clip, "smile", session.id, 0, mode="realtime")
        second = stack.start("detector:2", "--group-id", f"{unique_prefix}.det", module="detector")
        supervise_until(stack, lambda: "serving" in second.tail(100_000) and session.frames() > 0,
                        60, "second detector ready while the first analyses the stream")
        os.kill(first.proc.pid, signal.SIGKILL)
        at_kill = session.frames()
        joined_before_kill = "partitions assigned" in second.tail(100_000)
        finish(stack, session, truth, timeout=120)
        assert not joined_before_kill  # B was still waiting for its partitions: mid-rebalance
        assert "partitions assigned" in second.tail(100_000)
        assert first.crashes.restarts == 1 and second.crashes.restarts == 0
        assert 0 < at_kill < truth.frames


def test_valkey_killed_mid_stream_keeps_exact_totals(kafka_server, unique_prefix, tmp_path,
                                                     clip_truth):
    """kill -9 the embedded Valkey (append-only file, fsync always) while frames are being
    applied: it comes back with every update it acknowledged; the aggregator's client
    reconnects and sends its batch again (or the aggregator fails and is restarted, and
    the uncommitted batch comes again from Kafka); either way each frame counts once."""
    clip, truth = clip_truth
    settings = chaos_settings(unique_prefix, kafka_bootstrap_servers=kafka_server.bootstrap)
    with running_pipeline(settings, tmp_path, f"val-{unique_prefix}") as (stack, session, _det):
        _start_file_ingest(stack, clip, "smile", session.id, 0, mode="realtime")
        supervise_until(stack, lambda: session.frames() >= 5, 30, "first frames applied")
        at_kill = session.frames()
        os.kill(health(stack, "valkey")["pid"], signal.SIGKILL)
        supervise_until(stack, lambda: restarted(stack, "valkey"), 20, "valkey restarted")
        finish(stack, session, truth)
        assert at_kill < truth.frames


# ---------------------------------------------------------------- moodstream analyze

def analyze(videos: list[Path], report: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "moodstream", "analyze", *map(str, videos),
                             "--report", str(report), "--timeout", "120"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def workers(client: redis.Redis, prefix: str) -> dict[str, dict]:
    raw = client.hgetall(RedisKeys(prefix).workers)
    return {name: json.loads(record) for name, record in raw.items()}


def analyze_totals(client: redis.Redis, prefix: str, report: dict) -> dict[str, int]:
    return Session(client, RedisKeys(prefix), report["session_id"]).totals()


def test_analyze_restarts_a_killed_detector_and_reports_every_frame_once(kafka_server,
                                                                         redis_server,
                                                                         unique_prefix, tmp_path,
                                                                         clip_truth):
    """The CLI path: `moodstream analyze` finds its detector killed, restarts it, and the
    report and totals still hold the clip's ground truth."""
    clip, truth = clip_truth
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=kafka_server.bootstrap,
               REDIS_URL=redis_server.url, MOODSTREAM_TOPIC_PREFIX=unique_prefix,
               MOODSTREAM_REDIS_PREFIX=unique_prefix, MOODSTREAM_LAUNCHER_BACKOFF_INITIAL_S="0.5")
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    proc = analyze([clip], tmp_path / "r.json", env)
    try:
        deadline, killed = time.monotonic() + 30, None
        while killed is None and time.monotonic() < deadline:
            killed = workers(client, unique_prefix).get("detector", {}).get("pid")
            if killed:
                os.kill(killed, signal.SIGKILL)
            time.sleep(0.1)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert killed, "the launcher never recorded a detector"
    assert proc.returncode == 0, err[-3000:]
    assert f"detector (pid {killed}) stopped unexpectedly (killed by SIGKILL); restart 1" in err
    report = json.loads((tmp_path / "r.json").read_text())
    assert (report["frames_processed"], report["frames_with_faces"], report["faces_detected"]) \
        == (truth.frames, truth.frames_with_faces, truth.faces), out
    assert analyze_totals(client, unique_prefix, report) == asdict(truth)


def test_analyze_replays_its_files_when_the_broker_restarts_empty(redis_server, unique_prefix,
                                                                   tmp_path, clip_truth):
    """`moodstream analyze` on its own embedded broker, killed once the clip is on the
    broker but not all analysed: the broker comes back empty, the launcher restarts the
    detector and aggregator and runs the file again under the same run id, and the report
    is exact: the frames lost with the broker are counted, the ones already applied are
    recognised as repeats."""
    clip, truth = clip_truth
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    env.update(REDIS_URL=redis_server.url, MOODSTREAM_TOPIC_PREFIX=unique_prefix,
               MOODSTREAM_REDIS_PREFIX=unique_prefix, MOODSTREAM_LAUNCHER_BACKOFF_INITIAL_S="0.5")
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    keys = RedisKeys(unique_prefix)
    ingest_name = f"ingest:{clip.stem}"

    def frames_applied() -> int:
        return max([int(client.hget(keys.totals(s), "frames") or 0)
                    for s in client.zrange(keys.sessions, 0, -1)] or [0])

    proc = analyze([clip], tmp_path / "r.json", env)
    try:
        deadline, killed, at_kill = time.monotonic() + 60, None, None
        while killed is None and time.monotonic() < deadline and proc.poll() is None:
            records = workers(client, unique_prefix)
            # The whole clip published (or its analysis under way), not all of it applied.
            if records.get(ingest_name, {}).get("state") == "done" or frames_applied() > 0:
                killed = records["tansu"]["pid"]
                os.kill(killed, signal.SIGKILL)
                at_kill = frames_applied()
            time.sleep(0.02)
        out, err = proc.communicate(timeout=150)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert killed, f"never saw the clip on the broker; {err[-3000:]}"
    assert proc.returncode == 0, err[-3000:]
    assert "embedded tansu stopped (killed by SIGKILL)" in err
    assert (f"broker restarted empty: restarted aggregator, detector; replaying {ingest_name} "
            "from the start (same run id)") in err
    assert at_kill < truth.frames
    report = json.loads((tmp_path / "r.json").read_text())
    assert (report["frames_processed"], report["frames_with_faces"], report["faces_detected"]) \
        == (truth.frames, truth.frames_with_faces, truth.faces), out
    assert analyze_totals(client, unique_prefix, report) == asdict(truth)
