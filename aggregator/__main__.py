"""`python -m aggregator`: consume detections and control events into Redis until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import threading
from types import SimpleNamespace

from kafka.errors import KafkaError

from aggregator.alerts import AlertMonitor, AlertRule, AlertStore
from aggregator.metrics import AggregatorMetrics
from aggregator.rollups import HourlyRollups
from aggregator.service import Aggregator, consumer_loop
from aggregator.settings import AggregatorSettings
from aggregator.store import SessionStore
from aggregator.thresholds import ThresholdRules
from aggregator.webhook import WebhookNotifier
from moodstream.clients import (REDIS_ERRORS, ServiceUnavailable, ensure_topics, kafka_consumer,
                                kafka_producer, redis_client)
from moodstream.deadletter import DeadLetterSender
from moodstream.redis_keys import RedisKeys
from moodstream.lifecycle import process_age_s, stop_on_signals
from moodstream.logs import setup_logging
from moodstream.settings import SettingsError, redact
from moodstream.topics import Topics

log = logging.getLogger("aggregator")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m aggregator", description=__doc__)
    p.add_argument("--group-id", help="Kafka consumer group (default aggregator)")
    p.add_argument("--assign", choices=("group", "all"),
                   help="group: join the consumer group (default); all: read every partition "
                        "with no group join, committing to the group's offsets: only for ONE "
                        "aggregator per group (analyze)")
    p.add_argument("--idle-timeout-s", type=float,
                   help="close a session after this long without detections (default 30)")
    p.add_argument("--end-grace-s", type=float,
                   help="after session_end, close this long after the last detection even "
                        "if announced frames are missing (default 5)")
    p.add_argument("--bucket-ttl-s", type=int,
                   help="TTL of per-session keys, 0 = keep (default 7 days)")
    p.add_argument("--summary-ttl-s", type=int,
                   help="TTL of session summaries, 0 = keep (default 90 days)")
    p.add_argument("--valence", help="emotion weights, e.g. angry=-1,happy=1,surprise=0.3 "
                                     "(unnamed emotions keep their defaults)")
    p.add_argument("--min-people", type=int,
                   help="hide sentiment of fewer distinct people than this (default 1 = off)")
    p.add_argument("--alert-webhook-url", help="POST alert JSON here (optional)")
    p.add_argument("--no-alerts", action="store_const", const=False, dest="alerts_enabled",
                   help="do not evaluate negative-sentiment alerts")
    p.add_argument("--metrics-port", type=int,
                   help="/metrics, /healthz and /readyz on this port (default 0 = off)")
    p.add_argument("--log-level", help="DEBUG, INFO (default), WARNING, ERROR")
    return p.parse_args(argv)


def build_settings(args: argparse.Namespace) -> AggregatorSettings:
    return AggregatorSettings.load(**{k: v for k, v in vars(args).items() if v is not None})


def alert_rule(settings: AggregatorSettings) -> AlertRule:
    return AlertRule(window_s=settings.alert_window_s, threshold=settings.alert_threshold,
                     min_duration_s=settings.alert_min_duration_s,
                     resolve_threshold=settings.alert_resolve_threshold,
                     clear_s=settings.alert_clear_s, cooldown_s=settings.alert_cooldown_s,
                     min_faces=settings.alert_min_faces)


@contextlib.contextmanager
def quiet_kafka_logs():
    """kafka-python logs every failed connection attempt while we retry; the retry loop ends
    in one clear line of its own, so keep the client quiet until it is connected."""
    kafka_log = logging.getLogger("kafka")
    kafka_log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        kafka_log.setLevel(logging.WARNING)


def serve(settings: AggregatorSettings, stop: threading.Event,
          metrics: AggregatorMetrics | None = None) -> None:
    topics, keys = Topics(settings.topic_prefix), RedisKeys(settings.redis_prefix)
    metrics = metrics or AggregatorMetrics()
    r = redis_client(settings)
    store = SessionStore(r, keys, settings.valence, settings.bucket_ttl_s,
                         settings.summary_ttl_s, settings.live_ema_alpha,
                         min_people=settings.min_people)
    notifier = WebhookNotifier(settings.alert_webhook_url) if settings.alert_webhook_url else None
    producer = loop = None
    metrics.ready_when(r, lambda: loop.consumer if loop else None)
    try:
        with quiet_kafka_logs():
            ensure_topics(settings, topics)
            producer = kafka_producer(settings) if settings.deadletter else None
        alert_store = AlertStore(r, keys, settings.bucket_ttl_s, notifier)
        dead = DeadLetterSender(producer, topics.deadletter) if producer else None
        aggregator = Aggregator(
            store, topics, settings.idle_timeout_s, settings.end_grace_s,
            # Per-camera thresholds an admin set on the dashboard, re-read every few seconds.
            AlertMonitor(alert_rule(settings), rules=ThresholdRules(
                r, keys, alert_rule(settings)).rule_for) if settings.alerts_enabled else None,
            alert_store, metrics.counting(dead.send if dead else None),
            rollups=HourlyRollups(r, keys, settings.rollup_ttl_s, settings.summary_ttl_s,
                                  settings.rollup_every_s))
        metrics.watch(aggregator)
        loop = consumer_loop(aggregator, stop, settings.max_poll_records,
                             settings.poll_timeout_ms, flush=producer.flush if producer else None)
        with quiet_kafka_logs():
            # fetch_max_wait_ms 50, not kafka-python's 500: under a steady stream the embedded
            # broker answered a fetch late, and detections reached Redis ~120 ms later (p50,
            # 2 live 720p cameras; measured while working on issue 11).
            loop.attach(kafka_consumer(settings, settings.group_id,
                                       [topics.detections, topics.control],
                                       assign=settings.assign, listener=loop.listener,
                                       fetch_max_wait_ms=50))
        age = process_age_s()
        log.info("aggregator consuming %s, %s -> redis %s (prefix %s; %s); ready %s after "
                 "process start", topics.detections, topics.control, redact(settings.redis_url),
                 settings.redis_prefix,
                 "all partitions, no join" if settings.assign == "all" else "group join on poll",
                 "?" if age is None else f"{age:.2f} s")
        loop.run()
        log.info("stopped: %s", aggregator.counters)
    finally:
        if loop is not None:
            loop.close()  # run() closed it already, unless it never started
        if producer is not None:
            producer.flush(10)
            producer.close(10)
        if notifier is not None:
            notifier.close()
        r.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = build_settings(args)
        settings.require_kafka()
        settings.require_redis()
        if settings.log_level.upper() not in logging.getLevelNamesMapping():
            raise SettingsError(f"invalid setting log_level: unknown level {settings.log_level!r}")
        setup_logging(settings.log_level, "aggregator")
        stop = threading.Event()
        stop_on_signals(stop, log)
        metrics = AggregatorMetrics()
        # /healthz from now on; /readyz once Redis answers and partitions are assigned. Until
        # serve() registers the real checks these stand in, so /readyz never answers 200 with
        # no checks at all.
        metrics.ready_when(SimpleNamespace(ping=lambda: False), lambda: None)
        metrics.health.start_from(settings)
        try:
            serve(settings, stop, metrics)
        finally:
            metrics.health.stop()
    except SettingsError as exc:
        print(f"aggregator: {exc}", file=sys.stderr)
        return 2
    except ServiceUnavailable as exc:
        print(f"aggregator: {exc}", file=sys.stderr)
        return 1
    except REDIS_ERRORS as exc:
        print(f"aggregator: Redis failed: {redact(str(exc))}", file=sys.stderr)
        return 1
    except KafkaError as exc:
        print(f"aggregator: Kafka failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
