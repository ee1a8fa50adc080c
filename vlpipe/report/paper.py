"""The papers' published numbers (../shared/spec/paper_tables.md), shown beside ours.

Tables live as CSV files in ``data/``, one per task, with columns ``<DATASET>_<metric>``; rows are
named as our variants are. JSFusion (ECCV 2018 / thesis ch. 5):

- retrieval (Table 2 / 5.2): text→video, R@k in %, MedR in ranks; the typos the spec notes are
  fixed (LSMDC R@5 of JSFusion is 21.2 and of -noaudio 20.9);
- multiple choice: accuracy in % on LSMDC and MSR-VTT;
- fill in the blank: accuracy in % on LSMDC (the spec's "noattention" / "noaudio" are our
  JSFusion-noattention / JSFusion-noaudio).
"""

from __future__ import annotations

from importlib.resources import files

import pandas as pd

DATASET_LABELS = {"LSMDC": "Paper LSMDC", "MSRVTT": "Paper MSR-VTT"}
PAPER_FILES = {"retrieval": "jsfusion_retrieval.csv", "multiple_choice": "jsfusion_mc.csv",
               "fill_in_blank": "jsfusion_fib.csv"}


def paper_table(task: str) -> pd.DataFrame:
    """The paper's rows for ``task``, indexed by model, columns a (source, metric) MultiIndex."""
    with files("vlpipe.report").joinpath("data", PAPER_FILES[task]).open() as handle:
        frame = pd.read_csv(handle, index_col="model")
    frame.columns = pd.MultiIndex.from_tuples(
        [(DATASET_LABELS[c.split("_", 1)[0]], c.split("_", 1)[1]) for c in frame.columns])
    return frame
