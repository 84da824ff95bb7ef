r"""Prophet's exit rule without torch: the phase thresholds and the step numbers, shared by the ``prophet``
sampler (:mod:`mdm_energy.sampling.prophet`) and its exact law (:mod:`mdm_energy.exact.prophet`).

After every model call a row exits when the mean top-1 minus top-2 logit gap over its answer region is at
least the threshold of the decoding phase, :math:`\tau(n / N)`: ``early`` while the progress is below 0.33,
``mid`` below 0.67, ``late`` from there on; :math:`n` is the step's number (1-based, counted over all blocks,
and — when a block's zero-count steps are dropped — its number among the steps asked for), :math:`N` all the
steps of the run.
"""

from __future__ import annotations

from typing import Sequence

__all__ = ["PHASE_BOUNDS", "phase_threshold", "step_numbers", "answer_region"]

#: The progress at which the early phase ends and the late phase begins (the authors' fixed constants): the
#: thresholds are ``gap_early`` for progress < 0.33, ``gap_mid`` below 0.67, ``gap_late`` from there on.
PHASE_BOUNDS = (0.33, 0.67)


def phase_threshold(step: int, steps: int, early: float, mid: float, late: float) -> float:
    r"""The gap threshold :math:`\tau(n / N)` of step ``step`` (1-based) of ``steps``."""
    progress = step / steps
    if progress < PHASE_BOUNDS[0]:
        return early
    return mid if progress < PHASE_BOUNDS[1] else late


def step_numbers(full: Sequence[int], kept: int) -> list[int]:
    """The 0-based numbers, among the ``len(full)`` steps asked for, of a block's ``kept`` planned steps: all of
    them, or — when the plan dropped the zero-count steps (more steps than positions) — those with a count."""
    if kept == len(full):
        return list(range(len(full)))
    return [k for k, c in enumerate(full) if c]


def answer_region(length: int, start: int, answer_length: "int | None") -> tuple[int, int]:
    """The answer region ``[lo, hi)`` as offsets in a window of ``length`` positions: from ``start``, ``answer_length``
    positions (``None``: to the end), clipped to the window; ``ValueError`` when it starts outside the window."""
    if start >= length:
        raise ValueError(f"answer_start {start} lies outside the generation window of {length} "
                         f"positions (offsets 0 to {length - 1})")
    return start, length if answer_length is None else min(length, start + answer_length)
