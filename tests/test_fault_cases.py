"""Every case of ``tests.faults.checks`` (annotations, config, runs, security) gives its expected
outcome: an error naming the input, or the documented recovery. The video cases run in both
modes in tests/test_bad_videos.py."""

import pytest

from .faults import checks as fault_checks
from .helpers import subprocess_env


@pytest.mark.parametrize("check", fault_checks.CHECKS, ids=lambda check: check.name)
def test_fault_case(check, tmp_path):
    result = fault_checks.run_check(check, tmp_path / "case", subprocess_env())
    assert result.ok, f"expected {check.pattern!r}, got {result.outcome!r}"
