"""Shared command-line plumbing: one-line errors with exit status 2, JSON output, atomic writes."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

from .._io import format_table, json_safe, write_text_atomic

__all__ = [
    "CLIError",
    "ArgumentParser",
    "positive_int",
    "non_negative_float",
    "unit_float",
    "positive_floats",
    "bounds",
    "json_safe",
    "emit",
    "write_text_atomic",
    "format_table",
    "progress_bar",
]


class CLIError(Exception):
    """Bad input on the command line: printed as one line, exit status 2."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises :class:`CLIError` instead of printing usage, so every error is one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise CLIError(message)


def positive_int(name: str) -> Callable[[str], int]:
    """argparse ``type`` for an integer >= 1 whose error names the option and the bad value."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a positive integer, got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{name} must be a positive integer, got {text!r}")
        return value

    return parse


def non_negative_float(name: str) -> Callable[[str], float]:
    """argparse ``type`` for a finite number >= 0."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number >= 0, got {text!r}") from None
        if not (math.isfinite(value) and value >= 0):
            raise argparse.ArgumentTypeError(f"{name} must be a number >= 0, got {text!r}")
        return value

    return parse


def unit_float(name: str) -> Callable[[str], float]:
    """argparse ``type`` for a number in [0, 1]."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must lie in [0, 1], got {text!r}") from None
        if not 0.0 <= value <= 1.0:
            raise argparse.ArgumentTypeError(f"{name} must lie in [0, 1], got {text!r}")
        return value

    return parse


def positive_floats(name: str, count: "int | None" = None) -> Callable[[str], tuple[float, ...]]:
    """argparse ``type`` for a comma-separated list of positive numbers (exactly ``count`` if given)."""

    def parse(text: str) -> tuple[float, ...]:
        try:
            values = tuple(float(p) for p in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a comma-separated list of numbers, got {text!r}") from None
        if count is not None and len(values) != count:
            raise argparse.ArgumentTypeError(f"{name} must have {count} numbers, got {text!r}")
        if any(not (math.isfinite(v) and v > 0) for v in values):
            raise argparse.ArgumentTypeError(f"{name} must be positive, got {text!r}")
        return values

    return parse


def bounds(name: str) -> Callable[[str], tuple[float, float]]:
    """argparse ``type`` for ``LOW,HIGH`` with 0 < LOW < HIGH."""
    pair = positive_floats(name, 2)

    def parse(text: str) -> tuple[float, float]:
        try:
            lo, hi = pair(text)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(f"{name} must satisfy 0 < LOW < HIGH, got {text!r}") from None
        if not lo < hi:
            raise argparse.ArgumentTypeError(f"{name} must satisfy 0 < LOW < HIGH, got {text!r}")
        return lo, hi

    return parse


def emit(as_json: bool, payload: dict, human: Callable[[], str]) -> None:
    """Print exactly one JSON object (``--json``) or the human-readable text, on stdout."""
    if as_json:
        sys.stdout.write(json.dumps(json_safe(payload), allow_nan=False) + "\n")
    else:
        sys.stdout.write(human().rstrip("\n") + "\n")


@contextlib.contextmanager
def progress_bar(total: int, desc: str) -> Iterator[Callable[[int], None]]:
    """A tqdm bar on stderr (hidden when stderr is not a terminal); yields ``progress(done)``."""
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, file=sys.stderr, disable=None)

    def progress(done: int) -> None:
        bar.n = min(int(done), total)
        bar.refresh()

    try:
        yield progress
    finally:
        bar.close()
