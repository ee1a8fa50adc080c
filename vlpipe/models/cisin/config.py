"""CiSIN's hyper-parameters (torch-free: checked when the workflow is planned) and its ablations
as flags (thesis Tables 6.1–6.3)."""

from __future__ import annotations

from dataclasses import dataclass

from vlpipe.models.config_checks import check_dropout, check_positive

FILL_IN = ("both", "text", "visual")
VIDEO_TERMS = ("face", "bbox", "parts")  # V's terms: faces, the track's box, body parts


@dataclass
class CiSINConfig:
    """Character in Story Identification Network (thesis ch. 6).

    | flags | the thesis's row |
    |---|---|
    | defaults | CiSIN: C = mean(L, σ(G V Gᵀ)), every objective trained jointly |
    | ``fill_in: text`` | CiSIN (Text-only): C = L (Table 6.3; Table 6.2's w/o Grounding & Visual) |
    | ``fill_in: visual`` | CiSIN (Visual-only): C = σ(G V Gᵀ) (Table 6.3; Table 6.2's w/o Text) |
    | ``joint: false`` | CiSIN (Separate training): the identity loss on L alone |
    | ``motion: false`` | grounding w/o motion (Table 6.2) |
    | ``attributes: false`` | w/o the gender head (with ``fill_in: visual``: w/o Attr & Text) |
    | ``video_text: true`` | video re-id + Text (Table 6.1): V + λ Gᵀ L G |
    | ``video_terms: [face]`` | video re-id Face only (Table 6.1) |
    | ``video_terms: [face, bbox]`` | video re-id + Human bbox (Table 6.1) |
    | ``video_terms: [face, bbox, parts]`` | video re-id + Body parts (Table 6.1) |

    ``video_terms``: the terms of V, each a learned weight times the cosine of two tracks'
    embeddings — ``face`` (mean face embeddings: the run reads a ``faces`` input), ``bbox`` (the
    appearance at the track's largest box) and ``parts`` (the grid under each body keypoint,
    averaged over the keypoints both tracks show: a ``persons`` input); unset, every term the
    run's inputs allow.

    Every variant trains the grounding and video re-id graphs on their triplet losses (margins
    3.0 and 2.0), so that their accuracies are reported for each row. ``hidden``: every MLP's
    width (1024 in the thesis); each MLP is two fully connected layers with a leaky ReLU.
    """

    hidden: int = 1024
    fill_in: str = "both"
    joint: bool = True
    motion: bool = True
    attributes: bool = True
    video_text: bool = False
    video_terms: list[str] | None = None
    grounding_margin: float = 3.0
    video_margin: float = 2.0
    dropout: float = 0.0

    def __post_init__(self) -> None:
        check_positive(self, "hidden")
        check_dropout(self)
        if self.fill_in not in FILL_IN:
            raise ValueError(f"fill_in={self.fill_in!r}; allowed: {list(FILL_IN)}")
        if self.video_terms is not None:
            unknown = sorted(set(self.video_terms) - set(VIDEO_TERMS))
            if unknown or not self.video_terms or len(set(self.video_terms)) < len(
                    self.video_terms):
                raise ValueError(f"video_terms={self.video_terms!r}: distinct names among "
                                 f"{list(VIDEO_TERMS)}, at least one")
        if not self.joint and self.fill_in != "both":
            raise ValueError("joint: false trains L and the visual loop apart and reads both: "
                             "it needs fill_in: both")
        for name in ("grounding_margin", "video_margin"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}={getattr(self, name)!r}: must be positive")
