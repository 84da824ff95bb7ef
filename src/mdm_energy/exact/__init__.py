"""Exact sampling error on explicit distributions (docs/design.md §5).

* :mod:`.distributions` — ``.npy`` laws and the built-ins ``toy1``, ``toy2``, ``markov``, ``potts``,
  ``templates``;
* :mod:`.denoiser` — the exact denoiser (posteriors by summation) and the information curve;
* :mod:`.laws` — exact output laws of the fixed-count (every remasking rule), ancestral and Euler samplers, and
  of a fixed reveal order (DUS);
* :mod:`.revision` — the exact law of ReMDM's reveal-and-remask chain and its expected model calls;
* :mod:`.prophet` — the exact law of Prophet (fixed counts with an exit test) and its expected model calls;
* :mod:`.uniform` — the exact law of the uniform-noise fixed-count rule (DiffusionGemma-style decoding);
* :mod:`.search` — the memoised KL objective, the true optimum and the information-curve schedule;
* :mod:`.correlation` — total and dual total correlation, Chen–Cong–Li's TC/DTC schedules and randomised step
  sizes with their exact mixture law.

Beta grids over the exact KL run through the tuner (:func:`mdm_energy.tuning.exact_grid_study`).
"""

from .correlation import (RandomisedCounts, correlation_counts, curve_correlation_counts, curve_correlations, dtc_counts,
                          dual_total_correlation, law_randomised, randomised_counts, scale_counts, tc_counts,
                          total_correlation)
from .denoiser import ExactDenoiser
from .distributions import (
    MAX_EXACT_STATES,
    DistributionSpecError,
    ExplicitDistribution,
    distribution_families,
    load_distribution,
)
from .laws import (
    ExactResult,
    check_confidence_size,
    exact_options,
    exact_sampler,
    kl_divergence,
    law_confidence,
    fixed_order_groups,
    law_fixed_count,
    law_fixed_order,
    law_fixed_random,
    law_independent,
    law_remdm,
    sampler_law,
    tv_distance,
)
from .prophet import law_prophet, prophet_gaps, prophet_options
from .revision import remdm_plan
from .uniform import law_uniform_fixed_count, uniform_marginals
from .search import (
    InfoCurveSchedule,
    KLObjective,
    Optimum,
    compositions,
    counts_schedule,
    infocurve_bound,
    infocurve_counts,
    infocurve_counts_shared,
    optimal_counts,
    optimal_reveal,
    true_optimum,
)

__all__ = [
    "MAX_EXACT_STATES",
    "DistributionSpecError",
    "ExplicitDistribution",
    "load_distribution",
    "distribution_families",
    "ExactDenoiser",
    "ExactResult",
    "exact_options",
    "exact_sampler",
    "sampler_law",
    "check_confidence_size",
    "kl_divergence",
    "tv_distance",
    "law_fixed_random",
    "law_fixed_order",
    "fixed_order_groups",
    "law_fixed_count",
    "law_independent",
    "law_confidence",
    "law_remdm",
    "remdm_plan",
    "law_uniform_fixed_count",
    "uniform_marginals",
    "law_prophet",
    "prophet_gaps",
    "prophet_options",
    "KLObjective",
    "Optimum",
    "InfoCurveSchedule",
    "compositions",
    "optimal_counts",
    "optimal_reveal",
    "true_optimum",
    "infocurve_bound",
    "infocurve_counts",
    "infocurve_counts_shared",
    "counts_schedule",
    "total_correlation",
    "dual_total_correlation",
    "scale_counts",
    "tc_counts",
    "dtc_counts",
    "correlation_counts",
    "curve_correlations",
    "curve_correlation_counts",
    "RandomisedCounts",
    "randomised_counts",
    "law_randomised",
]
