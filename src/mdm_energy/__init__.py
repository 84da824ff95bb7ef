"""mdm-energy: energy-optimal mask schedules for masked diffusion models.

The public API is re-exported here. Attributes load on first use, so ``import mdm_energy`` (and the
``mdm-energy schedule`` command) stays fast and never imports torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # schedules
    "Schedule": "schedules",
    "Linear": "schedules",
    "Sin2": "schedules",
    "Sine": "schedules",
    "MaskGIT": "schedules",
    "Poly": "schedules",
    "Beta": "schedules",
    "Table": "schedules",
    "PerBlock": "schedules",
    "ScheduleSpecError": "schedules",
    "parse_schedule": "schedules",
    "schedule_families": "schedules",
    "counts_from_alpha": "schedules",
    # energies
    "OPTIMUM": "energy",
    "energy_J": "energy",
    "integrate_over_gamma": "energy",
    "fisher_rao_distance": "energy",
    "discrete_energy": "energy",
    "discrete_energy_from_grid": "energy",
    "geodesic_alpha_grid": "energy",
    "TokenPath": "energy",
    "MaskedPath": "energy",
    "UniformPath": "energy",
    "token_path": "energy",
    "random_distribution": "energy",
    "state_sums": "energy",
    "BruteForceEnergies": "energy",
    "brute_force_energies": "energy",
    "reveal_probabilities": "reveal",
    "revision_plan": "revision",
    "RevisionPlan": "revision",
    "HAND_CRAFTED": "schedules",
    # the sampler vocabulary
    "REMASKING": "registry",
    "SamplerSpec": "registry",
    "sampler_names": "registry",
    "sampler_spec": "registry",
    "sampler_options": "registry",
    # exact engine
    "ExactDenoiser": "exact",
    "ChainDenoiser": "sampling",
    "load_distribution": "exact",
    "exact_sampler": "exact",
    "KLObjective": "exact",
    # samplers (torch)
    "Denoiser": "sampling",
    "CallableDenoiser": "sampling",
    "ExactTorchDenoiser": "sampling",
    "SampleOutput": "sampling",
    "Sampler": "sampling",
    "FixedCountSampler": "sampling",
    "AncestralSampler": "sampling",
    "EulerSampler": "sampling",
    "ThresholdSampler": "sampling",
    "EntropyBoundedSampler": "sampling",
    "FactorSampler": "sampling",
    "DreamSampler": "sampling",
    "ThresholdFloorSampler": "sampling",
    "ThresholdCapSampler": "sampling",
    "EntropyFloorSampler": "sampling",
    "decode_uniform": "sampling.uniform",
    "UniformSettings": "sampling.uniform",
    "EntropyBound": "sampling.uniform",
    "FixedCount": "sampling.uniform",
    "EntropyFloor": "sampling.uniform",
    "ThresholdCountSampler": "sampling",
    "JointThresholdSampler": "sampling",
    "ReMDMSampler": "sampling",
    "ReMDMLowConfidenceSampler": "sampling",
    "WinoSampler": "sampling",
    "DusSampler": "sampling",
    "DusScheduleSampler": "sampling",
    "KlassSampler": "sampling",
    "ProphetSampler": "sampling",
    "PCSampler": "sampling",
    "make_sampler": "sampling",
    # tuning
    "ExactKLObjective": "tuning",
    "TaskObjective": "tuning",
    "CallableObjective": "tuning",
    "ItemObjective": "tuning",
    "SearchSpace": "tuning",
    "ParetoSpace": "tuning",
    "pareto_tune": "tuning",
    "tune": "tuning",
    "write_report": "tuning",
    "beta_grid": "tuning",
    "exact_grid_study": "tuning",
    # the main job
    "run_demo": "demo",
    # interop
    "as_convex_scheduler": "integrations.flow_matching",
    "HFDenoiser": "integrations.huggingface",
    "generate": "integrations.huggingface",
    "CachingHFDenoiser": "integrations.huggingface",
    "DiffusionGemmaDenoiser": "integrations.diffusion_gemma",
    "BlockDiffusionDenoiser": "integrations.block_diffusion",
    "LMEvalObjective": "integrations.lm_eval_objective",
    # models trained here
    "MDMConfig": "models",
    "MDMTransformer": "models",
    "load_model": "models",
    "as_denoiser": "models",
    # the literature's schedules as baselines (docs/design.md §5)
    "jys_counts": "jys",
    "JYSSchedule": "jys",
    "ModelKLUB": "jys",
    "curve_klub": "jys",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
