"""The papers' published numbers (../shared/spec/paper_tables.md), shown beside ours.

Tables live as CSV files in ``data/``. JSFusion retrieval (ECCV 2018 Table 2 / thesis Table 5.2):
text→video, R@k in %, MedR in ranks; the typos the spec notes are fixed (LSMDC R@5 of JSFusion is
21.2 and of -noaudio 20.9).
"""

from __future__ import annotations

from importlib.resources import files

import pandas as pd

RETRIEVAL_METRICS = ["R@1", "R@5", "R@10", "MedR"]
DATASET_LABELS = {"LSMDC": "Paper LSMDC", "MSRVTT": "Paper MSR-VTT"}


def jsfusion_retrieval() -> pd.DataFrame:
    """Paper rows indexed by model, columns a (source, metric) MultiIndex."""
    with files("vlpipe.report").joinpath("data/jsfusion_retrieval.csv").open() as handle:
        frame = pd.read_csv(handle, index_col="model")
    frame.columns = pd.MultiIndex.from_tuples(
        [(DATASET_LABELS[c.split("_", 1)[0]], c.split("_", 1)[1]) for c in frame.columns])
    return frame


PAPER_TABLES = {"retrieval": jsfusion_retrieval}
