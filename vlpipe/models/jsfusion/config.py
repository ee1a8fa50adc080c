"""JSFusion's hyper-parameters (torch-free: the workflow checks ``model_args`` against them
when it plans the DAG) and the paper's presets."""

from __future__ import annotations

from dataclasses import dataclass

from vlpipe.nn.names import ACTIVATION_NAMES, ENCODER_KINDS


@dataclass
class JSFusionConfig:
    """Hyper-parameters; defaults are the paper's retrieval / multiple-choice settings (Table 1)."""

    word_dim: int = 300
    train_embeddings: bool = True  # the authors' code fine-tunes GloVe
    encoder_hidden: int = 512  # BLSTM units per direction; "conv"/"fc" width is 2x this
    text_encoder: str = "blstm"  # "blstm" | "lstm" | "fc"
    video_encoder: str = "conv"  # "conv" | "blstm" | "lstm" | "fc"
    fusion: str = "jst"  # "jst" (JSFusion) | "lstm" (LSTM-fusion baseline)
    chd_gates: bool = True  # False: JSFusion-noattention (no ConvG gates)
    chd_pool: str = "conv"  # "conv" | "max" / "mean": JST_max / JST_mean (fixed 3x3 pooling)
    d1: int = 512
    d2: int = 512
    d3: int = 512
    d4: int = 512
    conv_channels: int = 256
    conv_activation: str | None = None  # None = paper eq. (4); the authors' code: "leaky_relu"
    d5: int = 256
    d6: int = 256
    d7: int = 128
    activation: str = "tanh"  # of every dense layer but D8; the authors' RET code: "leaky_relu"
    batch_norm: bool = True
    dropout: float = 0.5  # after D1 (both modalities), D2 and D3
    output: str = "score"  # "score" (RET, MC) | "word" (FIB: D8 = softmax over the vocabulary)
    # Nmax = Mmax = 40 are data settings: the retrieval task's max_frames / max_words.

    def __post_init__(self) -> None:
        choices = {
            "text_encoder": ("blstm", "lstm", "fc"),
            "video_encoder": ENCODER_KINDS,
            "fusion": ("jst", "lstm"),
            "chd_pool": ("conv", "max", "mean"),
            "activation": ACTIVATION_NAMES,
            "conv_activation": (None, *ACTIVATION_NAMES),
            "output": ("score", "word"),
        }
        for field_name, allowed in choices.items():
            if getattr(self, field_name) not in allowed:
                raise ValueError(f"{field_name}={getattr(self, field_name)!r}; allowed: {allowed}")
        if self.output == "word":
            if self.fusion != "jst":
                raise ValueError("output='word' (fill-in-the-blank) needs fusion='jst'")
            if self.d1 != self.d7:
                raise ValueError(f"output='word' adds D1w(BLANK) to D7's output: d1 ({self.d1})"
                                 f" must equal d7 ({self.d7})")


# The paper's sizes by task (ECCV 2018, Sec. 4): RET and MC use the defaults above; FIB is wider
# (D1, D5-D7 = 1024; D2-D4 = 2048; 1024 conv channels) with dropout 0.2.
PRESETS: dict[str, dict] = {
    "paper": {},
    "paper_fib": {"d1": 1024, "d2": 2048, "d3": 2048, "d4": 2048, "conv_channels": 1024,
                  "d5": 1024, "d6": 1024, "d7": 1024, "dropout": 0.2},
}
