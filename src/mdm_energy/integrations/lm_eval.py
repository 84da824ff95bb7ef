"""An lm-evaluation-harness model, registered as ``mdm_energy`` (needs the ``[lm-eval]`` extra).

    lm_eval --model mdm_energy \\
        --model_args "pretrained=GSAI-ML/LLaDA-8B-Base,schedule='beta:0.9,0.3',steps=64,gen_length=256" \\
        --tasks humaneval

``model_args``: ``pretrained`` (path or hub id), ``sampler`` (a name of :mod:`mdm_energy.registry`,
default ``fixed``) and its options — ``schedule`` (any spec), ``steps``, ``block_length``, ``remasking``,
``temperature``, ``cfg_scale``, ``skip_empty_steps``, ``threshold``, ``epsilon``, ``factor``, Dream's
``alg``/``alg_temp``/``top_p``/``top_k``, the end-token controls ``logits_eos_inf``,
``confidence_eos_eot_inf``, ``suppress_tokens`` (ids separated by ``;``) and ``stop_at_eos``, and the key/value
``cache`` with ``cache_refresh`` —, ``gen_length``, ``batch_size`` (generation requests per batched run),
``device``, ``family`` (``llada``/``dream``/``masked``, default from the config), ``mc_num`` (Monte Carlo
samples of the ELBO for ``loglikelihood``), ``is_check_greedy`` (also check whether greedy decoding gives
the continuation; off by default: it costs one model call per continuation token), ``dtype``,
``trust_remote_code`` (off by default: a folder that ships its own code needs ``trust_remote_code=True``), ``chat`` (wrap each context in the tokenizer's chat template; off by default —
lm-eval's own ``--apply_chat_template`` is the usual switch and is honoured), ``seed``.

**Several processes.** ``accelerate launch -m lm_eval --model mdm_energy …`` (or ``torchrun``) runs one
process per GPU (or CPU process, ``gloo``): lm-eval gives each its share of the requests and gathers the
results on rank 0; the scores equal a one-process run.

**Commas in a schedule.** lm-eval splits ``model_args`` on commas, which would cut ``beta:0.9,0.3``.
On the ``lm_eval`` command line quote the spec — ``schedule='beta:0.9,0.3'`` (lm-eval keeps commas
inside quotes and strips the quotes) — or write ``;`` for its commas: ``schedule=beta:0.9;0.3``. A string
passed to ``simple_evaluate(model_args=...)`` is parsed by this model itself, where a piece without
``=`` is glued back onto the value before it, so ``schedule=beta:0.9,0.3`` works there as written.

``lm_eval`` finds this model because ``pip install`` puts ``mdm_energy_lm_eval.pth`` in
site-packages, which imports this module inside lm-eval's command line only; with an editable install
use ``mdm-energy lm-eval …`` (same arguments), or ``import mdm_energy.integrations.lm_eval`` before
calling ``lm_eval.simple_evaluate``.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from typing import Any

import torch
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

from ..registry import sampler_options, sampler_spec
from ._distributed import join_world
from .block_diffusion import check_steps_per_block
from .huggingface import denoiser_for, encode_prompts, generate, load_pretrained, model_family

__all__ = ["MDMEnergyLM", "parse_model_args"]

#: Where each generation request's model calls are logged (lm-eval shows its arguments in the logged samples).
NFE_KEY = "mdm_energy_nfe"


def _value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_model_args(arg_string: str) -> dict[str, Any]:
    """Parse ``key=value,…`` where a value may itself contain commas (a schedule spec)."""
    out: dict[str, Any] = {}
    last = None
    for piece in (arg_string or "").split(","):
        if not piece:
            continue
        if "=" in piece:
            key, _, val = piece.partition("=")
            out[key.strip()] = val
            last = key.strip()
        elif last is not None:
            out[last] = f"{out[last]},{piece}"
        else:
            raise ValueError(f"model_args piece {piece!r} has no '=' and no argument before it")
    out = {k: (v[1:-1] if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"" else v) for k, v in out.items()}
    return {k: (v if k == "schedule" else _value(v)) for k, v in out.items()}


def _cut(text: str, gen_kwargs) -> str:
    """``text`` up to the first of the request's ``until`` strings."""
    until = (gen_kwargs or {}).get("until") or [] if isinstance(gen_kwargs, dict) else []
    for stop in [until] if isinstance(until, str) else until:
        if stop and stop in text:
            text = text[: text.index(stop)]
    return text


def _load_pretrained(pretrained: "str | None", tokenizer, dtype: str, trust_remote_code: bool):
    """The model and tokenizer of ``pretrained`` (a local folder or a hub id); a missing folder or a model
    that cannot be loaded is a ``ValueError`` naming it."""
    from pathlib import Path

    if pretrained is None:
        raise ValueError("model_args needs pretrained=PATH_OR_HUB_ID")
    text = str(pretrained)
    local = Path(text).expanduser()
    if (local.is_absolute() or text.startswith((".", "~")) or local.exists()) and not local.is_dir():
        raise ValueError(f"pretrained folder {text!r} does not exist")
    kwargs: dict[str, Any] = {}
    if dtype != "auto":
        if not isinstance(getattr(torch, str(dtype), None), torch.dtype):
            raise ValueError(f"unknown dtype {dtype!r} (e.g. float32, bfloat16, float16, auto)")
        kwargs["torch_dtype"] = getattr(torch, dtype)
    return load_pretrained(text, trust_remote_code=trust_remote_code, tokenizer=tokenizer, **kwargs)


@register_model("mdm_energy")
class MDMEnergyLM(LM):
    """LLaDA/Dream-style generation with any mask schedule, and the ELBO log-likelihood.

    Generation requests are sorted by length and batched ``batch_size`` at a time (left padding with an
    attention mask); each request's random draws are seeded from ``seed`` and its own text, so its answer
    does not depend on its batch or, under data-parallel launch, on its rank. Under ``accelerate launch``
    (or ``torchrun``) each process evaluates its share and lm-eval gathers the results. Each request's
    model calls are recorded in its logged sample (``arguments[1]["mdm_energy_nfe"]``) and their mean in
    the results (``config.mdm_energy_nfe_mean``).
    """

    def __init__(
        self,
        pretrained: "str | None" = None,
        model=None,
        tokenizer=None,
        sampler: str = "fixed",
        gen_length: int = 256,
        batch_size: "int | str" = 1,
        max_batch_size: "int | None" = None,
        device: "str | None" = None,
        family: "str | None" = None,
        mc_num: int = 32,
        dtype: str = "auto",
        trust_remote_code: bool = False,
        chat: bool = False,
        is_check_greedy: bool = False,
        seed: int = 0,
        **options,
    ) -> None:
        super().__init__()
        spec = sampler_spec(sampler)
        # block-diffusion models (LLaDA 2.x, SDAR): steps per block of the model, and the finished-block cache
        per_block, block_cache = options.pop("steps_per_block", None), options.pop("block_cache", None)
        self.steps_per_block = None if per_block is None else int(per_block)
        check_steps_per_block(sampler, options.get("steps"), self.steps_per_block,
                              ("steps", "steps_per_block in model_args"))
        self.block_options = {} if block_cache is None else {"block_cache": str(block_cache).lower() in ("1", "true", "yes")}
        unknown = sorted(k for k in options if k not in spec.defaults)
        if unknown:
            raise ValueError(f"unknown model_args for the {sampler} sampler: {', '.join(unknown)} "
                             f"(its options: {', '.join(spec.options)})")
        if "schedule" in options:
            options["schedule"] = str(options["schedule"]).replace(";", ",")
        for key, value in options.items():  # text left as text: read by the option's own declared parser
            if isinstance(value, str) and key != "schedule":
                options[key] = spec.params[key].from_text(value)
        self.sampler, self.sampler_options = sampler, sampler_options(sampler, **options)
        if device is None or (str(device).startswith("cuda") and not torch.cuda.is_available()):
            if device is not None:  # lm-eval's default is cuda; fall back instead of failing
                warnings.warn(f"device {device!r} is not available here; using the CPU", stacklevel=2)
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.world = join_world(str(device))
        if self.world.size > 1 and str(device) == "cuda":
            device = f"cuda:{self.world.local_rank}"
        self._rank, self._world_size = self.world.rank, self.world.size
        if model is None:
            model, tokenizer = _load_pretrained(pretrained, tokenizer, dtype, trust_remote_code)
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.family = model_family(self.model, family)
        self.denoiser = denoiser_for(self.model, tokenizer, self.family)
        self.gen_length = int(gen_length)
        if self.family == "diffusion_gemma":  # uniform noise: refuse a sampler or option it cannot take, up front
            from .diffusion_gemma import uniform_options

            uniform_options(self.model, self.denoiser, sampler, self.gen_length, **self.sampler_options)
        self.batch_size = 1 if str(batch_size) == "auto" else int(batch_size)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.mc_num, self.chat, self.seed = int(mc_num), bool(chat), int(seed)
        self.is_check_greedy = bool(is_check_greedy)
        self._device = torch.device(device)
        self._templated = False  # lm-eval has applied the chat template to the contexts itself
        self.last_output = None  # the SampleOutput of the last generation batch (trajectories, NFE)
        self.nfe: list[int] = []  # model calls of every generation request of this process, in order served
        self.batched_calls = 0  # batched sampler runs (how many times a batch was generated)
        self._nfe_all: "list[int] | None" = None  # every rank's, after lm-eval's barrier

    @classmethod
    def create_from_arg_string(cls, arg_string: str, additional_config: "dict | None" = None) -> "MDMEnergyLM":
        return cls.create_from_arg_obj(parse_model_args(arg_string), additional_config)

    @classmethod
    def create_from_arg_obj(cls, arg_dict: dict, additional_config: "dict | None" = None) -> "MDMEnergyLM":
        """lm-eval's constructor hook (its command line passes ``--model_args`` as a dict): a value given in the
        model arguments (e.g. ``batch_size``) wins over lm-eval's own option of the same name."""
        args = dict(arg_dict)
        extra = {k: v for k, v in (additional_config or {}).items() if v is not None and k not in args}
        return cls(**args, **extra)

    def set_options(self, **options) -> None:
        """Change sampler options (e.g. the ``schedule`` of a tuning trial), validated by the registry."""
        self.sampler_options = sampler_options(self.sampler, **{**self.sampler_options, **options})

    # --- lm-eval's chat templates -----------------------------------------------------------------
    @property
    def tokenizer_name(self) -> str:
        return str(getattr(self.tokenizer, "name_or_path", "tokenizer")).replace("/", "__")

    def chat_template(self, chat_template: "bool | str" = False) -> "str | None":
        if chat_template is False or chat_template is None:
            return None
        template = getattr(self.tokenizer, "chat_template", None)
        if isinstance(template, dict):
            return template.get(chat_template if isinstance(chat_template, str) else "default")
        return template

    def apply_chat_template(self, chat_history: list, add_generation_prompt: bool = True) -> str:
        """lm-eval's ``--apply_chat_template``: the conversation rendered by the tokenizer's template (the
        contexts are then encoded as they are, without adding special tokens again)."""
        self._templated = True
        return self.tokenizer.apply_chat_template(chat_history, tokenize=False,
                                                  add_generation_prompt=add_generation_prompt)

    # --- data parallel (lm-eval calls these when world_size > 1) ---------------------------------------
    def all_gather(self, tensor):
        return self.world.all_gather(tensor)

    def gather_object(self, obj, dst: int = 0):
        return self.world.gather_object(obj, dst)

    def barrier(self) -> None:
        """lm-eval's barrier after each request type; every rank also learns every rank's NFE here."""
        self.world.barrier()
        self._nfe_all = [n for part in self.world.all_gather_object(self.nfe) for n in part]

    def get_model_info(self) -> dict:
        nfe = self._nfe_all if self._nfe_all is not None else self.nfe
        return {"mdm_energy_sampler": self.sampler, "mdm_energy_requests": len(nfe),
                "mdm_energy_nfe_mean": float(sum(nfe) / len(nfe)) if nfe else None}

    # --- generation --------------------------------------------------------------------------------
    def _encode(self, context: str) -> list[int]:
        if self._templated:  # the template already wrote the special tokens
            return self.tokenizer(context, add_special_tokens=False)["input_ids"]
        return encode_prompts(self.tokenizer, [context], chat=self.chat)[0]

    def _request_seeds(self, reqs) -> list[int]:
        """One seed per request from ``seed``, its text and its arguments and how many identical requests came
        before it (repeats of one prompt get different seeds): independent of batches and ranks."""
        seen: dict[str, int] = {}
        out = []
        for r in reqs:
            gen_args = r.args[1]
            if isinstance(gen_args, dict):  # the NFE this class logs into the arguments is not part of the request
                gen_args = {k: v for k, v in gen_args.items() if k != NFE_KEY}
            key = json.dumps([r.args[0], gen_args], sort_keys=True, default=str)
            k = seen[key] = seen.get(key, -1) + 1
            digest = hashlib.sha256(f"{self.seed}|{k}|{key}".encode()).digest()
            out.append(int.from_bytes(digest[:8], "little") >> 1)
        return out

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        from tqdm.auto import tqdm

        reqs = list(requests)
        seeds = self._request_seeds(reqs)
        ids = [self._encode(r.args[0]) for r in reqs]
        order = sorted(range(len(reqs)), key=lambda i: -len(ids[i]))  # similar lengths share a batch
        out: list = [None] * len(reqs)
        nfe: list = [0] * len(reqs)
        # a context: an interrupt closes the bar before the command prints its last line, not after it; shown
        # on a terminal only (None): on a pipe or log file a bar is noise ahead of any error line
        with tqdm(total=len(reqs), desc="mdm_energy generate",
                  disable=True if disable_tqdm or self.rank != 0 else None) as bar:
            for start in range(0, len(order), self.batch_size):
                batch = order[start:start + self.batch_size]
                options = dict(self.sampler_options)
                block = {}
                if self.steps_per_block is not None:
                    options.pop("steps", None)
                    block["steps_per_block"] = self.steps_per_block
                if self.block_options:
                    block["block_options"] = self.block_options
                texts, self.last_output = generate(
                    self.model, self.tokenizer, [ids[i] for i in batch], sampler=self.sampler,
                    gen_length=self.gen_length, family=self.family, seeds=[seeds[i] for i in batch],
                    return_output=True, **block, **options,
                )
                self.batched_calls += 1
                for i, text, calls in zip(batch, texts, self.last_output.nfe.tolist()):
                    out[i], nfe[i] = _cut(text, reqs[i].args[1]), int(calls)
                bar.update(len(batch))
        for r, text, calls in zip(reqs, out, nfe):
            self.cache_hook.add_partial("generate_until", r.args, text)
            if isinstance(r.args[1], dict):  # shows in lm-eval's logged samples (arguments)
                r.args[1].setdefault(NFE_KEY, []).append(calls)
        self.nfe += nfe
        return out

    # --- likelihood -------------------------------------------------------------------------------
    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    @torch.no_grad()
    def _elbo(self, prefix: list[int], target: list[int], g: torch.Generator) -> float:
        r"""Monte Carlo ELBO of ``log p(target | prefix)``, as LLaDA's evaluation defines it.

        Each sample masks ``k`` of the ``m`` target tokens (positions uniform) and scores
        :math:`\sum_{\text{masked}} \log p_\theta(x_i \mid z) / (k/m)`; ``k`` is uniform on ``1..m``, so the
        mean over ``mc_num`` samples is an unbiased estimate of the ELBO (a lower bound on the log-likelihood).
        The ``b`` samples of a batch stratify ``k`` systematically — :math:`k_j = 1 + \lfloor u m + j m / b
        \rfloor \bmod m` with one uniform ``u`` — which keeps every ``k_j`` uniform (unlike rounding a
        ``linspace`` of ``k``, which over-weights some values when ``b`` is not a multiple of ``m``).
        """
        den, m = self.denoiser, len(target)
        if getattr(den, "block_causal", False):  # its ELBO masks per block with clean blocks before: not this one
            raise ValueError(f"loglikelihood is not offered for block-diffusion models ({type(self.model).__name__}): "
                             "this ELBO masks the whole continuation under bidirectional attention; use "
                             "generate_until tasks")
        seq = torch.tensor(prefix + target, device=self._device)
        P = len(prefix)
        total, done = 0.0, 0
        while done < self.mc_num:
            b = min(max(self.batch_size, 1), self.mc_num - done)
            u = float(torch.rand((), generator=g, device=self._device))
            k = (torch.floor(u * m + torch.arange(b, dtype=torch.float64) * m / b).long() % m + 1).to(self._device)
            order = torch.argsort(torch.rand((b, m), generator=g, device=self._device), dim=1)
            masked_t = order < k.unsqueeze(1)
            x = seq.repeat(b, 1)
            x[:, P:][masked_t] = den.mask_id
            logits = den(x).float()
            logp = torch.log_softmax(logits[:, P:], dim=-1).gather(-1, seq[P:].expand(b, m).unsqueeze(-1)).squeeze(-1)
            total += float(((logp * masked_t).sum(1) / (k / m)).sum())
            done += b
        return total / self.mc_num

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        if self.family == "diffusion_gemma":
            raise ValueError("loglikelihood is the masked-diffusion ELBO; DiffusionGemma (uniform noise) has no mask "
                             "to score it with: evaluate it on generation tasks")
        g = torch.Generator(device=self._device).manual_seed(self.seed)
        out = []
        for r in requests:
            context, continuation = r.args
            prefix, target = self._ids(context), self._ids(continuation)
            if not target:
                out.append((0.0, True))
                continue
            ll = self._elbo(prefix, target, g)
            greedy = self._greedy(prefix, target) if self.is_check_greedy else False
            out.append((ll if math.isfinite(ll) else -math.inf, greedy))
        return out

    @torch.no_grad()
    def _greedy(self, prefix: list[int], target: list[int]) -> bool:
        """Whether low-confidence greedy decoding, one token per step, reproduces the continuation."""
        from ..sampling import FixedCountSampler

        out = FixedCountSampler("linear", len(target), remasking="low_confidence", temperature=0.0)(
            self.denoiser, [prefix] if prefix else None, len(target), device=self._device)
        return out.generated[0].tolist() == target

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError("loglikelihood_rolling (perplexity tasks) is not supported for masked diffusion models")

