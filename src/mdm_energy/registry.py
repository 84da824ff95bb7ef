r"""The sampler vocabulary: every sampler name, its options and their defaults, in one torch-free place — open
to samplers declared in a user's own code (:func:`register_sampler`) and in installed plug-ins
(:func:`load_plugins`; docs/extending.md).

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
``entropy-floor``         the same floor under the entropy-bounded rule: at     none (Monte Carlo only)
                          least ``C_k`` by step k, plus the EB-Sampler prefix
``threshold-cap``         the threshold rule under the schedule as a ceiling:   at ``threshold = 0``: that
                          at most the schedule's cumulative count by step k     of ``fixed`` (low_confidence)
``remdm``                 reveals masked positions as ``ancestral`` and         reveal-and-remask chain
                          re-masks committed ones with probability σ_k         (cap, rescale, loop)
                          (ReMDM; :mod:`mdm_energy.revision`)
``remdm-llada``           ``fixed`` (low_confidence) with a loop phase that     none (Monte Carlo only)
                          re-masks the least confident commits (ReMDM-LLaDA)
``wino``                  drafts every candidate above ``threshold`` (capped)   none (Monte Carlo only)
                          and, in the same call, re-masks earlier tokens whose
                          leave-one-out probability is below
                          ``verify_threshold`` (WINO; needs pairwise calls)
``dus``                   commits every masked position of the block's next     none (Monte Carlo only)
                          dilated group (DUS; :mod:`mdm_energy.dilation`)
``dus-schedule``          the same dilated order, cut by the schedule's counts  fixed-order
``klass``                 commits every candidate above ``threshold`` whose     none (Monte Carlo only)
                          last ``kl_history`` call-to-call KL divergences are
                          below ``kl_threshold``; else the schedule's count
                          of the most confident (KLASS)
``prophet``               ``fixed`` (low_confidence) until the mean top-1 −     fixed-count with the
                          top-2 logit gap of the answer region clears the       exit test (one block)
                          phase's threshold; then commits every masked
                          position of the window and stops (Prophet)
``pc-sampler``            ``fixed``'s counts, committed by                     none (Monte Carlo only)
                          :math:`e^{-\lambda d}\min(-p\log(f + 10^{-9}), \alpha)`:
                          position weight times calibrated confidence
                          (PC-Sampler; ``token_prior`` gives :math:`f`)
========================  ====================================================  ===========================

Every sampler also takes the end-of-sequence controls of LLaDA: ``logits_eos_inf`` (the EOS logit is set
to -inf before candidates are drawn), ``suppress_tokens`` (the same for any listed ids) and
``stop_at_eos`` (a row stops calling the model once it has committed an end token with nothing masked
before it; its remaining positions become EOS). Samplers that rank candidates also take
``confidence_eos_eot_inf``: EOS and end-of-turn candidates are committed only when nothing else is left.

Each sampler is declared once, by :func:`register_sampler` (the built-ins at the end of this module): its
options (:class:`Option`: default, validator, help, search range), its exact law and a lazy
``"module:Class"`` target, so this module never imports torch.

**Which exact law checks which torch sampler.** The exact engine computes the output law of a sampler
whose candidates are drawn from the model's own posterior, i.e. at temperature
:data:`EXACT_TEMPERATURE` = 1, over one block without guidance. :func:`exact_check_options` gives the
torch options of that configuration, so a Monte Carlo run of the torch sampler with those options
follows the law :func:`mdm_energy.exact.exact_sampler` computes (the tests check this by chi-square).
"""

from __future__ import annotations

import importlib
import math
import warnings
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Callable, Iterator, Mapping, Sequence

from ._parse import positive_int, strict_float, strict_int
from .limits import MAX_STEPS

__all__ = [
    "REMASKING",
    "DREAM_ALGS",
    "SIGMA_RULES",
    "CACHE_MODES",
    "EXACT_LAWS",
    "EXACT_TEMPERATURE",
    "PLUGIN_GROUPS",
    "PLUGINS_ENV",
    "Option",
    "SearchRange",
    "SamplerSpec",
    "SAMPLERS",
    "OPTIONS",
    "register_sampler",
    "register_option",
    "sampler_names",
    "sampler_spec",
    "sampler_options",
    "exact_check_options",
    "exact_law_options",
    "EXACT_PINNED_OPTIONS",
    "load_plugins",
    "sampler_table",
    "BUILTIN_SAMPLERS",
    "plugin_errors",
    "OPTION_HELP",
    "EOS_OPTIONS",
    "CACHE_OPTIONS",
    "COMMON_OPTIONS",
    "RANKED_OPTIONS",
]

#: Remasking rules of the fixed-count sampler (which of the step's candidates are committed).
REMASKING = ("random", "low_confidence", "margin", "entropy")
#: Dream's algorithms (its ``alg`` argument).
DREAM_ALGS = ("origin", "maskgit_plus", "topk_margin", "entropy")
#: ReMDM's strategies for the remasking probability σ of the revising ``remdm`` sampler (:mod:`mdm_energy.revision`).
SIGMA_RULES = ("cap", "rescale", "conf", "loop")
#: Key/value cache modes of block-wise decoding (Fast-dLLM's prefix and dual caches).
CACHE_MODES = ("none", "prefix", "dual")
#: The temperature at which the exact engine's laws are defined (candidates from the model's own law).
EXACT_TEMPERATURE = 1.0
#: The output laws the exact engine computes (docs/design.md §5), and the one a sampler declares: the
#: fixed-count law (any remasking rule), independent reveals with the ancestral or Euler probabilities,
#: ReMDM's reveal-and-remask chain (its ``cap``, ``rescale`` and ``loop`` rules), a fixed reveal order (DUS's
#: dilated order cut by the schedule's counts), or the fixed-count law with Prophet's exit test.
EXACT_LAWS = ("fixed-count", "ancestral", "euler", "remdm", "fixed-order", "prophet")
#: Entry-point groups through which installed packages add samplers and schedule families: loading the entry
#: point (a module, or an object in one) registers them.
PLUGIN_GROUPS = ("mdm_energy.schedules", "mdm_energy.samplers")  # schedules first: a sampler's default may need one


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


def _in_unit(name: str, low: str = "[", high: str = "]") -> Callable[[Any], float]:
    """A number in the unit interval, each end closed (``[``, ``]``) or open (``(``, ``)``)."""
    def check(value: Any) -> float:
        v = _number(name, value)
        if not ((0.0 <= v) if low == "[" else (0.0 < v)) or not ((v <= 1.0) if high == "]" else (v < 1.0)):
            raise ValueError(f"{name} must lie in {low}0, 1{high}, got {value!r}")
        return v

    return check


def _unit(name: str) -> Callable[[Any], float]:
    return _in_unit(name)


def _positive_int(name: str, optional: bool = False) -> Callable[[Any], "int | None"]:
    def check(value: Any) -> "int | None":
        if value is None and optional:
            return None
        return positive_int(value, name)

    return check


def _non_negative_int(name: str) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        import numbers

        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
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


def _interior(name: str) -> Callable[[Any], float]:
    return _in_unit(name, "(", ")")


def _half_open_unit(name: str) -> Callable[[Any], float]:
    return _in_unit(name, "[", ")")


def _open_unit(name: str) -> Callable[[Any], float]:
    return _in_unit(name, "(", "]")


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
            value = [strict_int(p) for p in parts]
        except ValueError:
            raise ValueError(f"suppress_tokens must be token ids, got {value!r}") from None
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)) or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in value):
        raise ValueError(f"suppress_tokens must be a list of token ids >= 0, got {value!r}")
    return tuple(sorted(set(int(v) for v in value)))


def _steps(value: Any) -> int:
    steps = positive_int(value, "steps")
    if steps > MAX_STEPS:
        raise ValueError(f"steps must be at most {MAX_STEPS:,}, got {steps:,}")
    return steps


def _token_prior(value: Any) -> str:
    from .token_prior import check_token_prior

    return check_token_prior(value)


def _schedule(value: Any):
    from .schedules import parse_schedule

    return parse_schedule(value)


# --- options ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchRange:
    """Where a tuner (``tune --pareto``) searches an option by default: ``[low, high]``, on a log scale if ``log``."""

    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high) or (
                self.log and self.low <= 0):
            raise ValueError(f"a search range needs finite low < high (low > 0 on a log scale), got "
                             f"({self.low!r}, {self.high!r})")


def _text_parser(default: Any) -> Callable[[str], Any]:
    """How a command-line value is read for an option whose default is ``default`` (strict numbers)."""
    if isinstance(default, int) and not isinstance(default, bool):
        return strict_int
    if isinstance(default, float):
        return strict_float
    return str


@dataclass(frozen=True)
class Option:
    """One sampler option, declared once: its name, default, validator and help line.

    ``check(value)`` returns the normalised value or raises ``ValueError`` naming it; every entry point
    (Python, ``generate()``, lm-eval ``model_args``, the command line) goes through it. ``parse`` reads the
    command-line text before ``check`` (default: a strict int or float after the default's type, the text
    itself otherwise); a ``bool`` default makes a switch (``--name`` sets it). ``choices`` are shown by the
    command line; ``search`` is the default range of ``tune --pareto``. A sampler may override ``default``.
    """

    name: str
    default: Any
    check: Callable[[Any], Any]
    help: str
    parse: "Callable[[str], Any] | None" = None
    choices: "tuple[str, ...] | None" = None
    search: "SearchRange | None" = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier() or self.name.startswith("_"):
            raise ValueError(f"an option name must be a Python identifier without a leading '_', got {self.name!r}")
        if not callable(self.check):
            raise ValueError(f"option {self.name!r} needs a validator: check must be callable, got {self.check!r}")
        if not isinstance(self.help, str) or not self.help.strip():
            raise ValueError(f"option {self.name!r} needs a help line")
        if self.parse is None:
            object.__setattr__(self, "parse", _text_parser(self.default))

    @property
    def switch(self) -> bool:
        """A true/false option (a bare ``--flag`` on the command line)."""
        return isinstance(self.default, bool)

    def from_text(self, text: str) -> Any:
        """The validated value of command-line ``text`` (``ValueError`` naming the option otherwise)."""
        try:
            value = self.parse(text)
        except ValueError:
            what = _TEXT_KINDS.get(self.parse, "a valid value")
            raise ValueError(f"{self.name} must be {what}, got {text!r}") from None
        return self.check(value)


#: What a command-line text must look like, by parser (for the one-line error).
_TEXT_KINDS: dict[Any, str] = {strict_int: "an integer", strict_float: "a number"}
_OPTIONS: dict[str, Option] = {}


def register_option(option: Option) -> Option:
    """Declare an option for any sampler to take by name; an option already declared is refused (one name, one
    meaning) unless it is the very same declaration."""
    if not isinstance(option, Option):
        raise ValueError(f"register_option takes an Option, got {option!r}")
    held = _OPTIONS.get(option.name)
    if held is not None and held != option:
        raise ValueError(f"option {option.name!r} is already declared (as: {held.help}); give a sampler its default "
                         "by name instead of declaring it again")
    _OPTIONS[option.name] = option
    return option


for _option in (
    Option("schedule", "linear", _schedule, "mask schedule spec, e.g. linear or beta:0.9,0.3"),
    Option("steps", 64, _steps, "model calls N (split evenly over blocks)"),
    Option("remasking", "low_confidence", _choice("remasking rule", REMASKING),
           "which candidates a fixed-count step commits: " + " | ".join(REMASKING), choices=REMASKING),
    Option("temperature", 0.0, _non_negative("temperature"), "candidate temperature (0 = argmax)"),
    Option("block_length", None, _positive_int("block_length", optional=True),
           "semi-autoregressive block length (default: one block)", parse=strict_int),
    Option("cfg_scale", 0.0, _non_negative("cfg_scale"), "classifier-free guidance scale (0 = off)"),
    Option("skip_empty_steps", False, _flag("skip_empty_steps"), "make no model call on steps whose count is zero"),
    Option("threshold", 0.9, _unit("threshold"), "confidence a candidate needs to be committed, in [0, 1] (at least "
           "it for threshold/threshold-floor/threshold-cap, as Fast-dLLM; above it for wino, klass, threshold-count "
           "and joint-threshold, as their authors)",
           search=SearchRange(0.3, 0.99)),
    Option("epsilon", 0.1, _non_negative("epsilon"), "entropy budget of the entropy-bounded rule, >= 0",
           search=SearchRange(0.01, 4.0, log=True)),
    Option("factor", 1.0, _positive("factor"),
           "the factor f of Fast-dLLM's rule: commit the n best while (n+1)(1 - c_n) <= f",
           search=SearchRange(0.25, 4.0, log=True)),
    Option("alg", "origin", _choice("Dream algorithm", DREAM_ALGS), "Dream's algorithm: " + " | ".join(DREAM_ALGS),
           choices=DREAM_ALGS),
    Option("alg_temp", 0.0, _non_negative("alg_temp"), "Dream's randomness in choosing positions (0 = the most confident)"),
    Option("top_p", None, _optional(_open_unit("top_p")),
           "keep the smallest set of candidates whose probability reaches top_p, in (0, 1]", parse=strict_float),
    Option("top_k", None, _optional(_positive_int("top_k")), "keep the top_k most likely candidates", parse=strict_int),
    Option("logits_eos_inf", False, _flag("logits_eos_inf"),
           "never propose the end-of-sequence token (LLaDA's logits_eos_inf)"),
    Option("confidence_eos_eot_inf", False, _flag("confidence_eos_eot_inf"),
           "commit end-of-sequence and end-of-turn candidates only when nothing else is left"),
    Option("suppress_tokens", (), _token_ids, "token ids never proposed (comma-separated on the command line)"),
    Option("stop_at_eos", False, _flag("stop_at_eos"),
           "a row stops once it has committed an end token with nothing masked before it"),
    Option("cache", "none", _choice("cache mode", CACHE_MODES),
           "key/value cache of block-wise decoding: " + " | ".join(CACHE_MODES) + " (needs block_length)",
           choices=CACHE_MODES),
    Option("sigma", "cap", _choice("sigma rule", SIGMA_RULES),
           "ReMDM's remasking probability: " + " | ".join(SIGMA_RULES), choices=SIGMA_RULES),
    Option("eta", None, _optional(_unit("eta")),
           "ReMDM's eta in [0, 1] (cap: the cap; rescale, conf: the factor; loop: sigma in the loop); default: "
           "the authors' value for the rule", parse=strict_float, search=SearchRange(0.002, 0.1, log=True)),
    Option("revise_from", 0.0, _half_open_unit("revise_from"),
           "ReMDM-switch: revise only at steps from this fraction of the time on, in [0, 1) (0 = throughout)"),
    Option("loop_start", None, _optional(_interior("loop_start")),
           "the fraction of the steps before the loop phase, in (0, 1) (remdm: sigma loop only; default 0.45)",
           parse=strict_float),
    Option("loop_end", None, _optional(_interior("loop_end")),
           "ReMDM-loop: the fraction of the steps at which the loop ends, in (0, 1) (default 0.95)", parse=strict_float),
    Option("loop_alpha", None, _optional(_interior("loop_alpha")),
           "ReMDM-loop: the mask level held in the loop, in (0, 1) (default 0.9)", parse=strict_float),
    Option("loop_steps", None, _optional(_positive_int("loop_steps")),
           "remdm-llada: model calls of the loop phase per block (default: steps per block)", parse=strict_int),
    Option("remask_count", 1, _positive_int("remask_count"),
           "remdm-llada: tokens re-masked and re-committed per loop call"),
    Option("verify_threshold", 0.9, _unit("verify_threshold"),
           "wino: the leave-one-out confidence an earlier token of the block needs to stay committed, in [0, 1] "
           "(at least threshold)", search=SearchRange(0.6, 0.99)),
    Option("cache_refresh", None, _optional(_positive_int("cache_refresh")),
           "recompute the whole cache every k model calls of a block (default: at each block start; 1 = exact)",
           parse=strict_int),
    Option("dilation", 2, _positive_int("dilation"),
           "dus: the dilation base a: strides B // a**dilation_skip, then divided by a down to 1 (1 = one group)",
           search=SearchRange(2, 4)),
    Option("dilation_skip", 1, _positive_int("dilation_skip"),
           "dus: the first stride is the block length // dilation**dilation_skip (must be >= 1)"),
    Option("kl_threshold", 0.01, _positive("kl_threshold"),
           "klass: the KL divergence (nats) between successive calls' distributions below which a position is "
           "stable, > 0", search=SearchRange(0.001, 0.1, log=True)),
    Option("kl_history", 2, _positive_int("kl_history"),
           "klass: how many successive calls' KL divergences must all be below kl_threshold, >= 1",
           search=SearchRange(1, 4)),
    Option("gap_early", 7.5, _non_negative("gap_early"),
           "prophet: the mean top-1 minus top-2 logit gap over the answer region that ends decoding while the "
           "progress is below 0.33, >= 0", search=SearchRange(1.0, 15.0, log=True)),
    Option("gap_mid", 5.0, _non_negative("gap_mid"),
           "prophet: the gap that ends decoding while the progress is in [0.33, 0.67), >= 0",
           search=SearchRange(0.5, 10.0, log=True)),
    Option("gap_late", 2.5, _non_negative("gap_late"),
           "prophet: the gap that ends decoding once the progress is 0.67 or more, >= 0",
           search=SearchRange(0.25, 7.5, log=True)),
    Option("answer_start", 0, _non_negative_int("answer_start"),
           "prophet: the offset in the generation window of the first position whose gap is monitored"),
    Option("answer_length", None, _optional(_positive_int("answer_length")),
           "prophet: how many positions from answer_start are monitored (default: to the end of the window)",
           parse=strict_int),
    Option("position_decay", 0.25, _non_negative("position_decay"),
           "pc-sampler: the rate lambda >= 0 of the position weight exp(-lambda d), d = the offset from the block "
           "start (0 = no position bias)", search=SearchRange(0.0, 1.0)),
    Option("calibration_clip", 10.0, _positive("calibration_clip"),
           "pc-sampler: the clip alpha > 0 of the calibrated confidence min(-p log(f + 1e-9), alpha)"),
    Option("edit_threshold", 0.0, _unit("edit_threshold"),
           "joint-threshold: the probability above which a committed token of the block is replaced by a different "
           "candidate, in [0, 1]", search=SearchRange(0.0, 0.95)),
    Option("max_post_edit_steps", 16, _non_negative_int("max_post_edit_steps"),
           "joint-threshold: model calls a block may take for edits once nothing in it is masked",
           search=SearchRange(0, 16)),
    Option("token_prior", "uniform", _token_prior,
           "pc-sampler: the background token frequencies f: uniform (f = 1/V), off (no calibration: the plain "
           "confidence) or a file of token counts (JSON {id: count}, the authors' {num_token, p_baseline_dict}, "
           "or 'id count' lines)"),
):
    register_option(_option)

#: Every declared option by name (a read-only view: declare new ones with :func:`register_option`).
OPTIONS: Mapping[str, Option] = MappingProxyType(_OPTIONS)


class _HelpView(Mapping):
    """``OPTION_HELP[name]``: the help line of every declared option (follows :data:`OPTIONS`)."""

    def __getitem__(self, key: str) -> str:
        return _OPTIONS[key].help

    def __iter__(self) -> Iterator[str]:
        return iter(_OPTIONS)

    def __len__(self) -> int:
        return len(_OPTIONS)


#: One line of help per option, shared by the docstrings and the command lines.
OPTION_HELP: Mapping[str, str] = _HelpView()

#: Option groups most samplers take, as defaults by name.
EOS_OPTIONS = {"logits_eos_inf": False, "suppress_tokens": (), "stop_at_eos": False}
CACHE_OPTIONS = {"cache": "none", "cache_refresh": None}
COMMON_OPTIONS = {"temperature": 0.0, "block_length": None, "cfg_scale": 0.0, **EOS_OPTIONS, **CACHE_OPTIONS}
RANKED_OPTIONS = {**COMMON_OPTIONS, "confidence_eos_eot_inf": False}


# --- samplers --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SamplerSpec:
    """A sampler's declaration: its name, what it does, its options (each with this sampler's default), the
    exact law the exact engine computes for it (one of :data:`EXACT_LAWS`, or ``None``) and its class, as a
    lazy ``"module:Class"`` target or the class itself."""

    name: str
    summary: str
    params: Mapping[str, Option] = field(default_factory=dict)
    exact_law: "str | None" = None
    target: Any = None
    steps_required: bool = True

    @property
    def options(self) -> tuple[str, ...]:
        return tuple(self.params)

    @property
    def defaults(self) -> Mapping[str, Any]:
        """Each option's default for this sampler."""
        return MappingProxyType({k: o.default for k, o in self.params.items()})

    @property
    def scheduled(self) -> bool:
        """Whether a schedule and a number of steps drive it (else it is adaptive)."""
        return "schedule" in self.params

    @property
    def needs_steps(self) -> bool:
        """Whether the command lines ask for the number of steps: a scheduled sampler's, unless its declaration
        says its default means something by itself (``steps_required=False``: ``klass``, whose schedule only paces
        a fallback)."""
        return self.scheduled and self.steps_required

    def load(self) -> type:
        """The sampler class (imported on first use, so the registry itself never imports torch)."""
        if isinstance(self.target, str):
            module, _, attr = self.target.partition(":")
            try:
                cls = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError) as exc:
                raise ValueError(f"the {self.name} sampler's class {self.target!r} cannot be imported: "
                                 f"{type(exc).__name__}: {exc}") from None
            object.__setattr__(self, "target", cls)
        return self.target


_SAMPLERS: dict[str, SamplerSpec] = {}
#: Every registered sampler by name (a read-only view: add samplers with :func:`register_sampler`).
SAMPLERS: Mapping[str, SamplerSpec] = MappingProxyType(_SAMPLERS)


def _check_target(name: str, target: Any) -> Any:
    if isinstance(target, type):
        return target
    if not isinstance(target, str) or target.count(":") != 1 or not all(
            part and all(p.isidentifier() for p in part.split(".")) for part in target.split(":")):
        raise ValueError(f"sampler {name!r}: target must be a class or a 'package.module:Class' string, got {target!r}")
    return target


def register_sampler(name: str, *, summary: str, options: Mapping[str, Any], target: Any = None,
                     exact_law: "str | None" = None, steps_required: bool = True) -> Any:
    """Declare a sampler: its ``name``, a one-line ``summary``, its ``options`` and its class ``target``.

    ``options`` maps each option name to this sampler's default (for an option already declared, see
    :data:`OPTIONS`) or to an :class:`Option` (a new one, declared here for every sampler). ``target`` is the
    class or a lazy ``"module:Class"`` string; without it, ``register_sampler`` returns a decorator for the
    class. Everything else — :func:`make_sampler`, the command-line flags, lm-eval's ``model_args``, the exact
    engine (with ``exact_law``) — reads this one declaration. The command lines ask a scheduled sampler for its
    number of steps unless ``steps_required`` is False (its default steps mean something by themselves). Refused with ``ValueError``: a name registered
    twice, an option without a declaration or validator, an unknown exact law, a malformed target.
    """
    if not isinstance(name, str) or not name or name != name.strip() or any(c.isspace() or c in ",;=" for c in name):
        raise ValueError(f"a sampler name must be a non-empty word without spaces, ',', ';' or '=', got {name!r}")
    if name in _SAMPLERS:
        raise ValueError(f"sampler {name!r} is already registered")
    if exact_law is not None and exact_law not in EXACT_LAWS:
        raise ValueError(f"sampler {name!r}: unknown exact law {exact_law!r} (known: {', '.join(EXACT_LAWS)})")
    if not isinstance(summary, str) or not summary.strip():
        raise ValueError(f"sampler {name!r} needs a one-line summary")
    params: dict[str, Option] = {}
    for key, value in dict(options).items():
        if isinstance(value, Option):
            if value.name != key:
                raise ValueError(f"sampler {name!r}: option {key!r} is declared under the name {value.name!r}")
            held = _OPTIONS.get(key)
            if held is not None and replace(held, default=value.default) != value:  # one name, one meaning
                raise ValueError(f"sampler {name!r}: option {key!r} is already declared (as: {held.help}); give "
                                 "its default by name instead of declaring it again")
            params[key] = value
        elif key in _OPTIONS:
            params[key] = replace(_OPTIONS[key], default=value)
        else:
            raise ValueError(f"sampler {name!r}: option {key!r} has no declaration (no validator); give an "
                             f"Option({key!r}, default, check, help) for it")
    if exact_law is not None:
        missing = [k for k in ("schedule", "steps", "temperature") if k not in params]
        if missing:  # the exact engine runs a schedule over steps at temperature 1
            raise ValueError(f"sampler {name!r} declares the exact law {exact_law!r} but takes no {missing[0]!r} option")
    for option in params.values():  # every default must pass its own check
        try:
            option.check(option.default)
        except ValueError as exc:
            raise ValueError(f"sampler {name!r}: the default of {option.name!r} is refused by its check: {exc}") from None

    def add(cls: Any) -> Any:
        spec = SamplerSpec(name, " ".join(summary.split()), MappingProxyType(params), exact_law, _check_target(name, cls),
                           bool(steps_required))
        binds = isinstance(cls, type) and hasattr(cls, "_bind_spec") and cls.__dict__.get("name") in (None, "", name)
        if isinstance(cls, type) and hasattr(cls, "_check_options"):
            cls._check_options(spec)  # everything is checked before any table changes
        for option in params.values():
            if option.name not in _OPTIONS:
                register_option(replace(option, default=option.default))
        _SAMPLERS[name] = spec
        if binds:
            cls._bind_spec(spec)  # a class named for another sampler gets a subclass of this name on first use
        return cls

    if target is None:
        return add
    add(target)
    return _SAMPLERS[name]


_S = "mdm_energy.sampling."
register_sampler("fixed", summary="commits exactly the schedule's count of the step's candidates, chosen by `remasking` (LLaDA)",
                 options={"schedule": "linear", "steps": 64, "remasking": "low_confidence", **RANKED_OPTIONS,
                          "skip_empty_steps": False},
                 target=_S + "fixed:FixedCountSampler", exact_law="fixed-count")
register_sampler("ancestral", summary="reveals each masked position with `π_k = (α_k − α_{k−1})/(1 − α_{k−1})` (MDLM/MD4)",
                 options={"schedule": "linear", "steps": 64, **COMMON_OPTIONS, "temperature": 1.0},
                 target=_S + "random_reveal:AncestralSampler", exact_law="ancestral")
register_sampler("euler", summary="reveals with `π_k = 1 − exp(−h·α̇/(1−α))` at `t_{k−1}`, `h = 1/N`; the last step reveals all "
                         "(flow_matching's mixture Euler rule)",
                 options={"schedule": "linear", "steps": 64, **COMMON_OPTIONS, "temperature": 1.0},
                 target=_S + "random_reveal:EulerSampler", exact_law="euler")
register_sampler("threshold", summary="commits every candidate whose probability is ≥ `threshold`, at least the most confident (Fast-dLLM)",
                 options={"threshold": 0.9, **RANKED_OPTIONS}, target=_S + "adaptive:ThresholdSampler")
register_sampler("entropy-bounded",
                 summary="sorts masked positions by entropy and commits the largest prefix with `Σ H − max H ≤ ε`, at "
                         "least one (EB-Sampler)",
                 options={"epsilon": 0.1, **RANKED_OPTIONS}, target=_S + "adaptive:EntropyBoundedSampler")
register_sampler("factor", summary="commits the longest prefix of the sorted confidences with `(n+1)(1 − c_n) ≤ f`, at least one "
                         "(Fast-dLLM)",
                 options={"factor": 1.0, **RANKED_OPTIONS}, target=_S + "adaptive:FactorSampler")
register_sampler("dream", summary="Dream's `diffusion_generate`: `origin` (independent reveals) or the count of the most confident "
                         "by `maskgit_plus`, `topk_margin`, `entropy`; candidates and confidences from the tempered, "
                         "top-p/top-k filtered distribution",
                 options={"schedule": "dream:0.001", "steps": 64, "alg": "origin", "alg_temp": 0.0, "top_p": None,
                          "top_k": None, **RANKED_OPTIONS},
                 target=_S + "dream:DreamSampler")
register_sampler("threshold-floor",
                 summary="the schedule as a floor: by step `k` at least the cumulative count `C_k` (the `max(1, C_k − r)` "
                         "most confident), plus every candidate with probability ≥ `threshold`; ≤ `steps` calls, fewer "
                         "when confident tokens run ahead",
                 options={"schedule": "linear", "steps": 64, "threshold": 0.9, **RANKED_OPTIONS},
                 target=_S + "hybrid:ThresholdFloorSampler")
register_sampler("entropy-floor",
                 summary="the schedule as a floor under the entropy bound: by step `k` at least the cumulative count "
                         "`C_k` (the `max(n_ε, C_k − r)` lowest-entropy), `n_ε` the EB-Sampler prefix with "
                         "`Σ H − max H ≤ ε`; ≤ `steps` calls",
                 options={"schedule": "linear", "steps": 64, "epsilon": 0.1, **RANKED_OPTIONS},
                 target=_S + "hybrid:EntropyFloorSampler")
register_sampler("threshold-cap",
                 summary="the schedule as a ceiling: every candidate with probability ≥ `threshold`, at least one, but "
                         "by step `k` at most `C_k` (no ceiling after `steps` calls)",
                 options={"schedule": "linear", "steps": 64, "threshold": 0.9, **RANKED_OPTIONS},
                 target=_S + "hybrid:ThresholdCapSampler")
register_sampler("remdm",
                 summary="ReMDM: reveals each masked position with `(α_k − (1−σ_k)α_{k−1})/(1 − α_{k−1})` and re-masks "
                         "each committed one with `σ_k` (`sigma`: cap, rescale, conf or loop); a step that reveals "
                         "nothing makes no model call",
                 options={"schedule": "linear", "steps": 64, "sigma": "cap", "eta": None, "revise_from": 0.0,
                          "loop_start": None, "loop_end": None, "loop_alpha": None, **COMMON_OPTIONS, "temperature": 1.0},
                 target=_S + "remdm:ReMDMSampler", exact_law="remdm")
register_sampler("remdm-llada",
                 summary="ReMDM for LLaDA: low-confidence fixed counts, with a loop of `loop_steps` calls after "
                         "`loop_start` of the steps that re-masks the `remask_count` tokens of lowest commit-time "
                         "confidence and commits as many",
                 options={"schedule": "linear", "steps": 64, "remask_count": 1, "loop_start": 0.875, "loop_steps": None,
                          **COMMON_OPTIONS, "temperature": 1.0},
                 target=_S + "remdm:ReMDMLowConfidenceSampler")
register_sampler("wino",
                 summary="WINO: drafts every masked candidate with probability > `threshold` (at most `min(max(⌊0.7m⌋, "
                         "5), 20)`, at least one) and, in the same call, re-masks the block's earlier tokens whose "
                         "leave-one-out probability is < `verify_threshold`; needs a model that takes a 4-D attention "
                         "mask",
                 options={"threshold": 0.6, "verify_threshold": 0.9, "temperature": 0.0, "block_length": None,
                          "cfg_scale": 0.0, **EOS_OPTIONS, "confidence_eos_eot_inf": False},
                 target=_S + "wino:WinoSampler")
register_sampler("dus",
                 summary="DUS: commits every masked position of the block's next dilated group (strides `B//a^e`, "
                         "`B//a^{e+1}`, …, 1; `log2 B` groups for `a = 2`), positions fixed before the model is called",
                 options={"dilation": 2, "dilation_skip": 1, **COMMON_OPTIONS},
                 target=_S + "dus:DusSampler")
register_sampler("dus-schedule",
                 summary="DUS's dilated order cut by the schedule: step `k` commits the next `c_k` positions of the "
                         "order (a zero-count step makes no call)",
                 options={"schedule": "linear", "steps": 64, "dilation": 2, "dilation_skip": 1, **COMMON_OPTIONS},
                 target=_S + "dus:DusScheduleSampler", exact_law="fixed-order")
register_sampler("klass",
                 summary="KLASS: commits every masked candidate with probability > `threshold` whose last "
                         "`kl_history` call-to-call KL divergences are all < `kl_threshold`; when none, the schedule's "
                         "count for the step (at least one) of the most confident",
                 options={"schedule": "linear", "steps": 256, "threshold": 0.9, "kl_threshold": 0.01, "kl_history": 2,
                          **RANKED_OPTIONS},
                 target=_S + "klass:KlassSampler", steps_required=False)
register_sampler("prophet",
                 summary="Prophet: `fixed` (low_confidence) until the mean top-1 − top-2 logit gap over the answer "
                         "region clears the phase's threshold (`gap_early` while progress < 0.33, `gap_mid` < 0.67, "
                         "`gap_late` after); then every masked position of the window gets its candidate in that "
                         "call and the row stops",
                 options={"schedule": "linear", "steps": 64, "remasking": "low_confidence", "gap_early": 7.5,
                          "gap_mid": 5.0, "gap_late": 2.5, "answer_start": 0, "answer_length": None,
                          "temperature": 0.0, "block_length": None, "cfg_scale": 0.0, **EOS_OPTIONS,
                          "confidence_eos_eot_inf": False, "skip_empty_steps": False},
                 target=_S + "prophet:ProphetSampler", exact_law="prophet")
register_sampler("pc-sampler",
                 summary="PC-Sampler: commits the schedule's count of the candidates with the highest position-weighted, "
                         "calibrated confidence `e^{−λd}·min(−p·log(f + 10⁻⁹), α)` (`d`: offset in the block, `f`: "
                         "`token_prior` frequency)",
                 options={"schedule": "linear", "steps": 64, "position_decay": 0.25, "calibration_clip": 10.0,
                          "token_prior": "uniform", **RANKED_OPTIONS, "skip_empty_steps": False},
                 target=_S + "pc_sampler:PCSampler")

register_sampler("threshold-count",
                 summary="every candidate with probability > `threshold` when at least the step's count `c_k` clear "
                         "it, else the `c_k` most confident (LLaDA 2.x's generate, SDAR's low_confidence_dynamic)",
                 options={"schedule": "linear", "steps": 64, "threshold": 0.95, **RANKED_OPTIONS},
                 target=_S + "hybrid:ThresholdCountSampler")
register_sampler("joint-threshold",
                 summary="SGLang's JointThreshold: masked candidates with probability > `threshold` (at least the most "
                         "confident) and, in the same call, committed tokens whose different candidate has probability "
                         "> `edit_threshold`; a block ends on a call that changes nothing or after "
                         "`max_post_edit_steps` calls with nothing masked",
                 options={"threshold": 0.5, "edit_threshold": 0.0, "max_post_edit_steps": 16, **RANKED_OPTIONS},
                 target=_S + "joint_threshold:JointThresholdSampler")

#: Names that meant something else in earlier versions, and what to write instead.
_RENAMED = {
    "confidence": "'confidence' is now --sampler fixed --remasking low_confidence",
    "entropy": "the entropy-bounded sampler is 'entropy-bounded'; 'entropy' is a remasking rule of 'fixed'",
}


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def sampler_table(names: "Sequence[str] | None" = None) -> str:
    """The samplers as a markdown table, from their declarations: name, what each model call does, options
    with their defaults (the end-token and cache controls most samplers share are left out) and the exact law.
    docs/design.md §4 holds this table for the built-ins (a test keeps it equal); ``mdm-energy samplers``
    prints it for every registered sampler, plug-ins included."""
    shared = {*EOS_OPTIONS, *CACHE_OPTIONS, "confidence_eos_eot_inf"}
    rows = ["| name | each model call | options (defaults) | exact law (§5) |", "|---|---|---|---|"]
    for name in names if names is not None else sampler_names():
        spec = sampler_spec(name)
        opts = ", ".join(k if o.default is None else f"{k} ({_shown(o.default)})"
                         for k, o in spec.params.items() if k not in shared)
        rows.append(f"| `{name}` | {spec.summary} | {opts or '—'} | {spec.exact_law or 'none (Monte Carlo)'} |")
    return "\n".join(rows) + "\n"


#: The samplers declared in this module (the rest come from user code and plug-ins).
BUILTIN_SAMPLERS = tuple(_SAMPLERS)


# --- plug-ins --------------------------------------------------------------------------------------------

_PLUGINS_LOADED = False
_PLUGIN_ERRORS: dict[str, str] = {}


#: Environment variable naming plug-ins to load besides the installed entry points: module names or ``.py``
#: files, separated by commas (for a user's own file, without packaging it).
PLUGINS_ENV = "MDM_ENERGY_PLUGINS"


def _import_plugin(target: str) -> None:
    """Import a plug-in module by name, or a ``.py`` file by path (registered as a module of its file name)."""
    if target.endswith(".py"):
        import sys
        from importlib import util
        from pathlib import Path

        path = Path(target).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"no such file {str(path)!r}")
        name = path.stem
        held = sys.modules.get(name)
        if held is not None and Path(getattr(held, "__file__", "") or "").resolve() != path.resolve():
            raise ValueError(f"a module named {name!r} is already imported ({getattr(held, '__file__', 'built in')}); "
                             f"rename the plug-in file {str(path)!r}")
        if held is not None:
            return  # this very file, already imported
        spec = util.spec_from_file_location(name, path)
        module = util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        return
    importlib.import_module(target)


def load_plugins() -> dict[str, str]:
    """Load every plug-in once per process: the installed entry points of the :data:`PLUGIN_GROUPS` groups,
    then the modules or ``.py`` files named in ``$MDM_ENERGY_PLUGINS`` (comma-separated).

    A plug-in is a module whose import registers samplers (:func:`register_sampler`) or schedule families
    (:func:`mdm_energy.schedules.register_schedule`). One that fails to load — it raises on import, or
    registers a name already taken — is skipped with a warning naming it, and the built-ins and the other
    plug-ins keep working. Returns the failures, ``{plug-in: one-line reason}`` (also :func:`plugin_errors`).
    """
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return dict(_PLUGIN_ERRORS)
    _PLUGINS_LOADED = True
    import os
    from importlib.metadata import entry_points

    found: list[tuple[str, Callable[[], Any]]] = []
    for group in PLUGIN_GROUPS:
        found += [(f"{ep.name} ({group}: {ep.value})", ep.load) for ep in entry_points(group=group)]
    for target in (t.strip() for t in os.environ.get(PLUGINS_ENV, "").split(",")):
        if target:
            found.append((f"{target} (${PLUGINS_ENV})", lambda t=target: _import_plugin(t)))
    from . import schedules

    tables = (_SAMPLERS, _OPTIONS, schedules._FAMILIES)
    for label, load in found:
        before = [dict(t) for t in tables]
        try:
            load()
        except Exception as exc:  # noqa: BLE001 - a broken plug-in must not take the built-ins down
            for table, saved in zip(tables, before):  # nothing of a plug-in that failed half-way stays registered
                table.clear()
                table.update(saved)
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
            _PLUGIN_ERRORS[label] = reason
            warnings.warn(f"plug-in {label} was not loaded: {reason}", RuntimeWarning, stacklevel=2)
    return dict(_PLUGIN_ERRORS)


def plugin_errors() -> dict[str, str]:
    """The plug-ins that failed to load so far, with the reason (see :func:`load_plugins`)."""
    return dict(_PLUGIN_ERRORS)


def _plugin_hint() -> str:
    if not _PLUGIN_ERRORS:
        return ""
    return "; not loaded: " + "; ".join(f"plug-in {k} ({v})" for k, v in _PLUGIN_ERRORS.items())


# --- look-ups --------------------------------------------------------------------------------------------


def sampler_names(exact: bool = False) -> tuple[str, ...]:
    """Every sampler name (installed plug-ins included), or only those whose law the exact engine computes."""
    load_plugins()
    return tuple(n for n, s in _SAMPLERS.items() if not exact or s.exact_law is not None)


def sampler_spec(name: str) -> SamplerSpec:
    """The :class:`SamplerSpec` of ``name``; ``ValueError`` naming the known samplers otherwise."""
    if name not in _SAMPLERS:
        load_plugins()
    if name in _SAMPLERS:
        return _SAMPLERS[name]
    hint = f"; {_RENAMED[name]}" if name in _RENAMED else ""
    raise ValueError(f"unknown sampler {name!r} (known: {', '.join(_SAMPLERS)}){hint}{_plugin_hint()}")


def sampler_options(name: str, **given: Any) -> dict[str, Any]:
    """The complete, validated options of sampler ``name``: its defaults overridden by ``given``.

    An option the sampler does not take is refused (``ValueError`` naming it and the sampler), so a
    setting can never be silently ignored. Values are normalised (a schedule spec becomes a
    :class:`~mdm_energy.schedules.Schedule`, numbers become floats).
    """
    spec = sampler_spec(name)
    unknown = [k for k in given if k not in spec.params]
    if unknown:
        raise ValueError(
            f"the {name} sampler does not take {', '.join(repr(k) for k in unknown)} "
            f"(it takes: {', '.join(spec.options)})"
        )
    merged = {**spec.defaults, **given}
    out = {k: spec.params[k].check(v) for k, v in merged.items()}
    if out.get("cache", "none") != "none" and out.get("block_length") is None:
        raise ValueError(f"cache {out['cache']!r} caches block by block: it needs a block_length")
    if out.get("cache_refresh") is not None and out.get("cache", "none") == "none":
        raise ValueError("cache_refresh applies to a cache: give cache='prefix' or 'dual' too")
    return out


#: The options every exact law is defined at one value of (:func:`exact_check_options` refuses any other).
EXACT_PINNED_OPTIONS = MappingProxyType({"temperature": EXACT_TEMPERATURE, "block_length": None, "cfg_scale": 0.0,
                                         **EOS_OPTIONS, **CACHE_OPTIONS, "confidence_eos_eot_inf": False})


def exact_law_options() -> tuple[str, ...]:
    """The options an exact law may depend on besides ``schedule``, ``steps`` and ``remasking``: every option
    of the samplers with an exact law (plug-ins included), less :data:`EXACT_PINNED_OPTIONS`, in declaration
    order (``mdm-energy exact`` gives each a flag, so a new exact sampler's options are never left out)."""
    left_out = {"schedule", "steps", "remasking", *EXACT_PINNED_OPTIONS}
    return tuple(dict.fromkeys(k for n in sampler_names(exact=True) for k in sampler_spec(n).options
                               if k not in left_out))


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
    for key, want in EXACT_PINNED_OPTIONS.items():
        if key in opts and opts[key] != want:
            raise ValueError(f"exact laws are defined for {key}={want!r} only, got {key}={opts[key]!r}")
    if spec.exact_law == "remdm" and opts.get("sigma") == "conf":  # its state holds each token's confidence
        raise ValueError("the exact engine has no law for sigma='conf' (its state would hold every token's "
                         "commit-time confidence); use cap, rescale or loop, or Monte Carlo")
    return opts
