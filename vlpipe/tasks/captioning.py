"""Video captioning: describe a clip in one sentence.

Training: every training clip once per epoch with one of its captions (random), teacher forcing,
cross-entropy on every target word and the end token. Evaluation: one caption decoded per clip
(greedy, or beam search with ``beam`` > 1) against all the clip's captions as references, scored
with the coco-caption metrics (BLEU-1..4, METEOR, ROUGE-L, CIDEr; ×100). The test clips are
those of the data set's test list (the retrieval list: LSMDC's 1,000 public-test clips,
MSR-VTT's 1k-A; built from every test clip up to ``retrieval_size`` elsewhere), the validation
clips every validation clip. Validation passes, which select the checkpoint by CIDEr, decode
greedily (a fraction of beam search's time, every epoch; the thesis decodes its ablations so)
and leave out METEOR (a Java process per call).

Models plug in through ``start(feats, mask) -> state``, ``step(tokens, state) -> (log_probs,
state)``, ``forward(feats, mask, inputs) -> log_probs`` and ``end_id`` (see
`vlpipe.models.captioner`). A model that reads concept words (``ModelInputs.concept_ids``:
CT-SAN) is given each training clip's concept labels as well, ``forward(feats, mask, inputs,
concepts)``, and returns ``(log_probs, auxiliary_loss)``: its terms beyond the words' (concept
detection, attention regularisers), added to the cross-entropy, and scores the concepts it
detects, ``concept_scores(feats, mask) -> (B, C)`` (None: it detects none). The evaluation
then compares them with the clips' own, precision and recall of the top ``CONCEPTS_AT``,
beside the training frequency prior's (the same ``CONCEPTS_AT`` most frequent concepts for
every clip).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from vlpipe.metrics.captioning import caption_metrics
from vlpipe.metrics.concepts import precision_recall_at
from vlpipe.nn.beam_search import decode
from vlpipe.tasks.base import TensorBatch, VideoTextTask, autocast_for

VALIDATION_METRICS = ("BLEU", "ROUGE_L", "CIDEr")
TEST_METRICS = ("BLEU", "METEOR", "ROUGE_L", "CIDEr")


@dataclass
class CaptionBatch(TensorBatch):
    feats: torch.Tensor  # (B, N, D)
    feat_mask: torch.Tensor  # (B, N)
    inputs: torch.Tensor  # (B, T) end_id, w_1 … w_{T-1}
    targets: torch.Tensor  # (B, T) w_1 … w_n, end_id; -100 at padding


@dataclass
class ConceptCaptionBatch(CaptionBatch):
    concepts: torch.Tensor  # (B, C) the clips' concept labels, multi-hot


EXAMPLES = 5  # test clips whose decoded captions the report shows
CONCEPTS_AT = 10  # the thesis's precision / recall @ 10 of detected concepts


class CaptioningTask(VideoTextTask):
    """Data, objective and evaluation of sentence generation from a clip."""

    name = "captioning"

    def __init__(self, clips: pd.DataFrame, features, vocab,
                 task_list: pd.DataFrame | None = None, batch_size: int = 32, beam: int = 1,
                 **common) -> None:
        super().__init__(clips, features, vocab, **common)
        self.batch_size, self.beam = batch_size, beam
        self.end_id = len(vocab)  # the captioner's extra token (`AttentionCaptioner.end_id`)
        self.references = dict(zip(clips["clip_id"], clips["sentences"], strict=True))
        self.eval_clips = {split: self.splits.get(split, []) for split in ("val", "test")}
        if task_list is not None and len(task_list):
            unknown = sorted(set(task_list["clip_id"]) - set(self.features))
            if unknown:
                raise KeyError(f"test list: no features for clip(s) {unknown[:5]}")
            self.eval_clips["test"] = list(dict.fromkeys(task_list["clip_id"]))

    def num_items(self, split: str) -> int:
        return len(self.eval_clips[split])

    def train_batches(self, rng: np.random.Generator) -> Iterator[CaptionBatch]:
        """One epoch: the training clips in random order, a random caption of each."""
        clip_ids = self.splits["train"]
        order = rng.permutation(len(clip_ids))
        for start in range(0, len(order), self.batch_size):
            batch = [clip_ids[i] for i in order[start : start + self.batch_size]]
            captions = [self.sentences[c][rng.integers(len(self.sentences[c]))] for c in batch]
            steps = max(len(words) for words in captions) + 1
            inputs = torch.zeros(len(batch), steps, dtype=torch.long)
            targets = torch.full((len(batch), steps), -100, dtype=torch.long)
            for row, words in enumerate(captions):
                inputs[row, : len(words) + 1] = torch.tensor([self.end_id, *words])
                targets[row, : len(words) + 1] = torch.tensor([*words, self.end_id])
            if self.concept_ids is None:
                yield CaptionBatch(*self.video_batch(batch), inputs, targets)
            else:
                yield ConceptCaptionBatch(*self.video_batch(batch), inputs, targets,
                                          self.concept_labels(batch))

    def loss(self, model: torch.nn.Module, batch: CaptionBatch) -> torch.Tensor:
        if isinstance(batch, ConceptCaptionBatch):
            log_probs, auxiliary = model(batch.feats, batch.feat_mask, batch.inputs,
                                         batch.concepts)
        else:
            log_probs, auxiliary = model(batch.feats, batch.feat_mask, batch.inputs), 0.0
        # log_probs (B, T, V + 1)
        words = F.nll_loss(log_probs.flatten(0, 1), batch.targets.flatten(), ignore_index=-100)
        return words + auxiliary

    @torch.no_grad()
    def generate(self, model: torch.nn.Module, clip_ids: list[str], device: torch.device,
                 beam: int | None = None, block: int = 100) -> dict[str, str]:
        """One caption per clip, decoded ``block`` clips at a time (``beam``: the task's
        unless given)."""
        captions = {}
        for start in range(0, len(clip_ids), block):
            chunk = clip_ids[start : start + block]
            feats, mask = self.video_batch(chunk)
            with autocast_for(device):
                state = model.start(feats.to(device), mask.to(device))
                decoded = decode(model.step, state, len(chunk), self.end_id, self.end_id,
                                 self.max_words + 1, beam or self.beam)
            captions |= {c: self.vocab.decode(ids) for c, ids in zip(chunk, decoded, strict=True)}
        return captions

    def examples(self, model: torch.nn.Module, device: torch.device,
                 count: int = EXAMPLES) -> list[dict]:
        """The first ``count`` test clips: each one's decoded caption and its references, and
        a model's top ``CONCEPTS_AT`` detected concepts, each marked whether it is the clip's."""
        model.eval()
        clip_ids = self.eval_clips["test"][:count]
        decoded = self.generate(model, clip_ids, device)
        examples = [{"clip_id": c, "decoded": decoded[c], "references": list(self.references[c])}
                    for c in clip_ids]
        if self.concept_ids is not None:
            for example, concepts in zip(examples, self.top_concepts(model, clip_ids, device),
                                         strict=True):
                if concepts:
                    example["concepts"] = concepts
        return examples

    @torch.no_grad()
    def top_concepts(self, model: torch.nn.Module, clip_ids: list[str],
                     device: torch.device) -> list[list[dict]]:
        """Per clip, the model's top ``CONCEPTS_AT`` concepts as ``{"word", "correct"}`` (in
        the clip's sentences or not), most probable first; empty lists for a model that
        detects none."""
        feats, mask = self.video_batch(clip_ids)
        with autocast_for(device):
            scores = model.concept_scores(feats.to(device), mask.to(device))
        if scores is None:
            return [[] for _ in clip_ids]
        truth = self.concept_labels(clip_ids)
        top = scores.float().cpu().topk(min(CONCEPTS_AT, scores.shape[1]), dim=1).indices
        return [[{"word": self.vocab.words[self.concept_ids[i]], "correct": bool(labels[i])}
                 for i in row.tolist()] for row, labels in zip(top, truth, strict=True)]

    def evaluate(self, model: torch.nn.Module, split: str, device: torch.device) -> dict:
        model.eval()
        clip_ids = self.eval_clips[split]
        predictions = self.generate(model, clip_ids, device, beam=1 if split == "val" else None)
        metrics = caption_metrics({c: self.references[c] for c in clip_ids}, predictions,
                                  VALIDATION_METRICS if split == "val" else TEST_METRICS)
        result = {"caption": {name: 100.0 * value for name, value in metrics.items()}}
        if self.concept_ids is not None:
            result["concepts"] = self.concept_detection(model, clip_ids, device)
        return result

    @torch.no_grad()
    def concept_detection(self, model: torch.nn.Module, clip_ids: list[str],
                          device: torch.device, block: int = 100) -> dict[str, float]:
        """Precision and recall (×100) of the top ``CONCEPTS_AT`` concepts against the clips'
        own: the frequency prior's, and the model's where it detects concepts."""
        truth = self.concept_labels(clip_ids)  # (B, C)
        prior = self.concept_labels(self.splits["train"]).sum(0)  # (C,) training frequency
        result = precision_recall_at(prior.expand_as(truth), truth, CONCEPTS_AT, "prior ")
        scores = []
        for start in range(0, len(clip_ids), block):
            feats, mask = self.video_batch(clip_ids[start : start + block])
            with autocast_for(device):
                scores.append(model.concept_scores(feats.to(device), mask.to(device)))
        if scores[0] is not None:  # None: a model without a detector (Base-SAN)
            result |= precision_recall_at(torch.cat(scores).float().cpu(), truth, CONCEPTS_AT)
        return result

