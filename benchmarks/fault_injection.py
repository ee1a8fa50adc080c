"""Fault injection: every bad-video case of ``tests.faults.videos`` through real extraction jobs,
then every other case of ``tests.faults.checks`` (annotations, config, runs, security).

Videos: writes each case from a good clip, extracts it alone with ``bad_clips="fail"`` and all of
them together (with the good clip) with ``bad_clips="quarantine"``, and prints case → outcome
(ok, quarantined: reason, error: message) beside the expected one. Cheap extractors by default
(ResNet-34 and VGGish, random weights, 32 px), on the CPU. The other cases: group, case →
expected → outcome. Exits 1 if any case is not as expected:

    python benchmarks/fault_injection.py [--keep DIR] [--settings JSON] [--only videos|checks]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

# The harness is test code (tests/faults/), not in the package: import it from the checkout.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.faults import checks as fault_checks
from tests.faults import videos as faults


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", help="write the videos and stores here (default: a temp dir)")
    parser.add_argument("--settings", default=json.dumps(faults.CHEAP_SETTINGS),
                        help="extractor name → settings, JSON")
    parser.add_argument("--only", choices=["videos", "checks"], help="run one table only")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the quarantine warnings are in the table
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(args.keep or tmp)
        if args.only != "checks":
            start = time.perf_counter()
            outcomes = faults.inject(directory, json.loads(args.settings))
            print(faults.table(outcomes))
            print(f"\n{len(faults.CASES)} video cases, both modes, in "
                  f"{time.perf_counter() - start:.1f} s\n")
            expect = {case.name: case.expect for case in faults.CASES}
            ok = all(o.expected(expect[o.case]) for o in outcomes)
        if args.only != "videos":
            start = time.perf_counter()
            results = fault_checks.run_checks(directory / "checks")
            print(fault_checks.table(results))
            print(f"\n{len(results)} other cases in {time.perf_counter() - start:.1f} s")
            ok = ok and all(result.ok for result in results)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
