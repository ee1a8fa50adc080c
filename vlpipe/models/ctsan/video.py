"""What every CT-SAN model reads from a clip: its reduced grid encoded by a layer-normalised
LSTM (the language model's initial state s_N, Eq. 4.7) and, unless Base-SAN, its detected
concepts (the top-K concept words' logits and embeddings)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vlpipe.models.ctsan.config import CTSANConfig
from vlpipe.models.ctsan.detector import ConceptDetector, GridReduction
from vlpipe.nn.recurrent import LayerNormLSTM


@dataclass
class ClipEncoding:
    """``h``, ``c``: the encoder's last state (B, layers, D); ``logits``: the concepts' (B, C)
    and ``concepts``: the top K's word embeddings (B, K, d) (both None: Base-SAN)."""

    h: Tensor
    c: Tensor
    logits: Tensor | None
    concepts: Tensor | None


class ConceptVideoEncoder(nn.Module):
    """Frames (B, N, h·w·C) → a `ClipEncoding`; concept words are embedded by ``embed``, the
    language model's word embedding (one table for words and concepts, as in the thesis)."""

    def __init__(self, config: CTSANConfig, grid: tuple[int, int, int], concept_ids: tuple[int, ...]
                 ) -> None:
        super().__init__()
        self.grid, self.top_k = grid, config.top_k
        self.concept_weight, self.attention_weight = config.concept_weight, config.attention_weight
        self.reduce = GridReduction(grid[2], config.hidden, config.grid_pool)
        self.encoder = LayerNormLSTM(config.hidden, config.hidden, config.layers, config.dropout)
        self.register_buffer("concept_ids", torch.tensor(concept_ids, dtype=torch.long))
        self.detector = None
        if config.detector:
            cells = -(-grid[0] // config.grid_pool) * -(-grid[1] // config.grid_pool)
            self.detector = ConceptDetector(config.hidden, cells, config.attention_channels,
                                            len(concept_ids))

    def forward(self, feats: Tensor, mask: Tensor, embed: nn.Embedding) -> ClipEncoding:
        v = self.reduce(feats.view(*feats.shape[:2], *self.grid))  # (B, N, D, h', w')
        _, (h, c) = self.encoder(v.mean(dim=(3, 4)), mask)  # v̄_n (B, N, D) → (B, layers, D)
        if self.detector is None:
            return ClipEncoding(h, c, None, None)
        logits = self.detector(v, mask)  # (B, C)
        top = logits.topk(min(self.top_k, logits.shape[1]), dim=1).indices  # (B, K)
        return ClipEncoding(h, c, logits, embed(self.concept_ids[top]))

    def detection_loss(self, encoding: ClipEncoding, labels: Tensor) -> Tensor:
        """L_con (Eq. 4.6): the concepts' mean binary cross-entropy against the clips' labels
        (B, C); zero for Base-SAN."""
        if encoding.logits is None:
            return labels.new_zeros(())
        return F.binary_cross_entropy_with_logits(encoding.logits.float(), labels)

    def auxiliary_loss(self, encoding: ClipEncoding, labels: Tensor,
                       sparsity: Tensor | None = None) -> Tensor:
        """What every CT-SAN model adds to its task's loss: λ2 L_con and, with semantic
        attention, λ1 times the mean of ``sparsity`` (g of the attention weights per sequence,
        `vlpipe.models.ctsan.attention.attention_sparsity`)."""
        loss = self.concept_weight * self.detection_loss(encoding, labels)
        if sparsity is not None:
            loss = loss + self.attention_weight * sparsity.mean()
        return loss


DETECTOR_PREFIXES = ("video.reduce.", "video.detector.")  # what init_from transfers


def copy_detector(model: nn.Module, state: dict[str, Tensor], freeze: bool) -> list[str]:
    """A task model's ``load_upstream``: copy a description run's concept detector and grid
    reduction (``state``) into ``model``, as the thesis transfers the detector; ``freeze``
    stops them from training. Returns the names copied."""
    own = model.state_dict()
    copied = {name: value for name, value in state.items()
              if name.startswith(DETECTOR_PREFIXES) and name in own
              and own[name].shape == value.shape}
    model.load_state_dict(copied, strict=False)
    if freeze:
        for name, parameter in model.named_parameters():
            if name in copied:
                parameter.requires_grad_(False)
    return sorted(copied)
