"""TAPM's visual encoder (thesis §7.3.1): each clip's frame features mean-pooled into M
segments, two FC layers with LeakyReLU, three residual blocks (two FC layers and a ReLU),
self-attention over the segments; then each clip's representation is followed by the mean of
its previous and next clips' (the story's context)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def segment_means(feats: Tensor, mask: Tensor, segments: int) -> Tensor:
    """Frames (B, N, D) with their mask (B, N) → the means of ``segments`` equal spans of each
    row's valid frames (B, M, D); a row shorter than M repeats frames (span m holds at least
    frame ⌊m·L/M⌋)."""
    lengths = mask.sum(dim=1, keepdim=True).clamp(min=1).to(feats.dtype)  # (B, 1)
    m = torch.arange(segments, device=feats.device, dtype=feats.dtype)[None]  # (1, M)
    start = (m * lengths / segments).floor()  # (B, M)
    end = torch.maximum(((m + 1) * lengths / segments).floor(), start + 1)
    n = torch.arange(feats.shape[1], device=feats.device, dtype=feats.dtype)  # (N,)
    weights = ((n >= start[..., None]) & (n < end[..., None])).to(feats.dtype)  # (B, M, N)
    return weights @ feats / weights.sum(dim=2, keepdim=True)


class ResidualBlock(nn.Module):
    """x + FC(ReLU(FC(x)))."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.layers(x)


class VisualEncoder(nn.Module):
    """A story's clips (B, C, N, D) with their masks (B, C, N) → per clip M segment vectors
    and 2 context vectors, (B, C, M + 2, width)."""

    def __init__(self, in_dim: int, width: int, segments: int, blocks: int, heads: int,
                 dropout: float) -> None:
        super().__init__()
        self.segments = segments
        self.project = nn.Sequential(nn.Linear(in_dim, width), nn.LeakyReLU(),
                                     nn.Linear(width, width), nn.LeakyReLU())
        self.blocks = nn.Sequential(*(ResidualBlock(width) for _ in range(blocks)))
        self.attention = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)

    def forward(self, feats: Tensor, mask: Tensor) -> Tensor:
        batch, clips = feats.shape[:2]
        x = segment_means(feats.flatten(0, 1), mask.flatten(0, 1), self.segments)  # (B·C, M, D)
        x = self.blocks(self.project(x))
        x = x + self.attention(x, x, x, need_weights=False)[0]  # (B·C, M, W)
        x = x.unflatten(0, (batch, clips))  # (B, C, M, W)
        clip_means = x.mean(dim=2)  # (B, C, W)
        zero = clip_means.new_zeros(batch, 1, clip_means.shape[2])
        previous = torch.cat([zero, clip_means[:, :-1]], dim=1)  # clip i − 1's (zeros: none)
        following = torch.cat([clip_means[:, 1:], zero], dim=1)  # clip i + 1's
        return torch.cat([x, previous[:, :, None], following[:, :, None]], dim=2)
