"""``mdm-energy sample-exact``: run a torch sampler on the exact denoiser of an explicit law.

This is the check hook between the samplers and the exact engine: the samples it prints can be
compared with the exact law that ``mdm-energy exact --law`` computes for the same sampler and schedule.
"""

from __future__ import annotations

import argparse

from ._common import CLIError, emit, format_table, non_negative_float, positive_int
from .exact_cmd import DIST_HELP


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sample-exact",
        help="draw samples with a torch sampler from the exact denoiser of an explicit law",
        description="Run a sampler (fixed-count, ancestral, euler, confidence, or the adaptive threshold / "
        "entropy-bounded baselines) on the exact posteriors of an explicit law and print the samples.",
    )
    p.add_argument("--dist", required=True, help=DIST_HELP)
    p.add_argument("--sampler", required=True, choices=("fixed", "ancestral", "euler", "confidence", "threshold", "entropy"))
    p.add_argument("--schedule", default="linear", help="schedule spec for schedule-driven samplers (default linear)")
    p.add_argument("--steps", "-N", type=positive_int("steps"), help="number of steps (schedule-driven samplers)")
    p.add_argument("--samples", "-K", type=positive_int("samples"), required=True, help="number of samples")
    p.add_argument("--seed", type=int, default=0, help="seed of the torch generator (default 0)")
    p.add_argument("--remasking", choices=("random", "low_confidence", "margin", "entropy"),
                   help="remasking rule of the fixed sampler (default random)")
    p.add_argument("--temperature", type=non_negative_float("temperature"), help="candidate temperature (default 1 for schedule-driven samplers, 0 for adaptive)")
    p.add_argument("--threshold", type=non_negative_float("threshold"), default=0.9, help="confidence threshold of the threshold sampler (default 0.9)")
    p.add_argument("--epsilon", type=non_negative_float("epsilon"), default=0.1, help="entropy budget of the entropy-bounded sampler (default 0.1)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    from ..exact import load_distribution
    from ..sampling import ExactTorchDenoiser, make_sampler

    adaptive = args.sampler in ("threshold", "entropy")
    if not adaptive and args.steps is None:
        raise CLIError(f"--steps is required for the {args.sampler} sampler")
    if args.remasking is not None and args.sampler != "fixed":
        raise CLIError(f"--remasking applies to the fixed sampler, not {args.sampler!r}")
    if args.threshold > 1.0:
        raise CLIError(f"--threshold must lie in [0, 1], got {args.threshold}")
    den = ExactTorchDenoiser(load_distribution(args.dist))
    temperature = args.temperature if args.temperature is not None else (0.0 if adaptive else 1.0)
    sampler = make_sampler(
        args.sampler, schedule=args.schedule, steps=args.steps, temperature=temperature,
        remasking=args.remasking or ("random" if args.sampler == "fixed" else None),
        threshold=args.threshold, epsilon=args.epsilon,
    )
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
