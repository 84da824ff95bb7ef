r"""Present any mdm-energy schedule as a ``flow_matching`` ``ConvexScheduler`` (needs the ``[flow]`` extra).

flow_matching's discrete (mixture) paths mix the source and target token with weight
:math:`\kappa_t` on the target; for a masked source that is exactly our :math:`\alpha(t)`, so the
adapter returns ``alpha_t = κ = α(t)``, ``sigma_t = 1 - α(t)`` and their derivatives, and inverts
:math:`\kappa` with the schedule's own ``t_of_alpha``::

    from flow_matching.path import MixtureDiscreteProbPath
    path = MixtureDiscreteProbPath(scheduler=as_convex_scheduler("beta:0.9,0.3"))
"""

from __future__ import annotations

try:
    from flow_matching.path.scheduler import ConvexScheduler, SchedulerOutput
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "the flow_matching adapter needs the optional extra: pip install 'mdm-energy[flow]'"
    ) from exc

import torch
from torch import Tensor

from ..schedules import Schedule, parse_schedule

__all__ = ["MDMConvexScheduler", "as_convex_scheduler"]


class MDMConvexScheduler(ConvexScheduler):
    r"""A ``ConvexScheduler`` with :math:`\kappa_t = \alpha(t)` of an mdm-energy schedule."""

    def __init__(self, schedule: "Schedule | str") -> None:
        self.schedule = parse_schedule(schedule)

    def __call__(self, t: Tensor) -> SchedulerOutput:
        kappa = self.schedule.alpha(t)
        d_kappa = self.schedule.alpha_dot(t)
        return SchedulerOutput(alpha_t=kappa, sigma_t=1.0 - kappa, d_alpha_t=d_kappa, d_sigma_t=-d_kappa)

    def kappa_inverse(self, kappa: Tensor) -> Tensor:
        return self.schedule.t_of_alpha(torch.clamp(kappa, 0.0, 1.0))

    def __repr__(self) -> str:
        return f"MDMConvexScheduler({self.schedule.spec!r})"


def as_convex_scheduler(schedule: "Schedule | str") -> MDMConvexScheduler:
    """Wrap a schedule (object or spec string) as a flow_matching ``ConvexScheduler``."""
    return MDMConvexScheduler(schedule)
