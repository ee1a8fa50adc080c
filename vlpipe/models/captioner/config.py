"""The Temp-Attention captioner's hyper-parameters (torch-free: checked when the workflow is
planned)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CaptionerConfig:
    """Hyper-parameters; sizes are open in the baselines' descriptions."""

    word_dim: int = 300
    hidden: int = 512  # LSTM state and projected frame size
    attention: str = "additive"  # Temp-Attention's soft attention | "none" (mean of frames)
    attention_hidden: int = 256
    dropout: float = 0.5

    def __post_init__(self) -> None:
        if self.attention not in ("additive", "none"):
            raise ValueError(f"attention={self.attention!r}; allowed: 'additive', 'none'")
