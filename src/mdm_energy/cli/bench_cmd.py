"""``mdm-energy bench-sampler``: the fixed-count sampler's overhead per step against a model call."""

from __future__ import annotations

import argparse

from ._common import emit, format_table, non_negative_float, positive_int, steps_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench-sampler",
        help="time the sampler's per-step overhead against a model call and a naive LLaDA-style step",
        description="Reports ms_per_step (sampler run on fixed random logits), model_ms_per_call (a 4-layer, "
        "d=256 transformer at the same shape) and naive_ms_per_step (LLaDA-style step), measured in one run.",
    )
    p.add_argument("--batch", "-B", type=positive_int("batch"), default=16)
    p.add_argument("--length", "-L", type=positive_int("length"), default=256)
    p.add_argument("--vocab", "-V", type=positive_int("vocab"), default=32000)
    p.add_argument("--steps", "-N", type=steps_int(), default=64)
    p.add_argument("--temperature", "-T", type=non_negative_float("temperature"), default=0.0)
    p.add_argument("--remasking", choices=("low_confidence", "random"), default="low_confidence")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    import sys

    from ..sampling.bench import bench_sampler, check_bench_size

    if args.vocab < 2:
        raise ValueError(f"vocab must be at least 2, got {args.vocab}")
    check_bench_size(args.batch, args.length, args.vocab)
    print(f"benchmarking B={args.batch} L={args.length} V={args.vocab} N={args.steps} T={args.temperature}…", file=sys.stderr)
    r = bench_sampler(args.batch, args.length, args.vocab, args.steps, args.temperature, args.remasking)

    def human() -> str:
        rows = [
            ["sampler overhead per step", f"{r['ms_per_step']:.1f}", f"{r['overhead_vs_model']:.2f}x"],
            ["model call (4-layer, d=256)", f"{r['model_ms_per_call']:.1f}", "1.00x"],
            ["naive LLaDA-style step", f"{r['naive_ms_per_step']:.1f}", f"{r['naive_vs_model']:.2f}x"],
        ]
        return (f"B={r['batch']} L={r['length']} V={r['vocab']} N={r['steps']} T={r['temperature']} "
                f"{r['remasking']}, {r['threads']} threads\n" + format_table(["", "ms", "x model call"], rows)
                + f"\nspeed-up over the naive step: {r['speedup_vs_naive']:.1f}x")

    emit(args.json, r, human)
