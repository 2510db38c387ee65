"""One logging setup for every service: our lines at the chosen level, client chatter quiet."""

from __future__ import annotations

import logging

# kafka-python logs every refused connection at ERROR; the services report outages
# themselves in one line, so its own output is only useful when debugging.
NOISY = ("kafka", "urllib3", "werkzeug", "waitress", "absl", "h5py")


def setup_logging(level: str = "INFO", service: str = "moodstream") -> None:
    level = level.upper() if level.upper() in logging.getLevelNamesMapping() else "INFO"
    logging.basicConfig(level=level,
                        format=f"%(asctime)s %(levelname)s {service} %(name)s: %(message)s")
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.DEBUG if level == "DEBUG" else logging.CRITICAL)
