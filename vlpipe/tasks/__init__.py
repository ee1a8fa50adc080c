"""Tasks: the data, loss and evaluation of one problem, shared by every model that solves it.

A task is one module plus one `TaskSpec` in `vlpipe.tasks.specs` (its task list, its
``task_args``, what it asks the model to predict, the score that selects checkpoints, its report
columns). Importing this package does not import torch; `task_class` imports the task's code.
"""

from __future__ import annotations

from vlpipe.models.family import load
from vlpipe.tasks.specs import TASK_SPECS, TaskSpec, task_spec


def task_class(name: str) -> type:
    """The class implementing task ``name`` (imported on first use)."""
    return load(task_spec(name).implementation)


__all__ = ["TASK_SPECS", "TaskSpec", "task_class", "task_spec"]
