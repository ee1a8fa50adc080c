"""A pretrained language model's own tokenizer (GPT-2's byte-level BPE, through `transformers`)
behind the `Vocabulary` interface the tasks use, so that a generator with published weights reads
and writes the tokens it was trained on.

Id 0 stays the padding the tasks pad with: the tokenizer's token t is id t + 1 (``OFFSET``), and
a model that loads the published embedding shifts its rows the same way
(`vlpipe.models.tapm.generator`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

OFFSET = 1  # id 0: padding


class PretrainedTokenizer:
    """The tokenizer files of a local Hugging Face directory (``save_pretrained``'s)."""

    def __init__(self, directory: str | Path) -> None:
        from transformers import AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
        except (OSError, ValueError) as error:
            raise ValueError(f"no tokenizer in {directory}: {error}") from None

    def __len__(self) -> int:
        return len(self.tokenizer) + OFFSET

    def encode(self, sentence: str, max_words: int) -> list[int]:
        """Token ids of the sentence (a leading space, as GPT-2 sees a word inside text),
        truncated to ``max_words`` tokens."""
        ids = self.tokenizer.encode(" " + " ".join(sentence.split()), add_special_tokens=False)
        return [t + OFFSET for t in ids[:max_words]]

    def decode(self, ids: Iterable[int]) -> str:
        """The text of decoded ids; padding and ids past the tokenizer's (a model's own special
        tokens) are left out."""
        tokens = [i - OFFSET for i in ids if OFFSET <= i < len(self)]
        return self.tokenizer.decode(tokens, skip_special_tokens=True).strip()
