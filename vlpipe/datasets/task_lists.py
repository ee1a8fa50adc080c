"""Task lists built from the clip table when a data set does not ship them; seeded, so the same
clips, settings and seed always give the same lists.

- retrieval: ``size`` test clips with one sentence each (MSR-VTT 1k-A style);
- multiple choice (every split): the answer is a caption of the clip, the 4 distractors are
  captions of other clips of the same split — protocol ``msrvtt``: any other clips (MSR-VTT-MC);
  ``lsmdc``: only clips with a different activity label (LSMDC MC). Val and test items are what
  is evaluated; the training items give JSFusion's training queries their 4 distractors;
- fill in the blank (every split): one content word of each sentence is blanked. LSMDC blanks
  content words (nouns, verbs, adjectives, adverbs); no part-of-speech tagger can be had offline,
  so a content word here is an alphabetic token outside a fixed list of function words;
- storytelling (every split): sets of ``STORY_LENGTH`` consecutive clips, each with its first
  sentence (LSMDC 2019's multi-sentence sets; the LSMDC adapter keeps a set within one movie).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import numpy as np
import pandas as pd

from vlpipe.datasets.base import (
    BLANK_MARKER,
    N_CANDIDATES,
    STORY_LENGTH,
    DatasetTables,
    task_table,
)

log = logging.getLogger(__name__)

PROTOCOLS = ("msrvtt", "lsmdc")
DEFAULTS = {"seed": 0, "retrieval_size": 1000, "multiple_choice": "msrvtt"}
FUNCTION_GROUPS = {
    "articles": "a an the",
    "pronouns": """i me my mine myself you your yours yourself he him his himself she her hers
        herself it its itself we us our ours ourselves they them their theirs themselves one
        someone somebody something anyone anybody anything everyone everybody everything nobody
        nothing this these those who whom whose which what""",
    "prepositions": """about above across after against along among around at before behind
        below beneath beside besides between beyond by down during for from in inside into near
        of off on onto out outside over past per since through throughout till to toward towards
        under underneath until up upon via with within without""",
    "conjunctions": """and but or nor so yet as if because while when whereas although though
        than then whether unless once where how why""",
    "auxiliaries": """be am is are was were been being have has had having do does did doing
        will would shall should can could may might must""",
    "others": "there that here not no all any both each either neither every some such other "
              "another",
}
FUNCTION_WORDS = frozenset(word for words in FUNCTION_GROUPS.values() for word in words.split())
# an alphabetic token, possibly wrapped in punctuation ("door." → "door"); group 1 = the word
CONTENT_TOKEN = re.compile(r"(?<!\S)[^\w\s]*([^\W\d_]+)[^\w\s]*(?!\S)")


def build_retrieval_test(clips: pd.DataFrame, size: int = 1000, seed: int = 0) -> pd.DataFrame:
    """``size`` random test clips (all if fewer), in table order, one random sentence each."""
    rng = np.random.default_rng(seed)
    test = clips[clips["split"] == "test"]
    if len(test) > size:
        test = test.iloc[np.sort(rng.choice(len(test), size, replace=False))]
    rows = [(clip_id, sentences[rng.integers(len(sentences))])
            for clip_id, sentences in zip(test["clip_id"], test["sentences"], strict=True)]
    return task_table("retrieval", rows)


def _distractors(rng: np.random.Generator, captions: list[list[str]], own: list[str],
                 eligible: np.ndarray) -> list[str]:
    """Up to 4 distinct captions, one from each of randomly drawn ``eligible`` clips, none of
    them a caption of the item's own clip."""
    chosen: list[str] = []
    for j in rng.permutation(eligible):
        caption = captions[j][rng.integers(len(captions[j]))]
        if caption not in own and caption not in chosen:
            chosen.append(caption)
            if len(chosen) == N_CANDIDATES - 1:
                break
    return chosen


def build_multiple_choice(clips: pd.DataFrame, protocol: str = "msrvtt", seed: int = 0,
                          activity: dict[str, str] | None = None) -> pd.DataFrame:
    """One item per clip of every split; a clip without 4 distinct distractor captions in its
    split is skipped (and counted in the log). ``activity`` (clip_id → label) is required by
    protocol ``lsmdc``. The training items are drawn last, so a seed's val and test items are
    the same with or without them."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown multiple-choice protocol {protocol!r}; known: {PROTOCOLS}")
    if protocol == "lsmdc" and activity is None:
        raise ValueError("multiple-choice protocol 'lsmdc' draws distractors from clips of "
                         "another activity, and this data set has no activity labels: ship "
                         "the list (adapter option multiple_choice) or use protocol 'msrvtt'")
    rng = np.random.default_rng(seed)
    rows, skipped = [], 0
    for split in ("val", "test", "train"):
        part = clips[clips["split"] == split]
        ids = list(part["clip_id"])
        captions = [list(sentences) for sentences in part["sentences"]]
        if protocol == "lsmdc":
            missing = [c for c in ids if c not in activity]
            if missing:
                raise ValueError(f"no activity label for clip(s) {missing[:5]}")
            labels = np.array([activity[c] for c in ids])
        for i, clip_id in enumerate(ids):
            answer = captions[i][rng.integers(len(captions[i]))]
            others = (np.flatnonzero(labels != labels[i]) if protocol == "lsmdc"
                      else np.delete(np.arange(len(ids)), i))
            distractors = _distractors(rng, captions, captions[i], others)
            if len(distractors) < N_CANDIDATES - 1:
                skipped += 1
                continue
            position = int(rng.integers(N_CANDIDATES))
            distractors.insert(position, answer)
            rows.append((clip_id, split, distractors, position))
    if skipped:
        log.info("multiple choice: %d clip(s) without 4 distractors in their split; skipped",
                 skipped)
    return task_table("multiple_choice", rows)


def blank_word(sentence: str, rng: np.random.Generator) -> tuple[str, str] | None:
    """``(sentence with one random content word replaced by BLANK_MARKER, the word in lower
    case)``; None when the sentence has no content word (or already holds the marker)."""
    if BLANK_MARKER in sentence:
        return None
    spans = [match.span(1) for match in CONTENT_TOKEN.finditer(sentence)
             if match.group(1).lower() not in FUNCTION_WORDS]
    if not spans:
        return None
    start, end = spans[rng.integers(len(spans))]
    return sentence[:start] + BLANK_MARKER + sentence[end:], sentence[start:end].lower()


def build_fill_in_blank(clips: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """One item per sentence of every split; sentences without a content word are skipped (and
    counted in the log)."""
    rng = np.random.default_rng(seed)
    rows, skipped = [], 0
    for clip_id, split, sentences in zip(clips["clip_id"], clips["split"], clips["sentences"],
                                         strict=True):
        for sentence in sentences:
            blank = blank_word(sentence, rng)
            if blank is None:
                skipped += 1
            else:
                rows.append((clip_id, split, *blank))
    if skipped:
        log.info("fill in the blank: %d sentence(s) without a content word; skipped", skipped)
    return task_table("fill_in_blank", rows)


def build_stories(clips: pd.DataFrame, length: int = STORY_LENGTH,
                  group: Callable[[str], str] | None = None) -> pd.DataFrame:
    """Sets of ``length`` consecutive captioned clips (table order) of one split and, with
    ``group`` (clip id → e.g. its movie), of one group; windows do not overlap and a shorter
    rest is left out. Each clip contributes its first sentence. Set ids: ``<first clip>+<n>``."""
    clips = clips[clips["sentences"].map(len) > 0]
    keys = clips["split"] + "\0" + (clips["clip_id"].map(group) if group else "")
    rows = []
    for (_, members) in clips.groupby(keys.to_numpy(), sort=False):
        for start in range(0, len(members) - length + 1, length):
            window = members.iloc[start : start + length]
            rows.append((f"{window['clip_id'].iloc[0]}+{length}", window["split"].iloc[0],
                         list(window["clip_id"]), [s[0] for s in window["sentences"]]))
    return task_table("storytelling", rows)


def task_tables(tables: DatasetTables, settings: dict | None = None,
                activity: dict[str, str] | None = None) -> dict[str, pd.DataFrame]:
    """Every task list: the one the data set ships, else one built with ``settings`` (the
    config's ``dataset.tasks``; defaults in ``DEFAULTS``)."""
    settings = {**DEFAULTS, **(settings or {})}
    clips, seed = tables.clips, settings["seed"]
    clips = clips[clips["sentences"].map(len) > 0]  # lists are built from captioned clips
    if clips.empty:  # a data set without captions (gaze only) has no text task
        return {name: task_table(name, []) for name in ("retrieval", "multiple_choice",
                                                        "fill_in_blank", "storytelling")}
    retrieval, choice, blank = tables.retrieval, tables.multiple_choice, tables.fill_in_blank
    if retrieval is None:
        retrieval = build_retrieval_test(clips, settings["retrieval_size"], seed)
    if choice is None:
        choice = build_multiple_choice(clips, settings["multiple_choice"], seed, activity)
    if blank is None:
        blank = build_fill_in_blank(clips, seed)
    stories = tables.storytelling if tables.storytelling is not None else build_stories(clips)
    return {"retrieval": retrieval, "multiple_choice": choice, "fill_in_blank": blank,
            "storytelling": stories}
