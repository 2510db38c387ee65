"""Runs the services as separate processes over one Kafka + Redis, and keeps them running.

External servers are used when KAFKA_BOOTSTRAP_SERVERS / REDIS_URL are set; otherwise
the embedded ones are started. Children get PR_SET_PDEATHSIG so that even a killed
launcher leaves no orphans; a normal stop terminates them in data-flow order.
`Stack.supervise()`, called from the CLI's wait loops, restarts a crashed worker or
embedded server by the rules of moodstream.supervision and records their health in Redis.
The embedded broker keeps its data in memory only, so when it has to be restarted the
consumers start over with it and file jobs marked `replay` run again from the start
(see Stack._revive_servers).
Secrets (a camera URL with a password) reach a child through its environment, never argv,
which any local user can read in `ps`.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from moodstream.embedded import EmbeddedKafka, EmbeddedRedis, EmbeddedServerError
from moodstream.settings import CommonSettings, redact
from moodstream.supervision import (EXIT_CONFIG, CrashHistory, HealthBoard, LauncherSettings,
                                    describe_exit, health_record)

log = logging.getLogger("moodstream")

SHUTDOWN_ORDER = ("ingest", "detector", "aggregator", "dashboard")
# Workers that read Kafka and keep positions (in memory, and as the group's committed
# offsets) that mean nothing on a broker restarted empty: they start over with it.
CONSUMER_KINDS = ("detector", "aggregator")
# A run id in the launcher's own environment must not be shared by every ingest it starts.
PER_CHILD_ENV = ("MOODSTREAM_INGEST_RUN_ID", "MOODSTREAM_INGEST_SOURCE")


def state_file() -> Path:
    """Where a running demo advertises its servers to `moodstream report` in another shell."""
    return Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()) / "moodstream-stack.json"


class ServiceFailed(RuntimeError):
    pass


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it when the launcher dies."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    os.setpgrp()  # own group: a terminal's Ctrl-C reaches only the launcher, which stops us


@dataclass
class Service:
    """One worker process and its restart state (states: running, restarting, done, failed,
    stopped). A job (analyze's ingest of one file) is done when it exits 0; any other exit,
    and every exit of a long-running worker, is a crash. A `replay` job is one that can
    run again from the start without counting anything twice (a file ingest with a
    pinned run id): it is re-run, even when done, if the broker restarts empty."""

    name: str
    args: list[str]
    crashes: CrashHistory
    env: dict[str, str] = field(default_factory=dict)  # this child only (e.g. its source URL)
    job: bool = False
    replay: bool = False
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    state: str = "running"
    last_exit: int | None = None
    restart_at: float = 0.0

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def kind(self) -> str:
        return self.name.split(":")[0]

    @property
    def consumes(self) -> bool:
        return self.kind in CONSUMER_KINDS

    def tail(self, chars: int = 1500) -> str:
        if self.log_path and self.log_path.exists():
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""

    def last_line(self) -> str:
        lines = self.tail().strip().splitlines()
        return redact(lines[-1]) if lines else describe_exit(self.last_exit)

    def health(self) -> dict:
        return health_record(self.name, self.proc.pid if self.proc else None,
                             self.crashes.restarts, self.last_exit, self.state)


@dataclass
class Stack:
    """Servers plus supervised child services; use as a context manager."""

    settings: CommonSettings
    log_dir: Path | None = None  # None: children share our stderr
    services: list[Service] = field(default_factory=list)
    _embedded: list = field(default_factory=list)
    _server_crashes: dict = field(default_factory=dict)
    _health: HealthBoard | None = None
    _stop_hooks: list = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.settings, LauncherSettings):
            self.settings = LauncherSettings.load(**self.settings.model_dump())

    def __enter__(self) -> "Stack":
        try:
            self._start_servers()
        except BaseException:
            self.stop()
            raise
        self._health = HealthBoard(self.settings.redis_url, self.settings.redis_prefix)
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _start_servers(self) -> None:
        """The embedded servers that no URL names, started side by side (each start waits
        for its port: one after the other, their waits added up on the way to the first
        detection)."""
        servers = {}
        if not self.settings.kafka_bootstrap_servers:
            servers["kafka_bootstrap_servers"] = EmbeddedKafka()
        if not self.settings.redis_url:
            # appendfsync always: whatever Redis acknowledged survives a crash of Valkey.
            servers["redis_url"] = EmbeddedRedis(appendfsync="always")
        for server in servers.values():
            self._embedded.append(server)
            self._server_crashes[server.name] = CrashHistory(self.settings)
        with ThreadPoolExecutor(max(1, len(servers))) as pool:
            for started in [pool.submit(server.start) for server in servers.values()]:
                started.result()  # EmbeddedServerError: stop() ends the other one too
        for server in servers.values():
            log.info("embedded %s on %s", server.title, server.address)
        updates = {field_name: server.address for field_name, server in servers.items()}
        self.settings = self.settings.model_copy(update=updates)

    def child_env(self, service: Service | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in PER_CHILD_ENV}
        s = self.settings
        env.update(KAFKA_BOOTSTRAP_SERVERS=s.kafka_bootstrap_servers, REDIS_URL=s.redis_url,
                   MOODSTREAM_TOPIC_PREFIX=s.topic_prefix, MOODSTREAM_REDIS_PREFIX=s.redis_prefix,
                   MOODSTREAM_KAFKA_SESSION_TIMEOUT_MS=str(s.kafka_session_timeout_ms),
                   MOODSTREAM_LOG_LEVEL=s.log_level, PYTHONUNBUFFERED="1")
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        env.update(service.env if service else {})
        return env

    def start(self, name: str, *args: str, module: str | None = None,
              env: dict[str, str] | None = None, job: bool = False,
              replay: bool = False) -> Service:
        """Start a worker: `python -m module args`; secrets go in env, never in args.
        replay: a job that is run again from the start when the broker restarts empty."""
        service = Service(name, [sys.executable, "-m", module or name, *args],
                          CrashHistory(self.settings), env=dict(env or {}), job=job,
                          replay=replay and job)
        if self.log_dir:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            service.log_path = self.log_dir / f"{name}.log"
        self.services.append(service)
        self._spawn(service)
        return service

    def _spawn(self, service: Service) -> None:
        out = service.log_path.open("ab") if service.log_path else None
        try:
            service.proc = subprocess.Popen(
                service.args, env=self.child_env(service), stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT if out else None, preexec_fn=_die_with_parent)
        finally:
            if out:
                out.close()
        service.state = "running"
        log.info("started %s (pid %d)", service.name, service.proc.pid)

    # ------------------------------------------------------------ supervision

    def supervise(self) -> None:
        """One round: revive dead servers, restart crashed workers when their backoff is
        over, record health. Raises ServiceFailed when something cannot be kept running."""
        try:
            self._revive_servers()
            for service in self.services:
                self._supervise(service)
        finally:
            self._publish_health()

    def _supervise(self, service: Service) -> None:
        if service.state == "restarting":
            if time.monotonic() >= service.restart_at:
                service.crashes.restarts += 1
                self._spawn(service)
            return
        if service.state != "running" or service.running:
            return
        service.last_exit = code = service.proc.returncode
        if service.job and code == 0:
            service.state = "done"
            return
        service.state = "failed"
        if code == EXIT_CONFIG:  # a configuration mistake: restarting cannot fix it
            raise ServiceFailed(f"{service.name} failed: {service.last_line()}")
        service.crashes.record()
        if service.crashes.exhausted:
            raise ServiceFailed(service.crashes.give_up_message(service.name, service.last_line()))
        delay = service.crashes.delay()
        service.state, service.restart_at = "restarting", time.monotonic() + delay
        log.warning("%s (pid %d) stopped unexpectedly (%s); restart %d in %.1f s",
                    service.name, service.proc.pid, describe_exit(code),
                    service.crashes.restarts + 1, delay)

    def _revive_servers(self) -> None:
        for server in self._embedded:
            if server.running:
                continue
            crashes = self._server_crashes[server.name]
            crashes.record()
            how = describe_exit(server.proc.returncode)
            if crashes.exhausted:
                raise ServiceFailed(crashes.give_up_message(f"embedded {server.name}", how))
            empty_broker = isinstance(server, EmbeddedKafka) and not server.durable
            # Before the new broker exists, so nothing from before the crash can reach it (a
            # consumer committing its old positions there would skip the new log's start).
            halted = self._halt_for_empty_broker() if empty_broker else []
            try:
                server.restart()
            except EmbeddedServerError as exc:
                raise ServiceFailed(f"embedded {server.name} could not be restarted: {exc}") \
                    from None
            crashes.restarts += 1
            kept = ("with its data" if server.durable
                    else "empty (memory storage: unconsumed messages were lost)")
            log.warning("embedded %s stopped (%s); restarted on port %d %s (restart %d)",
                        server.name, how, server.port, kept, crashes.restarts)
            if isinstance(server, EmbeddedKafka):
                self._recreate_topics()
            if halted:
                self._resume_after_empty_broker(halted)

    def _halt_for_empty_broker(self) -> list[Service]:
        """SIGKILL what must start over with an empty broker: consumers (their positions and
        the group's offsets are gone with it) and replay jobs (their unconsumed frames are).
        SIGKILL, not SIGTERM: a file ingest stopped gracefully would announce a partial
        frame count. Workers waiting to restart start fresh anyway and are left alone."""
        halted = []
        for service in self.services:
            if service.consumes and service.state == "running":
                halted.append(service)
            elif service.replay and service.state in ("running", "done"):
                halted.append(service)
        for service in halted:
            if service.running:
                service.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                service.proc.wait(5)
        return halted

    def _resume_after_empty_broker(self, halted: list[Service]) -> None:
        """Consumers first (they read the new log from its start), then the replays: the
        frames that were already counted come again with the same (session, run_id, seq)
        and the aggregator's dedupe drops them; the lost ones are counted."""
        for service in sorted(halted, key=lambda s: not s.consumes):
            service.crashes.restarts += 1
            self._spawn(service)
        consumers = [s.name for s in halted if s.consumes]
        replays = [s.name for s in halted if not s.consumes]
        log.warning("broker restarted empty: restarted %s%s", ", ".join(consumers) or "no consumer",
                    f"; replaying {', '.join(replays)} from the start (same run id)"
                    if replays else "")

    def _recreate_topics(self) -> None:
        from moodstream.clients import ServiceUnavailable, ensure_topics
        try:
            ensure_topics(self.settings)
        except ServiceUnavailable as exc:
            log.warning("topics not recreated yet: %s", exc)

    def health(self) -> list[dict]:
        records = [service.health() for service in self.services]
        for server in self._embedded:
            crashes = self._server_crashes[server.name]
            code = server.proc.returncode if server.proc else None
            records.append(health_record(server.name, server.pid, crashes.restarts, code,
                                         "running" if server.running else "restarting",
                                         kind="server"))
        return records

    def _publish_health(self) -> None:
        if self._health and self.services:
            self._health.publish(self.health())

    # ------------------------------------------------------------ stop

    def on_stop(self, hook) -> None:
        """Call `hook()` first when the stack stops (a client of its servers closes
        before they go)."""
        self._stop_hooks.append(hook)

    def stop(self, timeout: float = 10.0) -> None:
        for hook in reversed(self._stop_hooks):
            with contextlib.suppress(Exception):
                hook()
        self._stop_hooks.clear()
        if self._health:
            self._health.clear()
            self._health = None
        order = {n: i for i, n in enumerate(SHUTDOWN_ORDER)}
        for service in sorted(self.services, key=lambda s: order.get(s.kind, 99)):
            _terminate(service.proc, timeout)
            service.state = "stopped"
        self.services.clear()
        if self._embedded:  # side by side: nothing is left to use either of them
            with ThreadPoolExecutor(len(self._embedded)) as pool:
                list(pool.map(lambda server: server.stop(), self._embedded))
        self._embedded.clear()
        with contextlib.suppress(OSError):
            path = state_file()
            if path.exists() and json.loads(path.read_text()).get("pid") == os.getpid():
                path.unlink()

    def publish_state(self, dashboard_url: str | None) -> None:
        """Let `moodstream report` in another terminal find this stack's Redis."""
        state = {"pid": os.getpid(), "redis_url": self.settings.redis_url,
                 "kafka": self.settings.kafka_bootstrap_servers, "dashboard": dashboard_url,
                 "redis_prefix": self.settings.redis_prefix}
        with contextlib.suppress(OSError):
            path = state_file()
            path.write_text(json.dumps(state))
            path.chmod(0o600)


def _terminate(proc: subprocess.Popen | None, timeout: float) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        log.warning("pid %d ignored SIGTERM for %.0fs; killing it", proc.pid, timeout)
        proc.kill()
        proc.wait(5)


def running_stack_state() -> dict | None:
    """State of a running `moodstream demo`, if there is one on this machine."""
    with contextlib.suppress(OSError, ValueError):
        state = json.loads(state_file().read_text())
        os.kill(int(state["pid"]), 0)
        return state
    return None


def describe(settings: CommonSettings) -> str:
    return (f"Kafka {redact(settings.kafka_bootstrap_servers or 'embedded')}, "
            f"Redis {redact(settings.redis_url or 'embedded')}")


def wait_until(predicate, timeout: float, interval: float = 0.05, check=None) -> bool:
    # 50 ms: `analyze` waits here for its sessions to close, and every tick of a coarser
    # interval was wall time added to each run (a Redis HGET a tick costs nothing).
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        if check:
            check()
        time.sleep(interval)
    return predicate()
