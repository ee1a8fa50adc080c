"""GEAN, the Gaze Encoding Attention Network (Yu, thesis ch. 3): gaze-weighted feature pools and
a two-GRU decoder with temporal attention.

Encoder (``start``). Three pools per clip: ``scene`` (a vector per frame, unweighted),
``motion`` and ``fovea`` (channels-last grids, each reduced to one vector per frame by a spatial
attention map α: the gaze map avg-pooled to the grid's (h, w), ℓ1-normalised, mixed with a
uniform distribution of weight λ and ℓ1-normalised again; v(k) = Σ_ij α(i, j) f(i, j, k)). The
gaze map is the nested RGP's prediction from the motion grids (``gaze="rgp"``; the RGP runs
over all the clip's steps, so its recurrence sees consecutive frames) or one of the thesis's
fixed maps (Table 3.5). Each pool is then capped (20 / 35 / 35 frames, uniform subsample of a
longer clip). The thesis repeat-pads a shorter clip from its first frame; here the task's
padding mask keeps padded steps out of the attention instead (repeating frames would only
re-weight the attention towards the repeated ones).

Decoder (``step``), per word t, with B the word embedding and stanh(x) = 1.7159·tanh(2x/3):

- temporal attention per pool with the previous attention-GRU state (eqs. 3.5–3.6):
  u = Σ_τ β_τ v_τ, β = softmax_τ(wᵀ stanh(W_q v_τ + U_q h_att^{t−1} + b_q)), independent
  parameters per pool;
- attention GRU on B w_{t−1} (eq. 3.7–3.10);
- aggregation (eq. 3.11) with the new state: q = stanh(([W_s u_s ‖ W_m u_m ‖ W_f u_f] + b_g)
  ⊙ U_g h_att^t), dropout on q;
- multimodal GRU on [q ‖ B w_{t−1}]; softmax(W_out h_m + b) over the words.

Choices where the thesis is open: both GRU states start at zero; dropout only on q (the one
the thesis names); GRUs get orthogonal and the embedding (without word vectors) Xavier
initialisation, as the thesis; the RGP's convs Xavier (`vlpipe.models.rgp`). Token ids as
`vlpipe.models.captioner`: ``end_id = vocab_size`` ends every caption and starts decoding.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vlpipe.models.gean.config import POOLS, GEANConfig
from vlpipe.models.inputs import FeatureInput, ModelInputs, grid_input
from vlpipe.models.rgp.model import RGP, gaussian_map, split_features
from vlpipe.nn.beam_search import teacher_forced
from vlpipe.nn.encoders import caption_embedding

GRIDS = ("motion", "fovea")  # the pools a spatial attention map weights


def stanh(x: Tensor) -> Tensor:
    """LeCun's scaled tanh, 1.7159·tanh(2x/3)."""
    return 1.7159 * torch.tanh(x * (2.0 / 3.0))


def normalise(weights: Tensor) -> Tensor:
    """ℓ1-normalise non-negative maps (..., h, w) over their cells."""
    return weights / weights.sum(dim=(-2, -1), keepdim=True).clamp(min=1e-12)


def mix_uniform(weights: Tensor, strength: float) -> Tensor:
    """A map (..., h, w) ℓ1-normalised, plus a uniform distribution of weight ``strength``
    (λ), ℓ1-normalised: (p + λ/(h·w)) / (1 + λ)."""
    cells = weights.shape[-2] * weights.shape[-1]
    return normalise(normalise(weights) + strength / cells)


def pooled_gaze(gaze: Tensor, grid: tuple[int, int], strength: float) -> Tensor:
    """Gaze maps (..., G, G) → spatial weights (..., h, w): adaptive average pooling to the
    grid, then `mix_uniform`."""
    lead = gaze.shape[:-2]
    pooled = F.adaptive_avg_pool2d(gaze.reshape(-1, 1, *gaze.shape[-2:]), grid)  # (M, 1, h, w)
    return mix_uniform(pooled.reshape(*lead, *grid), strength)


def fixed_gaze(kind: str, lead: tuple[int, ...], grid: tuple[int, int], sigma: float,
               points: Tensor | None = None) -> Tensor:
    """Table 3.5's fixed maps on a (h, w) grid, (*lead, h, w), before `mix_uniform`:
    ``"uniform"`` 1/(h·w); ``"central"`` a Gaussian (σ cells) at the centre ((h−1)/2, (w−1)/2:
    the (4, 4) cell of 7×7); ``"random"`` a Gaussian at the cell holding each of ``points``
    (*lead, 2), normalised (row, column) in [0, 1); ``"peripheral"`` 1 − central / max,
    ℓ1-normalised."""
    if kind == "uniform":
        return torch.full((*lead, *grid), 1.0 / (grid[0] * grid[1]))
    if kind == "random":
        if points is None:
            raise ValueError("random gaze maps need their points")
        sides = torch.tensor(grid, dtype=torch.float32, device=points.device)
        centre = torch.minimum((points * sides).floor(), sides - 1)  # (*lead, 2) cells
        return gaussian_map(grid, centre, sigma)
    centre = torch.tensor([(grid[0] - 1) / 2, (grid[1] - 1) / 2]).expand(*lead, 2)
    central = gaussian_map(grid, centre, sigma)  # (*lead, h, w)
    if kind == "central":
        return central
    if kind == "peripheral":
        peak = central.amax(dim=(-2, -1), keepdim=True)
        return normalise(1 - central / peak)
    raise ValueError(f"no fixed gaze map {kind!r}")


def subsample(values: Tensor, mask: Tensor, cap: int) -> tuple[Tensor, Tensor]:
    """At most ``cap`` steps per clip: a clip with more valid steps keeps ``cap`` of them spread
    uniformly (rounded linspace from the first to the last), a shorter one stays as it is.
    values (B, N, D), mask (B, N) right-padded → (B, P, D), (B, P) with P ≤ cap."""
    lengths = mask.sum(dim=1)  # (B,)
    steps = max(1, min(cap, int(lengths.max())))
    k = torch.arange(steps, device=values.device)  # (P,)
    if cap > 1:
        spread = (k[None] * (lengths[:, None] - 1) / (cap - 1)).round().long()  # (B, P)
    else:
        spread = torch.zeros(len(values), 1, dtype=torch.long, device=values.device)
    longer = (lengths > cap)[:, None]  # (B, 1)
    index = torch.where(longer, spread, k[None].expand(len(values), -1))  # (B, P)
    new_mask = longer | (k[None] < lengths[:, None])  # (B, P)
    picked = values.gather(1, index[..., None].expand(-1, -1, values.shape[-1]))  # (B, P, D)
    return picked, new_mask


class PoolAttention(nn.Module):
    """Temporal soft attention over one pool (eqs. 3.5–3.6): β = softmax(wᵀ stanh(W_q v +
    U_q h + b_q)) over the valid steps, u = Σ β v."""

    def __init__(self, value_dim: int, query_dim: int, hidden: int) -> None:
        super().__init__()
        self.key = nn.Linear(value_dim, hidden)  # W_q, b_q
        self.query = nn.Linear(query_dim, hidden, bias=False)  # U_q
        self.score = nn.Linear(hidden, 1, bias=False)  # w

    def forward(self, values: Tensor, keys: Tensor, mask: Tensor, query: Tensor) -> Tensor:
        """values (B, P, D), keys = ``key(values)`` (B, P, A), mask (B, P), query (B, Q) →
        (B, D)."""
        logits = self.score(stanh(keys + self.query(query)[:, None])).squeeze(-1)  # (B, P)
        weights = logits.float().masked_fill(~mask, float("-inf")).softmax(dim=-1)
        return torch.einsum("bp,bpd->bd", weights.to(values.dtype), values)


class FrozenGazeMaps:
    """A frozen RGP's gaze maps, computed once per clip. Its maps are a fixed function of the
    clip's motion grids, which the task reads the same every epoch, so they are kept, keyed by
    a hash of the grids' valid steps, instead of recomputed every batch of every epoch (about
    half of a GEAN training step on the demo)."""

    def __init__(self) -> None:
        self.maps: dict[bytes, Tensor] = {}  # grids' hash → (n, G, G) for the n valid steps

    def __call__(self, rgp: RGP, motion: Tensor, mask: Tensor) -> Tensor:
        """motion (B, N, h, w, C), mask (B, N) right-padded → probabilities (B, N, G, G), zero
        on padded steps."""
        lengths = mask.sum(dim=1).tolist()
        keys = [hashlib.blake2b(motion[i, :n].detach().cpu().numpy().tobytes(),
                                digest_size=16).digest() for i, n in enumerate(lengths)]
        new = [i for i, key in enumerate(keys) if key not in self.maps]
        if new:  # RGP's maps of a clip do not depend on its batch or padding
            with torch.no_grad():
                maps = rgp.log_maps(motion[new], mask[new]).exp()  # (b, N, G, G)
            for row, i in enumerate(new):
                self.maps[keys[i]] = maps[row, : lengths[i]]
        side = rgp.map_size
        out = motion.new_zeros(*mask.shape, side, side)
        for i, (key, n) in enumerate(zip(keys, lengths, strict=True)):
            out[i, :n] = self.maps[key]
        return out


def _orthogonal_gru(cell: nn.GRUCell) -> None:
    """Orthogonal blocks (one per gate) for both weight matrices, zero biases."""
    for weight in (cell.weight_ih, cell.weight_hh):
        for block in weight.data.chunk(3, dim=0):
            nn.init.orthogonal_(block)
    nn.init.zeros_(cell.bias_ih)
    nn.init.zeros_(cell.bias_hh)


class GEAN(nn.Module):
    """Named inputs side by side (B, N, D) → word log-probabilities, one decoder step at a
    time (the interface of `vlpipe.models.captioner.AttentionCaptioner`)."""

    def __init__(self, config: GEANConfig, inputs: tuple[FeatureInput, ...], vocab_size: int,
                 word_vectors: np.ndarray | None = None) -> None:
        super().__init__()
        self.config, self.inputs = config, tuple(inputs)
        self.shapes = {feature.name: feature.shape for feature in self.inputs}
        self.pools = tuple(pool for pool in POOLS if pool in config.pools)  # s, m, f order
        self.caps = {"scene": config.scene_steps, "motion": config.motion_steps,
                     "fovea": config.fovea_steps}
        self.end_id = vocab_size
        self.embed = caption_embedding(vocab_size, config.word_dim, word_vectors)
        if word_vectors is None:
            nn.init.xavier_uniform_(self.embed.weight.data)
            self.embed.weight.data[0].zero_()
        self.rgp: RGP | None = None
        if config.gaze == "rgp":
            motion = self.shapes["motion"]
            self.rgp = RGP(config.rgp_config, motion[:2], motion[2])
        self.rgp_frozen = False
        self.frozen_maps = FrozenGazeMaps()
        widths = {"scene": config.scene_width, "motion": config.motion_width,
                  "fovea": config.fovea_width}
        self.attention = nn.ModuleDict({
            pool: PoolAttention(self.shapes[pool][-1], config.attention_gru,
                                config.attention_hidden) for pool in self.pools})
        self.aggregate = nn.ModuleDict({
            pool: nn.Linear(self.shapes[pool][-1], widths[pool], bias=False)
            for pool in self.pools})  # W_g^s, W_g^m, W_g^f
        aggregate_dim = sum(widths[pool] for pool in self.pools)
        self.aggregate_bias = nn.Parameter(torch.zeros(aggregate_dim))  # b_g
        self.aggregate_query = nn.Linear(config.attention_gru, aggregate_dim, bias=False)  # U_g
        self.attention_gru = nn.GRUCell(config.word_dim, config.attention_gru)
        self.multimodal_gru = nn.GRUCell(aggregate_dim + config.word_dim, config.multimodal_gru)
        for cell in (self.attention_gru, self.multimodal_gru):
            _orthogonal_gru(cell)
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(config.multimodal_gru, vocab_size + 1)

    def train(self, mode: bool = True) -> GEAN:
        """As `nn.Module.train`; a frozen RGP stays in eval mode."""
        super().train(mode)
        if self.rgp is not None and self.rgp_frozen:
            self.rgp.eval()
        return self

    def load_upstream(self, state: dict[str, Tensor], freeze: bool) -> list[str]:
        """Copy a trained RGP's ``state_dict`` (its own keys, or a GEAN's ``rgp.*`` keys) into
        ``self.rgp``, every tensor of it; ``freeze`` fixes them. Returns the names copied (as
        this model's ``rgp.*``)."""
        if self.rgp is None:
            raise ValueError(f"GEAN with gaze={self.config.gaze!r} has no RGP to start from: "
                             "init_from (an RGP run) needs gaze 'rgp'")
        state = {key.removeprefix("rgp."): value for key, value in state.items()}
        own = self.rgp.state_dict()
        fits = {key: value for key, value in state.items()
                if key in own and tuple(own[key].shape) == tuple(value.shape)}
        missing = sorted(set(own) - set(fits))
        if missing:
            detail = [f"{key} {tuple(own[key].shape)}" + (
                f" (upstream {tuple(state[key].shape)})" if key in state else " (absent)")
                for key in missing]
            raise ValueError(f"init_from: the upstream weights do not fit GEAN's RGP (model_args "
                             f"rgp must match the RGP run's); missing or mismatched: {detail}")
        self.rgp.load_state_dict(fits)
        if freeze:
            self.rgp.requires_grad_(False)
            self.rgp_frozen = True
            self.rgp.eval()
        return sorted(f"rgp.{key}" for key in fits)

    def gaze_maps(self, motion: Tensor, mask: Tensor) -> Tensor:
        """The RGP's gaze probabilities (B, N, G, G) from motion grids (B, N, h, w, C); a
        frozen RGP's come from `FrozenGazeMaps` (no graph through them)."""
        if self.rgp_frozen:
            return self.frozen_maps(self.rgp, motion, mask)
        return self.rgp.log_maps(motion, mask).exp()

    def spatial_weights(self, grid: tuple[int, int], lead: tuple[int, int],
                        gaze: Tensor | None, points: Tensor | None, device: torch.device
                        ) -> Tensor:
        """α (B, N, h, w) for a (h, w) grid from the RGP's maps or the fixed kind."""
        if gaze is not None:
            return pooled_gaze(gaze, grid, self.config.gaze_uniform)
        fixed = fixed_gaze(self.config.gaze, lead, grid, self.config.fixed_sigma, points)
        return mix_uniform(fixed.to(device), self.config.gaze_uniform)

    def encode(self, feats: Tensor, mask: Tensor) -> dict[str, tuple[Tensor, Tensor]]:
        """The capped pools: name → (vectors (B, P, C), mask (B, P))."""
        blocks = split_features(feats, self.inputs)  # name → (B, N, *shape)
        lead = tuple(mask.shape)
        gaze = self.gaze_maps(blocks["motion"], mask) if self.rgp is not None else None
        points = None
        if self.config.gaze == "random":  # one random point per frame, from the torch RNG
            points = torch.rand(*lead, 2).to(feats.device)
        pools = {}
        for pool in self.pools:
            values = blocks[pool]
            if pool in GRIDS and values.dim() == 5:  # (B, N, h, w, C)
                if self.config.gaze == "none":
                    values = values.mean(dim=(2, 3))  # (B, N, C)
                else:
                    alpha = self.spatial_weights(tuple(values.shape[2:4]), lead, gaze, points,
                                                 feats.device)  # (B, N, h, w)
                    values = torch.einsum("bnhw,bnhwc->bnc", alpha.to(values.dtype), values)
            pools[pool] = subsample(values, mask, self.caps[pool])
        return pools

    def start(self, feats: Tensor, mask: Tensor) -> dict[str, Tensor]:
        """The decoder's initial state for a batch of clips: the pools, their attention keys
        and masks, and zero GRU states."""
        state = {}
        for pool, (values, pool_mask) in self.encode(feats, mask).items():
            state[pool] = values
            state[f"{pool}_keys"] = self.attention[pool].key(values)  # (B, P, A)
            state[f"{pool}_mask"] = pool_mask
        state["h_att"] = feats.new_zeros(len(feats), self.config.attention_gru)
        state["h_mm"] = feats.new_zeros(len(feats), self.config.multimodal_gru)
        return state

    def step(self, tokens: Tensor, state: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """One word: previous tokens (B,) → log-probabilities (B, V + 1) and the next state."""
        words = self.embed(tokens)  # (B, E)
        attended = [self.attention[pool](state[pool], state[f"{pool}_keys"],
                                         state[f"{pool}_mask"], state["h_att"])
                    for pool in self.pools]  # each (B, C_pool), with h_att^{t−1}
        h_att = self.attention_gru(words, state["h_att"])
        mixed = torch.cat([self.aggregate[pool](u) for pool, u in zip(self.pools, attended,
                                                                      strict=True)], dim=-1)
        q = self.dropout(stanh((mixed + self.aggregate_bias) * self.aggregate_query(h_att)))
        h_mm = self.multimodal_gru(torch.cat([q, words], dim=-1), state["h_mm"])
        logits = self.out(h_mm)
        return F.log_softmax(logits.float(), dim=-1), {**state, "h_att": h_att, "h_mm": h_mm}

    def forward(self, feats: Tensor, mask: Tensor, inputs: Tensor) -> Tensor:
        """Teacher forcing: clips and input tokens (B, T) (end_id first) → log-probs (B, T, V+1)."""
        return teacher_forced(self, feats, mask, inputs)


def build(config: GEANConfig, inputs: ModelInputs) -> GEAN:
    """GEAN over the named inputs ``scene`` (vectors), ``motion`` and ``fovea`` (grids); an
    input whose pool ``pools`` leaves out is read by no layer (``motion`` still feeds the RGP),
    so variants of one experiment can ablate pools (the thesis's GEAN+GNet, +C3D rows)."""
    if inputs.predicts != "caption":
        raise ValueError(f"GEAN writes captions, not {inputs.predicts!r}")
    names = [feature.name for feature in inputs.video]
    needed = set(config.pools) | ({"motion"} if config.gaze == "rgp" else set())
    missing = sorted(needed - set(names))
    if missing:
        raise ValueError(f"GEAN (pools {list(config.pools)}, gaze {config.gaze!r}) needs "
                         f"input(s) {missing}; got {names}")
    unknown = sorted(set(names) - set(POOLS))
    if unknown:  # a pool's input left out of ``pools`` is that variant's ablation, not an error
        raise ValueError(f"GEAN reads no input(s) {unknown}: its inputs are named "
                         f"{list(POOLS)}")
    for feature in inputs.video:
        if feature.name == "scene" and len(feature.shape) != 1:
            raise ValueError(f"GEAN: input 'scene' ({feature.source}) has per-step shape "
                             f"{feature.shape}; the scene pool is one vector per frame "
                             "(e.g. googlenet/pool5)")
        needs_grid = (feature.name == "motion" and config.gaze == "rgp") or (
            feature.name in GRIDS and config.gaze != "none")
        if needs_grid:
            grid_input(inputs.video, feature.name, f"GEAN (gaze {config.gaze!r})")
        elif feature.name in GRIDS and len(feature.shape) not in (1, 3):
            raise ValueError(f"GEAN: input {feature.name!r} has per-step shape "
                             f"{feature.shape}: neither a vector nor a (h, w, C) grid")
    return GEAN(config, inputs.video, inputs.vocab_size, inputs.word_vectors)
