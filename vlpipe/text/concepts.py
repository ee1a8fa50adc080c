"""Concept words (CT-SAN, thesis ch. 4): the most frequent nouns, verbs and adjectives of the
training captions, and each clip's multi-label target over them.

The thesis tags the captions with NLTK's tagger, whose model NLTK downloads at run time (not
from the package registries, so not here); `vlpipe.text.tagger` tags offline, the vocabulary's
own tokens (``vlpipe.text.tokenize``), so a word's tag is decided in its sentence. A word counts
once per sentence in which it is tagged a noun (NN*), verb (VB*) or adjective (JJ*); the
``size`` most frequent in-vocabulary such words, ties alphabetical, are the concepts. Forms of
*be* and *have* are verbs to the tagger, as to NLTK's, and are kept as the thesis's selection
would keep them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from vlpipe.atomic import write_json
from vlpipe.text.tagger import pos_tags, tagger_name
from vlpipe.text.vocab import Vocabulary, tokenize

CONTENT_TAGS = ("NN", "VB", "JJ")  # Penn Treebank prefixes: nouns, verbs, adjectives
DEFAULT_SIZE = 2000  # the thesis's V on LSMDC (config text.concepts)


def content_words(sentence: str) -> set[str]:
    """The sentence's tokens that the tagger calls a noun, verb or adjective."""
    tokens = tokenize(sentence)
    return {word for word, tag in zip(tokens, pos_tags(tokens), strict=True)
            if tag.startswith(CONTENT_TAGS)}


def build_concepts(sentences: Iterable[str], vocab: Vocabulary, size: int) -> list[tuple[str, int]]:
    """The ``size`` most frequent in-vocabulary content words of ``sentences`` with their
    counts (sentences that use them as one), most frequent first, ties alphabetical."""
    if size < 1:
        raise ValueError(f"concepts: size must be >= 1, got {size}")
    counts = Counter(w for s in sentences for w in content_words(s) if w in vocab.ids)
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:size]


def save_concepts(path: str | Path, concepts: Sequence[tuple[str, int]]) -> None:
    write_json(path, {"tagger": tagger_name(), "words": [w for w, _ in concepts],
                      "counts": [n for _, n in concepts]})


def load_concept_ids(path: str | Path, vocab: Vocabulary) -> list[int]:
    """The concepts of ``path`` as ids of ``vocab`` (the vocabulary they were chosen from)."""
    words = json.loads(Path(path).read_text())["words"]
    missing = [w for w in words if w not in vocab.ids]
    if missing:
        raise ValueError(f"{path}: concept(s) {missing[:5]} are not in the vocabulary; was it "
                         "built from another vocab.json?")
    return [vocab.ids[w] for w in words]


def concept_labels(sentences: Iterable[Sequence[int]], concept_ids: Sequence[int]) -> np.ndarray:
    """A clip's multi-label target (C,) float32: 1 where concept c's word is in any of its
    sentences (token ids), as the thesis's p* ("the word exists in the ground-truth caption")
    taken over every caption of the clip."""
    present = {token for sentence in sentences for token in sentence}
    return np.array([token in present for token in concept_ids], np.float32)
