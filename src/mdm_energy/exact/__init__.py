"""Exact sampling error on explicit distributions (DESIGN.md §5).

* :mod:`.distributions` — ``.npy`` laws and the built-ins ``toy1``, ``toy2``, ``markov``, ``potts``,
  ``templates``;
* :mod:`.denoiser` — the exact denoiser (posteriors by summation) and the information curve;
* :mod:`.laws` — exact output laws of the fixed-count, ancestral, Euler and confidence samplers;
* :mod:`.search` — Beta grids, the true optimum and the information-curve schedule.
"""

from .denoiser import ExactDenoiser
from .distributions import (
    MAX_EXACT_STATES,
    DistributionSpecError,
    ExplicitDistribution,
    distribution_families,
    load_distribution,
)
from .laws import (
    SAMPLERS,
    ExactResult,
    exact_sampler,
    kl_divergence,
    law_confidence,
    law_fixed_random,
    law_independent,
    reveal_probabilities,
    sampler_law,
    tv_distance,
)
from .search import (
    BASELINES,
    DEFAULT_GRID,
    KLObjective,
    beta_grid,
    compositions,
    exact_grid_study,
    infocurve_bound,
    infocurve_counts,
    optimal_counts,
    optimal_reveal,
)

__all__ = [
    "MAX_EXACT_STATES",
    "DistributionSpecError",
    "ExplicitDistribution",
    "load_distribution",
    "distribution_families",
    "ExactDenoiser",
    "SAMPLERS",
    "ExactResult",
    "exact_sampler",
    "sampler_law",
    "kl_divergence",
    "tv_distance",
    "law_fixed_random",
    "law_independent",
    "law_confidence",
    "reveal_probabilities",
    "BASELINES",
    "DEFAULT_GRID",
    "KLObjective",
    "beta_grid",
    "compositions",
    "optimal_counts",
    "optimal_reveal",
    "infocurve_bound",
    "infocurve_counts",
    "exact_grid_study",
]
