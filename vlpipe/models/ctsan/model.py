"""CT-SAN's description model (thesis §4.2.4) and its Base-SAN ablation.

| flag | the thesis's row |
|---|---|
| ``detector: true`` (default) | CT-SAN: concept detector + input and output semantic attention |
| ``detector: false`` | Base-SAN: the same encoder–decoder, no detector, no semantic attention |

A 2-layer layer-normalised LSTM encodes the mean of each frame's reduced grid (Eq. 4.7,
v̄_n, D-dimensional); its last state starts a 2-layer decoder (Eq. 4.8). The detector's top K
concepts a_i are words of the vocabulary, embedded by the decoder's own word embedding E. At
step t, with y = E y_{t-1}:

    γ_t = softmax_i(yᵀ W_γ a_i)                        input attention  (Eq. 4.9)
    x_t = W_x (y + w_xa ⊙ Σ_i γ_{t,i} a_i)             (Eq. 4.10)
    β_t = softmax_i(h_tᵀ W_β tanh(a_i))                output attention (Eq. 4.11)
    p_t = h_t + w_ha ⊙ Σ_i β_{t,i} W_β tanh(a_i)        (Eq. 4.12), words: softmax(W_y p_t)

Training adds λ1 (g(β) + g(γ)) + λ2 L_con (Eq. 4.14) to the words' cross-entropy: g (Eq.
4.15) is ``‖α‖_{1,2} + ‖αᵀ‖_{1,0.5}`` over a caption's steps, divided here by its length as the
task's cross-entropy is a mean over words; L_con the concepts' mean binary cross-entropy
against the clip's concept labels (Eq. 4.6). The top-K choice is not differentiable: the
detector learns from L_con, as in the thesis.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vlpipe.models.ctsan.config import CTSANConfig
from vlpipe.models.ctsan.detector import ConceptDetector, GridReduction
from vlpipe.models.inputs import ModelInputs, only_grid_input
from vlpipe.nn.encoders import TextEmbedding
from vlpipe.nn.recurrent import LayerNormLSTM


def attention_sparsity(weights: Tensor, steps: Tensor) -> Tensor:
    """Eq. 4.15 per caption, divided by its length: attention ``weights`` (B, T, K) over K
    concepts at T steps, ``steps`` (B, T) 1 where the step is a word → (B,)
    ``([Σ_i (Σ_t α_ti)²]^½ + Σ_t [Σ_i α_ti^½]²) / T_b``."""
    weights = weights * steps[..., None]
    over_time = weights.sum(dim=1).pow(2).sum(dim=1).sqrt()  # ‖α‖_{1,2}
    per_step = weights.clamp_min(1e-12).sqrt().sum(dim=2).pow(2) * steps  # ‖αᵀ‖_{1,0.5} terms
    return (over_time + per_step.sum(dim=1)) / steps.sum(dim=1).clamp_min(1)


class SemanticAttention(nn.Module):
    """The decoder's input (φ) and output (ϕ) attention over K concept embeddings a (B, K, d)."""

    def __init__(self, word_dim: int, hidden: int) -> None:
        super().__init__()
        self.input_bilinear = nn.Linear(word_dim, word_dim, bias=False)  # W_γ
        self.input_scale = nn.Parameter(torch.ones(word_dim))  # w_xa
        self.output_proj = nn.Linear(word_dim, hidden, bias=False)  # W_β
        self.output_scale = nn.Parameter(torch.ones(hidden))  # w_ha

    def read_input(self, word: Tensor, concepts: Tensor) -> tuple[Tensor, Tensor]:
        """y (B, d) → y + w_xa ⊙ Σ γ a (B, d), and γ (B, K)."""
        gamma = torch.einsum("bd,bkd->bk", self.input_bilinear(word), concepts).softmax(-1)
        return word + self.input_scale * torch.einsum("bk,bkd->bd", gamma, concepts), gamma

    def read_output(self, h: Tensor, concepts: Tensor) -> tuple[Tensor, Tensor]:
        """h_t (B, D) → p_t (B, D), and β (B, K)."""
        projected = self.output_proj(torch.tanh(concepts))  # (B, K, D)
        beta = torch.einsum("bd,bkd->bk", h, projected).softmax(-1)
        return h + self.output_scale * torch.einsum("bk,bkd->bd", beta, projected), beta


class CTSANCaptioner(nn.Module):
    """A grid of frame features (B, N, h·w·C) → word log-probabilities, one step at a time."""

    def __init__(self, config: CTSANConfig, grid: tuple[int, int, int], vocab_size: int,
                 concept_ids: tuple[int, ...], word_vectors: np.ndarray | None = None) -> None:
        super().__init__()
        self.config, self.grid = config, grid
        self.end_id = vocab_size
        tokens = vocab_size + 1
        if word_vectors is not None:  # the end token gets a zero row
            word_vectors = np.concatenate([word_vectors, np.zeros((1, config.word_dim),
                                                                  word_vectors.dtype)])
        self.embed = TextEmbedding(tokens, config.word_dim, init=word_vectors)
        self.reduce = GridReduction(grid[2], config.hidden, config.grid_pool)
        self.encoder = LayerNormLSTM(config.hidden, config.hidden, config.layers, config.dropout)
        self.decoder = LayerNormLSTM(config.hidden, config.hidden, config.layers, config.dropout)
        self.input_proj = nn.Linear(config.word_dim, config.hidden)  # W_x
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(config.hidden, tokens)  # W_y
        self.register_buffer("concept_ids", torch.tensor(concept_ids, dtype=torch.long))
        self.detector = self.attention = None
        if config.detector:
            cells = -(-grid[0] // config.grid_pool) * -(-grid[1] // config.grid_pool)
            self.detector = ConceptDetector(config.hidden, cells, config.attention_channels,
                                            len(concept_ids))
            self.attention = SemanticAttention(config.word_dim, config.hidden)

    def _encode(self, feats: Tensor, mask: Tensor) -> tuple[dict[str, Tensor], Tensor | None]:
        """The decoder's initial state and the concept logits (B, C) (None: Base-SAN)."""
        v = self.reduce(feats.view(*feats.shape[:2], *self.grid))  # (B, N, D, h', w')
        _, (h, c) = self.encoder(v.mean(dim=(3, 4)), mask)  # v̄_n (B, N, D) → (B, layers, D)
        state = {"h": h, "c": c}
        if self.detector is None:
            return state, None
        logits = self.detector(v, mask)  # (B, C)
        top = logits.topk(min(self.config.top_k, logits.shape[1]), dim=1).indices  # (B, K)
        state["concepts"] = self.embed(self.concept_ids[top])  # a_i (B, K, d)
        return state, logits

    def start(self, feats: Tensor, mask: Tensor) -> dict[str, Tensor]:
        return self._encode(feats, mask)[0]

    def step(self, tokens: Tensor, state: dict[str, Tensor]
             ) -> tuple[Tensor, dict[str, Tensor]]:
        """One word: previous tokens (B,) → log-probabilities (B, V + 1) and the next state
        (with this step's attention weights γ, β (B, K) when it has concepts)."""
        word = self.dropout(self.embed(tokens))  # (B, d)
        attention = {}
        if self.attention is not None:
            word, attention["gamma"] = self.attention.read_input(word, state["concepts"])
        h, (hs, cs) = self.decoder.step(self.input_proj(word), (state["h"], state["c"]))
        if self.attention is not None:
            h, attention["beta"] = self.attention.read_output(h, state["concepts"])
        logits = self.out(self.dropout(h))
        return F.log_softmax(logits.float(), dim=-1), {**state, "h": hs, "c": cs, **attention}

    def concept_scores(self, feats: Tensor, mask: Tensor) -> Tensor | None:
        """Each concept's probability p (B, C); None for Base-SAN (no detector)."""
        logits = self._encode(feats, mask)[1]
        return None if logits is None else torch.sigmoid(logits)

    def forward(self, feats: Tensor, mask: Tensor, inputs: Tensor, concepts: Tensor
                ) -> tuple[Tensor, Tensor]:
        """Teacher forcing: clips, input tokens (B, T) (end_id first) and the clips' concept
        labels (B, C) → log-probabilities (B, T, V + 1) and λ1 (g(β) + g(γ)) + λ2 L_con."""
        state, logits = self._encode(feats, mask)
        steps, gammas, betas = [], [], []
        for t in range(inputs.shape[1]):
            log_probs, state = self.step(inputs[:, t], state)
            steps.append(log_probs)
            if logits is not None:
                gammas.append(state["gamma"])
                betas.append(state["beta"])
        log_probs = torch.stack(steps, dim=1)
        if logits is None:
            return log_probs, log_probs.new_zeros(())
        words = (inputs != self.embed.padding_idx).to(log_probs.dtype)  # (B, T)
        sparsity = (attention_sparsity(torch.stack(gammas, 1), words)
                    + attention_sparsity(torch.stack(betas, 1), words)).mean()
        detection = F.binary_cross_entropy_with_logits(logits.float(), concepts)
        return log_probs, (self.config.attention_weight * sparsity
                           + self.config.concept_weight * detection)


def build(config: CTSANConfig, inputs: ModelInputs) -> CTSANCaptioner:
    """CT-SAN (or Base-SAN) over the input named ``grid`` (or the only input), a (h, w, C)
    grid such as ResNet's res5c."""
    if inputs.predicts != "caption":
        raise ValueError(f"CT-SAN's description model writes captions, not "
                         f"{inputs.predicts!r} (its FIB, MC and RET models are not built yet)")
    if not inputs.concept_ids:
        raise ValueError("CT-SAN reads the data set's concept words (text/concepts.json); "
                         "none were given")
    feature = only_grid_input(inputs, "grid", "CT-SAN")
    return CTSANCaptioner(config, feature.shape, inputs.vocab_size, inputs.concept_ids,
                          inputs.word_vectors)


__all__ = ["CTSANCaptioner", "SemanticAttention", "attention_sparsity", "build"]
