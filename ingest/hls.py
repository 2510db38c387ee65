"""HLS specifics the OpenCV capture cannot tell us.

FFmpeg's HLS demuxer downloads whole segments as fast as the network allows, so a capture
hands out a segment's frames in a burst; and it reports the end of a VOD playlist
(#EXT-X-ENDLIST) the same way as a lost live stream. The reader paces HLS frames by their
stream time (see source.FrameReader) and asks the playlist itself whether it has ended.
"""

from __future__ import annotations

import base64
import logging
import urllib.request
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

from moodstream.settings import redact

log = logging.getLogger(__name__)

ENDLIST = "#EXT-X-ENDLIST"
VARIANT = "#EXT-X-STREAM-INF"
MAX_PLAYLIST_BYTES = 1 << 20  # a media playlist is text; more than this is not one


def is_hls(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and parts.path.lower().endswith((".m3u8", ".m3u"))


def playlist_has_ended(url: str, timeout_s: float) -> bool:
    """True when the media playlist is complete (a VOD, or a live event that finished).
    A master playlist is followed to its first variant. Any failure to fetch or parse
    says False: the stream is then treated as lost and reconnected, the safe default."""
    try:
        text = _fetch(url, timeout_s)
        if VARIANT in text:
            text = _fetch(urljoin(url, _first_variant(text)), timeout_s)
        return any(line.strip() == ENDLIST for line in text.splitlines())
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        log.debug("cannot read HLS playlist %s: %s", redact(url), exc)
        return False


def _first_variant(master: str) -> str:
    lines = [line.strip() for line in master.splitlines()]
    for i, line in enumerate(lines):
        if line.startswith(VARIANT):
            uri = next((nxt for nxt in lines[i + 1:] if nxt and not nxt.startswith("#")), None)
            if uri:
                return uri
    raise ValueError("master playlist without a variant URI")


class _NoCrossOriginAuth(urllib.request.HTTPRedirectHandler):
    """Follow redirects, but never carry the Authorization header to another origin
    (scheme, host or port): a playlist redirected to a CDN must not receive the camera's
    credentials. A redirect within the same origin keeps them."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and _origin(new.full_url) != _origin(req.full_url):
            new.remove_header("Authorization")
        return new


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port or \
        {"http": 80, "https": 443}.get(parts.scheme.lower())


def _fetch(url: str, timeout_s: float) -> str:
    # urllib does not take user:pass@ in a URL; send it as Basic auth like FFmpeg does.
    parts = urlsplit(url)
    headers = {}
    if parts.username is not None:
        userinfo = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(userinfo.encode()).decode()
        host = parts.hostname if ":" not in (parts.hostname or "") else f"[{parts.hostname}]"
        netloc = f"{host}:{parts.port}" if parts.port else host
        url = urlunsplit(parts._replace(netloc=netloc))
    opener = urllib.request.build_opener(_NoCrossOriginAuth)
    with opener.open(urllib.request.Request(url, headers=headers), timeout=timeout_s) as response:
        return response.read(MAX_PLAYLIST_BYTES).decode("utf-8")
