"""A stand-in worker for launcher tests: `python -m tests.moodstream.launcher_child`.

CHILD_EXIT=N exits with N after CHILD_DELAY_S; with CHILD_ONCE=path it does so only on its
first start (it creates the file) and runs until stopped afterwards, like a worker that
crashed once. CHILD_SAY=text is printed (to the launcher's log file) before exiting.
CHILD_FOREVER=1 runs until stopped from the first start (a long-running worker).
CHILD_STARTS=path gets one line (the pid) appended on every start.
"""

from __future__ import annotations

import os
import signal
import sys
import time


def main() -> int:
    starts = os.environ.get("CHILD_STARTS")
    if starts:
        with open(starts, "a") as log:
            log.write(f"{os.getpid()}\n")
    once = os.environ.get("CHILD_ONCE")
    first_start = not (once and os.path.exists(once)) and not os.environ.get("CHILD_FOREVER")
    if once and first_start:
        open(once, "w").close()
    if first_start:
        time.sleep(float(os.environ.get("CHILD_DELAY_S", "0.1")))
        if os.environ.get("CHILD_SAY"):
            print(os.environ["CHILD_SAY"], file=sys.stderr, flush=True)
        return int(os.environ.get("CHILD_EXIT", "1"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        time.sleep(0.1)


if __name__ == "__main__":
    sys.exit(main())
