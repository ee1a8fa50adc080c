"""Evaluation metrics: pure functions on arrays and texts."""

from vlpipe.metrics.captioning import caption_metrics
from vlpipe.metrics.choice import choice_accuracy
from vlpipe.metrics.retrieval import bidirectional_retrieval, ranks_of_positives, retrieval_metrics

__all__ = ["bidirectional_retrieval", "caption_metrics", "choice_accuracy", "ranks_of_positives",
           "retrieval_metrics"]
