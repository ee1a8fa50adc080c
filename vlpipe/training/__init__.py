"""The training loop shared by every model and task."""

from vlpipe.training.loop import TrainSettings, train

__all__ = ["TrainSettings", "train"]
