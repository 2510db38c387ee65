"""Find processes a test started, by a marker in their environment (children inherit it)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def stop(proc: subprocess.Popen) -> int:
    """SIGTERM a service process and return its exit code; SIGKILL it if it hangs."""
    if proc.poll() is None:
        proc.terminate()
    try:
        return proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(5)


def processes_with_marker(marker: str) -> list[int]:
    needle = f"MOODSTREAM_TEST_MARKER={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes():
                state = (entry / "stat").read_text().split()[2]
                if state != "Z":  # a zombie has already exited; only its parent's wait is pending
                    found.append(int(entry.name))
        except OSError:
            continue
    return found
