"""CT-SAN's visual front end and concept word detector (thesis §4.2.2).

The frames' grid (h, w, C_in) is max-pooled ``grid_pool`` × ``grid_pool`` and convolved 3×3
to D channels (ReLU: ours, the thesis names no activation): v_n, a grid of P = h'·w' cells.
One tracing LSTM per cell (L = P, weights shared) follows its own path through the frames: its
attention starts one-hot at its cell (α_0), and for n ≥ 1

    e_n(j, k) = v_n(j, k) ⊙ h_{n-1}          (Eq. 4.3)
    α_n = softmax(Conv(e_n))                  (Eq. 4.4: 3×3 conv, ReLU, 1×1 conv: ours)
    c_n = Σ_{j,k} α_n(j, k) v_n(j, k)         (Eq. 4.1)
    h_n = LSTM(c_n, h_{n-1})                  (Eq. 4.2)

and the concepts' probabilities are p = σ(W_p [h_N^(1); …; h_N^(L)] + b_p) (Eq. 4.5).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class GridReduction(nn.Module):
    """Frames (B, N, h, w, C_in) → v (B, N, D, h', w')."""

    def __init__(self, in_channels: int, hidden: int, pool: int) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(pool, ceil_mode=True) if pool > 1 else nn.Identity()
        self.conv = nn.Conv2d(in_channels, hidden, 3, padding=1)

    def forward(self, grid: Tensor) -> Tensor:
        batch, steps = grid.shape[:2]
        x = grid.flatten(0, 1).permute(0, 3, 1, 2)  # (B·N, C_in, h, w)
        v = F.relu(self.conv(self.pool(x)))  # (B·N, D, h', w')
        return v.view(batch, steps, *v.shape[1:])


class ConceptDetector(nn.Module):
    """Reduced grids v (B, N, D, h', w') and their mask (B, N) → concept logits (B, C)."""

    def __init__(self, hidden: int, cells: int, attention_channels: int, concepts: int) -> None:
        super().__init__()
        self.cells = cells
        self.lstm = nn.LSTMCell(hidden, hidden)  # shared by the L = cells tracers
        self.attend = nn.Sequential(nn.Conv2d(hidden, attention_channels, 3, padding=1),
                                    nn.ReLU(), nn.Conv2d(attention_channels, 1, 1))
        self.out = nn.Linear(cells * hidden, concepts)

    def trace(self, v: Tensor, mask: Tensor) -> Tensor:
        """Every tracer's last state (B, L, D); padded frames leave it unchanged."""
        batch, steps, hidden, rows, cols = v.shape
        cells = rows * cols
        alpha = torch.eye(cells, device=v.device, dtype=v.dtype).repeat(batch, 1)  # (B·L, P)
        h = c = v.new_zeros(batch * cells, hidden)
        for n in range(steps):
            grid = v[:, n].flatten(2)  # (B, D, P)
            per_tracer = grid.repeat_interleave(cells, dim=0)  # (B·L, D, P)
            if n > 0:
                e = (per_tracer * h[:, :, None]).view(-1, hidden, rows, cols)  # Eq. 4.3
                alpha = self.attend(e).flatten(1).softmax(dim=1)  # (B·L, P), Eq. 4.4
            context = torch.einsum("bp,bdp->bd", alpha, per_tracer)  # (B·L, D), Eq. 4.1
            h_new, c_new = self.lstm(context, (h, c))  # Eq. 4.2
            keep = mask[:, n].repeat_interleave(cells)[:, None].to(h.dtype)  # (B·L, 1)
            h, c = keep * h_new + (1 - keep) * h, keep * c_new + (1 - keep) * c
        return h.view(batch, cells, hidden)

    def forward(self, v: Tensor, mask: Tensor) -> Tensor:
        return self.out(self.trace(v, mask).flatten(1))  # (B, C), Eq. 4.5 before σ
