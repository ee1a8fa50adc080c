"""Captioning metrics as the papers computed them: the coco-caption toolkit (pycocoevalcap).

Captions and references are tokenised by its Stanford PTB tokenizer (lower case, punctuation
removed; one Java call for both), then scored: BLEU-1..4 (corpus level, the toolkit's
closest-reference brevity penalty), METEOR 1.5 (``-l en -norm``), ROUGE-L (LCS F-measure,
β = 1.2) and CIDEr (the toolkit's ``Cider``: CIDEr-D with σ = 6 and clipped counts, ×10,
document frequencies from the given references). Scores are on the toolkit's scale (BLEU,
METEOR, ROUGE-L in [0, 1]; CIDEr up to 10). The tokenizer and METEOR are Java programs shipped
with the package: without a ``java`` on the PATH this is an error, not a silent fallback to
other numbers.
"""

from __future__ import annotations

import contextlib
import io
import shutil
from collections.abc import Mapping, Sequence

METRICS = ("BLEU", "METEOR", "ROUGE_L", "CIDEr")


def _scorers(metrics: Sequence[str]) -> list:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge

    classes = {"BLEU": lambda: Bleu(4), "METEOR": Meteor, "ROUGE_L": Rouge, "CIDEr": Cider}
    return [(name, classes[name]()) for name in metrics]


def _names(metric: str, score) -> dict[str, float]:
    if metric == "BLEU":
        return {f"BLEU-{n}": float(value) for n, value in enumerate(score, start=1)}
    return {{"ROUGE_L": "ROUGE-L"}.get(metric, metric): float(score)}


def _tokenize(captions: dict) -> dict:
    """{key: [caption, ...]} → {key: [tokenised caption, ...]}."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    return PTBTokenizer().tokenize({key: [{"caption": c} for c in texts]
                                    for key, texts in captions.items()})


def caption_metrics(references: Mapping[str, Sequence[str]], predictions: Mapping[str, str],
                    metrics: Sequence[str] = METRICS) -> dict[str, float]:
    """Corpus scores of one predicted caption per item against its references.

    ``references``: item id → its reference captions (at least one); ``predictions``: item id →
    the caption to score (may be empty). Both must name the same items. Returns "BLEU-1" ..
    "BLEU-4", "METEOR", "ROUGE-L" and "CIDEr", as far as ``metrics`` asks for them.
    """
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise ValueError(f"unknown captioning metric(s) {unknown}; known: {METRICS}")
    missing, extra = sorted(set(predictions) - set(references)), sorted(
        set(references) - set(predictions))
    if missing or extra:
        raise ValueError(f"captions without references: {missing[:5]}; references without a "
                         f"caption: {extra[:5]}")
    empty = sorted(item for item, captions in references.items() if not len(captions))
    if empty:
        raise ValueError(f"items without reference captions: {empty[:5]}")
    if not predictions:
        raise ValueError("no captions to score")
    if shutil.which("java") is None:
        raise RuntimeError("the coco-caption tokenizer and METEOR need Java: install a Java "
                           "runtime (e.g. Debian's default-jre-headless) so that `java` is on "
                           "the PATH")
    items = sorted(predictions)  # the toolkit's corpus statistics follow the items' order
    tokens = _tokenize({**{(i, "ref"): list(references[i]) for i in items},
                        **{(i, "pred"): [predictions[i]] for i in items}})
    gts = {i: tokens[i, "ref"] for i in items}
    res = {i: tokens[i, "pred"] for i in items}
    scores: dict[str, float] = {}
    for name, scorer in _scorers(metrics):
        with contextlib.redirect_stdout(io.StringIO()):  # BLEU prints its counts
            score, _ = scorer.compute_score(gts, res)
        scores |= _names(name, score)
        del scorer  # METEOR's Java process ends with its scorer
    return scores
