r"""ReMDM's revision plan: the mask level :math:`\alpha` and the remasking probability :math:`\sigma` of every step.

ReMDM (remasking discrete diffusion) lets a step send a committed token back to the mask. On the grid
:math:`t_k = k/N` with :math:`\alpha_{k-1}` the mask level before step :math:`k` and :math:`\alpha_k` after it
(:math:`\alpha_0 = 0`, :math:`\alpha_N = 1`), each position of the block moves independently, given the
state before the step:

* a **committed** position is masked again with probability :math:`\sigma_k`;
* a **masked** position is revealed with probability
  :math:`c_k = \dfrac{\alpha_k - (1 - \sigma_k)\,\alpha_{k-1}}{1 - \alpha_{k-1}}`, its value drawn from the
  model given the state before the step, and stays masked with probability :math:`1 - c_k`.

These are the only probabilities that keep the forward marginals :math:`q(x_t \mid x_0)` of the masking
process for every :math:`\sigma_k` in :math:`[0, \sigma^{\max}_k]`, :math:`\sigma^{\max}_k =
\min\{1, (1 - \alpha_k)/\alpha_{k-1}\}` (above it, :math:`1 - c_k < 0`); :math:`\sigma = 0` is the MDLM
ancestral step (in law: the torch samplers draw their random numbers differently). The ``sigma`` rules choose :math:`\sigma_k`:

========  ==========================================================================================
``cap``      :math:`\sigma_k = \min\{\eta, (1-\alpha_k)/\alpha_{k-1}\}` (:math:`\eta` while :math:`\alpha_{k-1} = 0`)
``rescale``  :math:`\sigma_k = \eta\,\sigma^{\max}_k`
``conf``     per committed position :math:`\ell` of the block,
             :math:`\sigma_{k,\ell} = \sigma^{\max}_k\,\mathrm{softmax}_\ell(-p_\ell)`, with :math:`p_\ell` the
             model's probability of the token when it was committed, times :math:`\eta` (default 1, the
             authors' code; the paper's rescaled confidence for :math:`\eta < 1`): the least confident
             tokens are revised first, about :math:`\eta` tokens per step in all; masked positions reveal
             with the :math:`\sigma = 0` probability
``loop``     three phases of step counts :math:`n_1 = \max(1, \lceil s N\rceil)` (``loop_start`` :math:`s`),
             :math:`n_3 = \max(1, N - \lceil e N \rceil)` (``loop_end`` :math:`e`) and :math:`n_2` between
             (the steps that start before :math:`t = s`, from :math:`t = e` on, and the rest): the schedule
             runs from 0 to :math:`\alpha_{\rm on}` (``loop_alpha``) over the first :math:`n_1` steps with
             :math:`\sigma = 0`, holds :math:`\alpha = \alpha_{\rm on}` for :math:`n_2` steps with
             :math:`\sigma = \eta` (tokens are remasked and redrawn at a constant mask level, which needs
             :math:`\eta \le (1 - \alpha_{\rm on})/\alpha_{\rm on}`), then runs from :math:`\alpha_{\rm on}`
             to 1 over the last :math:`n_3` steps with :math:`\sigma = 0`
========  ==========================================================================================

``revise_from`` :math:`r` (ReMDM-switch; :math:`r = 1 - t_{\rm switch}` in the paper's reversed time) turns
revision on only at steps that start at :math:`t_{k-1} \ge r` (cap, rescale, conf). With the ``linear``
schedule, ``cap``/``rescale``/``conf`` are the authors' strategies on their log-linear :math:`\alpha(t) = 1 - t`,
and ``loop`` with ``linear`` is the paper's loop (its Algorithm 3: phase lengths in steps, so phase 1 ends
exactly at :math:`\alpha_{\rm on}`). The defaults of :math:`\eta` are the authors' published settings:
``cap`` 0.04 with fewer steps than positions and 0.008 otherwise, ``rescale`` 0.015, ``conf`` 1, ``loop`` 0.02
(``loop_start`` 0.45, ``loop_end`` 0.95, ``loop_alpha`` 0.9: the authors' :math:`t_{\rm on} = 0.55`,
:math:`t_{\rm off} = 0.05`).

This module is torch-free: the torch sampler (:mod:`mdm_energy.sampling.remdm`) and the exact engine
(:mod:`mdm_energy.exact`) both take their plan from :func:`revision_plan`, so the two agree on what a
schedule and a rule mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .registry import SIGMA_RULES
from .schedules import Schedule, parse_schedule

__all__ = ["SIGMA_RULES", "PUBLISHED_ETA", "LOOP_DEFAULTS", "RevisionPlan", "revision_plan", "default_eta"]

#: The authors' η per rule: ``cap`` (fewer steps than positions, otherwise), ``rescale``, ``loop``.
PUBLISHED_ETA = {"cap": (0.04, 0.008), "rescale": (0.015, 0.015), "conf": (1.0, 1.0), "loop": (0.02, 0.02)}
#: The authors' loop phases in this package's time (t = 0 all masked): loop_start, loop_end, loop_alpha.
LOOP_DEFAULTS = {"loop_start": 0.45, "loop_end": 0.95, "loop_alpha": 0.9}


def default_eta(rule: str, steps: int, length: int) -> float:
    """The authors' η for ``rule`` with ``steps`` steps over ``length`` positions."""
    few, many = PUBLISHED_ETA[rule]
    return few if steps < length else many


@dataclass(frozen=True)
class RevisionPlan:
    r"""One block's steps: ``alpha`` :math:`(\alpha_0..\alpha_N)`, ``sigma`` :math:`(\sigma_1..\sigma_N)` (for
    ``conf``: :math:`\eta\,\sigma^{\max}_k`, to be spread over the committed positions) and the rule."""

    rule: str
    alpha: np.ndarray
    sigma: np.ndarray

    @property
    def steps(self) -> int:
        return int(self.sigma.shape[0])

    def reveal(self, k: int, sigma: "float | np.ndarray | None" = None) -> "float | np.ndarray":
        r""":math:`c_k`: the probability that a position masked before step ``k`` (1-based) is revealed by it, for
        the step's :math:`\sigma` (``conf``: :math:`\sigma = 0` for masked positions, the default there)."""
        a_t, a_s = float(self.alpha[k - 1]), float(self.alpha[k])
        if sigma is None:
            sigma = 0.0 if self.rule == "conf" else float(self.sigma[k - 1])
        if a_t >= 1.0:
            return np.ones_like(sigma) if isinstance(sigma, np.ndarray) else 1.0
        c = (a_s - (1.0 - sigma) * a_t) / (1.0 - a_t)
        return np.clip(c, 0.0, 1.0)


def _phase_alpha(schedule: Schedule, steps: int) -> np.ndarray:
    """The schedule's α on a grid of ``steps`` steps."""
    return schedule.alpha(schedule.grid(steps))


def revision_plan(schedule: "Schedule | str", steps: int, rule: str, eta: "float | None" = None,
                  revise_from: float = 0.0, loop_start: "float | None" = None, loop_end: "float | None" = None,
                  loop_alpha: "float | None" = None, length: "int | None" = None) -> RevisionPlan:
    r"""The plan of ``steps`` ReMDM steps (module docstring) on ``schedule`` with the σ ``rule``.

    ``eta`` ``None`` takes the authors' value for the rule (:func:`default_eta`, by ``steps`` against the
    block ``length``), the ``loop_*`` phases ``None`` the authors' (:data:`LOOP_DEFAULTS`; they apply to ``loop``
    only). For ``conf``, ``sigma`` holds :math:`\eta\,\sigma^{\max}_k`. Raises ``ValueError``
    naming the bad value: an unknown rule, η outside [0, 1] (or above :math:`(1-\alpha_{\rm on})/\alpha_{\rm on}`
    for ``loop``), loop phases given to another rule or that do not fit (:math:`0 < s < e < 1`; no step left for
    the loop phase).
    """
    if rule not in SIGMA_RULES:
        raise ValueError(f"unknown sigma rule {rule!r} (known: {', '.join(SIGMA_RULES)})")
    s = parse_schedule(schedule)
    if eta is None:
        eta = default_eta(rule, steps, length if length is not None else steps)
    if not (isinstance(eta, (int, float)) and not isinstance(eta, bool) and math.isfinite(eta) and 0.0 <= eta <= 1.0):
        raise ValueError(f"eta must be a probability in [0, 1], got {eta!r}")
    if not 0.0 <= revise_from < 1.0:
        raise ValueError(f"revise_from must lie in [0, 1), got {revise_from!r}")
    given = {k: v for k, v in (("loop_start", loop_start), ("loop_end", loop_end), ("loop_alpha", loop_alpha))
             if v is not None}
    if given and rule != "loop":
        raise ValueError(f"{next(iter(given))} applies to sigma='loop' only, got sigma={rule!r}")
    loop_start, loop_end, loop_alpha = ({**LOOP_DEFAULTS, **given}[k] for k in LOOP_DEFAULTS)
    if rule == "loop":
        if revise_from:
            raise ValueError(f"revise_from does not apply to sigma='loop' (its phases are loop_start and loop_end), "
                             f"got revise_from={revise_from!r}")
        if not 0.0 < loop_start < loop_end < 1.0:
            raise ValueError(f"the loop phases need 0 < loop_start < loop_end < 1, got loop_start={loop_start!r}, "
                             f"loop_end={loop_end!r}")
        if not 0.0 < loop_alpha < 1.0:
            raise ValueError(f"loop_alpha must lie in (0, 1), got {loop_alpha!r}")
        bound = (1.0 - loop_alpha) / loop_alpha
        if eta > bound * (1.0 + 1e-12):
            raise ValueError(f"eta {eta!r} is above (1 - loop_alpha)/loop_alpha = {bound:.6g}: masked positions would "
                             "need a negative probability of staying masked in the loop phase")
        n1 = max(1, math.ceil(loop_start * steps - 1e-9))
        n3 = max(1, steps - math.ceil(loop_end * steps - 1e-9))
        n2 = steps - n1 - n3
        if n2 < 1:
            raise ValueError(f"{steps} steps leave no step for the loop phase (loop_start={loop_start!r}, "
                             f"loop_end={loop_end!r}: {n1} step(s) before it and {n3} after)")
        alpha = np.concatenate([loop_alpha * _phase_alpha(s, n1), np.full(n2, loop_alpha),
                                loop_alpha + (1.0 - loop_alpha) * _phase_alpha(s, n3)[1:]])
        sigma = np.concatenate([np.zeros(n1), np.full(n2, float(eta)), np.zeros(n3)])
        return RevisionPlan(rule, alpha, sigma)
    t = s.grid(steps)
    alpha = np.asarray(s.alpha(t), dtype=np.float64)
    a_t, a_s = alpha[:-1], alpha[1:]
    with np.errstate(divide="ignore"):  # (1 - α_k)/α_{k-1}, +inf before anything is committed (α_{k-1} = 0)
        ratio = np.where(a_t > 0, (1.0 - a_s) / np.where(a_t > 0, a_t, 1.0), np.inf)
    # cap: min(η, ratio); rescale and conf: η σ^max (conf spreads it over the committed positions)
    sigma = np.minimum(eta, ratio) if rule == "cap" else eta * np.minimum(1.0, ratio)
    sigma = np.where(t[:-1] >= revise_from - 1e-12, sigma, 0.0)
    return RevisionPlan(rule, alpha, np.clip(sigma, 0.0, 1.0))
