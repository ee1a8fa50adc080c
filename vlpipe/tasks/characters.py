"""Fill in the Characters (LSMDC 2019) with character grounding and video re-identification
(CiSIN, thesis ch. 6): in a set of 5 clips and their sentences, which ``SOMEONE`` mentions are
the same character, which person track each mention is, and which tracks are the same person.

The sets, their mentions' set-local ids, characters and genders, and each clip's annotated
tracks are the task list's (`vlpipe.datasets.characters`). Two inputs, when the experiment names
them, bring the extractors' person streams (`vlpipe.features.person_tracks`):

- ``persons`` (the persons extractor's store): the clip's tracks are the tracker's, each
  labelled with the character of the annotated track inside it, and read with their pose
  keypoints (the body-part features); without it the annotated tracks themselves are read
  (the report says ``tracks: ground truth``);
- ``faces`` (the faces extractor's store): each face is given to the track it lies in, and a
  track's face feature is the mean of its faces' embeddings.

Everything the model reads is computed once per run: each track's Visual Track Embedding from
the clip's feature grids (`vlpipe.features.tracks`; an input named ``motion`` and one named
``appearance``, or one grid for both) and each mention's Textual Character Embedding from the
frozen sentence encoder (`vlpipe.text.characters`), z-scored per dimension on the training
sets' mentions.

Training: sets in random order, ``batch_size`` at a time, padded; the loss is the model's
(`loss(graphs, batch)`: CiSIN's triplet and cross-entropy objectives). Evaluation
(`vlpipe.metrics.characters`): Fill-in accuracy over every mention pair (the model's character
identity graph C ≥ 0.5), grounding accuracy (its best track of the mention's clip) and video
re-id accuracy over every track pair (V > 0).

Models plug in through ``forward(batch) -> graphs`` (``G`` (B, N, M) grounding scores, ``V``
(B, M, M) video re-id scores, ``C`` (B, N, N) identity probabilities) and
``loss(graphs, batch) -> Tensor``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from vlpipe.features.person_tracks import (
    KEYPOINTS,
    Track,
    assign_faces,
    detected_tracks,
    label_tracks,
)
from vlpipe.features.sequences import SequenceFeatures
from vlpipe.features.tracks import META, track_features
from vlpipe.metrics.characters import grounding_hits, pair_accuracy, pair_decisions
from vlpipe.models.inputs import FeatureInput, ModelInputs
from vlpipe.tasks.base import TensorBatch, autocast_for
from vlpipe.tasks.specs import TaskSpec, task_spec
from vlpipe.text.characters import character_embeddings
from vlpipe.text.embed import PLACEHOLDER, load_encoder, text_settings

EXAMPLES = 3  # test sets the report shows
PERSONS_ARRAYS = ("step", "track_id", "box", "keypoints")
FACES_ARRAYS = ("step", "box", "embedding")
GENDER_LABELS = {"female": 1.0, "male": 0.0}


@dataclass(frozen=True)
class CharacterSet:
    """One set with everything the model reads, N mentions and M tracks."""

    set_id: str
    clip_ids: tuple[str, ...]
    sentences: tuple[str, ...]
    mention_clip: np.ndarray  # (N,) clip of each mention
    ids: np.ndarray  # (N,) set-local character ids
    mention_character: tuple[str, ...]  # "" where unknown
    gender: np.ndarray  # (N,) 1 female, 0 male, nan unknown
    someone: np.ndarray  # (N, D) b_n
    action: np.ndarray  # (N, D) a_n
    track_clip: np.ndarray  # (M,)
    track_character: tuple[str, ...]  # "" where unknown
    motion: np.ndarray  # (M, 2C)
    appearance: np.ndarray  # (M, C)
    meta: np.ndarray  # (M, META)
    shown_box: np.ndarray  # (M, 4) each track's box nearest its clip's middle (the report's)
    face: np.ndarray | None = None  # (M, D) with a faces input
    has_face: np.ndarray | None = None  # (M,)
    parts: np.ndarray | None = None  # (M, K, C) with a persons input
    part_seen: np.ndarray | None = None  # (M, K)


@dataclass
class CharacterBatch(TensorBatch):
    someone: torch.Tensor  # (B, N, D)
    action: torch.Tensor  # (B, N, D)
    mention_mask: torch.Tensor  # (B, N)
    motion: torch.Tensor  # (B, M, 2C)
    appearance: torch.Tensor  # (B, M, C)
    meta: torch.Tensor  # (B, M, META)
    track_mask: torch.Tensor  # (B, M)
    candidates: torch.Tensor  # (B, N, M) the tracks of each mention's clip
    grounded: torch.Tensor  # (B, N, M) the tracks of each mention's character in its clip
    distinct: torch.Tensor  # (B, N, M) mention and track known to be different characters
    same_mention: torch.Tensor  # (B, N, N) the same character (valid mentions)
    same_track: torch.Tensor  # (B, M, M) the same character (tracks with a known one)
    track_known: torch.Tensor  # (B, M)
    gender: torch.Tensor  # (B, N) 1 female, 0 male
    gender_known: torch.Tensor  # (B, N)
    face: torch.Tensor | None = None  # (B, M, D)
    has_face: torch.Tensor | None = None  # (B, M)
    parts: torch.Tensor | None = None  # (B, M, K, C)
    part_seen: torch.Tensor | None = None  # (B, M, K)


def _pad(arrays: list[np.ndarray], width: int, dtype=torch.float32) -> torch.Tensor:
    """(n_i, *shape) arrays → (B, width, *shape), zero-padded."""
    out = torch.zeros(len(arrays), width, *arrays[0].shape[1:], dtype=dtype)
    for b, array in enumerate(arrays):
        out[b, : len(array)] = torch.from_numpy(np.asarray(array)).to(dtype)
    return out


def _same(names: tuple[str, ...], others: tuple[str, ...]) -> np.ndarray:
    """(n, m) bool: the same known name."""
    a, b = np.array(names, dtype=object)[:, None], np.array(others, dtype=object)[None, :]
    return (a == b) & (a != "") & (b != "")


def _differ(names: tuple[str, ...], others: tuple[str, ...]) -> np.ndarray:
    """(n, m) bool: two known names that differ."""
    a, b = np.array(names, dtype=object)[:, None], np.array(others, dtype=object)[None, :]
    return (a != b) & (a != "") & (b != "")


def _known_track_pairs(item: CharacterSet) -> tuple[np.ndarray, np.ndarray]:
    """The tracks whose character is known (M,) and which of them are the same (K, K)."""
    known = np.array([c != "" for c in item.track_character], bool)
    return known, _same(item.track_character, item.track_character)[np.ix_(known, known)]


def _square(values: list[np.ndarray], rows: int, columns: int) -> torch.Tensor:
    """(n_i, m_i) bool arrays → (B, rows, columns), False where padded."""
    out = torch.zeros(len(values), rows, columns, dtype=torch.bool)
    for b, value in enumerate(values):
        out[b, : value.shape[0], : value.shape[1]] = torch.from_numpy(value)
    return out


def collate(sets: list[CharacterSet]) -> CharacterBatch:
    """Sets → one padded batch (N, M: the most mentions and tracks of a set)."""
    n = max(max(len(s.ids) for s in sets), 1)
    m = max(max(len(s.track_clip) for s in sets), 1)
    known = [np.array([c != "" for c in s.track_character], bool) for s in sets]

    def tracks(name: str, dtype=torch.float32) -> torch.Tensor | None:
        """An optional per-track array, padded (None when the run has no such input)."""
        return None if getattr(sets[0], name) is None else _pad(
            [getattr(s, name) for s in sets], m, dtype)

    return CharacterBatch(
        someone=_pad([s.someone for s in sets], n), action=_pad([s.action for s in sets], n),
        mention_mask=_pad([np.ones(len(s.ids), bool) for s in sets], n, torch.bool),
        motion=_pad([s.motion for s in sets], m),
        appearance=_pad([s.appearance for s in sets], m), meta=_pad([s.meta for s in sets], m),
        track_mask=_pad([np.ones(len(s.track_clip), bool) for s in sets], m, torch.bool),
        candidates=_square([s.mention_clip[:, None] == s.track_clip[None] for s in sets], n, m),
        grounded=_square([_same(s.mention_character, s.track_character)
                          & (s.mention_clip[:, None] == s.track_clip[None]) for s in sets], n, m),
        distinct=_square([_differ(s.mention_character, s.track_character) for s in sets], n, m),
        same_mention=_square([s.ids[:, None] == s.ids[None] for s in sets], n, n),
        same_track=_square([_same(s.track_character, s.track_character) for s in sets], m, m),
        track_known=_pad(known, m, torch.bool),
        gender=_pad([np.nan_to_num(s.gender) for s in sets], n),
        gender_known=_pad([~np.isnan(s.gender) for s in sets], n, torch.bool),
        face=tracks("face"), has_face=tracks("has_face", torch.bool), parts=tracks("parts"),
        part_seen=tracks("part_seen", torch.bool))


class FillInCharactersTask:
    """The sets of clips and sentences with their who-is-who ground truth, CiSIN's objective and
    the three accuracies."""

    name = "fill_in_characters"

    def __init__(self, clips: pd.DataFrame, features, vocab=None,
                 task_list: pd.DataFrame | None = None, text_encoder: dict | None = None,
                 batch_size: int = 8, max_frames: int = 1000, feature_norm: str = "zscore",
                 pca_dims: int = 64, max_words: int | None = None) -> None:
        del vocab, max_words  # the mentions are read by the sentence encoder
        if task_list is None or task_list.empty:
            raise ValueError("fill_in_characters: the data set has no Fill-in the Characters "
                             "sets (configure dataset.characters: docs/data.md)")
        if feature_norm == "pca":
            raise ValueError("fill_in_characters: the tracks pool feature grids; feature_norm "
                             "'pca' would flatten them (use zscore or none)")
        self.batch_size = batch_size
        clip_ids = list(dict.fromkeys(c for ids in task_list["clip_ids"] for c in ids))
        train_ids = [c for ids, split in zip(task_list["clip_ids"], task_list["split"],
                                             strict=True) if split == "train" for c in ids]
        self.arrays = features
        # persons / faces: read as instances, left out of the grids (targets of the features)
        self.streams = {ref.name: ref.extractor for ref in features.inputs
                        if ref.name in self.spec.instance_inputs}
        self.features = SequenceFeatures(features, clip_ids, train_ids, feature_norm, pca_dims,
                                         max_frames, targets=list(self.streams))
        self.grids = self._grid_inputs()
        self.person_features = self._person_features()
        settings = text_settings(text_encoder)
        encoder = load_encoder(settings.model, "cpu")
        texts = standardised(character_embeddings(encoder, list(map(list, task_list["sentences"]))),
                             list(task_list["split"] == "train"))
        self.text_dim = encoder.dim
        self.encoder_name = encoder.name
        self.sets: dict[str, list[CharacterSet]] = {}
        for row, (someone, action) in zip(task_list.itertuples(), texts, strict=True):
            self.sets.setdefault(row.split, []).append(self._set(row, someone, action))
        for split in ("train", "val", "test"):
            if not self.sets.get(split):
                raise ValueError(f"fill_in_characters: no set in the {split} split")

    def _grid_inputs(self) -> dict[str, tuple[int, int, tuple[int, ...]]]:
        """motion / appearance → (first column, last column, (h, w, C)) in a step's features."""
        inputs = self.features.inputs()  # the grids (persons / faces are not among them)
        offsets = np.cumsum([0, *(f.size for f in inputs)])
        blocks = {f.name: (int(lo), int(hi), f.shape)
                  for f, lo, hi in zip(inputs, offsets[:-1], offsets[1:], strict=True)}
        flat = [name for name, (_, _, shape) in blocks.items() if len(shape) != 3]
        if flat:
            raise ValueError(f"fill_in_characters: input(s) {flat} are not (h, w, C) grids")
        if set(blocks) >= {"motion", "appearance"}:
            return {"motion": blocks["motion"], "appearance": blocks["appearance"]}
        if len(blocks) == 1:
            only = next(iter(blocks.values()))
            return {"motion": only, "appearance": only}
        raise ValueError(f"fill_in_characters: name the inputs motion and appearance (or give "
                         f"one grid for both), got {sorted(blocks)}")

    def _clip_grids(self, clip_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The clip's motion and appearance grids (T, h, w, C) and their step times (T,)."""
        feats, times = self.features[clip_id], self.arrays.timeline(clip_id)
        if len(feats) == self.features.max_steps < len(times):  # subsampled: times unknown
            raise ValueError(f"fill_in_characters: clip {clip_id!r} has {len(times)} steps, "
                             f"more than task_args.max_frames={self.features.max_steps}; the "
                             "tracks are read at every step: raise it")
        grids = [feats[:, lo:hi].reshape(len(feats), *shape)
                 for lo, hi, shape in (self.grids["motion"], self.grids["appearance"])]
        return grids[0], grids[1], times[: len(feats)]

    def _clip_tracks(self, clip_id: str, annotated: list[dict]) -> list[Track]:
        """The clip's tracks: the annotated ones, or the persons store's labelled by them; with
        the faces store's faces given to them when the run reads faces."""
        tracks = [Track(str(t["character"]), np.asarray(t["times"], np.float64),
                        np.asarray(t["boxes"], np.float32).reshape(-1, 4)) for t in annotated]
        if "persons" in self.streams:
            extractor = self.streams["persons"]
            persons = self.arrays.read_instances(extractor, clip_id, PERSONS_ARRAYS)
            tracks = label_tracks(
                detected_tracks(persons, self.arrays.step_times(extractor, clip_id)), tracks)
        if "faces" in self.streams:
            extractor = self.streams["faces"]
            tracks = assign_faces(tracks,
                                  self.arrays.read_instances(extractor, clip_id, FACES_ARRAYS),
                                  self.arrays.step_times(extractor, clip_id))
        return tracks

    def _set(self, row, someone: np.ndarray, action: np.ndarray) -> CharacterSet:
        mention_clip = np.array([c for c, ids in enumerate(row.ids) for _ in ids], np.int64)
        tracks, track_clip, track_character, shown = [], [], [], []
        for c, clip_id in enumerate(row.clip_ids):
            motion, appearance, times = self._clip_grids(clip_id)
            duration = float(times[-1] + (np.median(np.diff(times)) if len(times) > 1 else 0))
            for track in self._clip_tracks(clip_id, row.tracks[c]):
                tracks.append(track_features(motion, appearance, times, track, duration))
                track_clip.append(c)
                track_character.append(track.character)
                shown.append(track.boxes[np.abs(track.times - duration / 2).argmin()])
        width = self.grids["appearance"][2][-1]

        genders = [GENDER_LABELS.get(g, np.nan) for clip in row.genders for g in clip]
        return CharacterSet(
            set_id=row.set_id, clip_ids=tuple(row.clip_ids), sentences=tuple(row.sentences),
            mention_clip=mention_clip,
            ids=np.array([i for clip in row.ids for i in clip], np.int64),
            mention_character=tuple(str(n) for clip in row.characters for n in clip),
            gender=np.array(genders, np.float32), someone=someone, action=action,
            track_clip=np.array(track_clip, np.int64), track_character=tuple(track_character),
            motion=(np.stack([t.motion for t in tracks]) if tracks
                    else np.zeros((0, 2 * self.grids["motion"][2][-1]))),
            appearance=(np.stack([t.appearance for t in tracks]) if tracks
                        else np.zeros((0, width))),
            meta=np.stack([t.meta for t in tracks]) if tracks else np.zeros((0, META)),
            shown_box=np.stack(shown) if shown else np.zeros((0, 4), np.float32),
            **{name: _stacked(tracks, name, shape)
               for name, shape in self.person_features.items()})

    def _person_features(self) -> dict[str, tuple[int, ...] | None]:
        """The track features the persons / faces inputs bring → one track's shape (None
        where the run has no such input)."""
        faces, persons = self.streams.get("faces"), self.streams.get("persons")
        width = self.grids["appearance"][2][-1]
        return {"face": self.arrays.instance_shape(faces, "embedding") if faces else None,
                "has_face": () if faces else None,
                "parts": (KEYPOINTS, width) if persons else None,
                "part_seen": (KEYPOINTS,) if persons else None}

    @property
    def spec(self) -> TaskSpec:
        return task_spec(self.name)

    def model_inputs(self, word_vectors: np.ndarray | None = None) -> ModelInputs:
        """The track features (`vlpipe.features.tracks`) and the text width."""
        video = (FeatureInput("motion", "tracks/motion", (2 * self.grids["motion"][2][-1],)),
                 FeatureInput("appearance", "tracks/appearance",
                              (self.grids["appearance"][2][-1],)),
                 FeatureInput("meta", "tracks/meta", (META,)),
                 *(FeatureInput(name, f"tracks/{name}", shape) for name, shape
                   in self.person_features.items() if name in ("face", "parts") and shape))
        return ModelInputs(video, 1, self.spec.predicts, 0, sentence_dim=self.text_dim,
                           task=self.name)

    def selection_metric(self, metrics: dict) -> float:
        return self.spec.selection(metrics)

    def report_info(self) -> dict:
        """The test sets' sizes, what the tracks and mentions come from, and the score of
        answering "different" for every pair (the majority answer)."""
        sets = self.sets["test"]
        mentions = [pair_decisions(np.zeros((len(s.ids),) * 2, bool),
                                   s.ids[:, None] == s.ids) for s in sets]
        tracks = [pair_decisions(np.zeros_like(same), same)
                  for same in (_known_track_pairs(item)[1] for item in sets)]
        return {"text_encoder": self.encoder_name, "n_mentions": sum(len(s.ids) for s in sets),
                "n_tracks": sum(len(s.track_clip) for s in sets),
                # the data set's tracks file (docs/data.md), or the persons extractor's
                "tracks": (f"the {self.streams['persons']} store's, labelled by the annotated "
                           "tracks" if "persons" in self.streams else "ground truth"),
                "faces": (f"the {self.streams['faces']} store's" if "faces" in self.streams
                          else "none"),
                "all_different": {"fill_in": pair_accuracy(mentions)["accuracy"],
                                  "video_reid": pair_accuracy(tracks)["accuracy"]}}

    def num_items(self, split: str) -> int:
        return len(self.sets[split])

    def train_batches(self, rng: np.random.Generator) -> Iterator[CharacterBatch]:
        sets = self.sets["train"]
        order = rng.permutation(len(sets))
        for start in range(0, len(order), self.batch_size):
            yield collate([sets[i] for i in order[start : start + self.batch_size]])

    def loss(self, model: torch.nn.Module, batch: CharacterBatch) -> torch.Tensor:
        return model.loss(model(batch), batch)

    @torch.no_grad()
    def predict(self, model: torch.nn.Module, sets: list[CharacterSet], device: torch.device,
                block: int = 32) -> list[dict[str, np.ndarray]]:
        """Per set: its graphs ``G`` (N, M), ``V`` (M, M), ``C`` (N, N) as numpy."""
        model.eval()
        out = []
        for start in range(0, len(sets), block):
            chunk = sets[start : start + block]
            with autocast_for(device):
                graphs = model(collate(chunk).to(device))
            for b, item in enumerate(chunk):
                n, m = len(item.ids), len(item.track_clip)
                out.append({"G": graphs["G"][b, :n, :m].float().cpu().numpy(),
                            "V": graphs["V"][b, :m, :m].float().cpu().numpy(),
                            "C": graphs["C"][b, :n, :n].float().cpu().numpy()})
        return out

    def evaluate(self, model: torch.nn.Module, split: str, device: torch.device) -> dict:
        sets = self.sets[split]
        fill_in, video, hits, grounded = [], [], 0, 0
        for item, graphs in zip(sets, self.predict(model, sets, device), strict=True):
            fill_in.append(pair_decisions(graphs["C"] >= 0.5, item.ids[:, None] == item.ids))
            known, same = _known_track_pairs(item)
            video.append(pair_decisions(graphs["V"][np.ix_(known, known)] > 0, same))
            candidates = item.mention_clip[:, None] == item.track_clip[None]
            correct = _same(item.mention_character, item.track_character) & candidates
            right, total = grounding_hits(graphs["G"], candidates, correct)
            hits, grounded = hits + right, grounded + total
        return {"fill_in": pair_accuracy(fill_in), "video_reid": pair_accuracy(video),
                "grounding": {"accuracy": 100.0 * hits / grounded if grounded else float("nan"),
                              "mentions": grounded}}

    def examples(self, model: torch.nn.Module, device: torch.device,
                 count: int = EXAMPLES) -> list[dict]:
        """The first ``count`` test sets: each sentence with its mentions filled in by the
        model (`fill_in_ids`) beside the truth, and per clip its tracks (`track_labels`)."""
        sets = self.sets["test"][:count]
        examples = []
        for item, graphs in zip(sets, self.predict(model, sets, device), strict=True):
            ids = fill_in_ids(graphs["C"])
            examples.append({"set_id": item.set_id, "clip_ids": list(item.clip_ids),
                             "decoded": fill_in_sentences(item, ids),
                             "references": fill_in_sentences(item, item.ids),
                             "tracks": track_labels(item, graphs["G"], ids)})
        return examples


def _stacked(tracks: list, name: str, shape: tuple[int, ...] | None) -> np.ndarray | None:
    """The tracks' feature ``name`` as (M, *shape); None when ``shape`` is (no such input)."""
    if shape is None:
        return None
    return (np.stack([getattr(t, name) for t in tracks]).reshape(-1, *shape) if tracks
            else np.zeros((0, *shape), np.float32))


def standardised(texts: list[tuple[np.ndarray, np.ndarray]], fit: list[bool]
                 ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each set's (b, a) z-scored per dimension with the mean and std of the ``fit`` sets'
    mentions (the encoder's outputs have a few dimensions far larger than the rest)."""
    scaled = []
    for part in (0, 1):
        rows = np.concatenate([t[part] for t, keep in zip(texts, fit, strict=True) if keep])
        mean, std = rows.mean(axis=0), rows.std(axis=0) + 1e-6
        scaled.append([((t[part] - mean) / std).astype(np.float32) for t in texts])
    return list(zip(*scaled, strict=True))


def fill_in_ids(identity: np.ndarray) -> np.ndarray:
    """Set-local ids from an identity graph (N, N): each mention takes the id of the first
    earlier mention it is the same character as (C ≥ 0.5), else a new one."""
    ids: list[int] = []
    for n in range(len(identity)):
        same = [ids[j] for j in range(n) if identity[n, j] >= 0.5]
        ids.append(same[0] if same else max(ids, default=-1) + 1)
    return np.array(ids, np.int64)


def track_labels(item: CharacterSet, grounding: np.ndarray, ids: np.ndarray
                 ) -> list[list[dict]]:
    """Per clip, its tracks for the report's figure: the box shown, the ``PERSONk`` the model
    gives it (of the mentions it grounds there: the first of them; "" if none) and the truth
    (the local id of its character's mentions in the set; "" if never mentioned)."""
    truth = {name: i for name, i in zip(item.mention_character, item.ids, strict=True) if name}
    predicted: dict[int, int] = {}
    for n, row in enumerate(grounding):
        candidates = np.flatnonzero(item.track_clip == item.mention_clip[n])
        if len(candidates):
            predicted.setdefault(int(candidates[row[candidates].argmax()]), int(ids[n]))
    labels: list[list[dict]] = [[] for _ in item.clip_ids]
    for m, clip in enumerate(item.track_clip):
        known = truth.get(item.track_character[m])
        labels[clip].append({"box": [round(float(v), 4) for v in item.shown_box[m]],
                             "predicted": f"PERSON{predicted[m] + 1}" if m in predicted else "",
                             "truth": "" if known is None else f"PERSON{known + 1}"})
    return labels


def fill_in_sentences(item: CharacterSet, ids: np.ndarray) -> list[str]:
    """The set's sentences with each ``SOMEONE`` replaced by ``[PERSONk]`` (k = id + 1)."""
    labels = iter(f"[PERSON{i + 1}]" for i in ids)
    return [PLACEHOLDER.sub(lambda _: next(labels), sentence) for sentence in item.sentences]
