"""``mdm-energy energy SPEC [--gamma SPEC] [--brute-force …]``: the energy of a schedule pair."""

from __future__ import annotations

import argparse
import math

from ._common import CLIError, emit, format_table, positive_int, seed_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "energy",
        help="per-token energy J[alpha; gamma], and optionally the three path energies by brute force",
        description="J[alpha; gamma] = ∫ alpha'^2 / (gamma' alpha (1-alpha)) dt >= pi^2, with equality iff "
        "alpha = sin^2(pi/2 gamma) (docs/design.md §3). gamma defaults to alpha's own geodesic time.",
    )
    p.add_argument("spec", help="mask schedule alpha (spec string)")
    p.add_argument("--gamma", help="interpolation schedule gamma (spec string; its geodesic time is used)")
    p.add_argument("--brute-force", action="store_true", help="also compute E_k, E_c, E_g by enumerating all states")
    p.add_argument("--tokens", "-n", type=positive_int("tokens"), help="sequence length n for --brute-force")
    p.add_argument("--vocab", "-d", type=positive_int("vocab"), help="vocabulary size d for --brute-force")
    p.add_argument("--seed", type=seed_int(), default=0, help="seed of the random data law (default 0)")
    p.add_argument("--path", choices=["mdm", "uniform"], default="mdm", help="diffusion path (default mdm)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def _fmt(x: float) -> str:
    return "inf" if math.isinf(x) else ("nan" if math.isnan(x) else f"{x:.8g}")


def run(args: argparse.Namespace) -> None:
    from ..energy import OPTIMUM, brute_force_energies, check_brute_force_size, energy_J, random_distribution
    from ..schedules import parse_schedule

    alpha = parse_schedule(args.spec)
    gamma = parse_schedule(args.gamma) if args.gamma is not None else alpha
    if args.brute_force:
        if args.tokens is None or args.vocab is None:
            raise CLIError("--brute-force needs --tokens n and --vocab d")
        if args.vocab < 2:
            raise CLIError(f"vocab must be at least 2, got {args.vocab}")
        try:
            check_brute_force_size(args.tokens, args.vocab, args.path)
        except ValueError as exc:
            raise CLIError(str(exc)) from None
    elif args.tokens is not None or args.vocab is not None:
        raise CLIError("--tokens and --vocab only make sense with --brute-force")

    J = energy_J(alpha, gamma)
    payload: dict = {"J": J, "optimum": OPTIMUM, "excess": J / OPTIMUM - 1.0}
    bf = None
    if args.brute_force:
        q = random_distribution(args.tokens, args.vocab, args.seed)
        bf = brute_force_energies(q, alpha, gamma, args.path)
        payload.update(
            kinetic=bf.kinetic,
            conditional_kinetic=bf.conditional_kinetic,
            geodesic=bf.geodesic,
            ratio_kinetic_conditional=bf.ratio_kinetic_conditional,
            ratio_conditional_geodesic=bf.ratio_conditional_geodesic,
        )

    def human() -> str:
        lines = [
            f"alpha = {alpha.spec}, gamma = {gamma.spec}",
            f"J[alpha; gamma] = {_fmt(J)}   optimum pi^2 = {OPTIMUM:.8g}   excess J/pi^2 - 1 = {_fmt(J / OPTIMUM - 1.0)}",
        ]
        if bf is not None:
            n, d = bf.n, bf.d
            lines.append(f"\nbrute force over every state: path={bf.path}, n={n}, d={d}, seed={args.seed}")
            rows = [
                ["kinetic E_k", _fmt(bf.kinetic), _fmt(bf.constant_kinetic), f"n(d+1)^(n-1) = {n * (d + 1) ** (n - 1)}"],
                ["conditional E_c", _fmt(bf.conditional_kinetic), _fmt(bf.constant_conditional_kinetic), f"n 2^(n-1) = {n * 2 ** (n - 1)}"],
                ["geodesic E_g", _fmt(bf.geodesic), _fmt(bf.constant_geodesic), f"n = {n}"],
            ]
            lines.append(format_table(["energy", "value", "value / J", "MDM theory"], rows))
            lines.append(
                f"E_k/E_c = {_fmt(bf.ratio_kinetic_conditional)} (MDM theory {bf.predicted_ratio_kinetic_conditional:.8g}); "
                f"E_c/E_g = {_fmt(bf.ratio_conditional_geodesic)} (MDM theory {bf.predicted_ratio_conditional_geodesic:.8g})"
            )
        return "\n".join(lines)

    emit(args.json, payload, human)
