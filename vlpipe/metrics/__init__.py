"""Evaluation metrics: pure functions on arrays."""

from vlpipe.metrics.retrieval import bidirectional_retrieval, ranks_of_positives, retrieval_metrics

__all__ = ["bidirectional_retrieval", "ranks_of_positives", "retrieval_metrics"]
