r"""A model's information profile and the schedule it implies — no labels, no task metric (docs/design.md §5).

The **information profile** of a model on a window of :math:`L` positions is

.. math:: h(j) = \mathbb E\; \frac{1}{L - j} \sum_{i \notin S} H\big(p_\theta(x_i \mid \text{prompt}, x_S)\big),
          \qquad |S| = j,

the mean entropy (nats) of the model's prediction at a masked position once :math:`j` positions are
revealed, over prompts, completions :math:`x` and reveal orders. With :math:`S` uniform and :math:`x` from
the model's own law, :math:`h(j)` is the conditional entropy :math:`H(X_i \mid X_S)` of the model's law,
so :math:`Z_{j+1} = h(0) - h(j) = \mathbb E\, I(X_i; X_S)` is the exact engine's information curve
(:meth:`~mdm_energy.exact.ExactDenoiser.information_curve`), and the counts per step that minimise the
information-curve bound (:func:`~mdm_energy.exact.infocurve_counts`) are a schedule derived from the model
alone.

**Estimation** (one model call per revealed count, for a whole batch of completions):

* ``order="random"`` — the order of random remasking, ancestral and Euler sampling: the fixed-count
  sampler with one token per step, random positions, at temperature 1 generates the completion, and each
  call's entropies at the still-masked positions are recorded. The revealed set after ``j`` calls is
  uniform and its tokens are drawn from the model's own law, so this *is* the Monte Carlo estimate of
  :math:`h(j)` (the generating calls are the profiling calls). With given completions (unlabelled
  answers), their tokens are revealed in uniformly random order instead.
* ``order="confidence"`` — for confidence remasking: the sampler's own path (low_confidence, one token per
  step, at the sampler's temperature). Its revealed sets are not uniform, so this is a proxy: the entropy
  the confidence sampler still faces after ``j`` commits, whose fall marks where committing several tokens
  at once loses the dependence between them.

The schedule uses the profile made non-increasing (conditioning never raises entropy on average) by
isotonic regression weighted by the inverse variances.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["ORDERS", "InformationProfile", "ProfileSchedule", "estimate_profile", "profile_schedule", "nearest_beta",
           "load_profile"]

ORDERS = ("random", "confidence")
_FORMAT = "mdm-energy information profile"


@dataclass(frozen=True)
class InformationProfile:
    """``entropy[j]`` = :math:`h(j)` (nats) for ``j = 0 .. length - 1`` revealed positions, with its standard
    error over ``samples`` completions; ``calls`` is the number of batched model calls spent."""

    length: int
    entropy: tuple[float, ...]
    stderr: tuple[float, ...]
    samples: int
    order: str
    calls: int
    source: str = ""
    meta: dict = field(default_factory=dict)

    def smoothed(self) -> np.ndarray:
        """:math:`h` made non-increasing in ``j`` (isotonic regression, weights 1/s.e.²)."""
        from scipy.optimize import isotonic_regression

        h = np.asarray(self.entropy, dtype=np.float64)
        se = np.asarray(self.stderr, dtype=np.float64)
        w = 1.0 / np.maximum(np.nan_to_num(se, nan=1.0), 1e-6) ** 2
        return isotonic_regression(h, weights=w, increasing=False).x

    def information_curve(self) -> np.ndarray:
        """:math:`Z_j = h(0) - h(j-1)` for ``j = 1 .. length`` (``Z_1 = 0``), from the smoothed profile."""
        h = self.smoothed()
        return np.maximum(h[0] - h, 0.0)

    def as_json(self) -> dict[str, Any]:
        return {"format": _FORMAT, **asdict(self)}

    def save(self, path: "str | os.PathLike[str]") -> None:
        from ._io import atomic_write

        text = json.dumps(self.as_json(), indent=1) + "\n"
        atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def load_profile(path: "str | os.PathLike[str]") -> InformationProfile:
    """A profile written by :meth:`InformationProfile.save`; anything else is a ``ValueError`` naming the file."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"profile file not found: {str(p)!r}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{str(p)!r} is not a profile file ({type(exc).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        raise ValueError(f"{str(p)!r} is not a profile file (no {_FORMAT!r} format tag)")
    try:
        prof = InformationProfile(length=int(data["length"]), entropy=tuple(float(v) for v in data["entropy"]),
                                  stderr=tuple(float(v) for v in data["stderr"]), samples=int(data["samples"]),
                                  order=str(data["order"]), calls=int(data["calls"]), source=str(data.get("source", "")),
                                  meta=dict(data.get("meta", {})))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"profile file {str(p)!r} is damaged: {type(exc).__name__} {exc}") from None
    if prof.length < 1 or len(prof.entropy) != prof.length or len(prof.stderr) != prof.length:
        raise ValueError(f"profile file {str(p)!r} is damaged: entropy and stderr must have length {prof.length}")
    if not all(math.isfinite(v) and v >= 0 for v in prof.entropy):
        raise ValueError(f"profile file {str(p)!r} is damaged: entropies must be finite and >= 0")
    return prof


# --- estimation ------------------------------------------------------------------------------------------


class _EntropyRecorder:
    """A denoiser wrapper that records, at every call, each row's mean entropy over the masked window
    positions and how many window positions were revealed."""

    def __init__(self, den, start: int) -> None:
        self.den, self.start = den, start
        for key in ("mask_id", "vocab_size", "eos_id", "max_length", "stop_ids"):
            setattr(self, key, getattr(den, key, None))
        self.records: list[tuple[np.ndarray, np.ndarray]] = []  # (revealed counts, mean entropies) per call

    def __call__(self, tokens, attention_mask=None):
        logits = self.den(tokens, attention_mask)
        self.record(tokens, logits)
        return logits

    def record(self, tokens, logits) -> None:
        import torch

        window = tokens[:, self.start:]
        masked = window == self.mask_id
        lg = logits[:, self.start:, : int(self.vocab_size)].double().clone()
        lg[..., int(self.mask_id)] = float("-inf")
        lp = torch.log_softmax(lg, dim=-1)
        ent = -(lp.exp() * lp.nan_to_num(neginf=0.0)).sum(-1)  # (B, L) nats
        n = masked.sum(1)
        mean = (ent * masked).sum(1) / n.clamp(min=1)
        keep = n > 0
        self.records.append(((window.shape[1] - n)[keep].cpu().numpy(), mean[keep].cpu().numpy()))


def _summarise(records, length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sums, sq, count = np.zeros(length), np.zeros(length), np.zeros(length)
    for js, vals in records:
        np.add.at(sums, js, vals)
        np.add.at(sq, js, vals ** 2)
        np.add.at(count, js, 1)
    if (count == 0).any():
        missing = np.flatnonzero(count == 0)[:5].tolist()
        raise ValueError(f"no sample reached revealed counts {missing}; increase samples")
    mean = sums / count
    var = np.where(count > 1, (sq - count * mean ** 2) / np.maximum(count - 1, 1), np.nan)
    return mean, np.sqrt(np.maximum(var, 0.0) / count), count


def estimate_profile(
    denoiser,
    prompts: "Sequence[Sequence[int]] | None",
    length: int,
    *,
    samples: int = 256,
    order: str = "random",
    completions: "Sequence[Sequence[int]] | None" = None,
    temperature: "float | None" = None,
    batch_size: int = 128,
    seed: int = 0,
    progress=None,
) -> InformationProfile:
    """Estimate the information profile of ``denoiser`` on windows of ``length`` positions.

    ``prompts`` (token ids; ``None`` for unconditional windows) are cycled to make ``samples`` rows.
    ``completions`` (token ids of exactly ``length`` per prompt, unlabelled answers) are revealed in random
    order instead of generating; otherwise the model generates (see the module docstring for the orders).
    ``temperature`` defaults to 1 for the random order (the model's law) and 0 for the confidence order
    (LLaDA's sampler). ``progress(done)`` is called after every batch.
    """
    import torch

    from .sampling import FixedCountSampler, make_canvas

    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ValueError(f"length must be a positive integer, got {length!r}")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be a positive integer, got {samples!r}")
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r} (known: {', '.join(ORDERS)})")
    if completions is not None and order != "random":
        raise ValueError("given completions are revealed in random order: use order='random'")
    rows = [list(p) for p in prompts] if prompts else [[]]
    if completions is not None:
        if len(completions) != len(rows):
            raise ValueError(f"give one completion per prompt: {len(rows)} prompts, {len(completions)} completions")
        bad = [k for k, c in enumerate(completions) if len(c) != length]
        if bad:
            raise ValueError(f"completion {bad[0]} has {len(completions[bad[0]])} tokens, not the length {length}")
    tau = temperature if temperature is not None else (1.0 if order == "random" else 0.0)
    g = torch.Generator().manual_seed(seed)
    records: list = []
    calls, done = 0, 0
    while done < samples:
        b = min(batch_size, samples - done)
        idx = [(done + k) % len(rows) for k in range(b)]
        batch = [rows[i] for i in idx]
        canvas = make_canvas(denoiser, batch if any(batch) else None, length, batch_size=b)
        rec = _EntropyRecorder(denoiser, canvas.start)
        if completions is None:
            sampler = FixedCountSampler("linear", length, remasking="random" if order == "random" else "low_confidence",
                                        temperature=tau)
            sampler(rec, batch if any(batch) else None, length, batch_size=b, generator=g)
            calls += length
        else:
            calls += _teacher_forced(rec, canvas, [completions[i] for i in idx], g)
        records += rec.records
        done += b
        if progress is not None:
            progress(done)
    mean, se, _ = _summarise(records, length)
    return InformationProfile(length=length, entropy=tuple(float(v) for v in mean), stderr=tuple(float(v) for v in se),
                              samples=samples, order=order, calls=calls,
                              meta={"temperature": tau, "given_completions": completions is not None, "seed": seed})


def _teacher_forced(rec: _EntropyRecorder, canvas, completions, g) -> int:
    """Reveal the given completions one position per call, each row in its own random order."""
    import torch

    with torch.no_grad():
        B, L = len(completions), canvas.length
        answer = torch.tensor(completions, dtype=torch.long, device=canvas.x.device)
        order = torch.argsort(torch.rand((B, L), generator=g), dim=1).to(canvas.x.device)
        rank = torch.empty_like(order)
        rank.scatter_(1, order, torch.arange(L, device=order.device).expand(B, L))
        for j in range(L):
            x = canvas.x.clone()
            window = torch.where(rank < j, answer, torch.full_like(answer, rec.mask_id))
            x[:, canvas.start:] = window
            rec(x, canvas.attention_mask)
    return L


# --- the schedule ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProfileSchedule:
    """The counts per step minimising the information-curve bound of a profile, as a ``table:`` spec, and the
    Beta schedule nearest to them (least squares on the cumulative counts)."""

    steps: int
    counts: list[int]
    bound: float
    table: str
    beta: str
    beta_counts: list[int]

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def nearest_beta(counts: Sequence[int]) -> tuple[float, float]:
    """``(a, b)`` whose Beta schedule's cumulative unmasked count :math:`L\\alpha(k/N)` is nearest (least squares
    over the interior steps ``k = 1 .. N-1``) to that of ``counts``."""
    from scipy.optimize import minimize

    from .schedules import Beta

    counts = np.asarray(counts, dtype=np.float64)
    N, L = len(counts), counts.sum()
    target = np.cumsum(counts)[:-1]
    t = np.arange(1, N) / N
    if N == 1:
        return 1.0, 1.0

    def loss(p: np.ndarray) -> float:
        a, b = np.exp(p)
        return float(np.sum((L * Beta(float(a), float(b)).alpha(t) - target) ** 2))

    starts = [np.log([a, b]) for a in (0.3, 1.0, 3.0) for b in (0.3, 1.0, 3.0)]
    bounds = [(math.log(0.02), math.log(50.0))] * 2
    best = min((minimize(loss, s, method="L-BFGS-B", bounds=bounds) for s in starts), key=lambda r: r.fun)
    a, b = np.exp(best.x)
    return float(a), float(b)


def profile_schedule(profile: InformationProfile, steps: int) -> ProfileSchedule:
    """The information-curve schedule of ``profile`` for ``steps`` model calls (and its nearest Beta)."""
    from .exact.search import counts_schedule, infocurve_counts
    from .schedules import Beta, _fmt

    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if steps > profile.length:
        raise ValueError(f"steps {steps} exceeds the profile's length {profile.length} (at most one call per token)")
    best = infocurve_counts(profile.information_curve(), steps)
    a, b = nearest_beta(best.counts)
    beta = Beta(round(a, 3), round(b, 3))
    return ProfileSchedule(steps=steps, counts=list(best.counts), bound=best.bound,
                           table=counts_schedule(best.counts).spec, beta=f"beta:{_fmt(beta.a)},{_fmt(beta.b)}",
                           beta_counts=[int(c) for c in beta.counts(profile.length, steps)])
