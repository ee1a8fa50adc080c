"""TAPM's sequential coherence loss (thesis §7.3.4, Eq. 7.3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

OFFSETS = {"past": -1, "current": 0, "future": 1}  # which clip each projection must match


def coherence_loss(visual: Tensor, projected: dict[str, Tensor], margin: float = 1.0) -> Tensor:
    """Pooled visual vectors v̂ (B, C, W) of a story's C clips and, per direction in
    ``OFFSETS``, the projected text vectors f(ŝ_i) (B, C, W) → Eq. 7.3 summed over the
    directions, averaged over the clips that have the matched neighbour:
    ``Σ_{j ≠ i+k} max(0, margin + cos(v̂_j, f(ŝ_i)) − cos(v̂_{i+k}, f(ŝ_i)))``, the wrong
    matches j being the story's other clips."""
    clips = visual.shape[1]
    visual = F.normalize(visual.float(), dim=-1)
    index = torch.arange(clips, device=visual.device)
    total = visual.new_zeros(())
    for name, offset in OFFSETS.items():
        text = F.normalize(projected[name].float(), dim=-1)
        similarity = text @ visual.transpose(1, 2)  # (B, C_i, C_j): cos(v̂_j, f(ŝ_i))
        target = index + offset  # (C,)
        valid = (target >= 0) & (target < clips)
        right = similarity[:, valid].gather(2, target[valid][None, :, None].expand(
            len(similarity), -1, 1))  # (B, C_valid, 1)
        hinge = (margin + similarity[:, valid] - right).clamp(min=0)  # (B, C_valid, C)
        hinge = hinge.masked_fill(index[None, None] == target[valid][None, :, None], 0.0)
        total = total + hinge.sum(dim=2).mean()
    return total
