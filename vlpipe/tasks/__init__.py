"""Tasks: the data, loss and evaluation of one problem, shared by every model that solves it."""

from vlpipe.tasks.retrieval import RetrievalTask

TASKS = {"retrieval": RetrievalTask}

__all__ = ["TASKS", "RetrievalTask"]
