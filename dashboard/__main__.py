"""`python -m dashboard [--host HOST] [--port PORT]`: serve the dashboard with waitress."""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from moodstream.clients import ServiceUnavailable, redis_client
from moodstream.health import HealthServer
from moodstream.logs import setup_logging
from moodstream.redis_keys import RedisKeys
from moodstream.settings import SettingsError, redact

log = logging.getLogger("dashboard")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m dashboard",
                                     description="moodstream live dashboard and session reports")
    parser.add_argument("--host", help="bind address (default 127.0.0.1; any other address "
                        "needs DASHBOARD_USER+DASHBOARD_PASSWORD or DASHBOARD_TOKEN)")
    parser.add_argument("--port", type=int, help="port (default 8050)")
    parser.add_argument("--refresh-s", type=float, help="refresh period, at most 2 s")
    parser.add_argument("--behind-tls", action="store_true", default=None,
                        help="TLS ends at a reverse proxy in front of the dashboard: cookies "
                        "are Secure, HSTS is sent, and the proxy's X-Forwarded-For/-Proto are "
                        "trusted (so only use it when nothing else can reach the port)")
    return parser.parse_args(argv)


def dashboard_redis(settings):
    """A Redis client that fails fast: a page refresh must not hang on redis-py's default
    ten backed-off retries while Redis is down; the next tick simply asks again."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry
    return redis_client(settings, retry=Retry(NoBackoff(), 1), socket_timeout=5)


def _raise_interrupt(_signum, _frame):
    raise KeyboardInterrupt  # SIGTERM ends the server exactly like Ctrl-C


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Imported here so `--help` and config errors answer fast, before Dash loads.
    from dashboard.settings import DashboardSettings
    try:
        settings = DashboardSettings.load(host=args.host, port=args.port, refresh_s=args.refresh_s,
                                          behind_tls=args.behind_tls)
        settings.check_access()
        setup_logging(settings.log_level, "dashboard")
        client = dashboard_redis(settings)
        # /metrics, /healthz, /readyz on their own port (0 = off): ready while Redis answers.
        health = HealthServer("dashboard").ready_when("redis connected", client.ping)
        health.start_from(settings)
    except (SettingsError, ValueError) as exc:
        print(f"dashboard: {exc}", file=sys.stderr)
        return 2
    except ServiceUnavailable as exc:
        print(f"dashboard: {exc}", file=sys.stderr)
        return 1
    try:
        return serve(settings, client)
    finally:
        health.stop()
        client.close()


def serve(settings, client) -> int:
    from waitress import create_server

    from dashboard.app import create_app
    from dashboard.data import DashboardData

    # cache_s: one shared set of Redis reads per refresh interval, whatever the viewers.
    data = DashboardData(client, RedisKeys(settings.redis_prefix), cache_s=settings.refresh_s)
    app = create_app(settings, data)
    # Behind a TLS proxy, waitress takes the client address and scheme from the proxy's
    # X-Forwarded-For / -Proto (the login throttle counts per real client), https by default.
    proxy = dict(trusted_proxy="*", trusted_proxy_count=1, url_scheme="https",
                 trusted_proxy_headers={"x-forwarded-for", "x-forwarded-proto"},
                 clear_untrusted_proxy_headers=True) if settings.behind_tls else {}
    try:
        server = create_server(app.server, host=settings.host, port=settings.port,
                               threads=settings.threads, **proxy)
    except OSError as exc:
        print(f"dashboard: cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, _raise_interrupt)
    access = "basic auth" if settings.basic_auth else "token" if settings.bearer_token else "loopback only"
    access += ", behind TLS" if settings.behind_tls else ""
    log.info("dashboard on http://%s:%s (%s; Redis %s)", settings.host, settings.port, access,
             redact(settings.redis_url or ""))
    print(f"dashboard: serving on http://{settings.host}:{settings.port}", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        log.info("dashboard stopping")
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
