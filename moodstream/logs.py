"""One logging setup for every service: our lines at the chosen level, every line redacted
(no URL credentials, whoever logs them), client chatter quiet."""

from __future__ import annotations

import logging
import sys

from moodstream.settings import redact

# kafka-python logs every refused connection at ERROR; the services report outages
# themselves in one line, so its own output is only useful when debugging.
NOISY = ("kafka", "urllib3", "werkzeug", "waitress", "absl", "h5py")


class RedactingFormatter(logging.Formatter):
    """Last line of defence: the whole formatted line (message, arguments, traceback)
    goes through moodstream.settings.redact."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class _OurHandler(logging.StreamHandler):
    """Marks the handler setup_logging installed, so a second call replaces it."""


def setup_logging(level: str = "INFO", service: str = "moodstream") -> None:
    """Log to stderr at `level` (an unknown level falls back to INFO), one format for
    every service. Handlers others installed (pytest's, say) are left alone."""
    level = level.upper() if level.upper() in logging.getLevelNamesMapping() else "INFO"
    handler = _OurHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(
        f"%(asctime)s %(levelname)s {service} %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, _OurHandler)] + [handler]
    root.setLevel(level)
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.DEBUG if level == "DEBUG" else logging.CRITICAL)
