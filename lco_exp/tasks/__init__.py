"""Tasks: data, prompts and scores. ``make_task`` is the only place that maps a task name to its class."""

from __future__ import annotations

from lco_exp.config import ConfigError, TaskConfig
from lco_exp.tasks.base import Benchmark, DataError, Example, Task
from lco_exp.tasks.instruct import InstructTask
from lco_exp.tasks.math import MathTask
from lco_exp.tasks.reading import ReadingTask

TASKS: dict[str, type[Task]] = {"math": MathTask, "reading": ReadingTask, "instruct": InstructTask}


def make_task(cfg: TaskConfig) -> Task:
    if cfg.name not in TASKS:
        raise ConfigError(f"task.name={cfg.name!r}: unknown task; expected one of {sorted(TASKS)}")
    return TASKS[cfg.name](cfg)


__all__ = ["Benchmark", "DataError", "Example", "InstructTask", "MathTask", "ReadingTask", "TASKS", "Task", "make_task"]
