"""Samplers for masked diffusion models (docs/design.md §4) and the denoiser protocol they call."""

from .base import Canvas, SampleOutput, Sampler, make_canvas
from .denoiser import CallableDenoiser, Denoiser, ExactTorchDenoiser, check_denoiser
from .ops import TIE_DECIMALS, confidence_scores, draw_candidates, select_top_k
from .samplers import (
    SAMPLER_CLASSES,
    AncestralSampler,
    EntropyBoundedSampler,
    EulerSampler,
    FixedCountSampler,
    ThresholdSampler,
    make_sampler,
)

__all__ = [
    "Denoiser",
    "CallableDenoiser",
    "ExactTorchDenoiser",
    "check_denoiser",
    "Sampler",
    "SampleOutput",
    "Canvas",
    "make_canvas",
    "FixedCountSampler",
    "AncestralSampler",
    "EulerSampler",
    "ThresholdSampler",
    "EntropyBoundedSampler",
    "SAMPLER_CLASSES",
    "make_sampler",
    "TIE_DECIMALS",
    "draw_candidates",
    "confidence_scores",
    "select_top_k",
]
