"""Runs the services as separate processes over one Kafka + Redis: used by the CLI.

External servers are used when KAFKA_BOOTSTRAP_SERVERS / REDIS_URL are set; otherwise
the embedded ones are started. Children get PR_SET_PDEATHSIG so that even a killed
launcher leaves no orphans; a normal stop terminates them in data-flow order.
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
from dataclasses import dataclass, field
from pathlib import Path

from moodstream.embedded import EmbeddedKafka, EmbeddedRedis
from moodstream.settings import CommonSettings, redact

log = logging.getLogger("moodstream")



def state_file() -> Path:
    """Where a running demo advertises its servers to `moodstream report` in another shell."""
    return Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()) / "moodstream-stack.json"

SHUTDOWN_ORDER = ("ingest", "detector", "aggregator", "dashboard")


class ServiceFailed(RuntimeError):
    pass


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it when the launcher dies."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    os.setpgrp()  # own group: a terminal's Ctrl-C reaches only the launcher, which stops us


@dataclass
class Service:
    name: str
    args: list[str]
    proc: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, chars: int = 1500) -> str:
        if self.log_path and self.log_path.exists():
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""


@dataclass
class Stack:
    """Servers plus child services; use as a context manager."""

    settings: CommonSettings
    log_dir: Path | None = None  # None: children share our stderr
    services: list[Service] = field(default_factory=list)
    _embedded: list = field(default_factory=list)

    def __enter__(self) -> "Stack":
        try:
            self._start_servers()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _start_servers(self) -> None:
        updates = {}
        if not self.settings.kafka_bootstrap_servers:
            kafka = EmbeddedKafka().start()
            self._embedded.append(kafka)
            updates["kafka_bootstrap_servers"] = kafka.bootstrap
            log.info("embedded Kafka-compatible broker (Tansu) on %s", kafka.bootstrap)
        if not self.settings.redis_url:
            redis_server = EmbeddedRedis().start()
            self._embedded.append(redis_server)
            updates["redis_url"] = redis_server.url
            log.info("embedded Redis-compatible server (Valkey) on %s", redis_server.url)
        self.settings = self.settings.model_copy(update=updates)

    def child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        s = self.settings
        env.update(KAFKA_BOOTSTRAP_SERVERS=s.kafka_bootstrap_servers, REDIS_URL=s.redis_url,
                   MOODSTREAM_TOPIC_PREFIX=s.topic_prefix, MOODSTREAM_REDIS_PREFIX=s.redis_prefix,
                   MOODSTREAM_KAFKA_SESSION_TIMEOUT_MS=str(s.kafka_session_timeout_ms),
                   MOODSTREAM_LOG_LEVEL=s.log_level, PYTHONUNBUFFERED="1")
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        return env

    def start(self, name: str, *args: str, module: str | None = None) -> Service:
        service = Service(name, [sys.executable, "-m", module or name, *args])
        out = None
        if self.log_dir:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            service.log_path = self.log_dir / f"{name}.log"
            out = service.log_path.open("ab")
        service.proc = subprocess.Popen(service.args, env=self.child_env(), stdin=subprocess.DEVNULL,
                                        stdout=out, stderr=subprocess.STDOUT if out else None,
                                        preexec_fn=_die_with_parent)
        if out:
            out.close()
        self.services.append(service)
        log.info("started %s (pid %d)", name, service.proc.pid)
        return service

    def check_alive(self, names: tuple[str, ...]) -> None:
        """Raise ServiceFailed if a long-running service has exited."""
        for service in self.services:
            if service.name.split(":")[0] in names and not service.running:
                detail = service.tail().strip().splitlines()
                last = detail[-1] if detail else f"exit code {service.proc.returncode}"
                raise ServiceFailed(f"{service.name} stopped unexpectedly: {last}")

    def stop(self, timeout: float = 10.0) -> None:
        order = {n: i for i, n in enumerate(SHUTDOWN_ORDER)}
        for service in sorted(self.services, key=lambda s: order.get(s.name.split(":")[0], 99)):
            _terminate(service.proc, timeout)
        self.services.clear()
        for server in reversed(self._embedded):
            server.stop()
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


def wait_until(predicate, timeout: float, interval: float = 0.2, check=None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        if check:
            check()
        time.sleep(interval)
    return predicate()
