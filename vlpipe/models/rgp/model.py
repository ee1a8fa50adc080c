"""RGP, the recurrent gaze prediction model (Yu, thesis ch. 3.3.2), and the gaze-prior
baselines.

RGP reads a C3D conv5b grid per frame: a 1×1 conv projects it (the thesis's 7×7×512), a
conv-GRU (3×3 kernels, 7×7×128 state) carries it through time, transposed convs upsample the
state (k3 s2 p1: 7 → 13 → 25 → 49), a conv makes one logit per cell and a softmax over all
cells gives the frame's gaze map. A grid whose upsampled side is not ``map_size`` (any other h
than 7 with three deconvs) is resized bilinearly to ``map_size`` before the last conv. Masked
(padded) steps keep the recurrent state, so a clip's predictions do not depend on its padding.
Mirroring (the thesis's augmentation) is the gaze task's.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vlpipe.models.inputs import FeatureInput, ModelInputs, only_grid_input
from vlpipe.models.rgp.config import GazePriorConfig, RGPConfig
from vlpipe.nn.conv_gru import ConvGRU


def split_features(feats: Tensor, inputs: tuple[FeatureInput, ...]) -> dict[str, Tensor]:
    """Side-by-side steps (B, N, D = Σ sizes) → name → (B, N, *shape), in ``inputs`` order."""
    blocks = feats.split([feature.size for feature in inputs], dim=-1)
    return {feature.name: block.unflatten(-1, feature.shape)  # (B, N, *shape)
            for feature, block in zip(inputs, blocks, strict=True)}


def gaussian_map(shape: tuple[int, int], centre: Tensor, sigma: float) -> Tensor:
    """ℓ1-normalised isotropic Gaussians on a (h, w) grid: centres (..., 2) as (row, column)
    in cells → (..., h, w)."""
    rows = torch.arange(shape[0], dtype=torch.float32, device=centre.device)
    cols = torch.arange(shape[1], dtype=torch.float32, device=centre.device)
    d_row = (rows - centre[..., :1]) ** 2  # (..., h)
    d_col = (cols - centre[..., 1:]) ** 2  # (..., w)
    dist = d_row[..., :, None] + d_col[..., None, :]  # (..., h, w)
    weights = torch.exp(-dist / (2 * sigma**2))
    return weights / weights.sum(dim=(-2, -1), keepdim=True)


class RGP(nn.Module):
    """A clip's grids (B, N, h, w, C) → per-step log-probabilities over the map's cells."""

    def __init__(self, config: RGPConfig, grid: tuple[int, int], in_channels: int) -> None:
        super().__init__()
        self.config, self.grid = config, tuple(grid)
        self.map_size = config.map_size
        self.project = nn.Conv2d(in_channels, config.project_channels, 1)
        if config.recurrent == "conv_gru":
            self.recurrent = ConvGRU(config.project_channels, config.state_channels,
                                     config.kernel)
        elif config.recurrent == "gru":  # C3D+GRU: a fully connected GRU over the whole grid
            cells = self.grid[0] * self.grid[1]
            self.recurrent = nn.GRU(cells * config.project_channels, config.gru_hidden,
                                    batch_first=True)
            self.gru_to_grid = nn.Linear(config.gru_hidden, cells * config.state_channels)
        else:  # C3D+Conv: a per-frame conv in place of the conv-GRU
            self.recurrent = nn.Conv2d(config.project_channels, config.state_channels,
                                       config.kernel, padding=config.kernel // 2)
        widths = (config.state_channels, *config.deconv_channels)
        self.deconvs = nn.ModuleList(
            nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1)
            for c_in, c_out in itertools.pairwise(widths))
        self.final = nn.Conv2d(widths[-1], 1, config.final_kernel,
                               padding=config.final_kernel // 2)
        self.upsampled = tuple((side - 1) * 2 ** len(self.deconvs) + 1 for side in self.grid)
        for module in self.modules():  # the thesis: Xavier for the convolutional layers
            if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def logits(self, grids: Tensor, mask: Tensor) -> Tensor:
        """grids (B, N, h, w, C), mask (B, N) → logits (B, N, G, G)."""
        batch, steps = grids.shape[:2]
        x = grids.flatten(0, 1).permute(0, 3, 1, 2)  # (B·N, C, h, w)
        x = self.project(x)  # (B·N, P, h, w)
        if isinstance(self.recurrent, ConvGRU):
            states = self.recurrent(x.unflatten(0, (batch, steps)), mask)  # (B, N, S, h, w)
            h = states.flatten(0, 1)  # (B·N, S, h, w)
        elif isinstance(self.recurrent, nn.GRU):  # right-padded: valid steps never see padding
            sequence = x.unflatten(0, (batch, steps)).flatten(2)  # (B, N, P·h·w)
            states, _ = self.recurrent(sequence)  # (B, N, H)
            h = torch.tanh(self.gru_to_grid(states.flatten(0, 1)))  # (B·N, S·h·w)
            h = h.unflatten(1, (-1, *self.grid))  # (B·N, S, h, w)
        else:
            h = torch.tanh(self.recurrent(x))  # (B·N, S, h, w)
        for deconv in self.deconvs:
            h = F.relu(deconv(h))  # (B·N, c, 2s − 1, 2s − 1)
        if self.upsampled != (self.map_size, self.map_size):
            h = F.interpolate(h, size=(self.map_size,) * 2, mode="bilinear",
                              align_corners=True)  # (B·N, c, G, G)
        out = self.final(h).squeeze(1)  # (B·N, G, G)
        return out.unflatten(0, (batch, steps))  # (B, N, G, G)

    def log_maps(self, grids: Tensor, mask: Tensor) -> Tensor:
        """grids (B, N, h, w, C) → log-probabilities (B, N, G, G), log-softmax over each
        step's G² cells."""
        logits = self.logits(grids, mask).float()
        return F.log_softmax(logits.flatten(2), dim=-1).view_as(logits)

    def forward(self, feats: Tensor, mask: Tensor) -> Tensor:
        """feats (B, N, h·w·C) (the grid flattened channels-last), mask (B, N) → (B, N, G, G)."""
        grids = feats.unflatten(-1, (*self.grid, -1))  # (B, N, h, w, C)
        return self.log_maps(grids, mask)


class GazePrior(nn.Module):
    """The same map for every frame: learned (``"mean"``), a central Gaussian or uniform."""

    def __init__(self, config: GazePriorConfig) -> None:
        super().__init__()
        self.kind, size = config.kind, config.map_size
        if config.kind == "mean":
            self.map_logits = nn.Parameter(torch.zeros(size, size))
        else:
            if config.kind == "central":
                centre = torch.full((2,), (size - 1) / 2)
                fixed = gaussian_map((size, size), centre, config.sigma).log()
            else:
                fixed = torch.zeros(size, size)
            self.register_buffer("map_logits", fixed)

    def forward(self, feats: Tensor, mask: Tensor) -> Tensor:
        """feats (B, N, D) (unread), mask (B, N) → log-probabilities (B, N, G, G)."""
        log_map = F.log_softmax(self.map_logits.float().flatten(), dim=0)
        log_map = log_map.view_as(self.map_logits)  # (G, G)
        return log_map.expand(*mask.shape, *log_map.shape)


def build(config: RGPConfig, inputs: ModelInputs) -> RGP:
    """RGP over the input named ``motion`` (or the only input), a (h, w, C) grid."""
    if inputs.predicts != "gaze":
        raise ValueError(f"RGP predicts gaze maps, not {inputs.predicts!r}")
    feature = only_grid_input(inputs, "motion", "RGP")
    return RGP(config, feature.shape[:2], feature.shape[2])


def build_prior(config: GazePriorConfig, inputs: ModelInputs) -> GazePrior:
    """A gaze prior; it reads no features (any inputs are accepted and ignored)."""
    if inputs.predicts != "gaze":
        raise ValueError(f"a gaze prior predicts gaze maps, not {inputs.predicts!r}")
    return GazePrior(config)


__all__ = ["RGP", "GazePrior", "build", "build_prior", "gaussian_map", "split_features"]
