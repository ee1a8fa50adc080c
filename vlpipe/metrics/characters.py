"""Who-is-who accuracies (CiSIN, thesis §6.4), counted over a split's sets and pooled.

- **Fill in the Characters** (LSMDC 2019): every pair of ``SOMEONE`` mentions of a set is one
  decision, same character or not; accuracy = right decisions / pairs, pooled over the sets.
  We read the challenge's protocol so (the thesis: "we exactly follow the evaluation protocol
  of the challenge"; its scorer cannot be fetched here); ``same`` and ``different`` are the
  accuracies on the pairs of each kind. On our data this is also the thesis's text re-id
  accuracy (Table 6.2, right: the same decision on M-VAD Names).
- **Grounding**: a mention with a known track is grounded right when its highest-scoring track
  of its own clip is a track of its character.
- **Video re-id**: every pair of tracks with known characters in a set is one decision, same
  (score > 0) or not.
"""

from __future__ import annotations

import numpy as np


def pair_decisions(same: np.ndarray, truth: np.ndarray) -> tuple[int, int, int, int]:
    """Over the pairs i < j of a set: ``same`` (n, n) bool decisions against ``truth`` (n, n)
    bool → (right on same pairs, same pairs, right on different pairs, different pairs)."""
    upper = np.triu(np.ones_like(truth, dtype=bool), k=1)
    right = (same == truth) & upper
    return (int((right & truth).sum()), int((truth & upper).sum()),
            int((right & ~truth).sum()), int((~truth & upper).sum()))


def pair_accuracy(counts: list[tuple[int, int, int, int]]) -> dict[str, float]:
    """Pooled `pair_decisions` → accuracy (%) over all pairs and over each kind."""
    right_same, same, right_different, different = np.sum(counts, axis=0) if counts else (0,) * 4

    def percent(right: int, total: int) -> float:
        return 100.0 * right / total if total else float("nan")

    return {"accuracy": percent(right_same + right_different, same + different),
            "same": percent(right_same, same), "different": percent(right_different, different),
            "pairs": int(same + different)}


def grounding_hits(scores: np.ndarray, candidates: np.ndarray, correct: np.ndarray
                   ) -> tuple[int, int]:
    """``scores`` (N, M) of mentions × tracks, ``candidates`` (N, M) bool (the tracks of each
    mention's clip), ``correct`` (N, M) bool (its character's tracks) → (hits, mentions with
    a right track among their candidates)."""
    known = (correct & candidates).any(axis=1)
    masked = np.where(candidates, scores, -np.inf)
    chosen = masked.argmax(axis=1)
    hits = correct[np.arange(len(chosen)), chosen] & known
    return int(hits.sum()), int(known.sum())
