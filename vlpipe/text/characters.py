"""CiSIN's Textual Character Embedding (thesis §6.3.3): each ``SOMEONE`` of a set of sentences
read in the context of all of them, and the action it does.

The set's sentences are joined by the encoder's separator token (``[SEP]``) and encoded once;
``b_n`` is the mean of the outputs over the n-th mention's span: from the ``SOMEONE`` (read
as the word ``someone``, as `vlpipe.text.embed` reads it) up to its action word, so that a
description ("SOMEONE in her red coat") is part of it; ``a_n`` is the output at the action
word. The thesis takes BERT's output at the mention token alone, but fine-tunes BERT, which
learns to gather the description there; a frozen encoder does not (at the token alone, a text
re-id MLP on these worlds stayed at chance). The thesis takes the
action from a dependency parse (the ROOT verb linked to the mention, Stanford Parser); no parser
can be had offline here, so `action_word` takes the first word after the mention, and before
the next one, that the offline part-of-speech tagger (`vlpipe.text.tagger`) reads in its
sentence as a verb other than a form of *be*, *have* or *do* ("SOMEONE in her red coat
**spins**", "SOMEONE's eyes **widen**"). The tagger misses some ("SOMEONE in cyan flashes": a
plural noun to it); then the first word after the mention that ends in ``-s`` and is not a
function word, the third-person present in which LSMDC's descriptions are written; then the
first content word; without any, the mention itself.

The encoder is frozen: its outputs are computed once per run and CiSIN's MLPs learn on top of
them.
"""

from __future__ import annotations

import re

import numpy as np
import torch

from vlpipe.datasets.task_lists import FUNCTION_WORDS
from vlpipe.text.embed import MENTION, PLACEHOLDER, TextEncoder
from vlpipe.text.tagger import pos_tags

WORD = re.compile(r"[A-Za-z']+")
AUXILIARIES = frozenset({"be", "am", "is", "are", "was", "were", "been", "being", "has", "have",
                         "had", "do", "does", "did"})


def action_word(sentence: str, mention_end: int) -> tuple[int, int] | None:
    """The character span of the action word of the mention ending at ``mention_end`` in
    ``sentence`` (see the module docstring)."""
    tokens = [(m.group().lower(), m.span()) for m in WORD.finditer(sentence)]
    tags = pos_tags([word for word, _ in tokens])
    words = [(word, span) for word, span in tokens if span[0] >= mention_end]
    for (word, span), tag in zip(tokens, tags, strict=True):
        if span[0] < mention_end:
            continue
        if MENTION.fullmatch(word):
            break  # the next mention's words are its own
        if tag.startswith("VB") and word not in AUXILIARIES:
            return span
    content = [(word, span) for word, span in words
               if word not in FUNCTION_WORDS and not MENTION.fullmatch(word)]
    verbs = [span for word, span in content if word.endswith("s") and len(word) > 2]
    if verbs:
        return verbs[0]
    return content[0][1] if content else None


def _token_at(offsets: list[tuple[int, int]], start: int) -> int | None:
    """The first token whose span ends after character ``start``."""
    return next((i for i, (lo, hi) in enumerate(offsets) if hi > start and hi > lo), None)


def set_text(sentences: list[str], separator: str) -> tuple[str, list[tuple[int, int]]]:
    """The sentences joined by `` <separator> `` and each one's character span in the join."""
    spans, at = [], 0
    for sentence in sentences:
        spans.append((at, at + len(sentence)))
        at += len(sentence) + len(separator) + 2
    return f" {separator} ".join(sentences), spans


@torch.inference_mode()
def character_embeddings(encoder: TextEncoder, sets: list[list[str]]
                         ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per set of sentences: ``b`` (N, D) of its N ``SOMEONE`` in text order (each the mean
    over its span) and ``a`` (N, D) at their action words; a mention cut off by the encoder's
    length limit is an error."""
    out = []
    for sentences in sets:
        text, spans = set_text(sentences, encoder.tokenizer.sep_token or "[SEP]")
        # the placeholder read as the word the encoder knows (same length: offsets hold)
        encoded = encoder.tokenizer(PLACEHOLDER.sub("someone", text), truncation=True,
                                    return_offsets_mapping=True,
                                    max_length=encoder.tokenizer.model_max_length)
        offsets = [tuple(span) for span in encoded["offset_mapping"]]
        mentions, actions = [], []
        for match in PLACEHOLDER.finditer(text):
            token = _token_at(offsets, match.start())
            if token is None or offsets[token][0] >= match.end():
                raise ValueError(f"a SOMEONE of the set {sentences!r} fell beyond the text "
                                 "encoder's length limit")
            start, end = next((lo, hi) for lo, hi in spans if lo <= match.start() < hi)
            found = action_word(text[start:end], match.end() - start)
            action = token if found is None else _token_at(offsets, start + found[0])
            mentions.append(slice(token, max(action, token + 1)))
            actions.append(action)
        ids = torch.tensor([encoded["input_ids"]], device=encoder.device)
        hidden = encoder.net(input_ids=ids).last_hidden_state[0].float().cpu().numpy()
        someone = np.stack([hidden[span].mean(axis=0) for span in mentions])
        out.append((someone.reshape(-1, hidden.shape[1]), hidden[actions]))
    return out
