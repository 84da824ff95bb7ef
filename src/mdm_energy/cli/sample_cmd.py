"""``mdm-energy sample-exact``: run a torch sampler on the exact denoiser of an explicit law.

This is the check hook between the samplers and the exact engine: the samples it prints can be
compared with the exact law that ``mdm-energy exact --law`` computes for the same sampler and schedule.
"""

from __future__ import annotations

import argparse

from ._common import CLIError, emit, format_table, positive_int, seed_int
from ._sampler_args import add_sampler_arguments, check_sampler_options, given_sampler_options
from .exact_cmd import DIST_HELP


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sample-exact",
        help="draw samples with a torch sampler from the exact denoiser of an explicit law",
        description="Run a sampler (fixed, ancestral, euler, or the adaptive threshold / entropy-bounded rules) on "
        "the exact posteriors of an explicit law and print the samples. Samplers with an exact law run at "
        "temperature 1 unless told otherwise, so their samples follow the law `mdm-energy exact --law` computes.",
    )
    p.add_argument("--dist", required=True, help=DIST_HELP)
    p.add_argument("--samples", "-K", type=positive_int("samples"), required=True, help="number of samples")
    p.add_argument("--seed", type=seed_int(), default=0, help="seed of the torch generator (default 0)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_sampler_arguments(p, help_extra={"temperature": "; 1 for samplers with an exact law"})
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    from ..exact import load_distribution
    from ..limits import check_memory
    from ..registry import EXACT_TEMPERATURE, sampler_spec
    from ..sampling import ExactTorchDenoiser, make_sampler

    spec = sampler_spec(args.sampler)
    given = given_sampler_options(args)
    check_sampler_options(args.sampler, given)
    if spec.needs_steps and args.steps is None:
        raise CLIError(f"--steps is required for the {args.sampler} sampler")
    base = {"temperature": EXACT_TEMPERATURE} if spec.exact_law else {}
    sampler = make_sampler(args.sampler, **{**base, **given})
    den = ExactTorchDenoiser(load_distribution(args.dist))
    # posteriors (B, n, d+1) in float64 and their logits, candidates, scores and the output lists
    check_memory(args.samples * den.n * (8 * 6 * (den.d + 1) + 200), f"{args.samples:,} samples of {den.n} tokens")
    out = sampler(den, None, den.n, batch_size=args.samples, generator=torch.Generator().manual_seed(args.seed))
    samples = out.generated.cpu().numpy()
    payload = {"samples": samples.tolist(), "nfe": out.nfe.cpu().tolist()}

    def human() -> str:
        idx = np.ravel_multi_index(samples.T, (den.d,) * den.n)
        freq = np.bincount(idx, minlength=den.d**den.n) / len(samples)
        q = den.exact.q.reshape(-1)
        top = np.argsort(-freq, kind="stable")[:16]
        rows = [["".join(map(str, np.unravel_index(i, den.exact.q.shape))), f"{freq[i]:.4f}", f"{q[i]:.4f}"] for i in top]
        head = (f"{args.samples} samples of {den.exact.dist.name} with the {args.sampler} sampler; "
                f"mean NFE {out.nfe.float().mean().item():.2f}, TV(empirical, target) = {0.5 * np.abs(freq - q).sum():.4f}")
        return head + "\n" + format_table(["sequence", "empirical", "target"], rows)

    emit(args.json, payload, human)
