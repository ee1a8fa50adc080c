"""S2VT's hyper-parameters (torch-free: checked when the workflow is planned) and the paper's
sizes."""

from __future__ import annotations

from dataclasses import dataclass

from vlpipe.models.config_checks import check_dropout, check_positive


@dataclass
class S2VTConfig:
    """Sequence to sequence video to text (Venugopalan et al., ICCV 2015); defaults are the
    paper's: frames linearly embedded to ``frame_dim`` (500), words to ``word_dim`` (500), two
    stacked LSTMs of ``hidden`` (1000) units, ``dropout`` on the LSTMs' outputs."""

    word_dim: int = 500
    frame_dim: int = 500
    hidden: int = 1000
    dropout: float = 0.5

    def __post_init__(self) -> None:
        check_positive(self, "word_dim", "frame_dim", "hidden")
        check_dropout(self)


PRESETS: dict[str, dict] = {
    "paper": {"word_dim": 500, "frame_dim": 500, "hidden": 1000, "dropout": 0.5},
}
