r"""Per-step reveal probabilities of the random-position samplers (``ancestral`` and ``euler``).

These samplers do not commit a fixed number of tokens per step: each still-masked position is revealed
at step :math:`k` independently with probability :math:`\pi_k`. Both the torch samplers
(:mod:`mdm_energy.sampling`) and the exact engine (:mod:`mdm_energy.exact`) take :math:`\pi_k` from here, by the rule's name,
so the two always agree on what a schedule means for them (docs/design.md §4).
"""

from __future__ import annotations

import numpy as np

from .schedules import Schedule, parse_schedule

__all__ = ["REVEAL_RULES", "reveal_probabilities"]

#: The rules for :math:`\pi_k` (a sampler declares which one its exact law uses: ``exact_law`` in the registry).
REVEAL_RULES = ("ancestral", "euler")


def reveal_probabilities(schedule: "Schedule | str", steps: int, rule: str = "ancestral") -> np.ndarray:
    r"""Per-step probability :math:`\pi_k` that a still-masked position is revealed at step :math:`k`.

    * ``ancestral`` (MDLM/MD4): :math:`\pi_k = (\alpha_k - \alpha_{k-1})/(1 - \alpha_{k-1})`, the exact
      conditional probability of unmasking in :math:`(t_{k-1}, t_k]` given masked at :math:`t_{k-1}`;
    * ``euler`` (flow_matching's mixture Euler rule): :math:`\pi_k = 1 - \exp(-h\,\dot\alpha/(1-\alpha))`
      with the rate taken at :math:`t_{k-1}` and :math:`h = 1/N`.

    Both end with :math:`\pi_N = 1` (:math:`\alpha(1) = 1`: whatever is left is revealed).
    """
    if rule not in REVEAL_RULES:
        raise ValueError(f"unknown reveal rule {rule!r} (known: {', '.join(REVEAL_RULES)})")
    s = parse_schedule(schedule)
    t = s.grid(steps)
    if rule == "ancestral":
        m = np.clip(s._one_minus_alpha(t), 0.0, 1.0)  # mask probability, precise near t = 1
        with np.errstate(divide="ignore", invalid="ignore"):
            pi = np.where(m[:-1] > 0, 1.0 - m[1:] / np.where(m[:-1] > 0, m[:-1], 1.0), 1.0)
    else:
        m = s._one_minus_alpha(t[:-1])
        ad = s._alpha_dot(t[:-1])
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            rate = np.where(ad == 0, 0.0, ad / m)
            pi = -np.expm1(-rate / steps)
        pi = np.where(np.isnan(pi), 1.0, pi)
    pi = np.clip(pi, 0.0, 1.0)
    pi[-1] = 1.0
    return pi
