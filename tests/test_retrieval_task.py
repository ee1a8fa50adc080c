import numpy as np
import pandas as pd
import pytest
import torch

from vlpipe.tasks.retrieval import RetrievalBatch, RetrievalTask
from vlpipe.text import Vocabulary


class FixedScores(torch.nn.Module):
    """A stand-in model whose score matrix ``scores[video, text]`` is given."""

    def __init__(self, scores):
        super().__init__()
        self.scores = torch.tensor(scores)

    def encode_video(self, feats, mask):
        return feats, mask

    def encode_text(self, tokens, mask):
        return tokens, mask

    def score_matrix(self, v_enc, v_mask, t_enc, t_mask):
        return self.scores


@pytest.mark.parametrize(("directions", "expected"),
                         [("t2v", 1.25), ("v2t", 1.75), ("both", 3.0)])
def test_loss_ranks_in_the_configured_direction(directions, expected):
    clips = pd.DataFrame({"clip_id": ["a", "b"], "split": ["train", "train"],
                          "sentences": [["red circle"], ["blue square"]]})
    features = {c: np.zeros((3, 2), np.float32) for c in "ab"}
    vocab = Vocabulary.build(["red circle", "blue square"], min_count=1)
    task = RetrievalTask(clips, features, vocab, batch_size=2, margin=1.0,
                         directions=directions, feature_norm="none")
    batch = RetrievalBatch(torch.zeros(2, 3, 2), torch.ones(2, 3, dtype=torch.bool),
                           torch.ones(2, 2, dtype=torch.long), torch.ones(2, 2, dtype=torch.bool))
    # scores[video, text], positives on the diagonal, margin 1:
    # text→video (columns): text 0: max(0, 3 − 2 + 1) = 2; text 1: max(0, 0 − 0.5 + 1) = 0.5
    # video→text (rows):    video 0: max(0, 0 − 2 + 1) = 0; video 1: max(0, 3 − 0.5 + 1) = 3.5
    model = FixedScores([[2.0, 0.0], [3.0, 0.5]])
    assert task.loss(model, batch).item() == pytest.approx(expected)
