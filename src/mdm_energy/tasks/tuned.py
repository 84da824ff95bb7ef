"""The tuned schedule recorded with a task checkpoint (``<checkpoint>/tuned_schedule.json``), valid only for the
weights and the score rule it was tuned on.

A schedule is tuned on a model's own scores, so after the weights are retrained — or the task's metric changes
(:attr:`~mdm_energy.tasks.base.Task.score_version`) — the recorded one no longer is the tuned one. The record
carries the weights' digest and the score version; every reader goes through :func:`tuned_schedule`, which
returns it only when both still match.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from .base import Task

__all__ = ["TUNED_FILE", "weights_digest", "tuned_stamp", "tuned_schedule"]

#: the record's file name inside a checkpoint folder
TUNED_FILE = "tuned_schedule.json"


def weights_digest(folder: "str | os.PathLike[str]") -> str:
    """The first 12 hex digits of the SHA-256 of a checkpoint's ``model.safetensors``: recorded with what was
    measured on those weights (a tuned schedule, the benchmarks' cached scores), so retrained weights never
    reuse them."""
    return hashlib.sha256((Path(folder) / "model.safetensors").read_bytes()).hexdigest()[:12]


def tuned_stamp(folder: "str | os.PathLike[str]", task: Task) -> dict[str, Any]:
    """The keys a tuned-schedule record must carry to be read back: the weights' digest and the score version."""
    return {"checkpoint": weights_digest(folder), "score_version": task.score_version}


def tuned_schedule(folder: "str | os.PathLike[str]", task: Task) -> "tuple[dict[str, Any] | None, str]":
    """``(record, "")`` when ``folder`` holds a tuned-schedule record made on these weights under this score
    version, else ``(None, why)`` with the reason in words (none recorded, other weights, another score version;
    a record without a score version counts as version 1)."""
    path = Path(folder) / TUNED_FILE
    if not path.is_file():
        return None, f"{path} does not exist"
    try:
        info = json.loads(path.read_text())
        info["schedule"]
    except (ValueError, KeyError, TypeError):
        return None, f"{path} is not a tuned-schedule record"
    digest = weights_digest(folder)
    if info.get("checkpoint") != digest:
        return None, f"{path} was tuned on other weights ({info.get('checkpoint')!r}; these are {digest!r})"
    if info.get("score_version", 1) != task.score_version:
        return None, (f"{path} was tuned under {task.name}'s score version {info.get('score_version', 1)} "
                      f"(now {task.score_version})")
    return info, ""
