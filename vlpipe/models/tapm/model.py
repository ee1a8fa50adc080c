"""TAPM (thesis ch. 7): a story's clips → one sentence per clip, from a visual encoder and a
language generator, with an adaptation phase before generation (`vlpipe.models.tapm.config`
lists the ablations).

Each clip i is read as the sequence X_i = [V_i, sep, dummy, w_1 … w_n] (Eq. 7.1; V_i: its M
segment vectors and its two context vectors, `vlpipe.models.tapm.encoder`): the hidden state at
the dummy token predicts w_1, the one at w_k predicts w_{k+1}, the one at w_n the end token
(Eq. 7.4). Adaptation (no words): the generator reads [V_i, sep, dummy] (+Cap: [V_i, sep, w_1 …
w_n]); v̂_i is the mean of its outputs at V_i (+VisualA: of the encoder's V_i), ŝ_i its output
at the dummy (+Cap: the last word), and the sequential coherence loss (Eq. 7.3) matches
f_p(ŝ_i), f_c(ŝ_i), f_f(ŝ_i) with v̂_{i−1}, v̂_i, v̂_{i+1}. Decoding feeds the dummy token
first, as the start token, through the shared beam search.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vlpipe.models.inputs import ModelInputs
from vlpipe.models.tapm.coherence import OFFSETS, coherence_loss
from vlpipe.models.tapm.config import TAPMConfig
from vlpipe.models.tapm.encoder import VisualEncoder
from vlpipe.models.tapm.generator import GENERATORS


class TAPM(nn.Module):
    """Stories of C clips (B, C, N, D) → log-probabilities of each clip's sentence."""

    def __init__(self, config: TAPMConfig, video_dim: int, vocab_size: int) -> None:
        super().__init__()
        self.config = config
        # token ids: the vocabulary's words, then the end, separator and dummy tokens
        self.end_id, self.sep_id, self.start_id = vocab_size, vocab_size + 1, vocab_size + 2
        self.encoder = VisualEncoder(video_dim, config.width, config.segments,
                                     config.residual_blocks, config.heads, config.dropout)
        self.generator = GENERATORS[config.generator](config, vocab_size + 3, vocab_size + 1)
        self.project = nn.ModuleDict({name: nn.Linear(config.width, config.width)
                                      for name in OFFSETS})  # f_p, f_c, f_f
        self.adapting = False
        # split training's first phase comes on top of the configured epochs (the training
        # loop's hook), so that -A trains on the words as long as TAPM does after adapting
        self.phase_epochs = config.adaptation_epochs if config.split else 0

    def start_epoch(self, epoch: int) -> None:
        """Split training: the first ``adaptation_epochs`` train the visual encoder (and the
        coherence projections) alone, the generator fixed."""
        self.adapting = self.config.split and epoch <= self.config.adaptation_epochs
        for parameter in self.generator.parameters():
            parameter.requires_grad_(not self.adapting)

    def _prefix(self, visual: Tensor, *tokens: int) -> Tensor:
        """Encoded clips (R, M + 2, W) followed by the embeddings of ``tokens``."""
        ids = torch.tensor(tokens, device=visual.device).expand(len(visual), -1)
        return torch.cat([visual, self.generator.embed(ids)], dim=1)

    def forward(self, feats: Tensor, mask: Tensor, words: Tensor
                ) -> tuple[Tensor | None, Tensor | float]:
        """Stories (B, C, N, D), masks (B, C, N) and each clip's sentence (B, C, L) (0:
        padding) → log-probabilities (B, C, L + 1, V + 1) of w_1 … w_n, end (None in an
        adaptation epoch) and the adaptation loss (0.0 where this epoch has none)."""
        visual = self.encoder(feats, mask)  # (B, C, M + 2, W)
        adaptation = self.config.adaptation != "none" and (self.adapting or not self.config.split)
        auxiliary = self._adaptation_loss(visual, words) if adaptation else 0.0
        if self.adapting and adaptation:
            return None, auxiliary
        rows = visual.flatten(0, 1)  # (B·C, M + 2, W)
        prefix = self._prefix(rows, self.sep_id, self.start_id)
        hidden = self.generator(torch.cat([prefix, self.generator.embed(words.flatten(0, 1))],
                                          dim=1))
        logits = self.generator.logits(hidden[:, prefix.shape[1] - 1 :])  # from the dummy on
        log_probs = F.log_softmax(logits.float(), dim=-1)
        return log_probs.unflatten(0, words.shape[:2]), auxiliary

    def _adaptation_loss(self, visual: Tensor, words: Tensor) -> Tensor:
        batch, clips = visual.shape[:2]
        rows, segments = visual.flatten(0, 1), visual.shape[2]
        if self.config.adaptation_input == "caption":  # +Cap: ŝ at each sentence's last word
            flat = words.flatten(0, 1)
            prefix = torch.cat([self._prefix(rows, self.sep_id), self.generator.embed(flat)], 1)
            last = segments + (flat != 0).sum(dim=1).clamp(min=1)  # (B·C,)
        else:
            prefix = self._prefix(rows, self.sep_id, self.start_id)
            last = torch.full((len(rows),), segments + 1, device=rows.device)
        hidden = self.generator(prefix)  # (B·C, T, W)
        text = hidden[torch.arange(len(rows), device=rows.device), last]  # ŝ (B·C, W)
        pooled = (hidden[:, :segments] if self.config.adaptation == "language" else rows)
        pooled = pooled.mean(dim=1).unflatten(0, (batch, clips))  # v̂ (B, C, W)
        projected = {name: f(text).unflatten(0, (batch, clips))
                     for name, f in self.project.items()}
        return coherence_loss(pooled, projected, self.config.adaptation_margin)

    def start(self, feats: Tensor, mask: Tensor) -> dict[str, Tensor]:
        """Decoding state of each story's clips, flattened (B·C rows): [V_i, sep]."""
        visual = self.encoder(feats, mask).flatten(0, 1)
        return {"sequence": self._prefix(visual, self.sep_id)}

    def step(self, tokens: Tensor, state: dict[str, Tensor]
             ) -> tuple[Tensor, dict[str, Tensor]]:
        """The previous tokens (R,) (the dummy first) → log-probabilities (R, V + 1); the
        generator rereads the whole sequence (no key-value cache: sentences are short)."""
        sequence = torch.cat([state["sequence"], self.generator.embed(tokens)[:, None]], dim=1)
        logits = self.generator.logits(self.generator(sequence)[:, -1])
        return F.log_softmax(logits.float(), dim=-1), {"sequence": sequence}


def build(config: TAPMConfig, inputs: ModelInputs) -> TAPM:
    """TAPM over the task's feature inputs, read side by side as one vector per step."""
    if inputs.predicts != "story":
        raise ValueError(f"TAPM tells stories, not {inputs.predicts!r}")
    return TAPM(config, inputs.video_dim, inputs.vocab_size)
