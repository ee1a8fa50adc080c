"""Generic building blocks shared by the vlpipe models.

Conventions: sequences are batch-first `(B, T, D)`; masks are bool with True = valid, and
RIGHT-padded (the valid steps form a prefix), which is what `lengths_to_mask` produces.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    # 0.2 is tf.nn.leaky_relu's default slope, used by the original TensorFlow releases.
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
}


def make_activation(name: str | None) -> nn.Module:
    """Activation module by name; None gives the identity."""
    if name is None:
        return nn.Identity()
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known: {sorted(ACTIVATIONS)} or None")
    return ACTIVATIONS[name]()


class Dense(nn.Module):
    """Linear → BatchNorm → activation → dropout, applied to the last dim of `(..., in_dim)`.

    BatchNorm1d normalises over all leading dims flattened together. To keep padded positions
    out of the statistics, call it through `masked_apply`.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        activation: str | None = "tanh",
        batch_norm: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, out_dim, bias=not batch_norm)  # BN has its own shift
        self.norm = nn.BatchNorm1d(out_dim) if batch_norm else nn.Identity()
        self.activation = make_activation(activation)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        y = self.linear(x)  # (..., out_dim)
        y = self.norm(y.reshape(-1, y.shape[-1])).reshape(y.shape)
        return self.dropout(self.activation(y))


def masked_apply(fn: Callable[[Tensor], Tensor], x: Tensor, mask: Tensor) -> Tensor:
    """Apply a row-wise `fn` to the valid rows of `x` only; padded rows of the result are 0.

    x: (*S, D) with mask: (*S) bool → (*S, D_out). Besides saving compute on padding, this
    keeps padded rows out of any BatchNorm statistics inside `fn`.
    """
    rows = fn(x[mask])  # (num_valid, D_out)
    out = rows.new_zeros(*mask.shape, rows.shape[-1])
    out[mask] = rows
    return out


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of `x` (B, T, D) over the valid steps of `mask` (B, T) → (B, D), in float32."""
    weights = mask.unsqueeze(-1).to(x.dtype)  # (B, T, 1)
    total = (x * weights).sum(dim=1, dtype=torch.float32)  # (B, D)
    return total / mask.sum(dim=1, keepdim=True).clamp(min=1)


def trim_padding(x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Drop the trailing steps that are padding in every row: (B, T, ...) → (B, T', ...)."""
    length = int(mask.sum(dim=1).max())
    return x[:, :length], mask[:, :length]


def lengths_to_mask(lengths: Tensor, max_len: int | None = None) -> Tensor:
    """Right-padded bool mask (B, max_len) from lengths (B,)."""
    max_len = int(lengths.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lengths.device) < lengths.unsqueeze(-1)
