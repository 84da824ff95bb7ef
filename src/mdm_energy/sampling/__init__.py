"""Samplers for masked diffusion models (docs/design.md §4) and the denoiser protocol they call."""

from .base import LAST_RESORT, Canvas, SampleOutput, Sampler, Step, make_canvas
from .denoiser import CallableDenoiser, Denoiser, ExactTorchDenoiser, check_denoiser, stop_ids_of
from .ops import TIE_DECIMALS, confidence_scores, draw_candidates, select_top_k
from .rng import RowRNG
from .samplers import (SAMPLER_CLASSES, AncestralSampler, EntropyBoundedSampler, EulerSampler, FactorSampler,  # noqa: I001
                       FixedCountSampler, ThresholdSampler, make_sampler)
from .dream import DreamSampler, dream_candidates, filter_top_k, filter_top_p  # after .samplers, which it builds on
from .hybrid import ThresholdCapSampler, ThresholdFloorSampler

__all__ = [
    "Denoiser",
    "CallableDenoiser",
    "ExactTorchDenoiser",
    "check_denoiser",
    "stop_ids_of",
    "Sampler",
    "SampleOutput",
    "Step",
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
    "SAMPLER_CLASSES",
    "make_sampler",
    "TIE_DECIMALS",
    "draw_candidates",
    "confidence_scores",
    "select_top_k",
    "dream_candidates",
    "filter_top_p",
    "filter_top_k",
]
