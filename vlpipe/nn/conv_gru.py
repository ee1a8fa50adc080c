"""Convolutional GRU (GRU-RCN, Ballas et al. 2016): a GRU whose fully connected maps are 2-D
convolutions, so the state keeps its spatial layout. Used by RGP (thesis ch. 3)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ConvGRUCell(nn.Module):
    """One step on feature maps (B, C_in, h, w) with a state (B, C_state, h, w):

    z = σ(W_z ∗ x + U_z ∗ h), r = σ(W_r ∗ x + U_r ∗ h), h̃ = tanh(W ∗ x + U ∗ (r ⊙ h)),
    h' = (1 − z) ⊙ h + z ⊙ h̃. "Same" padding (odd ``kernel``), biases on the input convs.
    """

    def __init__(self, in_channels: int, state_channels: int, kernel: int = 3) -> None:
        super().__init__()
        if kernel % 2 != 1:
            raise ValueError(f"kernel {kernel}: must be odd ('same' padding)")
        self.state_channels = state_channels
        self.input_conv = nn.Conv2d(in_channels, 3 * state_channels, kernel, padding=kernel // 2)
        self.gate_conv = nn.Conv2d(state_channels, 2 * state_channels, kernel,
                                   padding=kernel // 2, bias=False)  # U_z, U_r
        self.candidate_conv = nn.Conv2d(state_channels, state_channels, kernel,
                                        padding=kernel // 2, bias=False)  # U

    def step(self, x_proj: Tensor, h: Tensor) -> Tensor:
        """``x_proj`` = ``input_conv(x)`` (B, 3·C_state, h, w), state (B, C_state, h, w) → next
        state. The input convs need no state, so a sequence computes them all at once."""
        x_z, x_r, x_h = x_proj.chunk(3, dim=1)
        h_z, h_r = self.gate_conv(h).chunk(2, dim=1)
        z = torch.sigmoid(x_z + h_z)
        r = torch.sigmoid(x_r + h_r)
        candidate = torch.tanh(x_h + self.candidate_conv(r * h))
        return (1 - z) * h + z * candidate

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        """x (B, C_in, h, w), state (B, C_state, h, w) → next state."""
        return self.step(self.input_conv(x), h)


class ConvGRU(nn.Module):
    """A ConvGRUCell over a sequence of maps with a right-padded mask; a masked step keeps the
    state it received. The initial state is zero."""

    def __init__(self, in_channels: int, state_channels: int, kernel: int = 3) -> None:
        super().__init__()
        self.cell = ConvGRUCell(in_channels, state_channels, kernel)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """x (B, N, C_in, h, w), mask (B, N) → states (B, N, C_state, h, w)."""
        batch, steps = x.shape[:2]
        x_proj = self.cell.input_conv(x.flatten(0, 1))  # (B·N, 3·C_state, h, w)
        x_proj = x_proj.unflatten(0, (batch, steps))  # (B, N, 3·C_state, h, w)
        h = x_proj.new_zeros(batch, self.cell.state_channels, *x.shape[-2:])
        states = []
        for t in range(steps):
            keep = mask[:, t].view(-1, 1, 1, 1)
            h = torch.where(keep, self.cell.step(x_proj[:, t], h), h)
            states.append(h)
        return torch.stack(states, dim=1)
