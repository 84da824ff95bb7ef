"""An lm-evaluation-harness model, registered as ``mdm_energy`` (needs the ``[lm-eval]`` extra).

    lm_eval --model mdm_energy \\
        --model_args "pretrained=GSAI-ML/LLaDA-8B-Base,schedule='beta:0.9,0.3',steps=64,gen_length=256" \\
        --tasks humaneval

``model_args``: ``pretrained`` (path or hub id), ``sampler`` (a name of :mod:`mdm_energy.registry`,
default ``fixed``) and its options — ``schedule`` (any spec), ``steps``, ``block_length``, ``remasking``,
``temperature``, ``cfg_scale``, ``skip_empty_steps``, ``threshold``, ``epsilon`` —, ``gen_length``,
``batch_size``, ``device``, ``family`` (``llada``/``dream``/``masked``, default from the config), ``mc_num``
(Monte Carlo samples of the ELBO for ``loglikelihood``), ``dtype``, ``trust_remote_code``, ``chat``, ``seed``.

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

import math
import warnings
from typing import Any

import torch
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

from ..registry import sampler_options, sampler_spec
from .huggingface import denoiser_for, generate, model_family

__all__ = ["MDMEnergyLM", "parse_model_args"]


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
    from transformers import AutoModel, AutoTokenizer

    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if dtype != "auto":
        if not isinstance(getattr(torch, str(dtype), None), torch.dtype):
            raise ValueError(f"unknown dtype {dtype!r} (e.g. float32, bfloat16, float16, auto)")
        kwargs["torch_dtype"] = getattr(torch, dtype)
    try:
        model = AutoModel.from_pretrained(text, **kwargs)
        tokenizer = tokenizer or AutoTokenizer.from_pretrained(text, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot load pretrained {text!r}: {' '.join(str(exc).split())[:300]}") from None
    return model, tokenizer


@register_model("mdm_energy")
class MDMEnergyLM(LM):
    """LLaDA/Dream-style generation with any mask schedule, and the ELBO log-likelihood."""

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
        trust_remote_code: bool = True,
        chat: "bool | None" = None,
        seed: int = 0,
        **options,
    ) -> None:
        super().__init__()
        spec = sampler_spec(sampler)
        unknown = sorted(k for k in options if k not in spec.defaults)
        if unknown:
            raise ValueError(f"unknown model_args for the {sampler} sampler: {', '.join(unknown)} "
                             f"(its options: {', '.join(spec.options)})")
        if "schedule" in options:
            options["schedule"] = str(options["schedule"]).replace(";", ",")
        self.sampler, self.sampler_options = sampler, sampler_options(sampler, **options)
        if device is None or (str(device).startswith("cuda") and not torch.cuda.is_available()):
            if device is not None:  # lm-eval's default is cuda; fall back instead of failing
                warnings.warn(f"device {device!r} is not available here; using the CPU", stacklevel=2)
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if model is None:
            model, tokenizer = _load_pretrained(pretrained, tokenizer, dtype, trust_remote_code)
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.family = model_family(self.model, family)
        self.denoiser = denoiser_for(self.model, tokenizer, self.family)
        self.gen_length = int(gen_length)
        self.batch_size = 1 if str(batch_size) == "auto" else int(batch_size)
        self.mc_num, self.chat, self.seed = int(mc_num), chat, int(seed)
        self._device = torch.device(device)
        self.last_output = None  # the SampleOutput of the last generation batch (trajectories, NFE)

    @classmethod
    def create_from_arg_string(cls, arg_string: str, additional_config: "dict | None" = None) -> "MDMEnergyLM":
        args = parse_model_args(arg_string)
        extra = {k: v for k, v in (additional_config or {}).items() if v is not None and k not in args}
        return cls(**args, **extra)

    # --- generation --------------------------------------------------------------------------------
    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        out: list[str] = []
        g = torch.Generator(device=self._device).manual_seed(self.seed)
        reqs = list(requests)
        for start in range(0, len(reqs), self.batch_size):
            batch = reqs[start:start + self.batch_size]
            contexts = [r.args[0] for r in batch]
            texts, self.last_output = generate(
                self.model, self.tokenizer, contexts, sampler=self.sampler, gen_length=self.gen_length,
                family=self.family, chat=self.chat, generator=g, return_output=True, **self.sampler_options,
            )
            for r, text in zip(batch, texts):
                until = (r.args[1] or {}).get("until") or []
                if isinstance(until, str):
                    until = [until]
                for stop in until:
                    if stop and stop in text:
                        text = text[: text.index(stop)]
                out.append(text)
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
        g = torch.Generator(device=self._device).manual_seed(self.seed)
        out = []
        for r in requests:
            context, continuation = r.args
            prefix, target = self._ids(context), self._ids(continuation)
            if not target:
                out.append((0.0, True))
                continue
            ll = self._elbo(prefix, target, g)
            out.append((ll if math.isfinite(ll) else -math.inf, self._greedy(prefix, target)))
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

