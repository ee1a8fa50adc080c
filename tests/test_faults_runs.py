"""Faults while running and the security boundaries, beyond the cases of
``tests.faults.checks`` (groups "runs", "security"; run by test_fault_cases.py): a killed
training run resumes to the same result, a non-finite loss or gradient stops it without saving
NaNs, a full disk leaves no partial output; weights and checkpoints load with
``weights_only=True``, nothing from a clip id or path reaches a shell unquoted."""

from __future__ import annotations

import errno

import pandas as pd
import pytest

from vlpipe.atomic import write_parquet

from .faults import checks as fault_checks


def test_a_store_that_cannot_even_start_leaves_nothing(tmp_path):
    """The disk full at the store's first file (its group metadata)."""
    outcome = fault_checks.disk_full_store(tmp_path, lambda file: True)
    assert outcome.startswith("OSError: [Errno 28]")
    assert outcome.endswith("the previous store has 2 clips; directory: ['s.zarr']")


def test_a_full_disk_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "table.parquet"
    write_parquet(path, pd.DataFrame({"a": [1]}))

    def partial(self, target, **options):
        target.write_bytes(b"PAR1")
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    monkeypatch.setattr(pd.DataFrame, "to_parquet", partial)
    with pytest.raises(OSError) as caught:
        write_parquet(path, pd.DataFrame({"a": [2]}))
    assert caught.value.errno == errno.ENOSPC
    assert caught.value.__notes__ == [f"{path}: not written (its temporary was removed)"]
    monkeypatch.undo()
    assert pd.read_parquet(path)["a"].tolist() == [1]
    assert [p.name for p in tmp_path.iterdir()] == ["table.parquet"]


def test_a_clean_run_has_no_fault(tmp_path):
    """The toy task without a fault trains to the end (the fault cases' baseline)."""
    summary = fault_checks.toy_train(tmp_path, fault_checks.ToyTask(tmp_path))
    assert summary["epochs"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt", "summary.json",
                                                          "train_log.jsonl"]


def test_table_marks_each_case(tmp_path):
    good, bad = fault_checks.CHECKS[0], fault_checks.CHECKS[1]
    text = fault_checks.table([
        fault_checks.Result(good, f"AnnotationError: {tmp_path}/gone.json: annotation file not "
                                  "found", 0.0, tmp_path),
        fault_checks.Result(bad, "ok", 0.0, tmp_path)])
    lines = text.splitlines()
    assert lines[0].split() == ["group", "case", "expected", "outcome", "as", "expected"]
    assert "AnnotationError: gone.json: annotation file not found" in lines[1]
    assert lines[1].endswith("yes") and lines[2].endswith("NO")
