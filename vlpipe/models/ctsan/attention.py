"""CT-SAN's semantic attention over K concept embeddings a (B, K, d) (thesis §4.2.4) and the
sparsity regulariser g of its weights (Eq. 4.15)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class InputAttention(nn.Module):
    """φ: a word y (B, d) → ``y + w_xa ⊙ Σ_i γ_i a_i`` (B, d) and γ (B, K), with
    ``γ = softmax_i(yᵀ W_γ a_i)`` (Eqs. 4.9–4.10, before the projection W_x)."""

    def __init__(self, word_dim: int) -> None:
        super().__init__()
        self.bilinear = nn.Linear(word_dim, word_dim, bias=False)  # W_γ
        self.scale = nn.Parameter(torch.ones(word_dim))  # w_xa

    def forward(self, word: Tensor, concepts: Tensor) -> tuple[Tensor, Tensor]:
        gamma = torch.einsum("bd,bkd->bk", self.bilinear(word), concepts).softmax(-1)
        return word + self.scale * torch.einsum("bk,bkd->bd", gamma, concepts), gamma

    def each_word(self, words: Tensor, concepts: Tensor) -> tuple[Tensor, Tensor]:
        """Every word of a sentence (B, M, d), as the language model reads it when the next
        word does not depend on the last output (multiple choice, fill in the blank) →
        (B, M, d) and γ (B, M, K)."""
        gamma = torch.einsum("bmd,bkd->bmk", self.bilinear(words), concepts).softmax(-1)
        return words + self.scale * torch.einsum("bmk,bkd->bmd", gamma, concepts), gamma


class OutputAttention(nn.Module):
    """ϕ: a state h (B, D) → ``h + w_ha ⊙ Σ_i β_i W_β tanh(a_i)`` (B, D) and β (B, K), with
    ``β = softmax_i(hᵀ W_β tanh(a_i))`` (Eqs. 4.11–4.12)."""

    def __init__(self, word_dim: int, hidden: int) -> None:
        super().__init__()
        self.project = nn.Linear(word_dim, hidden, bias=False)  # W_β
        self.scale = nn.Parameter(torch.ones(hidden))  # w_ha

    def forward(self, h: Tensor, concepts: Tensor) -> tuple[Tensor, Tensor]:
        projected = self.project(torch.tanh(concepts))  # (B, K, D)
        beta = torch.einsum("bd,bkd->bk", h, projected).softmax(-1)
        return h + self.scale * torch.einsum("bk,bkd->bd", beta, projected), beta


def attention_sparsity(weights: Tensor, steps: Tensor) -> Tensor:
    """Eq. 4.15 per sequence, divided by its length: attention ``weights`` (B, T, K) over K
    concepts at T steps, ``steps`` (B, T) 1 where the step is a word → (B,)
    ``([Σ_i (Σ_t α_ti)²]^½ + Σ_t [Σ_i α_ti^½]²) / T_b``."""
    weights = weights * steps[..., None]
    over_time = weights.sum(dim=1).pow(2).sum(dim=1).sqrt()  # ‖α‖_{1,2}
    per_step = weights.clamp_min(1e-12).sqrt().sum(dim=2).pow(2) * steps  # ‖αᵀ‖_{1,0.5} terms
    return (over_time + per_step.sum(dim=1)) / steps.sum(dim=1).clamp_min(1)
