"""A stacked LSTM with layer normalisation (Ba et al., 2016), one step at a time.

Each layer's gates are ``LN(W_x x) + LN(W_h h) + b`` and its output ``o ⊙ tanh(LN(c))``;
between layers the output passes dropout. The state is a pair of (B, layers, H) tensors, batch
first, so beam search can reorder it like any other decoder state.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

LSTMState = tuple[Tensor, Tensor]  # h, c: (B, layers, H) each


class LayerNormLSTMCell(nn.Module):
    """One layer: input (B, D), state (B, H) × 2 → next state."""

    def __init__(self, input_dim: int, hidden: int) -> None:
        super().__init__()
        self.input_gates = nn.Linear(input_dim, 4 * hidden, bias=False)
        self.hidden_gates = nn.Linear(hidden, 4 * hidden, bias=True)
        self.norm_input = nn.LayerNorm(4 * hidden)
        self.norm_hidden = nn.LayerNorm(4 * hidden)
        self.norm_cell = nn.LayerNorm(hidden)

    def forward(self, x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        gates = self.norm_input(self.input_gates(x)) + self.norm_hidden(self.hidden_gates(h))
        i, f, g, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(self.norm_cell(c)), c


class LayerNormLSTM(nn.Module):
    """``layers`` layer-normalised LSTM cells stacked, dropout between them."""

    def __init__(self, input_dim: int, hidden: int, layers: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        self.hidden, self.layers = hidden, layers
        self.cells = nn.ModuleList(LayerNormLSTMCell(input_dim if k == 0 else hidden, hidden)
                                   for k in range(layers))
        self.dropout = nn.Dropout(dropout)

    def initial_state(self, batch: int, like: Tensor) -> LSTMState:
        zeros = like.new_zeros(batch, self.layers, self.hidden)
        return zeros, zeros

    def step(self, x: Tensor, state: LSTMState) -> tuple[Tensor, LSTMState]:
        """One step: input (B, D) → the top layer's output (B, H) and the next state."""
        h_in, c_in = state
        hs, cs = [], []
        for k, cell in enumerate(self.cells):
            h, c = cell(x if k == 0 else self.dropout(hs[-1]), h_in[:, k], c_in[:, k])
            hs.append(h)
            cs.append(c)
        return hs[-1], (torch.stack(hs, dim=1), torch.stack(cs, dim=1))

    def forward(self, x: Tensor, mask: Tensor, state: LSTMState | None = None
                ) -> tuple[Tensor, LSTMState]:
        """A padded sequence (B, N, D) with its mask (B, N) → the top layer's outputs (B, N, H)
        and the state after each sequence's last valid step (padding leaves it unchanged)."""
        if state is None:
            state = self.initial_state(x.shape[0], x)
        outputs = []
        for n in range(x.shape[1]):
            out, new = self.step(x[:, n], state)
            keep = mask[:, n, None, None].to(out.dtype)  # (B, 1, 1)
            state = tuple(keep * a + (1 - keep) * b for a, b in zip(new, state, strict=True))
            outputs.append(out)
        return torch.stack(outputs, dim=1), state
