"""Command-line options of the samplers, built from the one sampler vocabulary (:mod:`mdm_energy.registry`).

Every command that runs or scores a sampler takes ``--sampler`` and the options below with the same
names, help and checks; an option left out means the sampler's own default, and an option the chosen
sampler does not take is refused with one line (never silently ignored).
"""

from __future__ import annotations

import argparse
from typing import Any, Iterable

from .._parse import strict_float, strict_int
from ..registry import CACHE_MODES, DREAM_ALGS, OPTION_HELP, REMASKING, sampler_names, sampler_spec
from ._common import CLIError, _typed, non_negative_float, positive_float, positive_int, steps_int, unit_float

_FLAGS = ("skip_empty_steps", "logits_eos_inf", "confidence_eos_eot_inf", "stop_at_eos")


def _token_ids(text: str) -> tuple[int, ...]:
    return tuple(strict_int(p) for p in text.split(",") if p.strip())

__all__ = ["add_sampler_arguments", "given_sampler_options", "check_sampler_options", "flag"]


def flag(option: str) -> str:
    """The command-line spelling of a registry option (``block_length`` -> ``--block-length``)."""
    return "--" + option.replace("_", "-")


def _add(p: argparse.ArgumentParser, option: str, extra_help: str = "") -> None:
    help_text = OPTION_HELP[option] + " (default: the sampler's own)" + extra_help
    kinds: dict[str, dict[str, Any]] = {
        "schedule": {},
        "steps": {"type": steps_int()},
        "remasking": {"choices": REMASKING},
        "temperature": {"type": non_negative_float("temperature")},
        "block_length": {"type": positive_int("block-length")},
        "cfg_scale": {"type": non_negative_float("cfg-scale")},
        "threshold": {"type": unit_float("threshold")},
        "epsilon": {"type": non_negative_float("epsilon")},
        "factor": {"type": positive_float("factor")},
        "alg": {"choices": DREAM_ALGS},
        "alg_temp": {"type": non_negative_float("alg-temp")},
        "top_p": {"type": _typed("top-p", strict_float, lambda v: 0.0 < v <= 1.0, "in (0, 1]")},
        "top_k": {"type": positive_int("top-k")},
        "cache": {"choices": CACHE_MODES},
        "cache_refresh": {"type": positive_int("cache-refresh")},
        "suppress_tokens": {"type": _typed("suppress-tokens", _token_ids, lambda v: all(i >= 0 for i in v),
                                           "comma-separated token ids >= 0"), "metavar": "IDS"},
    }
    names = [flag(option)] + (["-N"] if option == "steps" else [])
    if option in _FLAGS:
        p.add_argument(*names, action="store_const", const=True, default=None, help=OPTION_HELP[option])
        return
    p.add_argument(*names, default=None, help=help_text, **kinds[option])


def _sampler_name(exact: bool):
    """argparse ``type`` for ``--sampler``: the registry's message (with hints for renamed samplers)."""

    def parse(text: str) -> str:
        try:
            spec = sampler_spec(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        if exact and spec.exact_law is None:
            raise argparse.ArgumentTypeError(f"the exact engine has no law for the {text} sampler "
                                             f"(it has: {', '.join(sampler_names(exact=True))})")
        return text

    return parse


def add_sampler_arguments(p: argparse.ArgumentParser, *, exact: bool = False, default: "str | None" = None,
                          options: "Iterable[str] | None" = None, help_extra: "dict[str, str] | None" = None) -> None:
    """``--sampler`` (the exact-law samplers only with ``exact``) and one flag per sampler option."""
    names = sampler_names(exact=exact)
    p.add_argument("--sampler", type=_sampler_name(exact), default=default, required=default is None, metavar="NAME",
                   help="sampler: " + " | ".join(names) + (f" (default {default})" if default else ""))
    wanted = list(options) if options is not None else list(dict.fromkeys(
        o for n in names for o in sampler_spec(n).options))
    for option in wanted:
        _add(p, option, (help_extra or {}).get(option, ""))


def given_sampler_options(args: argparse.Namespace, options: "Iterable[str] | None" = None) -> dict[str, Any]:
    """The sampler options the user gave on the command line (those left out are absent)."""
    keys = options if options is not None else [k for k in vars(args) if k in OPTION_HELP]
    return {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}


def check_sampler_options(sampler: str, given: dict[str, Any]) -> None:
    """Refuse, in command-line spelling, options that ``sampler`` does not take."""
    spec = sampler_spec(sampler)
    bad = [flag(k) for k in given if k not in spec.defaults]
    if bad:
        takes = ", ".join(flag(k) for k in spec.options) or "no options"
        raise CLIError(f"{', '.join(bad)} does not apply to the {sampler} sampler (it takes {takes})")
