"""Tasks: data, prompts and rewards. ``make_task`` is the only place that maps a task name to its class."""

from __future__ import annotations

from lco_exp.config import ConfigError, TaskConfig
from lco_exp.tasks.base import DataError, Example
from lco_exp.tasks.math import MathTask

TASKS = {"math": MathTask}


def make_task(cfg: TaskConfig) -> MathTask:
    if cfg.name not in TASKS:
        raise ConfigError(f"task.name={cfg.name!r}: unknown task; expected one of {sorted(TASKS)}")
    return TASKS[cfg.name](cfg)


__all__ = ["DataError", "Example", "MathTask", "TASKS", "make_task"]
