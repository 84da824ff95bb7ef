"""Executable energy theory of masked diffusion paths (docs/design.md §3).

* :mod:`~mdm_energy.energy.continuous` — the per-token energy :math:`J[\\alpha;\\gamma]`, its N-step
  discretisation and the geodesic grid that minimises it;
* :mod:`~mdm_energy.energy.bruteforce` — kinetic, conditional kinetic and geodesic energies of a path
  on an explicit data law, by enumerating every state.
"""

from .bruteforce import (
    MAX_BRUTE_FORCE_STATES,
    BruteForceEnergies,
    MaskedPath,
    TokenPath,
    UniformPath,
    brute_force_energies,
    check_brute_force_size,
    marginal_flux,
    random_distribution,
    state_sums,
    token_path,
)
from .continuous import (
    OPTIMUM,
    discrete_energy,
    discrete_energy_from_grid,
    energy_J,
    fisher_rao_distance,
    geodesic_alpha_grid,
    integrate_over_gamma,
)

__all__ = [
    "OPTIMUM",
    "energy_J",
    "integrate_over_gamma",
    "fisher_rao_distance",
    "discrete_energy",
    "discrete_energy_from_grid",
    "geodesic_alpha_grid",
    "MAX_BRUTE_FORCE_STATES",
    "TokenPath",
    "MaskedPath",
    "UniformPath",
    "token_path",
    "random_distribution",
    "state_sums",
    "marginal_flux",
    "BruteForceEnergies",
    "brute_force_energies",
    "check_brute_force_size",
]
