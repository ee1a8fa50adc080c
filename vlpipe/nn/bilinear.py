"""Compact bilinear pooling (Gao et al., CVPR 2016; Fukui et al.'s MCB, EMNLP 2016) and the
maxout layer (Goodfellow et al., ICML 2013) that reads it.

Compact bilinear pooling approximates the outer product x ⊗ y of two vectors by its Tensor
Sketch: each vector is Count-Sketched into ``dim`` bins by a fixed random hash h and sign s,
and the two sketches are convolved circularly (a product in the Fourier domain). The result
is exactly the Count Sketch of x ⊗ y under the hash (h_x(i) + h_y(j)) mod dim and the sign
s_x(i)·s_y(j), so ⟨ν(x, y), ν(x', y')⟩ ≈ ⟨x, x'⟩⟨y, y'⟩ without forming the outer product.
The hashes are drawn once from ``seed`` and saved with the model (buffers, not parameters).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class CountSketch(nn.Module):
    """x (..., n) → its Count Sketch (..., dim): ``out[h(i)] += s(i) x[i]``."""

    def __init__(self, in_dim: int, dim: int, generator: torch.Generator) -> None:
        super().__init__()
        self.dim = dim
        self.register_buffer("bins", torch.randint(dim, (in_dim,), generator=generator))
        self.register_buffer("signs",
                             torch.randint(2, (in_dim,), generator=generator).float() * 2 - 1)

    def forward(self, x: Tensor) -> Tensor:
        sketch = x.new_zeros(*x.shape[:-1], self.dim)
        return sketch.index_add_(-1, self.bins, x * self.signs.to(x.dtype))


class CompactBilinearPooling(nn.Module):
    """x (..., n_x), y (..., n_y) → ν(x, y) (..., dim), the Tensor Sketch of x ⊗ y."""

    def __init__(self, x_dim: int, y_dim: int, dim: int, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.sketch_x = CountSketch(x_dim, dim, generator)
        self.sketch_y = CountSketch(y_dim, dim, generator)
        self.dim = dim

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        # FFTs in float32 (bf16 has none); the circular convolution of the two sketches
        fx = torch.fft.rfft(self.sketch_x(x.float()), n=self.dim)
        fy = torch.fft.rfft(self.sketch_y(y.float()), n=self.dim)
        return torch.fft.irfft(fx * fy, n=self.dim)


class Maxout(nn.Module):
    """(..., in_dim) → (..., out_dim): the maximum of ``pieces`` affine maps per unit."""

    def __init__(self, in_dim: int, out_dim: int, pieces: int = 2) -> None:
        super().__init__()
        self.out_dim, self.pieces = out_dim, pieces
        self.linear = nn.Linear(in_dim, out_dim * pieces)

    def forward(self, x: Tensor) -> Tensor:
        y = self.linear(x).unflatten(-1, (self.out_dim, self.pieces))  # (..., out, pieces)
        return y.amax(dim=-1)
