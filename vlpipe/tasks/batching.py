"""Padding clips and sentences into batches."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def pad_features(sequences: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad ``(T_i, D)`` arrays into ``(B, T_max, D)`` with a ``(B, T_max)`` valid mask."""
    steps = max(len(s) for s in sequences)
    batch = torch.zeros(len(sequences), steps, sequences[0].shape[1])
    mask = torch.zeros(len(sequences), steps, dtype=torch.bool)
    for i, sequence in enumerate(sequences):
        batch[i, : len(sequence)] = torch.from_numpy(sequence)
        mask[i, : len(sequence)] = True
    return batch, mask


def pad_tokens(sequences: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token id lists with 0 into ``(B, M_max)`` with a valid mask."""
    steps = max(max(len(s) for s in sequences), 1)
    batch = torch.zeros(len(sequences), steps, dtype=torch.long)
    for i, sequence in enumerate(sequences):
        batch[i, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
    return batch, batch != 0
