"""Accuracy of choosing among candidates (multiple choice, fill-in-the-blank)."""

from __future__ import annotations

import numpy as np

from vlpipe.metrics.retrieval import ranks_of_positives


def choice_accuracy(scores: np.ndarray, answers: np.ndarray) -> float:
    """Percent of rows whose answer column scores strictly highest.

    scores: (Q, C) candidate scores or word logits; answers: (Q,) column of the right one, or -1
    when the answer is none of the columns (e.g. a blank whose word is outside the vocabulary),
    which counts as wrong. A tie with the answer counts as wrong too (as in
    `ranks_of_positives`), so a constant scorer gets 0.
    """
    scores, answers = np.asarray(scores), np.asarray(answers)
    known = answers >= 0
    correct = np.zeros(len(answers), dtype=bool)
    correct[known] = ranks_of_positives(scores[known], answers[known]) == 1
    return float(100.0 * correct.mean())
