"""CiSIN (thesis ch. 6): a set's mentions (Textual Character Embeddings s_n = [b_n; a_n]) and
person tracks (Visual Track Embeddings: motion i_m, appearance h_m, metadata m_m; see
`vlpipe.tasks.characters`) → three graphs and the identity graph built from them:

- grounding G_nm = MLP([MLP(m_m); MLP(s_n) ⊙ MLP(h_m); MLP(s_n) ⊙ MLP(i_m)]) (Eq. 6.3–6.5; the
  thesis's face term reads the face embedding, ours the appearance of the track's box until
  faces are read), with a gender head σ(MLP(b_n)) (Eq. 6.6);
- video re-id V_ij = w · cos(MLP(h_i), MLP(h_j)) + b (Eq. 6.7–6.9, the appearance term; the
  thesis's "dot product and a scaling function" on unit vectors, so that w alone sets the
  scale);
- text re-id L_ij = σ(MLP(b_i ⊙ b_j)) (Eq. 6.10);
- identity C = mean(L, R), R = σ(G V Gᵀ) (Eq. 6.11), G's rows a softmax over the tracks of the
  mention's clip in training and its best track (one-hot) in evaluation.

Losses (§6.3.6): triplet losses on G (margin α, both a negative track and a negative mention)
and on V (margin β), binary cross-entropy on C (or on L alone: separate training) and on the
gender head. Every MLP is two fully connected layers with a leaky ReLU between.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vlpipe.models.cisin.config import CiSINConfig
from vlpipe.models.inputs import ModelInputs

REID_SCALE = 5.0  # V's initial scale: cosines in [-1, 1] span the triplet margin 2.0


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


class CiSIN(nn.Module):
    """Sets of mentions and tracks (`vlpipe.tasks.characters.CharacterBatch`) → graphs."""

    def __init__(self, config: CiSINConfig, text_dim: int, motion_dim: int,
                 appearance_dim: int, meta_dim: int) -> None:
        super().__init__()
        self.config = config
        hidden, drop = config.hidden, config.dropout
        branches = 3 if config.motion else 2
        self.ground_text = nn.ModuleList([mlp(2 * text_dim, hidden, dropout=drop)
                                          for _ in range(branches - 1)])
        self.ground_appearance = mlp(appearance_dim, hidden, dropout=drop)
        self.ground_motion = mlp(motion_dim, hidden, dropout=drop) if config.motion else None
        self.ground_meta = mlp(meta_dim, hidden, dropout=drop)
        self.ground_score = mlp(branches * hidden, hidden, 1, drop)
        self.gender = mlp(text_dim, hidden, 1, drop) if config.attributes else None
        self.reid_appearance = mlp(appearance_dim, hidden, dropout=drop)
        self.reid_scale = nn.Parameter(torch.tensor(REID_SCALE))
        self.reid_bias = nn.Parameter(torch.zeros(()))
        self.text_reid = mlp(text_dim, hidden, 1, drop)
        self.text_to_video = nn.Parameter(torch.zeros(())) if config.video_text else None

    def grounding(self, batch) -> Tensor:
        """G (B, N, M): each mention against each track of its set."""
        text = torch.cat([batch.someone, batch.action], dim=-1)  # s_n (B, N, 2D)
        fused = [self.ground_meta(batch.meta)[:, None].expand(-1, text.shape[1], -1, -1)]
        visual = [self.ground_appearance(batch.appearance)]  # (B, M, H) each
        if self.ground_motion is not None:
            visual.append(self.ground_motion(batch.motion))
        for text_mlp, track in zip(self.ground_text, visual, strict=True):
            fused.append(text_mlp(text)[:, :, None] * track[:, None])  # (B, N, M, H)
        return self.ground_score(torch.cat(fused, dim=-1)).squeeze(-1)

    def video_reid(self, batch) -> Tensor:
        """V (B, M, M): the tracks' appearance embeddings' cosine similarities, scaled."""
        embedded = F.normalize(self.reid_appearance(batch.appearance), dim=-1)  # (B, M, H)
        return self.reid_scale * embedded @ embedded.transpose(1, 2) + self.reid_bias

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
        video = self.video_reid(batch).float()
        text = self.text_reid_graph(batch).float()
        assigned = self.assignment(grounding, batch.candidates)  # (B, N, M)
        if self.text_to_video is not None:  # + Text: V + λ Gᵀ L G
            video = video + self.text_to_video * assigned.transpose(1, 2) @ text @ assigned
        visual = torch.sigmoid(assigned @ video @ assigned.transpose(1, 2))  # R (B, N, N)
        identity = {"both": (text + visual) / 2, "text": text,
                    "visual": visual}[self.config.fill_in]
        graphs = {"G": grounding, "V": video, "L": text, "R": visual, "C": identity}
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
        total = ground + video + same
        if "gender" in graphs and batch.gender_known.any():
            total = total + F.binary_cross_entropy_with_logits(
                graphs["gender"].float()[batch.gender_known], batch.gender[batch.gender_known])
        return total


def build(config: CiSINConfig, inputs: ModelInputs) -> CiSIN:
    """CiSIN over the task's track features and mention vectors."""
    if inputs.predicts != "characters":
        raise ValueError(f"CiSIN identifies characters, not {inputs.predicts!r}")
    sizes = {feature.name: feature.size for feature in inputs.video}
    return CiSIN(config, inputs.sentence_dim, sizes["motion"], sizes["appearance"],
                 sizes["meta"])
