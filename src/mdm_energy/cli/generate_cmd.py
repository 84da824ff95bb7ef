"""``mdm-energy generate``: answer one prompt with a local model, optionally watching the canvas fill in.

``--model`` is one of our checkpoint folders (``checkpoints/countdown``: the prompt in the task's format)
or a Hugging Face dLLM folder (LLaDA, Dream or any masked LM, loaded with its tokenizer; nothing is
downloaded). ``--show`` redraws the generation window on stderr after every model call — masked positions
as ``·``, the positions that call committed highlighted — while the answer goes to stdout.
"""

from __future__ import annotations

import argparse
import sys

from ._common import CLIError, add_trust_remote_code, emit, positive_int, seed_int
from ._sampler_args import add_sampler_arguments, check_sampler_options, given_sampler_options

MASK_GLYPH = "·"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="generate an answer to one prompt with a local model (optionally watch it)",
                       description=__doc__)
    p.add_argument("--model", required=True, metavar="DIR", help="a checkpoint folder or a Hugging Face dLLM folder")
    p.add_argument("--prompt", required=True, help="the prompt (for a task checkpoint, in the task's format)")
    p.add_argument("--gen-length", type=positive_int("gen-length"),
                   help="tokens to generate (default: the task's window, or 128)")
    p.add_argument("--chat", choices=("auto", "yes", "no"), default="auto",
                   help="wrap the prompt in the tokenizer's chat template (default: when it has one)")
    p.add_argument("--seed", type=seed_int(), default=0)
    add_trust_remote_code(p)
    p.add_argument("--show", action="store_true", help="redraw the canvas on stderr after every model call")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--steps-per-block", type=positive_int("steps-per-block"), metavar="N",
                   help="block-diffusion models (LLaDA 2.x, SDAR): the sampler's steps per block of the model "
                        "(the authors' steps / denoising_steps) instead of --steps for the whole window")
    p.add_argument("--no-block-cache", action="store_true",
                   help="block-diffusion models: recompute the prompt and finished blocks at every call instead of "
                        "keeping their keys and values")
    add_sampler_arguments(p, default="fixed")
    p.set_defaults(run=run)


def _renderer(model, start: int, stream, end: "int | None" = None):
    """A step callback that redraws the window: committed tokens, ``·`` for masked, this call's in inverse video."""
    state = {"lines": 0}
    tty = stream.isatty()

    def render(step: int, tokens, committed) -> None:
        row, new = tokens[0, start:end].tolist(), committed[0, start:end].tolist()
        mask = int(model.denoiser.mask_id)
        cells = []
        for tok, fresh in zip(row, new):
            text = MASK_GLYPH if tok == mask else model.token_text(tok)
            cells.append(f"\x1b[7m{text}\x1b[0m" if fresh and tty else text)
        body = f"call {step}:\n" + "".join(cells)
        if tty and state["lines"]:
            stream.write(f"\x1b[{state['lines']}F\x1b[J")  # back to the top of the previous drawing, clear it
        stream.write(body + "\n")
        stream.flush()
        state["lines"] = body.count("\n") + 1

    return render


def run(args: argparse.Namespace) -> None:
    import torch

    from ..integrations.block_diffusion import check_steps_per_block
    from ..integrations.local import load_local_model
    from ..registry import sampler_spec
    from ..sampling import make_sampler

    given = given_sampler_options(args)
    check_sampler_options(args.sampler, given)
    per_block = args.steps_per_block
    check_steps_per_block(args.sampler, args.steps, per_block, ("--steps", "--steps-per-block"))
    if sampler_spec(args.sampler).needs_steps and args.steps is None and per_block is None:
        raise CLIError(f"--steps is required for the {args.sampler} sampler")
    sampler = make_sampler(args.sampler, **given)  # the options are checked before the model is loaded
    model = load_local_model(args.model, chat={"auto": None, "yes": True, "no": False}[args.chat],
                             trust_remote_code=args.trust_remote_code)
    den = model.denoiser
    block_causal = getattr(den, "block_causal", False)
    if (per_block is not None or args.no_block_cache) and not block_causal:
        flag = "--steps-per-block" if per_block is not None else "--no-block-cache"
        raise CLIError(f"{flag} is for block-diffusion models (LLaDA 2.x, SDAR); {args.model!r} is not one")
    if args.no_block_cache:
        den.block_cache = False
    if model.kind == "checkpoint" and args.gen_length not in (None, model.gen_length):
        raise CLIError(f"--gen-length of a task checkpoint is its task's window, {model.gen_length}")
    gen_length = args.gen_length or model.gen_length
    prompt = model.encode(args.prompt)
    if per_block is not None:
        sampler = make_sampler(args.sampler, **{**given, "steps": den.total_steps([prompt], gen_length, per_block)})
    canvas_start = len(prompt)
    if model.uniform is not None:  # uniform noise (DiffusionGemma): its own loop, the sampler as its acceptance rule
        out = model.uniform(prompt, gen_length, args.sampler, given, generator=torch.Generator().manual_seed(args.seed),
                            callback=_renderer(model, canvas_start, sys.stderr) if args.show else None)
        text = model.decode(out.generated[0].tolist())
        payload = {"text": text, "nfe": int(out.nfe[0]), "counts": out.accepted[0], "stopped_early": bool(out.stopped[0]),
                   "sampler": args.sampler, "canvases": out.canvases}
        emit(args.json, payload, lambda: text)
        return
    out = sampler(model.denoiser, [prompt], gen_length, generator=torch.Generator().manual_seed(args.seed),
                  return_trajectory=True, callback=_renderer(model, canvas_start, sys.stderr, canvas_start + gen_length) if args.show else None)
    window = out.generated[0].tolist()
    text = model.decode(window)
    traj = out.trajectory[0, out.gen_start:]
    counts = [int((traj == k).sum()) for k in range(1, out.calls + 1)]
    payload = {"text": text, "nfe": int(out.nfe[0]), "counts": counts, "stopped_early": bool(out.stopped[0]),
               "sampler": repr(sampler)}
    emit(args.json, payload, lambda: text)
