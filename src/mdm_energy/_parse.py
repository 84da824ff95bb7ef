"""Strict number parsing for spec strings and command-line values.

Python's ``int()`` and ``float()`` accept ``1_0`` (as 10), surrounding blanks, ``inf``, ``nan`` and
``1e400`` (as ``inf``); a user who types ``beta:1_0,1`` more likely meant something else. These accept
plain decimal numbers only and raise ``ValueError`` otherwise.
"""

from __future__ import annotations

import math
import numbers
import re

__all__ = ["strict_int", "strict_float", "positive_int"]

_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def strict_int(text: str) -> int:
    """A decimal integer (optional sign, digits only)."""
    if not isinstance(text, str) or not _INT.fullmatch(text.strip()):
        raise ValueError(f"not an integer: {text!r}")
    return int(text)


def strict_float(text: str) -> float:
    """A finite decimal number (``1``, ``-0.5``, ``2e-3``); no ``inf``, ``nan``, underscores or overflow."""
    if not isinstance(text, str) or not _FLOAT.fullmatch(text.strip()):
        raise ValueError(f"not a number: {text!r}")
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {text!r}")
    return value


def positive_int(value: object, name: str) -> int:
    """``value`` as an ``int`` when it is an integer >= 1 (a Python or numpy integer, not a bool), else
    ``ValueError`` naming ``name`` and the value: the one check of counts such as steps, workers or budgets."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)
