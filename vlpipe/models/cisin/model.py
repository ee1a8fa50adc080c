"""CiSIN (thesis ch. 6): a set's mentions (Textual Character Embeddings s_n = [b_n; a_n]) and
person tracks (Visual Track Embeddings: motion i_m, appearance h_m, metadata m_m; see
`vlpipe.tasks.characters`) → three graphs and the identity graph built from them:

- grounding G_nm = MLP([MLP(m_m); MLP(s_n) ⊙ MLP(h_m); MLP(s_n) ⊙ MLP(i_m); MLP(s_n) ⊙
  MLP(f_m)]) (Eq. 6.3–6.5): metadata, appearance at the track's box, motion, and the face
  embedding where the run reads faces (zero for a track without one), with a gender head
  σ(MLP(b_n)) (Eq. 6.6);
- video re-id V_ij = Σ_t w_t · S_t(i, j) + b over the terms t of ``video_terms`` (Eq. 6.7–6.9):
  the cosine of the two tracks' MLP-embedded faces (0 unless both have one), of their
  appearance, and of their body parts averaged over the keypoints both show (0 if none): the
  thesis's "dot product and a scaling function" on unit vectors, so that each w_t sets its
  term's scale;
- text re-id L_ij = σ(MLP(b_i ⊙ b_j)) (Eq. 6.10);
- identity C = mean(L, R), R = σ(G V Gᵀ) (Eq. 6.11), G's rows a softmax over the tracks of the
  mention's clip in training and its best track (one-hot) in evaluation.

Losses (§6.3.6): triplet losses on G (margin α, both a negative track and a negative mention)
and on V (margin β), binary cross-entropy on C (or on L alone: separate training) and on the
gender head. V's sign is its decision, to which the triplet loss is blind: its offset b starts
between the same track (cosine 1) and different ones, and w_t and b are fitted to the known
pairs by a logistic loss on the detached similarities (Platt scaling). Every MLP is two fully
connected layers with a leaky ReLU between.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vlpipe.models.cisin.config import VIDEO_TERMS, CiSINConfig
from vlpipe.models.inputs import ModelInputs

TERM_INPUTS = {"face": "face", "bbox": "appearance", "parts": "parts"}  # V term → track feature
TERM_SOURCES = {"face": "faces", "parts": "persons"}  # the input that brings a term's feature
REID_SCALE = 5.0  # a V term's initial scale: cosines in [-1, 1] span the triplet margin 2.0


def mlp(width: int, hidden: int, out: int | None = None, dropout: float = 0.0) -> nn.Sequential:
    """Two fully connected layers with a leaky ReLU between (output ``hidden`` unless given)."""
    return nn.Sequential(nn.Linear(width, hidden), nn.LeakyReLU(), nn.Dropout(dropout),
                         nn.Linear(hidden, hidden if out is None else out))


def triplet_hinge(scores: Tensor, positive: Tensor, negative: Tensor, margin: float) -> Tensor:
    """Mean of max(0, margin − s(a, p) + s(a, n)) over every anchor a (rows of the last axis
    but one: ``scores`` (..., K)), positive p and negative n with ``positive`` / ``negative``
    (..., K) True; 0 without any triplet."""
    hinge = F.relu(margin - scores[..., :, None] + scores[..., None, :])  # (..., K, K)
    valid = positive[..., :, None] & negative[..., None, :]
    return hinge[valid].mean() if valid.any() else scores.sum() * 0.0


def cosines(embedded: Tensor, present: Tensor | None = None) -> Tensor:
    """(B, M, H) → (B, M, M) cosine similarities; 0 for a pair where ``present`` (B, M) is
    False for either track."""
    unit = F.normalize(embedded, dim=-1)
    if present is not None:
        unit = unit * present[..., None]
    return unit @ unit.transpose(1, 2)


def part_cosines(embedded: Tensor, seen: Tensor) -> Tensor:
    """(B, M, K, H) body parts, (B, M, K) seen → (B, M, M): the mean over the keypoints both
    tracks show of their parts' cosine similarity (0 where they share none)."""
    unit = F.normalize(embedded, dim=-1) * seen[..., None]
    total = torch.einsum("bikh,bjkh->bij", unit, unit)
    shared = torch.einsum("bik,bjk->bij", seen.float(), seen.float())
    return total / shared.clamp(min=1.0)


class CiSIN(nn.Module):
    """Sets of mentions and tracks (`vlpipe.tasks.characters.CharacterBatch`) → graphs.
    ``sizes``: the width of each track feature the task gives (motion, appearance, meta, and
    face / parts where the run reads faces / persons)."""

    def __init__(self, config: CiSINConfig, text_dim: int, sizes: dict[str, int]) -> None:
        super().__init__()
        self.config = config
        hidden, drop = config.hidden, config.dropout
        # grounding's visual branches, each multiplied with its own MLP of s_n
        visual = ["appearance", *(["motion"] if config.motion else []),
                  *(["face"] if "face" in sizes else [])]
        self.ground_visual = nn.ModuleDict({name: mlp(sizes[name], hidden, dropout=drop)
                                            for name in visual})
        self.ground_text = nn.ModuleDict({name: mlp(2 * text_dim, hidden, dropout=drop)
                                          for name in visual})
        self.ground_meta = mlp(sizes["meta"], hidden, dropout=drop)
        self.ground_score = mlp((1 + len(visual)) * hidden, hidden, 1, drop)
        self.gender = mlp(text_dim, hidden, 1, drop) if config.attributes else None
        terms = config.video_terms or [t for t in VIDEO_TERMS if TERM_INPUTS[t] in sizes]
        missing = [t for t in terms if TERM_INPUTS[t] not in sizes]  # bbox's always is
        if missing:
            raise ValueError(f"video_terms {missing} need the run's "
                             f"{[TERM_INPUTS[t] for t in missing]} track features: name a "
                             f"{' and a '.join(TERM_SOURCES[t] for t in missing)} input")
        self.reid = nn.ModuleDict({t: mlp(sizes[TERM_INPUTS[t]], hidden, dropout=drop)
                                   for t in terms})
        self.reid_scale = nn.ParameterDict({t: nn.Parameter(torch.tensor(REID_SCALE))
                                            for t in terms})
        # V's sign starts at cosine 1/2 in every term: between different tracks (the triplet
        # loss pushes them apart) and the same track seen twice (cosine 1)
        self.reid_bias = nn.Parameter(torch.tensor(-REID_SCALE * len(terms) / 2))
        self.text_reid = mlp(text_dim, hidden, 1, drop)
        self.text_to_video = nn.Parameter(torch.zeros(())) if config.video_text else None

    def grounding(self, batch) -> Tensor:
        """G (B, N, M): each mention against each track of its set."""
        text = torch.cat([batch.someone, batch.action], dim=-1)  # s_n (B, N, 2D)
        fused = [self.ground_meta(batch.meta)[:, None].expand(-1, text.shape[1], -1, -1)]
        for name, track_mlp in self.ground_visual.items():
            track = track_mlp(getattr(batch, name))  # (B, M, H)
            if name == "face":
                track = track * batch.has_face[..., None]  # no face: no face evidence
            fused.append(self.ground_text[name](text)[:, :, None] * track[:, None])  # (B,N,M,H)
        return self.ground_score(torch.cat(fused, dim=-1)).squeeze(-1)

    def reid_similarities(self, batch) -> Tensor:
        """S (B, T, M, M): each of V's T terms' cosine similarities between the tracks."""
        similarities = []
        for term, term_mlp in self.reid.items():
            embedded = term_mlp(getattr(batch, TERM_INPUTS[term]))  # (B, M, H) / (B, M, K, H)
            similarities.append(
                part_cosines(embedded, batch.part_seen) if term == "parts"
                else cosines(embedded, batch.has_face if term == "face" else None))
        return torch.stack(similarities, dim=1)

    def video_reid(self, similarities: Tensor) -> Tensor:
        """V (B, M, M) = Σ_t w_t S_t + b."""
        scale = torch.stack(list(self.reid_scale.values()))  # (T,)
        return torch.einsum("t,btij->bij", scale, similarities) + self.reid_bias

    def text_reid_graph(self, batch) -> Tensor:
        """L (B, N, N) in (0, 1)."""
        pairs = batch.someone[:, :, None] * batch.someone[:, None]  # (B, N, N, D)
        return torch.sigmoid(self.text_reid(pairs).squeeze(-1))

    def assignment(self, grounding: Tensor, candidates: Tensor) -> Tensor:
        """Each mention's distribution over the tracks of its clip (B, N, M): a softmax in
        training, its best track in evaluation; zero for a mention whose clip has none."""
        masked = grounding.float().masked_fill(~candidates, float("-inf"))
        if self.training:
            weights = torch.softmax(masked, dim=-1)
        else:
            weights = F.one_hot(masked.argmax(dim=-1), grounding.shape[-1]).float()
        return torch.where(candidates.any(dim=-1, keepdim=True), weights,
                           torch.zeros_like(weights))

    def forward(self, batch) -> dict[str, Tensor]:
        grounding = self.grounding(batch)
        similarities = self.reid_similarities(batch).float()
        video = self.video_reid(similarities)
        text = self.text_reid_graph(batch).float()
        assigned = self.assignment(grounding, batch.candidates)  # (B, N, M)
        if self.text_to_video is not None:  # + Text: V + λ Gᵀ L G
            video = video + self.text_to_video * assigned.transpose(1, 2) @ text @ assigned
        visual = torch.sigmoid(assigned @ video @ assigned.transpose(1, 2))  # R (B, N, N)
        identity = {"both": (text + visual) / 2, "text": text,
                    "visual": visual}[self.config.fill_in]
        graphs = {"G": grounding, "V": video, "L": text, "R": visual, "C": identity,
                  "S": similarities}
        if self.gender is not None:
            graphs["gender"] = self.gender(batch.someone).squeeze(-1)
        return graphs

    def loss(self, graphs: dict[str, Tensor], batch) -> Tensor:
        config = self.config
        grounding = graphs["G"].float()
        # a negative track for (mention, track) pairs: a known, different character
        ground = (triplet_hinge(grounding, batch.grounded, batch.distinct,
                                config.grounding_margin)
                  + triplet_hinge(grounding.transpose(1, 2), batch.grounded.transpose(1, 2),
                                  batch.distinct.transpose(1, 2), config.grounding_margin))
        known = batch.track_known[:, :, None] & batch.track_known[:, None]  # (B, M, M)
        others = ~torch.eye(known.shape[-1], dtype=torch.bool, device=known.device)
        video = triplet_hinge(graphs["V"], batch.same_track & others,
                              known & ~batch.same_track, config.video_margin)
        pairs = batch.mention_mask[:, :, None] & batch.mention_mask[:, None]
        pairs &= ~torch.eye(pairs.shape[-1], dtype=torch.bool, device=pairs.device)
        identity = graphs["C"] if config.joint else graphs["L"]
        same = F.binary_cross_entropy(identity[pairs].clamp(1e-6, 1 - 1e-6),
                                      batch.same_mention[pairs].float())
        # V's sign decides; the triplet loss is blind to its offset, so w and b are also fitted
        # to the pairs' labels by logistic regression on the detached similarities (Platt
        # scaling), leaving the embeddings to the triplet loss
        fitted = self.video_reid(graphs["S"].detach())
        pairs_known = known & others
        calibration = (F.binary_cross_entropy_with_logits(
            fitted[pairs_known], batch.same_track[pairs_known].float())
            if pairs_known.any() else fitted.sum() * 0.0)
        total = ground + video + calibration + same
        if "gender" in graphs and batch.gender_known.any():
            total = total + F.binary_cross_entropy_with_logits(
                graphs["gender"].float()[batch.gender_known], batch.gender[batch.gender_known])
        return total


def build(config: CiSINConfig, inputs: ModelInputs) -> CiSIN:
    """CiSIN over the task's track features and mention vectors."""
    if inputs.predicts != "characters":
        raise ValueError(f"CiSIN identifies characters, not {inputs.predicts!r}")
    sizes = {feature.name: feature.shape[-1] for feature in inputs.video}
    return CiSIN(config, inputs.sentence_dim, sizes)
