"""Give one ingest pod its share of the camera file, then run ingest on that share.

    python shard.py --cameras /etc/moodstream/cameras/cameras.yaml --shards 3 \
        --out /run/moodstream/cameras.yaml -- python -m ingest --config /run/moodstream/cameras.yaml

Runs as the command of each pod of the ingest StatefulSet (docs/ARCHITECTURE.md,
"Kubernetes"). The pod's ordinal (the number at the end of its host name, which a
StatefulSet sets to the pod name) picks its shard. Every camera belongs to exactly one of
the `--shards` shards:

* `shard: N` on a camera pins it to shard N (0 <= N < shards);
* otherwise rendezvous hashing picks it: the shard with the highest sha256(camera id, shard)
  score. A camera's shard depends only on its id and the shard count, so adding or removing
  a camera never moves another one, and changing the shard count moves only the cameras
  whose new best shard is a new one.

The `shard` key is removed (ingest's camera schema forbids unknown keys) and the share is
written with mode 0600 (camera URLs may hold passwords); then the command after `--`
replaces this process. A pod whose share has no enabled camera (more shards than cameras)
stays up as an idle standby: it answers /healthz, /readyz and /metrics on ingest's metrics
port, so it is Ready and never crash-loops, and logs why it is idle.

Standard library and PyYAML only (both are in the moodstream image).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import signal
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

EXIT_CONFIG = 2


class ShardError(ValueError):
    """The camera file or the arguments cannot give this pod a well-defined share."""


def score(camera_id: str, shard: int) -> int:
    digest = hashlib.sha256(f"{camera_id}\0{shard}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def owner(camera: dict, shards: int) -> int:
    """The shard that reads `camera`."""
    pinned = camera.get("shard")
    if pinned is not None:
        if isinstance(pinned, bool) or not isinstance(pinned, int) or not 0 <= pinned < shards:
            raise ShardError(f"camera {camera.get('id')!r}: shard must be an integer in "
                             f"0..{shards - 1}, got {pinned!r}")
        return pinned
    return max(range(shards), key=lambda shard: (score(str(camera["id"]), shard), -shard))


def split(data: dict, shards: int) -> list[dict]:
    """The camera file cut into `shards` files; each camera in exactly one of them."""
    if shards < 1:
        raise ShardError("--shards must be at least 1")
    cameras = data.get("cameras") if isinstance(data, dict) else None
    if not isinstance(cameras, list) or not cameras:
        raise ShardError("the camera file needs a non-empty `cameras` list")
    ids = [camera.get("id") if isinstance(camera, dict) else None for camera in cameras]
    if any(not isinstance(i, (str, int)) or isinstance(i, bool) for i in ids):
        raise ShardError("every camera needs an `id`")
    duplicates = sorted({str(i) for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ShardError(f"duplicate camera id(s): {', '.join(duplicates)}")
    parts = [{**{k: v for k, v in data.items() if k != "cameras"}, "cameras": []}
             for _ in range(shards)]
    for camera in cameras:
        parts[owner(camera, shards)]["cameras"].append(
            {k: v for k, v in camera.items() if k != "shard"})
    return parts


def enabled(part: dict) -> list[str]:
    return [str(c["id"]) for c in part["cameras"] if c.get("enabled", True) is not False]


def ordinal_from_hostname(hostname: str) -> int:
    match = re.search(r"-(\d+)$", hostname)
    if not match:
        raise ShardError(f"host name {hostname!r} has no StatefulSet ordinal (NAME-N)")
    return int(match.group(1))


def read_camera_file(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ShardError(f"cannot read {path}: {exc}") from None
    if path.suffix.lower() == ".toml":
        import tomllib
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ShardError(f"{path} is not valid TOML: {exc}") from None
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ShardError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None


def write_share(part: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        yaml.safe_dump(part, handle, sort_keys=False)


def serve_idle(shard: int, shards: int, cameras: int) -> None:
    """Answer the probes and scrapes of an ingest pod that has nothing to read."""
    port = int(os.environ.get("MOODSTREAM_INGEST_METRICS_PORT") or 0)
    host = os.environ.get("MOODSTREAM_INGEST_METRICS_HOST") or "127.0.0.1"
    body = json.dumps({"status": "idle", "shard": shard, "shards": shards,
                       "cameras_in_file": cameras}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server naming
            path = self.path.split("?")[0]
            if path in ("/healthz", "/readyz"):
                self._send(200, body, "application/json")
            elif path == "/metrics":
                self._send(200, b"", "text/plain; version=0.0.4; charset=utf-8")
            else:
                self._send(404, b"not found\n", "text/plain")

        def _send(self, code: int, payload: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if not port:
        signal.pause()
        return
    with ThreadingHTTPServer((host, port), Handler) as server:
        server.serve_forever()


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    if "--" in argv:
        at = argv.index("--")
        argv, command = argv[:at], argv[at + 1:]
    else:
        command = []
    p = argparse.ArgumentParser(prog="shard.py", description=__doc__.splitlines()[0])
    p.add_argument("--cameras", required=True, type=Path, help="the whole camera file")
    p.add_argument("--shards", required=True, type=int, help="shard count = StatefulSet replicas")
    p.add_argument("--out", required=True, type=Path, help="where this pod's share is written")
    p.add_argument("--ordinal", type=int, help="this pod's shard (default: from the host name)")
    args = p.parse_args(argv)
    if not command:
        p.error("give the command to run after --")
    return args, command


def main(argv: list[str] | None = None) -> int:
    args, command = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        shard = args.ordinal if args.ordinal is not None else ordinal_from_hostname(socket.gethostname())
        if not 0 <= shard < args.shards:
            raise ShardError(f"pod ordinal {shard} is outside 0..{args.shards - 1}: the "
                             f"StatefulSet has more replicas than --shards {args.shards}")
        data = read_camera_file(args.cameras)
        parts = split(data, args.shards)
    except ShardError as exc:
        print(f"ingest shard: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    mine = parts[shard]
    ids = enabled(mine)
    if not ids:
        print(f"ingest shard {shard}/{args.shards}: no enabled camera of the "
              f"{len(data['cameras'])} in the file belongs to this shard; idle standby "
              f"(lower the ingest replicas and --shards, or pin cameras with `shard:`)",
              file=sys.stderr, flush=True)
        serve_idle(shard, args.shards, len(data["cameras"]))
        return 0
    write_share(mine, args.out)
    print(f"ingest shard {shard}/{args.shards}: {len(ids)} camera(s): {', '.join(ids)}",
          file=sys.stderr, flush=True)
    os.execvp(command[0], command)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
