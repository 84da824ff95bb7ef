"""Command-line options of the samplers, built from the one sampler vocabulary (:mod:`mdm_energy.registry`).

Every command that runs or scores a sampler takes ``--sampler`` and the options below with the same
names, help and checks; an option left out means the sampler's own default, and an option the chosen
sampler does not take is refused with one line (never silently ignored).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Iterable

from ..registry import OPTIONS, Option, sampler_names, sampler_spec
from ._common import CLIError

__all__ = ["add_sampler_arguments", "given_sampler_options", "check_sampler_options", "flag"]


def flag(option: str) -> str:
    """The command-line spelling of a registry option (``block_length`` -> ``--block-length``)."""
    return "--" + option.replace("_", "-")


def _text_type(option: Option):
    """argparse ``type``: the option's own text parser and validator (its declaration), errors as one line."""

    cli = option.name.replace("_", "-")

    def parse(text: str) -> Any:
        try:
            value = option.from_text(text)
        except ValueError as exc:  # the declaration's message, in command-line spelling and with the text typed
            message, cut = str(exc), str(exc).rfind(", got ")
            if message.startswith(option.name + " ") and cut >= 0:  # "name must be ..., got value"
                message = cli + message[len(option.name):cut] + f", got {text!r}"
            raise argparse.ArgumentTypeError(message) from None
        return value

    return parse


def _add(p: argparse.ArgumentParser, option: Option, extra_help: str = "") -> None:
    names = [flag(option.name)] + (["-N"] if option.name == "steps" else [])
    if option.switch:
        p.add_argument(*names, action="store_const", const=True, default=None, help=option.help)
        return
    kinds: dict[str, Any] = {"choices": option.choices} if option.choices else {"type": _text_type(option)}
    if option.name == "suppress_tokens":
        kinds["metavar"] = "IDS"
    p.add_argument(*names, default=None, help=option.help + " (default: the sampler's own)" + extra_help, **kinds)


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
    """``--sampler`` (the exact-law samplers only with ``exact``) and one flag per sampler option. Call it after
    the command's own flags: an option (of a plug-in) spelled like one of them gets no flag, with a warning."""
    names = sampler_names(exact=exact)
    p.add_argument("--sampler", type=_sampler_name(exact), default=default, required=default is None, metavar="NAME",
                   help="sampler: " + " | ".join(names) + (f" (default {default})" if default else ""))
    declared = {k: o for n in names for k, o in sampler_spec(n).params.items()}
    wanted = list(options) if options is not None else list(declared)
    added = []
    for option in wanted:
        try:
            _add(p, declared.get(option) or OPTIONS[option], (help_extra or {}).get(option, ""))
            added.append(option)
        except argparse.ArgumentError:  # a plug-in's option spelled like one of the command's own flags
            owners = ", ".join(n for n in names if option in sampler_spec(n).params)
            print(f"mdm-energy: warning: option {option!r} of the {owners} sampler has no flag in "
                  f"'{p.prog}': {flag(option)} is the command's own", file=sys.stderr)
    p.set_defaults(sampler_flags=tuple(added))  # which attributes of the parsed arguments are sampler options


def given_sampler_options(args: argparse.Namespace, options: "Iterable[str] | None" = None) -> dict[str, Any]:
    """The sampler options the user gave on the command line (those left out are absent)."""
    keys = options if options is not None else getattr(args, "sampler_flags", [k for k in vars(args) if k in OPTIONS])
    return {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}


def check_sampler_options(sampler: str, given: dict[str, Any]) -> None:
    """Refuse, in command-line spelling, options that ``sampler`` does not take."""
    spec = sampler_spec(sampler)
    bad = [flag(k) for k in given if k not in spec.params]
    if bad:
        takes = ", ".join(flag(k) for k in spec.options) or "no options"
        raise CLIError(f"{', '.join(bad)} does not apply to the {sampler} sampler (it takes {takes})")
