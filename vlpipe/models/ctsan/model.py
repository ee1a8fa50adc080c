"""CT-SAN (thesis ch. 4): its description model (§4.2.4) and the builder of its models.

| flag | the thesis's row |
|---|---|
| ``detector: true`` (default) | CT-SAN: concept detector + semantic attention |
| ``detector: false`` | Base-SAN: the same models without detector and semantic attention |

Description: the clip's encoding (`vlpipe.models.ctsan.video`) starts a 2-layer
layer-normalised LSTM decoder (Eq. 4.8, h_0 = s_N). At step t, with y = E y_{t-1}, the input
attention gives x_t = W_x (y + w_xa ⊙ Σ_i γ_{t,i} a_i) and the output attention p_t = h_t +
w_ha ⊙ Σ_i β_{t,i} W_β tanh(a_i), the words softmax(W_y p_t) (Eqs. 4.9–4.13;
`vlpipe.models.ctsan.attention`). Training adds λ1 (g(β) + g(γ)) + λ2 L_con (Eq. 4.14) to the
words' cross-entropy, g per caption divided by its length (the task's cross-entropy is a mean
over words). The top-K choice is not differentiable: the detector learns from L_con, as in the
thesis. Multiple choice: `vlpipe.models.ctsan.choice`; retrieval:
`vlpipe.models.ctsan.retrieval`; fill in the blank: `vlpipe.models.ctsan.blank`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vlpipe.models.ctsan.attention import InputAttention, OutputAttention, attention_sparsity
from vlpipe.models.ctsan.blank import CTSANBlank
from vlpipe.models.ctsan.choice import CTSANChoice
from vlpipe.models.ctsan.config import CTSANConfig
from vlpipe.models.ctsan.retrieval import CTSANRetrieval
from vlpipe.models.ctsan.video import ClipEncoding, ConceptVideoEncoder
from vlpipe.models.inputs import ModelInputs, only_grid_input
from vlpipe.nn.encoders import caption_embedding
from vlpipe.nn.recurrent import LayerNormLSTM


class CTSANCaptioner(nn.Module):
    """A grid of frame features (B, N, h·w·C) → word log-probabilities, one step at a time."""

    def __init__(self, config: CTSANConfig, grid: tuple[int, int, int], vocab_size: int,
                 concept_ids: tuple[int, ...], word_vectors: np.ndarray | None = None) -> None:
        super().__init__()
        self.end_id = vocab_size
        self.embed = caption_embedding(vocab_size, config.word_dim, word_vectors)
        self.video = ConceptVideoEncoder(config, grid, concept_ids)
        self.decoder = LayerNormLSTM(config.hidden, config.hidden, config.layers, config.dropout)
        self.input_proj = nn.Linear(config.word_dim, config.hidden)  # W_x
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(config.hidden, vocab_size + 1)  # W_y, the end token included
        self.read_input = self.read_output = None
        if config.detector:
            self.read_input = InputAttention(config.word_dim)
            self.read_output = OutputAttention(config.word_dim, config.hidden)

    @staticmethod
    def _state(clips: ClipEncoding) -> dict[str, Tensor]:
        state = {"h": clips.h, "c": clips.c}
        return state if clips.concepts is None else {**state, "concepts": clips.concepts}

    def start(self, feats: Tensor, mask: Tensor) -> dict[str, Tensor]:
        return self._state(self.video(feats, mask, self.embed))

    def step(self, tokens: Tensor, state: dict[str, Tensor]
             ) -> tuple[Tensor, dict[str, Tensor]]:
        """One word: previous tokens (B,) → log-probabilities (B, V + 1) and the next state
        (with this step's attention weights γ, β (B, K) when it has concepts)."""
        word = self.dropout(self.embed(tokens))  # (B, d)
        attention = {}
        if self.read_input is not None:
            word, attention["gamma"] = self.read_input(word, state["concepts"])
        h, (hs, cs) = self.decoder.step(self.input_proj(word), (state["h"], state["c"]))
        if self.read_output is not None:
            h, attention["beta"] = self.read_output(h, state["concepts"])
        logits = self.out(self.dropout(h))
        return F.log_softmax(logits.float(), dim=-1), {**state, "h": hs, "c": cs, **attention}

    def concept_scores(self, feats: Tensor, mask: Tensor) -> Tensor | None:
        """Each concept's probability p (B, C); None for Base-SAN (no detector)."""
        logits = self.video(feats, mask, self.embed).logits
        return None if logits is None else torch.sigmoid(logits)

    def forward(self, feats: Tensor, mask: Tensor, inputs: Tensor, concepts: Tensor
                ) -> tuple[Tensor, Tensor]:
        """Teacher forcing: clips, input tokens (B, T) (end_id first) and the clips' concept
        labels (B, C) → log-probabilities (B, T, V + 1) and λ1 (g(β) + g(γ)) + λ2 L_con."""
        clips = self.video(feats, mask, self.embed)
        state = self._state(clips)
        steps, gammas, betas = [], [], []
        for t in range(inputs.shape[1]):
            log_probs, state = self.step(inputs[:, t], state)
            steps.append(log_probs)
            if clips.concepts is not None:
                gammas.append(state["gamma"])
                betas.append(state["beta"])
        log_probs = torch.stack(steps, dim=1)
        sparsity = None
        if gammas:
            words = (inputs != self.embed.padding_idx).to(log_probs.dtype)  # (B, T)
            sparsity = (attention_sparsity(torch.stack(gammas, 1), words)
                        + attention_sparsity(torch.stack(betas, 1), words))
        return log_probs, self.video.auxiliary_loss(clips, concepts, sparsity)


def build(config: CTSANConfig, inputs: ModelInputs
          ) -> CTSANCaptioner | CTSANChoice | CTSANRetrieval | CTSANBlank:
    """CT-SAN (or Base-SAN) over the input named ``grid`` (or the only input), a (h, w, C)
    grid such as ResNet's res5c: the description model for captions, the retrieval model for
    the retrieval task's scores, the multiple-choice model for other scores, the
    fill-in-the-blank model for a word."""
    if not inputs.concept_ids:
        raise ValueError("CT-SAN reads the data set's concept words (text/concepts.json); "
                         "none were given")
    scorer = CTSANRetrieval if inputs.task == "retrieval" else CTSANChoice
    models = {"caption": CTSANCaptioner, "score": scorer, "word": CTSANBlank}
    if inputs.predicts not in models:
        raise ValueError(f"CT-SAN's models write captions, score pairs or fill a blank, not "
                         f"{inputs.predicts!r}")
    feature = only_grid_input(inputs, "grid", "CT-SAN")
    return models[inputs.predicts](config, feature.shape, inputs.vocab_size, inputs.concept_ids,
                                   inputs.word_vectors)


__all__ = ["CTSANBlank", "CTSANCaptioner", "CTSANChoice", "CTSANRetrieval", "build"]
