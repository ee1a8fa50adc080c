"""Fault injection: every bad-video case of ``vlpipe.faults`` through real extraction jobs.

Writes each case from a good clip, extracts it alone with ``bad_clips="fail"`` and all of them
together (with the good clip) with ``bad_clips="quarantine"``, and prints case → outcome (ok,
quarantined: reason, error: message) beside the expected one. Exits 1 if any case is not as
expected. Cheap extractors by default (ResNet-34 and VGGish, random weights, 32 px), on the CPU:

    python benchmarks/fault_injection.py [--keep DIR] [--settings JSON]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

from vlpipe import faults


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", help="write the videos and stores here (default: a temp dir)")
    parser.add_argument("--settings", default=json.dumps(faults.CHEAP_SETTINGS),
                        help="extractor name → settings, JSON")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the quarantine warnings are in the table
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        outcomes = faults.inject(Path(args.keep or tmp), json.loads(args.settings))
        print(faults.table(outcomes))
        print(f"\n{len(faults.CASES)} cases, both modes, in {time.perf_counter() - start:.1f} s")
    expect = {case.name: case.expect for case in faults.CASES}
    sys.exit(0 if all(o.expected(expect[o.case]) for o in outcomes) else 1)


if __name__ == "__main__":
    main()
