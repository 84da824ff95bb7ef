"""Real tasks where the right output is not a function of the prompt alone."""

from .base import EOS, MASK, PAD, CharVocab, Example, Task
from .countdown import CountdownLongTask, CountdownTask, check_expression
from .pycode import PyCodeTask, adds_code, compiles, scores_one, unigram_entropy
from .sudoku import SudokuTask, is_valid_solution

TASKS = {"countdown": CountdownTask, "countdown-long": CountdownLongTask, "sudoku": SudokuTask, "pycode": PyCodeTask}


def get_task(name: str) -> Task:
    """A task by name (``countdown``, ``countdown-long``, ``sudoku``, ``pycode``)."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r} (known: {', '.join(sorted(TASKS))})")
    return TASKS[name]()


__all__ = ["PAD", "EOS", "MASK", "CharVocab", "Example", "Task", "CountdownTask", "CountdownLongTask", "SudokuTask", "TASKS", "get_task",
           "check_expression", "is_valid_solution",
           "PyCodeTask", "compiles", "adds_code", "scores_one", "unigram_entropy"]
