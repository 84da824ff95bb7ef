r"""The sampler vocabulary: every sampler name, its options and their defaults, in one torch-free place.

One name means one thing everywhere: the torch samplers (:mod:`mdm_energy.sampling`), the exact engine
(:mod:`mdm_energy.exact`), the tuner and every command line read their names, options and defaults from
here (docs/design.md §4).

========================  ====================================================  ===========================
name                      what each model call does                            exact law (docs §5)
========================  ====================================================  ===========================
``fixed``                 commits exactly the schedule's count of candidates,   fixed-count (any remasking)
                          chosen by ``remasking`` (LLaDA's sampler)
``ancestral``             reveals each masked position with the step's          independent reveals
                          probability :math:`\pi_k` (MDLM/MD4)
``euler``                 the same with flow_matching's Euler :math:`\pi_k`     independent reveals
``threshold``             commits every candidate whose probability clears      none (Monte Carlo only)
                          ``threshold``, at least one (Fast-dLLM)
``entropy-bounded``       commits the largest low-entropy prefix with           none (Monte Carlo only)
                          :math:`\sum H - \max H \le \varepsilon` (EB-Sampler)
``factor``                commits the longest prefix of the sorted confidences  none (Monte Carlo only)
                          with :math:`(n+1)(1 - c_n) \le f` (Fast-dLLM)
``dream``                 Dream's ``diffusion_generate``: ``origin``, ``maskgit_plus``,  origin: independent
                          ``topk_margin`` or ``entropy``, with top-p/top-k        reveals; others none
``threshold-floor``       the schedule as a floor under the threshold rule:     at ``threshold = 1``: that
                          at least the schedule's cumulative count by step k,   of ``fixed`` (low_confidence)
                          plus every candidate clearing ``threshold``
``threshold-cap``         the threshold rule under the schedule as a ceiling:   at ``threshold = 0``: that
                          at most the schedule's cumulative count by step k     of ``fixed`` (low_confidence)
========================  ====================================================  ===========================

Every sampler also takes the end-of-sequence controls of LLaDA: ``logits_eos_inf`` (the EOS logit is set
to -inf before candidates are drawn), ``suppress_tokens`` (the same for any listed ids) and
``stop_at_eos`` (a row stops calling the model once it has committed an end token with nothing masked
before it; its remaining positions become EOS). Samplers that rank candidates also take
``confidence_eos_eot_inf``: EOS and end-of-turn candidates are committed only when nothing else is left.

**Which exact law checks which torch sampler.** The exact engine computes the output law of a sampler
whose candidates are drawn from the model's own posterior, i.e. at temperature
:data:`EXACT_TEMPERATURE` = 1, over one block without guidance. :func:`exact_check_options` gives the
torch options of that configuration, so a Monte Carlo run of the torch sampler with those options
follows the law :func:`mdm_energy.exact.exact_sampler` computes (the tests check this by chi-square).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

__all__ = [
    "REMASKING",
    "DREAM_ALGS",
    "CACHE_MODES",
    "EXACT_TEMPERATURE",
    "SamplerSpec",
    "SAMPLERS",
    "sampler_names",
    "sampler_spec",
    "sampler_options",
    "exact_check_options",
    "OPTION_HELP",
]

#: Remasking rules of the fixed-count sampler (which of the step's candidates are committed).
REMASKING = ("random", "low_confidence", "margin", "entropy")
#: Dream's algorithms (its ``alg`` argument).
DREAM_ALGS = ("origin", "maskgit_plus", "topk_margin", "entropy")
#: Key/value cache modes of block-wise decoding (Fast-dLLM's prefix and dual caches).
CACHE_MODES = ("none", "prefix", "dual")
#: The temperature at which the exact engine's laws are defined (candidates from the model's own law).
EXACT_TEMPERATURE = 1.0


# --- option validators: each returns the normalised value or raises ValueError naming it -----------------


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _non_negative(name: str) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        v = _number(name, value)
        if v < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        return v

    return check


def _unit(name: str) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        v = _number(name, value)
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
        return v

    return check


def _positive_int(name: str, optional: bool = False) -> Callable[[Any], "int | None"]:
    def check(value: Any) -> "int | None":
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
        return int(value)

    return check


def _choice(name: str, choices: tuple[str, ...]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"unknown {name} {value!r} (known: {', '.join(choices)})")
        return value

    return check


def _flag(name: str) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, got {value!r}")
        return value

    return check


def _optional(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else check(value)


def _open_unit(name: str) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        v = _number(name, value)
        if not 0.0 < v <= 1.0:
            raise ValueError(f"{name} must lie in (0, 1], got {value!r}")
        return v

    return check


def _positive(name: str) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        v = _number(name, value)
        if v <= 0:
            raise ValueError(f"{name} must be a number > 0, got {value!r}")
        return v

    return check


def _token_ids(value: Any) -> tuple[int, ...]:
    """A list of token ids (or a string of them separated by commas or semicolons), sorted and unique."""
    if isinstance(value, str):
        parts = [p for p in value.replace(";", ",").split(",") if p.strip()]
        try:
            value = [int(p) for p in parts]
        except ValueError:
            raise ValueError(f"suppress_tokens must be token ids, got {value!r}") from None
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)) or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in value):
        raise ValueError(f"suppress_tokens must be a list of token ids >= 0, got {value!r}")
    return tuple(sorted(set(int(v) for v in value)))


def _schedule(value: Any):
    from .schedules import parse_schedule

    return parse_schedule(value)


#: Validator of every option any sampler takes.
_CHECKS: dict[str, Callable[[Any], Any]] = {
    "schedule": _schedule,
    "steps": _positive_int("steps"),
    "remasking": _choice("remasking rule", REMASKING),
    "temperature": _non_negative("temperature"),
    "block_length": _positive_int("block_length", optional=True),
    "cfg_scale": _non_negative("cfg_scale"),
    "skip_empty_steps": _flag("skip_empty_steps"),
    "threshold": _unit("threshold"),
    "epsilon": _non_negative("epsilon"),
    "factor": _positive("factor"),
    "alg": _choice("Dream algorithm", DREAM_ALGS),
    "alg_temp": _non_negative("alg_temp"),
    "top_p": _optional(_open_unit("top_p")),
    "top_k": _optional(_positive_int("top_k")),
    "logits_eos_inf": _flag("logits_eos_inf"),
    "confidence_eos_eot_inf": _flag("confidence_eos_eot_inf"),
    "suppress_tokens": _token_ids,
    "stop_at_eos": _flag("stop_at_eos"),
    "cache": _choice("cache mode", CACHE_MODES),
    "cache_refresh": _optional(_positive_int("cache_refresh")),
}

#: One line of help per option, shared by the docstrings and the command lines.
OPTION_HELP: dict[str, str] = {
    "schedule": "mask schedule spec, e.g. linear or beta:0.9,0.3",
    "steps": "model calls N (split evenly over blocks)",
    "remasking": "which candidates a fixed-count step commits: " + " | ".join(REMASKING),
    "temperature": "candidate temperature (0 = argmax)",
    "block_length": "semi-autoregressive block length (default: one block)",
    "cfg_scale": "classifier-free guidance scale (0 = off)",
    "skip_empty_steps": "make no model call on steps whose count is zero",
    "threshold": "confidence a candidate needs to be committed, in [0, 1]",
    "epsilon": "entropy budget of the entropy-bounded rule, >= 0",
    "factor": "the factor f of Fast-dLLM's rule: commit the n best while (n+1)(1 - c_n) <= f",
    "alg": "Dream's algorithm: " + " | ".join(DREAM_ALGS),
    "alg_temp": "Dream's randomness in choosing positions (0 = the most confident)",
    "top_p": "keep the smallest set of candidates whose probability reaches top_p, in (0, 1]",
    "top_k": "keep the top_k most likely candidates",
    "logits_eos_inf": "never propose the end-of-sequence token (LLaDA's logits_eos_inf)",
    "confidence_eos_eot_inf": "commit end-of-sequence and end-of-turn candidates only when nothing else is left",
    "suppress_tokens": "token ids never proposed (comma-separated on the command line)",
    "stop_at_eos": "a row stops once it has committed an end token with nothing masked before it",
    "cache": "key/value cache of block-wise decoding: " + " | ".join(CACHE_MODES) + " (needs block_length)",
    "cache_refresh": "recompute the whole cache every k model calls of a block (default: at each block start; 1 = exact)",
}

_EOS = {"logits_eos_inf": False, "suppress_tokens": (), "stop_at_eos": False}
_CACHE = {"cache": "none", "cache_refresh": None}
_COMMON = {"temperature": 0.0, "block_length": None, "cfg_scale": 0.0, **_EOS, **_CACHE}
_RANKED = {**_COMMON, "confidence_eos_eot_inf": False}


@dataclass(frozen=True)
class SamplerSpec:
    """A sampler's name, what it does, its options with their defaults, and how the exact engine computes
    its law (``"fixed-count"``, ``"independent"`` or ``None``)."""

    name: str
    summary: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    exact_law: "str | None" = None

    @property
    def options(self) -> tuple[str, ...]:
        return tuple(self.defaults)

    @property
    def scheduled(self) -> bool:
        """Whether a schedule and a number of steps drive it (else it is adaptive)."""
        return "schedule" in self.defaults


SAMPLERS: dict[str, SamplerSpec] = {
    spec.name: spec
    for spec in (
        SamplerSpec("fixed", "fixed counts per step from the schedule, committed by a remasking rule (LLaDA)",
                    {"schedule": "linear", "steps": 64, "remasking": "low_confidence", **_RANKED,
                     "skip_empty_steps": False}, exact_law="fixed-count"),
        SamplerSpec("ancestral", "independent reveals with pi_k = (alpha_k - alpha_k-1)/(1 - alpha_k-1) (MDLM/MD4)",
                    {"schedule": "linear", "steps": 64, **_COMMON, "temperature": 1.0}, exact_law="independent"),
        SamplerSpec("euler", "independent reveals with flow_matching's Euler jump probability",
                    {"schedule": "linear", "steps": 64, **_COMMON, "temperature": 1.0}, exact_law="independent"),
        SamplerSpec("threshold", "commit every candidate with probability >= threshold, at least one (Fast-dLLM)",
                    {"threshold": 0.9, **_RANKED}),
        SamplerSpec("entropy-bounded", "commit the largest low-entropy prefix with sum H - max H <= epsilon (EB-Sampler)",
                    {"epsilon": 0.1, **_RANKED}),
        SamplerSpec("factor", "commit the n most confident while (n+1)(1 - c_n) <= factor, at least one (Fast-dLLM)",
                    {"factor": 1.0, **_RANKED}),
        SamplerSpec("dream", "Dream's diffusion_generate: origin, maskgit_plus, topk_margin or entropy",
                    {"schedule": "dream:0.001", "steps": 64, "alg": "origin", "alg_temp": 0.0, "top_p": None,
                     "top_k": None, **_RANKED}),
        SamplerSpec("threshold-floor", "the schedule as a floor: by step k at least its cumulative count, plus every "
                    "candidate with probability >= threshold; at most `steps` calls, fewer when done early",
                    {"schedule": "linear", "steps": 64, "threshold": 0.9, **_RANKED}),
        SamplerSpec("threshold-cap", "the schedule as a ceiling: every candidate with probability >= threshold, at "
                    "least one, but by step k at most the schedule's cumulative count",
                    {"schedule": "linear", "steps": 64, "threshold": 0.9, **_RANKED}),
    )
}

#: Names that meant something else in earlier versions, and what to write instead.
_RENAMED = {
    "confidence": "'confidence' is now --sampler fixed --remasking low_confidence",
    "entropy": "the entropy-bounded sampler is 'entropy-bounded'; 'entropy' is a remasking rule of 'fixed'",
}


def sampler_names(exact: bool = False) -> tuple[str, ...]:
    """Every sampler name, or only those whose law the exact engine computes."""
    return tuple(n for n, s in SAMPLERS.items() if not exact or s.exact_law is not None)


def sampler_spec(name: str) -> SamplerSpec:
    """The :class:`SamplerSpec` of ``name``; ``ValueError`` naming the known samplers otherwise."""
    if name in SAMPLERS:
        return SAMPLERS[name]
    hint = f"; {_RENAMED[name]}" if name in _RENAMED else ""
    raise ValueError(f"unknown sampler {name!r} (known: {', '.join(SAMPLERS)}){hint}")


def sampler_options(name: str, **given: Any) -> dict[str, Any]:
    """The complete, validated options of sampler ``name``: its defaults overridden by ``given``.

    An option the sampler does not take is refused (``ValueError`` naming it and the sampler), so a
    setting can never be silently ignored. Values are normalised (a schedule spec becomes a
    :class:`~mdm_energy.schedules.Schedule`, numbers become floats).
    """
    spec = sampler_spec(name)
    unknown = [k for k in given if k not in spec.defaults]
    if unknown:
        raise ValueError(
            f"the {name} sampler does not take {', '.join(repr(k) for k in unknown)} "
            f"(it takes: {', '.join(spec.options)})"
        )
    merged = {**spec.defaults, **given}
    out = {k: _CHECKS[k](v) for k, v in merged.items()}
    if out.get("cache", "none") != "none" and out.get("block_length") is None:
        raise ValueError(f"cache {out['cache']!r} caches block by block: it needs a block_length")
    if out.get("cache_refresh") is not None and out.get("cache", "none") == "none":
        raise ValueError("cache_refresh applies to a cache: give cache='prefix' or 'dual' too")
    return out


def exact_check_options(name: str, **given: Any) -> dict[str, Any]:
    """The torch options whose output law the exact engine computes for sampler ``name``.

    That is the sampler's defaults with ``temperature`` = :data:`EXACT_TEMPERATURE`, one block and no
    guidance, overridden by ``given`` (e.g. ``remasking``). Raises ``ValueError`` for a sampler without
    an exact law, or for ``given`` options the exact law cannot honour.
    """
    spec = sampler_spec(name)
    if spec.exact_law is None:
        exact = ", ".join(sampler_names(exact=True))
        raise ValueError(f"the exact engine has no law for the {name} sampler (it has: {exact}); use Monte Carlo")
    opts = sampler_options(name, **{"temperature": EXACT_TEMPERATURE, **given})
    fixed = {"temperature": EXACT_TEMPERATURE, "block_length": None, "cfg_scale": 0.0, **_EOS, **_CACHE}
    if "confidence_eos_eot_inf" in opts:
        fixed["confidence_eos_eot_inf"] = False
    for key, want in fixed.items():
        if opts.get(key) != want:
            raise ValueError(f"exact laws are defined for {key}={want!r} only, got {key}={opts[key]!r}")
    return opts
