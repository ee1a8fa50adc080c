"""Tokenizer, count-thresholded vocabulary (OOV words dropped, as in JSFusion) and a loader for
GloVe-format text embeddings (``word v1 v2 ... vd`` per line)."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from vlpipe.atomic import write_json

PAD = "<pad>"
BLANK = "<blank>"  # the fill-in-the-blank gap; never produced by `tokenize`
SPECIALS = (PAD, BLANK)
TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def tokenize(sentence: str) -> list[str]:
    """Lower-case word tokens; punctuation is dropped."""
    return TOKEN.findall(sentence.lower())


class Vocabulary:
    """Word ↔ id; id 0 is padding and id 1 the BLANK of fill-in-the-blank sentences. Words
    outside the vocabulary are dropped when encoding."""

    blank_id = SPECIALS.index(BLANK)

    def __init__(self, words: list[str]) -> None:
        self.words = [*SPECIALS, *words]
        self.ids = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def build(cls, sentences: Iterable[str], min_count: int) -> Vocabulary:
        """Keep words seen at least ``min_count`` times (JSFusion: count > 3 → min_count 4),
        most frequent first, ties alphabetical."""
        counts = Counter(w for s in sentences for w in tokenize(s))
        kept = sorted((w for w, n in counts.items() if n >= min_count),
                      key=lambda w: (-counts[w], w))
        return cls(kept)

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, sentence: str, max_words: int) -> list[int]:
        """Token ids of the in-vocabulary words, truncated to ``max_words``."""
        return [self.ids[w] for w in tokenize(sentence) if w in self.ids][:max_words]

    def decode(self, ids: Iterable[int]) -> str:
        """The words of decoded token ids, special tokens left out."""
        return " ".join(self.words[i] for i in ids if i >= len(SPECIALS))

    def save(self, path: str | Path) -> None:
        write_json(path, {"words": self.words[len(SPECIALS):]})

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        return cls(json.loads(Path(path).read_text())["words"])


def load_embeddings(path: str | Path, vocab: Vocabulary, dim: int,
                    seed: int = 0) -> tuple[np.ndarray, int]:
    """Embedding matrix (|V|, dim) from a GloVe-format text file; words it lacks get seeded
    N(0, 0.1²) vectors, padding gets zeros. Returns the matrix and how many words were found."""
    rng = np.random.default_rng(seed)
    matrix = rng.normal(0.0, 0.1, size=(len(vocab), dim)).astype(np.float32)
    matrix[0] = 0.0
    found = 0
    with Path(path).open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            word, *values = line.rstrip().split(" ")
            if word not in vocab.ids:
                continue
            if len(values) != dim:
                raise ValueError(f"{path}:{line_no}: word {word!r} has {len(values)} values, "
                                 f"expected {dim}")
            matrix[vocab.ids[word]] = np.asarray(values, dtype=np.float32)
            found += 1
    return matrix, found
