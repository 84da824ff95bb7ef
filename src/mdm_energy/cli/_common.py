"""Shared command-line plumbing: one-line errors with exit status 2, JSON output, atomic writes."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import Any, Callable, Iterator

from .._io import check_output_path, format_table, json_safe, write_text_atomic
from .._parse import strict_float, strict_int
from ..limits import MAX_STEPS

__all__ = [
    "CLIError",
    "ArgumentParser",
    "positive_int",
    "steps_int",
    "seed_int",
    "non_negative_float",
    "positive_float",
    "unit_float",
    "positive_floats",
    "bounds",
    "json_safe",
    "emit",
    "write_text_atomic",
    "check_output_path",
    "format_table",
    "progress_bar",
    "add_trust_remote_code",
]


class CLIError(Exception):
    """Bad input on the command line: printed as one line, exit status 2."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises :class:`CLIError` instead of printing usage, so every error is one line, and takes
    every flag only by its full name: with abbreviations on, a prefix such as ``--dilation`` is silently read as
    another flag (``--dilation-skip``) wherever the command lacks the one the user meant."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise CLIError(message)


def _typed(name: str, convert: Callable[[str], Any], ok: Callable[[Any], bool], requirement: str) -> Callable[[str], Any]:
    """argparse ``type``: ``convert`` the text strictly, then check ``ok``; the error names the option and the text."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except argparse.ArgumentTypeError:
            raise
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be {requirement}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{name} must be {requirement}, got {text!r}")
        return value

    return parse


def positive_int(name: str, maximum: "int | None" = None) -> Callable[[str], int]:
    """argparse ``type`` for an integer >= 1 (and <= ``maximum``)."""
    positive = _typed(name, strict_int, lambda v: v >= 1, "a positive integer")
    if maximum is None:
        return positive
    return _typed(name, positive, lambda v: v <= maximum, f"at most {maximum:,}")


def steps_int(name: str = "steps") -> Callable[[str], int]:
    """argparse ``type`` for a number of steps: 1 to :data:`~mdm_energy.limits.MAX_STEPS`."""
    return positive_int(name, MAX_STEPS)


def seed_int(name: str = "seed") -> Callable[[str], int]:
    """argparse ``type`` for a random seed: an integer in [0, 2^63)."""
    return _typed(name, strict_int, lambda v: 0 <= v < 2**63, "an integer in [0, 2^63)")


def non_negative_float(name: str) -> Callable[[str], float]:
    """argparse ``type`` for a finite number >= 0."""
    return _typed(name, strict_float, lambda v: v >= 0, "a number >= 0")


def positive_float(name: str) -> Callable[[str], float]:
    """argparse ``type`` for a finite number > 0."""
    return _typed(name, strict_float, lambda v: v > 0, "a number > 0")


def unit_float(name: str) -> Callable[[str], float]:
    """argparse ``type`` for a number in [0, 1]."""
    return _typed(name, strict_float, lambda v: 0.0 <= v <= 1.0, "in [0, 1]")


def positive_floats(name: str, count: "int | None" = None, max_count: int = 1000) -> Callable[[str], tuple[float, ...]]:
    """argparse ``type`` for a comma-separated list of positive numbers (exactly ``count``, or at most
    ``max_count``)."""

    def convert(text: str) -> tuple[float, ...]:
        return tuple(strict_float(p) for p in text.split(","))

    def ok(values: tuple[float, ...]) -> bool:
        size_ok = len(values) == count if count is not None else len(values) <= max_count
        return size_ok and all(v > 0 for v in values)

    requirement = (f"{count} positive numbers" if count is not None
                   else f"a comma-separated list of at most {max_count} positive numbers")
    return _typed(name, convert, ok, requirement)


def bounds(name: str) -> Callable[[str], tuple[float, float]]:
    """argparse ``type`` for ``LOW,HIGH`` with 0 < LOW < HIGH."""
    pair = positive_floats(name, 2)

    def convert(text: str) -> tuple[float, float]:
        try:
            return pair(text)
        except argparse.ArgumentTypeError:
            raise ValueError(text) from None

    return _typed(name, convert, lambda v: v[0] < v[1], "LOW,HIGH with 0 < LOW < HIGH")


def named_numbers(name: str, count: "int | None" = None) -> Callable[[str], dict[str, tuple[float, ...]]]:
    """argparse ``type`` for ``NAME=X,Y;NAME=X,...``: finite numbers per parameter name (exactly ``count`` of
    them each, ascending, when ``count`` is 2 — a LOW,HIGH range), each name once."""

    def convert(text: str) -> dict[str, tuple[float, ...]]:
        out: dict[str, tuple[float, ...]] = {}
        for part in text.split(";"):
            key, sep, body = part.partition("=")
            key = key.strip()
            if not sep or not key.isidentifier() or key in out:
                raise ValueError(text)
            out[key] = tuple(strict_float(p) for p in body.split(","))
        return out

    def ok(value: dict[str, tuple[float, ...]]) -> bool:
        if count is None:
            return all(value.values())
        return all(len(v) == count and (count != 2 or v[0] < v[1]) for v in value.values())

    requirement = ("NAME=LOW,HIGH[;NAME=LOW,HIGH...] with LOW < HIGH" if count == 2
                   else "NAME=X,Y,...[;NAME=X,...] with finite numbers")
    return _typed(name, convert, ok, requirement)


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


def add_trust_remote_code(p: argparse.ArgumentParser) -> None:
    """``--trust-remote-code``: run the Python a Hugging Face model folder ships (LLaDA's, Dream's); off by default."""
    p.add_argument("--trust-remote-code", action="store_true",
                   help="run the model folder's own Python code (needed by LLaDA and Dream folders; only for folders "
                        "you trust)")
