"""Captioning metrics as the papers computed them: the coco-caption toolkit (pycocoevalcap 1.2).

Tokenisation: the toolkit's Stanford PTB tokenizer (Java; lower case, its punctuation list
removed), one Java call for references and predictions together. Scores, on the toolkit's scale:
BLEU-1..4 (corpus level: n-gram counts summed over items, brevity penalty from each item's
closest reference length), METEOR 1.5 (``-l en -norm``; corpus level, from summed statistics),
ROUGE-L (mean over items of the LCS F-measure, β = 1.2, from the best precision and the best
recall over the item's references) and CIDEr (the toolkit's ``Cider``, which is CIDEr-D: σ = 6
length penalty, clipped counts, ×10, mean over items; n-gram document frequencies from the given
references, so it depends on the whole set scored). BLEU, METEOR and ROUGE-L are in [0, 1];
CIDEr is at most 10. The tokenizer and METEOR are Java programs shipped with the package: without
a ``java`` on the PATH every metric is an error (no Python fallback: it would give other
numbers).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence

METRICS = ("BLEU", "METEOR", "ROUGE_L", "CIDEr")
NO_JAVA = ("the coco-caption tokenizer and METEOR are Java programs: install a Java runtime "
           "(e.g. Debian's default-jre-headless, or conda-forge's openjdk) so that `java` is on "
           "the PATH")


def _tokenize(captions: dict) -> dict:
    """{key: [caption, ...]} → {key: [tokenised caption, ...]}, one Java call."""
    from pycocoevalcap.tokenizer import ptbtokenizer

    folder = os.path.dirname(os.path.abspath(ptbtokenizer.__file__))
    if not os.access(folder, os.W_OK):  # the toolkit writes its input file next to its jar
        raise RuntimeError(f"the coco-caption tokenizer needs to write to {folder}")
    # The tokenizer reads one caption per line and zips its output lines with the captions:
    # a line break inside a caption (\r, \v, \f, \u2028, \u2029: the toolkit replaces only \n)
    # would shift every later caption onto another's tokens. Every other whitespace character
    # Python knows separates tokens there as a space does, so collapsing whitespace changes
    # nothing else.
    tokens = ptbtokenizer.PTBTokenizer().tokenize(
        {key: [{"caption": " ".join(c.split())} for c in texts] for key, texts in captions.items()})
    if any(len(tokens.get(key, ())) != len(texts) for key, texts in captions.items()):
        raise RuntimeError("the coco-caption tokenizer returned a different number of captions")
    return tokens


@contextlib.contextmanager
def _meteor() -> Iterator:
    """The toolkit's METEOR scorer; its Java process ends (and is reaped) on leaving, also after
    an error (the scorer's own ``__del__`` would wait forever for the lock an error left held)."""
    from pycocoevalcap.meteor.meteor import Meteor

    scorer = Meteor()
    try:
        yield scorer
    finally:
        process = scorer.meteor_p
        process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout, process.stderr):
            with contextlib.suppress(OSError):  # unsent input to a killed process
                stream.close()
        if scorer.lock.locked():
            scorer.lock.release()


def _score(metric: str, gts: dict, res: dict, meteor) -> dict[str, float]:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    if metric == "BLEU":
        score, _ = Bleu(4).compute_score(gts, res, verbose=0)
        return {f"BLEU-{n}": float(value) for n, value in enumerate(score, start=1)}
    if metric == "METEOR":
        return {"METEOR": float(meteor.compute_score(gts, res)[0])}
    scorer = Rouge() if metric == "ROUGE_L" else Cider()
    return {{"ROUGE_L": "ROUGE-L"}.get(metric, metric): float(scorer.compute_score(gts, res)[0])}


def _checked_items(references: Mapping[str, Sequence[str]],
                   predictions: Mapping[str, str]) -> list[str]:
    """The items of one corpus in order (the toolkit's sums follow it), after checking them."""
    missing, extra = (sorted(set(predictions) - set(references)),
                      sorted(set(references) - set(predictions)))
    if missing or extra:
        raise ValueError(f"captions without references: {missing[:5]}; references without a "
                         f"caption: {extra[:5]}")
    if not predictions:
        raise ValueError("no captions to score")
    for item, captions in references.items():
        if isinstance(captions, str):  # else each character would be a reference
            raise TypeError(f"references of {item!r}: a sequence of captions, not one string")
    if not all(isinstance(c, str) for c in predictions.values()):
        raise TypeError("predictions: one string per item")
    empty = sorted(item for item, captions in references.items() if not len(captions))
    if empty:
        raise ValueError(f"items without reference captions: {empty[:5]}")
    return sorted(predictions)


Corpus = tuple[Mapping[str, Sequence[str]], Mapping[str, str]]  # (references, predictions)


def corpora_metrics(corpora: Mapping[str, Corpus],
                    metrics: Sequence[str] = METRICS) -> dict[str, dict[str, float]]:
    """``caption_metrics`` of several corpora (name → (references, predictions)), each scored on
    its own, with one tokenizer call and one METEOR process for all: METEOR's start (loading its
    paraphrase table) takes about 7 s."""
    metrics = list(dict.fromkeys(metrics))
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise ValueError(f"unknown captioning metric(s) {unknown}; known: {METRICS}")
    items = {name: _checked_items(*corpus) for name, corpus in corpora.items()}
    if shutil.which("java") is None:
        raise RuntimeError(NO_JAVA)
    tokens = _tokenize(
        {(name, i, "ref"): list(references[i]) for name, (references, _) in corpora.items()
         for i in items[name]}
        | {(name, i, "pred"): [predictions[i]] for name, (_, predictions) in corpora.items()
           for i in items[name]})
    wordless = sorted(i for name in corpora for i in items[name] if not all(tokens[name, i, "ref"]))
    if wordless:  # a blank reference distorts BLEU's closest length; all blank breaks CIDEr
        raise ValueError(f"items with a reference caption without words: {wordless[:5]}")
    with contextlib.ExitStack() as stack:
        meteor = stack.enter_context(_meteor()) if "METEOR" in metrics else None
        scores: dict[str, dict[str, float]] = {}
        for name in corpora:
            gts = {i: tokens[name, i, "ref"] for i in items[name]}
            res = {i: tokens[name, i, "pred"] for i in items[name]}
            scores[name] = {}
            for metric in metrics:
                scores[name] |= _score(metric, gts, res, meteor)
    return scores


def caption_metrics(references: Mapping[str, Sequence[str]], predictions: Mapping[str, str],
                    metrics: Sequence[str] = METRICS) -> dict[str, float]:
    """Corpus scores of one predicted caption per item against the item's references.

    ``references``: item id → its reference captions (at least one, each with words);
    ``predictions``: item id → the caption to score (may be empty: it scores 0). Both must name
    the same items. ``metrics``: any of "BLEU", "METEOR", "ROUGE_L", "CIDEr" (the toolkit's
    names). Returns "BLEU-1" .. "BLEU-4", "METEOR", "ROUGE-L" and "CIDEr" as far as asked for.
    The items' order does not matter. Raises ValueError for mismatched or empty inputs and
    RuntimeError without Java.
    """
    return corpora_metrics({"": (references, predictions)}, metrics)[""]
