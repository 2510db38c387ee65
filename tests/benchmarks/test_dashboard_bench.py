"""The dashboard benchmark end to end at a tiny size, on a real Valkey: it seeds through the
product's write paths, drives every page's callbacks and writes its JSON; the History
page's Redis commands per refresh do not grow with viewers."""

from __future__ import annotations

import json
import os

import pytest
import redis

from benchmarks import dashboard_bench

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_dashboard_bench_small(redis_server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("REDIS_URL", f"redis://{redis_server.host}:{redis_server.port}/10")
    out = tmp_path / "dashboard.json"
    assert dashboard_bench.main(["--cameras", "3", "--sessions", "12", "--days", "2",
                                 "--live-s", "60", "--ticks", "2", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert set(results["pages"]) == set(dashboard_bench.page_calls("x"))
    for page, by_viewers in results["pages"].items():
        one, five = by_viewers["1 viewer"], by_viewers["5 viewers"]
        assert one["calls"] == 2 and five["calls"] == 10 and one["p95_ms"] > 0, page
        assert one["commands_per_refresh"] > 0, page
        if page.startswith(("history", "overview")):
            assert five["commands_per_refresh"] == one["commands_per_refresh"], page
    assert "| history (30 days, site) |" in capsys.readouterr().out
    assert results["parts"] == 3 * 2 * 24
    # The throw-away prefix is gone.
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    assert not list(client.scan_iter("bench*", count=1000))
