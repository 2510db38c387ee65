"""The "Workers" line: health of the processes a `moodstream demo` / `analyze` launcher
supervises, from the Redis hash RedisKeys.workers (absent elsewhere: nothing is shown).

read_workers() is the only Redis read here; workers_line() is a pure builder; register()
hangs one callback on the page's single `tick`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import redis
from dash import Dash, Input, Output, html
from dash.exceptions import PreventUpdate

from dashboard.data import DashboardData
from moodstream.clients import REDIS_ERRORS
from moodstream.supervision import describe_exit

_OK, _BAD = "#1a7f37", "#c62828"
_LINE = {"fontSize": "0.85em", "color": "#555", "margin": "0.25em 0"}


@dataclass(frozen=True)
class WorkerHealth:
    name: str
    state: str
    pid: int | None = None
    restarts: int = 0
    last_exit: int | None = None
    kind: str = "worker"


def read_workers(client: redis.Redis, key: str) -> list[WorkerHealth]:
    """Workers first, then servers, by name; an unreadable record is skipped (the launcher
    rewrites them every second)."""
    workers = []
    for name, raw in client.hgetall(key).items():
        try:
            record = json.loads(raw)
            workers.append(WorkerHealth(
                name=str(name), state=str(record.get("state", "?")), pid=record.get("pid"),
                restarts=int(record.get("restarts") or 0), last_exit=record.get("last_exit"),
                kind=str(record.get("kind", "worker"))))
        except (ValueError, TypeError, AttributeError):
            continue
    return sorted(workers, key=lambda w: (w.kind != "worker", w.name))


def _describe(worker: WorkerHealth) -> str:
    text = f"{worker.name} {worker.state}"
    if worker.pid and worker.state == "running":
        text += f" (pid {worker.pid})"
    if worker.restarts:
        text += f", {worker.restarts} restart{'s' if worker.restarts != 1 else ''}"
        if worker.last_exit is not None:
            text += f", last {describe_exit(worker.last_exit)}"
    return text


def workers_line(workers: list[WorkerHealth]) -> list:
    """'Workers: a running (pid 1) · b restarting, 1 restart, last killed by SIGKILL'."""
    if not workers:
        return []
    parts: list = [html.B("Workers: ")]
    for index, worker in enumerate(workers):
        healthy = worker.state in ("running", "done")
        if index:
            parts.append(" · ")
        parts.append(html.Span(_describe(worker), className="worker",
                               style={"color": _OK if healthy and not worker.restarts
                                      else "#555" if healthy else _BAD}))
    return [html.Div(parts, id="workers-line", style=_LINE)]


def register(app: Dash, data: DashboardData) -> None:
    @app.callback(Output("workers-status", "children"), Input("tick", "n_intervals"))
    def workers_status(_n):
        try:
            # The shared reader: one HGETALL per refresh interval, whatever the viewers.
            workers = data.shared("workers", lambda: read_workers(data.client, data.keys.workers))
        except REDIS_ERRORS:
            raise PreventUpdate from None  # the header already says "Redis unreachable"
        return workers_line(workers)
