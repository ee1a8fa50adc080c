"""TAPM's hyper-parameters (torch-free: checked when the workflow is planned) and its
ablations as flags (thesis Tables 7.3 and 7.4)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from vlpipe.models.config_checks import check_dropout, check_positive

GENERATORS = ("gpt2", "lstm")
ADAPTATIONS = ("language", "visual", "none")
ADAPTATION_INPUTS = ("dummy", "caption")


@dataclass
class TAPMConfig:
    """Transitional Adaptation of a Pretrained Model (thesis ch. 7).

    | flags | the thesis's row |
    |---|---|
    | defaults | TAPM: adaptation on the generator's outputs, a dummy token, split training |
    | ``adaptation: none, split: false`` | −A (no adaptation phase) |
    | ``adaptation_input: caption`` | +Cap (the caption instead of the dummy token) |
    | ``adaptation: visual`` | +VisualA (the loss on the visual encoder's outputs) |
    | ``split: false`` | −Split (adaptation and generation losses together, every epoch) |
    | ``adaptation: none`` | −A+Split (the encoder first, alone, on the generation loss) |
    | ``generator: lstm`` | LSTM-Scratch (Table 7.4; with the flags above, its columns) |
    | ``pretrained: <dir>`` | TAPM itself: GPT-2's published weights and tokenizer |

    Split training: ``adaptation_epochs`` (before and on top of ``train.epochs``, so that −A
    trains on the words as long) train the visual encoder alone (the generator
    fixed) on the adaptation loss, then everything on the generation loss. Without
    ``pretrained`` the generator is trained from scratch on the training captions (the thesis's
    GPT2-Scratch row); ``pretrained``: a local Hugging Face directory of a GPT-2 (``config.json``,
    its weights, its tokenizer files: ``save_pretrained`` of ``gpt2``), whose sizes must be
    ``layers``, ``width`` and ``heads``. GPT-2 small's (12, 768, 12) are the defaults.
    ``segments``: M, the mean-pooled segments per clip (the thesis leaves M open; ours).
    """

    generator: str = "gpt2"
    layers: int = 12
    width: int = 768  # the generator's embedding width; the visual encoder's too
    heads: int = 12
    segments: int = 4
    residual_blocks: int = 3
    adaptation: str = "language"
    adaptation_input: str = "dummy"
    split: bool = True
    adaptation_epochs: int = 2
    adaptation_margin: float = 1.0  # Eq. 7.3's 1
    dropout: float = 0.1
    pretrained: str | None = None

    def __post_init__(self) -> None:
        check_positive(self, "layers", "width", "heads", "segments", "residual_blocks",
                       "adaptation_epochs")
        check_dropout(self)
        for name, allowed in (("generator", GENERATORS), ("adaptation", ADAPTATIONS),
                              ("adaptation_input", ADAPTATION_INPUTS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}={getattr(self, name)!r}; allowed: {list(allowed)}")
        if self.width % self.heads:
            raise ValueError(f"width={self.width} is not a multiple of heads={self.heads}")
        if self.pretrained is not None:
            self._check_pretrained()

    def _check_pretrained(self) -> None:
        """The directory holds a GPT-2 of this config's sizes (known when the DAG is planned)."""
        if self.generator != "gpt2":
            raise ValueError(f"pretrained: weights of a GPT-2; generator is {self.generator!r}")
        path = Path(self.pretrained) / "config.json"
        try:
            settings = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise ValueError(f"pretrained: no GPT-2 config at {path} ({error})") from None
        if settings.get("model_type") != "gpt2":
            raise ValueError(f"pretrained: {path} is a {settings.get('model_type')!r} model, not "
                             "a GPT-2")
        sizes = {"layers": settings.get("n_layer"), "width": settings.get("n_embd"),
                 "heads": settings.get("n_head")}
        if sizes != {name: getattr(self, name) for name in sizes}:
            raise ValueError(f"pretrained: the GPT-2 of {path} has {sizes}: set model_args "
                             "to these")
