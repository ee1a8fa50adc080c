"""CT-SAN's hyper-parameters (torch-free: checked when the workflow is planned)."""

from __future__ import annotations

from dataclasses import dataclass

from vlpipe.models.config_checks import check_dropout, check_positive


@dataclass
class CTSANConfig:
    """Defaults are the thesis's (ch. 4) where it gives them; the rest are ours, said so."""

    word_dim: int = 300  # d: word2vec's 300
    hidden: int = 500  # D: the reduced grid's channels, every LSTM's state
    grid_pool: int = 2  # max-pool of the input grid before the 3×3 conv (res5c 7×7 → 4×4)
    detector: bool = True  # False: Base-SAN (no concept detector, no semantic attention)
    top_k: int = 10  # K concepts read by the semantic attention
    attention_channels: int = 64  # ours: the hidden width of Eq. 4.4's two convolutions
    layers: int = 2  # encoder and decoder LSTM layers
    dropout: float = 0.2
    attention_weight: float = 0.01  # λ1 (open in the thesis: ours), on g(β) + g(γ) per word
    concept_weight: float = 1.0  # λ2 (open in the thesis: ours), on L_con
    bilinear_dim: int = 8000  # retrieval: compact bilinear pooling's output ν
    joint_dim: int = 1500  # retrieval: the maxout layer's units (W_p ∈ R^{8000×1500})
    maxout_pieces: int = 2  # retrieval: affine pieces per maxout unit (ours)

    def __post_init__(self) -> None:
        check_positive(self, "word_dim", "hidden", "grid_pool", "top_k", "attention_channels",
                       "layers", "bilinear_dim", "joint_dim", "maxout_pieces")
        check_dropout(self)
        for name in ("attention_weight", "concept_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)!r}: must be >= 0")
