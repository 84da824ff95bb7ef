"""Samplers for masked diffusion models (docs/design.md §4), the one decoding loop they share, and the
denoiser protocol they call. Each sampler is declared in :mod:`mdm_energy.registry` and lives in a module
of its own; :func:`make_sampler` builds any registered one by name."""

from .adaptive import EntropyBoundedSampler, FactorSampler, ThresholdSampler, best_one
from .base import (LAST_RESORT, Block, Canvas, Decision, Plan, RunState, SampleOutput, Sampler, ScheduledSampler,
                   Step, make_canvas)
from .chain import MAX_CHAIN_ENTRIES, ChainDenoiser
from .denoiser import CallableDenoiser, Denoiser, ExactTorchDenoiser, check_denoiser, check_pairwise, stop_ids_of
from .dream import DreamSampler, dream_candidates, filter_top_k, filter_top_p
from .factory import SAMPLER_CLASSES, make_sampler, sampler_class
from .fixed import FixedCountSampler
from .hybrid import EntropyFloorSampler, ThresholdCapSampler, ThresholdCountSampler, ThresholdFloorSampler
from .joint_threshold import JointThresholdSampler
from .klass import KlassSampler
from .ops import TIE_DECIMALS, confidence_scores, draw_candidates, select_top_k
from .prophet import ProphetSampler
from .pc_sampler import PCSampler
from .random_reveal import AncestralSampler, EulerSampler, RandomRevealSampler
from .remdm import ReMDMLowConfidenceSampler, ReMDMSampler
from .rng import RowRNG
from .wino import WinoSampler
from .dus import DusSampler, DusScheduleSampler

__all__ = [
    "Denoiser",
    "CallableDenoiser",
    "ExactTorchDenoiser",
    "ChainDenoiser",
    "MAX_CHAIN_ENTRIES",
    "check_denoiser",
    "stop_ids_of",
    "check_pairwise",
    "Sampler",
    "ScheduledSampler",
    "RandomRevealSampler",
    "SampleOutput",
    "Step",
    "Decision",
    "Block",
    "Plan",
    "RunState",
    "Canvas",
    "make_canvas",
    "LAST_RESORT",
    "RowRNG",
    "FixedCountSampler",
    "AncestralSampler",
    "EulerSampler",
    "ThresholdSampler",
    "EntropyBoundedSampler",
    "FactorSampler",
    "DreamSampler",
    "ThresholdFloorSampler",
    "ThresholdCapSampler",
    "EntropyFloorSampler",
    "ThresholdCountSampler",
    "JointThresholdSampler",
    "ReMDMSampler",
    "ReMDMLowConfidenceSampler",
    "WinoSampler",
    "DusSampler",
    "DusScheduleSampler",
    "KlassSampler",
    "ProphetSampler",
    "PCSampler",
    "SAMPLER_CLASSES",
    "make_sampler",
    "sampler_class",
    "TIE_DECIMALS",
    "draw_candidates",
    "confidence_scores",
    "select_top_k",
    "best_one",
    "dream_candidates",
    "filter_top_p",
    "filter_top_k",
]
