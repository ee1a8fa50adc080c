"""Tasks: the data, loss and evaluation of one problem, shared by every model that solves it.

A task is one module plus one line here; its name is also the name of its task list
(``tables/tasks/<name>.parquet``, written by the manifest step) unless
`vlpipe.experiment_config.TASK_LISTS` names another (correspondence reads the retrieval list).
"""

from vlpipe.tasks.captioning import CaptioningTask
from vlpipe.tasks.correspondence import CorrespondenceTask
from vlpipe.tasks.fill_in_blank import FillInBlankTask
from vlpipe.tasks.multiple_choice import MultipleChoiceTask
from vlpipe.tasks.retrieval import RetrievalTask

TASKS = {"retrieval": RetrievalTask, "multiple_choice": MultipleChoiceTask,
         "fill_in_blank": FillInBlankTask, "correspondence": CorrespondenceTask,
         "captioning": CaptioningTask}

__all__ = ["TASKS", "CaptioningTask", "CorrespondenceTask", "FillInBlankTask",
           "MultipleChoiceTask", "RetrievalTask"]
