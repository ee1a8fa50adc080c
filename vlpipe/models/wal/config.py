"""Watch and Learn's hyper-parameters (torch-free: checked when the workflow is planned)."""

from __future__ import annotations

from dataclasses import dataclass

from vlpipe.nn.names import ATTENTIONS


@dataclass
class WALConfig:
    """Hyper-parameters; defaults are WAL-att-adv (BVF=4). The embedding size is open."""

    embed_dim: int = 512
    attention: str = "dot"  # "none" (mean over frames) | "dot" | "multiplicative" | "additive"
    attention_hidden: int = 256  # additive attention only
    adversarial: bool = True  # the discriminator channel
    backgrounds: int = 4  # background visual vectors (BVF)
    discriminator_input: str = "difference"  # F_ADV(p_ADV − p_LVC) | "concat" | "p_adv"
    sampler: str = "gumbel"  # z: "gumbel" (hard, straight-through) | "softmax" (soft)
    temperature: float = 1.0
    discriminator_warmup: int = 50  # epochs with the discriminator fixed (paper: 50 of 70)
    route: str = "all"  # pairs the discriminator judges: "all" | "aligned" (random ones never)
    loss: str = "bce"  # "bce" (LVC classifier) | "triplet" (VSE++ hardest negative)
    margin: float = 0.2  # triplet only

    def __post_init__(self) -> None:
        choices = {"attention": ATTENTIONS, "discriminator_input": ("difference", "concat",
                                                                    "p_adv"),
                   "sampler": ("gumbel", "softmax"), "loss": ("bce", "triplet"),
                   "route": ("all", "aligned")}
        for field_name, allowed in choices.items():
            if getattr(self, field_name) not in allowed:
                raise ValueError(f"{field_name}={getattr(self, field_name)!r}; allowed: {allowed}")
        if self.backgrounds < 1:
            raise ValueError(f"backgrounds={self.backgrounds}; need at least 1")
