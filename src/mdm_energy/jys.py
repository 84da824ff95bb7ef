r"""Jump Your Steps (Park et al., ICLR 2025; code sony/jys) as a schedule-deriving baseline, on our count grid.

**The KL upper bound (KLUB).** Take a step from cumulative count :math:`a` to :math:`b` and split it at
:math:`a < m < b`. The split changes only how the last :math:`b - m` tokens are drawn: from the posterior given
the :math:`m` tokens revealed so far instead of the :math:`a` revealed at the step's start. With a uniformly
random order, nested revealed sets :math:`S_a \subset S_m` and :math:`x` from the law, the KL between the two
path laws is

.. math:: \mathrm{KLUB}(a, m, b) = (b - m)\; \mathbb E_{x,\,S_a \subset S_m,\; i \notin S_m}
          \mathrm{KL}\big(p(x_i \mid x_{S_m}) \,\Vert\, p(x_i \mid x_{S_a})\big)
          = (b - m)\,(Z_{m+1} - Z_{a+1}),

in nats per sequence — the expected conditional mutual information, i.e. exactly the drop of the
information-curve bound (:func:`~mdm_energy.exact.infocurve_bound`) that the split buys. So JYS is a
*greedy, coarse-to-fine* optimiser of the bound that our DP (:func:`~mdm_energy.exact.infocurve_counts`)
minimises globally; where they differ, the DP's bound is never larger.

* :func:`curve_klub` — the KLUB from an information curve: exact on an explicit law (its
  :meth:`~mdm_energy.exact.ExactDenoiser.information_curve`), no model calls;
* :class:`ModelKLUB` — the Monte Carlo estimate with a model (the denoiser protocol): completions from the
  model's own law (the fixed-count sampler, one token per call, random order, temperature 1: ``length``
  calls per batch) or given unlabelled completions, one random order per row; each revealed count ``k``
  costs one batched call per batch of rows, once (log-probabilities cached by ``k``, as every evaluation
  reuses the same nested masks);
* :func:`jys_counts` — the hierarchical search.

**The authors' rule** (sony/jys ``main.py``, ``jys.py``): start from one step;
per level split *every* interval at the point that maximises the KLUB, found by their golden-section variant
(:func:`golden_section_argmax`: first probe at the 0.382 point, the next always in the larger side, the
bracket left unchanged when a probe improves, stop when the bracket is at most ``err`` = 0.25 wide on the
count grid or after ``max_iter`` = 32 probes; the answer is the best of all points evaluated, ends included),
so the step counts are 1, 2, 4, …. Their KLUB keeps only the :math:`R \log(R/R')` term of the path KL of two
τ-leaping rates; for masked diffusion that is the posterior KL above plus a data-independent rate-mismatch term,
:math:`(b - m)\log\frac{n - a}{n - m}` per sequence on the count grid (``rate_term=True`` adds it). Their
estimator uses data samples :math:`x_0` (a data loader); ours, having no labels, uses the model's own
completions. **Ours also**: any ``steps`` — full levels while they fit, then the last level splits only the
intervals with the largest gains (the authors stop at powers of two); and we never move an earlier cut (the
authors push cuts apart by 2 before a level and re-snap after, on their grid of indices), so an interval of
one token is simply left unsplit and every step commits at least one token when ``steps <= n``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from .schedules import Table

__all__ = ["SEARCHES", "ORDERS", "JYSSchedule", "golden_section_argmax", "exhaustive_argmax", "curve_klub", "ModelKLUB",
           "jys_counts"]

SEARCHES = ("golden", "exhaustive")
#: The orders of :class:`ModelKLUB`: ``random`` (the authors' forward process) or ``confidence`` (ours).
ORDERS = ("random", "confidence")
#: The golden ratio as the authors write it.
PHI = 1.618

KLUB = Callable[[int, int, int], float]


@dataclass(frozen=True)
class JYSSchedule:
    """The counts JYS chose, the cumulative cuts after each level, and what the search spent: ``evaluations``
    (distinct KLUB values computed), ``calls`` (batched model calls) and ``row_calls`` (sequences through the
    model), the last two 0 on an explicit law."""

    counts: list[int]
    levels: list[list[int]]
    evaluations: int
    calls: int = 0
    row_calls: int = 0
    gains: list[float] = field(default_factory=list)

    @property
    def table(self) -> Table:
        return Table.from_counts(self.counts)

    @property
    def spec(self) -> str:
        return self.table.spec

    def as_json(self) -> dict[str, Any]:
        return {"counts": self.counts, "spec": self.spec, "levels": self.levels, "evaluations": self.evaluations,
                "calls": self.calls, "row_calls": self.row_calls}


def golden_section_argmax(f: Callable[[int], float], a: int, b: int, *, err: float = 0.25,
                          max_iter: int = 32) -> tuple[int, float]:
    """The point in ``a+1 .. b-1`` the authors' golden-section variant picks to maximise ``f`` (on integers: each
    probe is rounded, as their count-grid KLUB rounds its argument), and its value.

    The bracket is ``(a + 1 + 1e-3, b - 1 - 1e-3)`` as theirs; see the module docstring for the rule. ``f`` is
    called once per distinct integer."""
    memo: dict[int, float] = {}

    def g(x: float) -> float:  # they minimise -KLUB
        k = int(round(x))
        if k not in memo:
            memo[k] = -float(f(k))
        return memo[k]

    lo, hi = a + 1 + 1e-3, b - 1 - 1e-3
    mid = lo + (hi - lo) / (1 + PHI)
    seen = {lo: g(lo), mid: g(mid), hi: g(hi)}
    f_mid = seen[mid]
    n_iter = 0
    while hi - lo > err and n_iter < max_iter:
        if mid - lo > hi - mid:
            x, left = mid - (mid - lo) / (1 + PHI), True
        else:
            x, left = mid + (hi - mid) / (1 + PHI), False
        fx = g(x)
        seen[x] = fx
        if fx < f_mid:
            mid, f_mid = x, fx
        elif left:
            lo = x
        else:
            hi = x
        n_iter += 1
    best = min(seen, key=seen.get)  # the first of the best, in the order evaluated (ends first)
    return int(round(best)), -seen[best]


def exhaustive_argmax(f: Callable[[int], float], a: int, b: int) -> tuple[int, float]:
    """The best point in ``a+1 .. b-1`` by trying all (ties to the smallest)."""
    best = max(range(a + 1, b), key=lambda m: (f(m), -m))
    return best, float(f(best))


def curve_klub(Z: "np.ndarray | Sequence[float]", rate_term: bool = False) -> KLUB:
    r"""The exact KLUB from an information curve (``Z[j-1]`` = :math:`Z_j`): :math:`(b-m)(Z_{m+1} - Z_{a+1})`,
    plus the authors' rate-mismatch term :math:`(b-m)\log\frac{n-a}{n-m}` with ``rate_term``."""
    Z = np.asarray(Z, dtype=np.float64)
    n = len(Z)

    def klub(a: int, m: int, b: int) -> float:
        if not 0 <= a < m < b <= n:
            raise ValueError(f"need 0 <= a < m < b <= {n}, got a={a}, m={m}, b={b}")
        value = (b - m) * float(Z[m] - Z[a])
        if rate_term:
            value += (b - m) * math.log((n - a) / (n - m))
        return value

    return klub


class ModelKLUB:
    """The Monte Carlo KLUB of a model (module docstring), callable as ``klub(a, m, b)``.

    ``prompts`` (token ids, cycled to ``samples`` rows; ``None`` for unconditional windows) and ``length``, the
    window. ``completions`` (one per row, ``length`` tokens each) are used as :math:`x_0`; otherwise the model
    generates them. ``order="random"`` (the authors' nested masks of the forward process): completions at
    ``temperature`` 1 (the model's own law), one uniformly random order per row. ``order="confidence"`` (ours, for
    the low_confidence sampler, as the profile's confidence order): the sampler's own path, one token per call at
    ``temperature`` 0 by default, and the nested sets are its commits in order — the KLUB then measures what
    merging steps loses along the path the sampler really takes (not the authors' estimator: their masks are
    random). ``calls`` / ``row_calls`` count every model call spent, ``generation_calls`` those of the
    completions among them.
    """

    def __init__(self, denoiser, prompts, length: int, *, samples: int = 64, completions=None,
                 order: str = "random", temperature: "float | None" = None, rate_term: bool = False,
                 batch_size: int = 64, seed: int = 0) -> None:
        import torch

        from .sampling import FixedCountSampler, make_canvas

        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise ValueError(f"length must be a positive integer, got {length!r}")
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise ValueError(f"samples must be a positive integer, got {samples!r}")
        self.den, self.length, self.rate_term = denoiser, length, rate_term
        self.mask_id, self.V = int(denoiser.mask_id), int(denoiser.vocab_size)
        rows = [list(p) for p in prompts] if prompts else [[]]
        if order not in ORDERS:
            raise ValueError(f"unknown order {order!r} (known: {', '.join(ORDERS)})")
        if completions is not None and order != "random":
            raise ValueError("given completions are revealed in random order: use order='random'")
        if completions is not None and len(completions) != samples:
            raise ValueError(f"give one completion per row: {samples} samples, {len(completions)} completions")
        tau = temperature if temperature is not None else (1.0 if order == "random" else 0.0)
        self.order = order
        g = torch.Generator().manual_seed(seed)
        self.calls = self.row_calls = self.generation_calls = 0
        self._batches = []  # (canvas, completion (B, L), rank (B, L)) per batch
        for start in range(0, samples, batch_size):
            b = min(batch_size, samples - start)
            batch = [rows[(start + k) % len(rows)] for k in range(b)]
            canvas = make_canvas(denoiser, batch if any(batch) else None, length, batch_size=b)
            rank = None
            if completions is None:
                rule = "random" if order == "random" else "low_confidence"
                out = FixedCountSampler("linear", length, remasking=rule, temperature=tau)(
                    denoiser, batch if any(batch) else None, length, batch_size=b, generator=g,
                    return_trajectory=order == "confidence")
                answer = out.generated.to(canvas.x.device)
                if order == "confidence":  # one token per call: the call that committed a position is its rank + 1
                    rank = (out.trajectory[:, out.tokens.shape[1] - length:] - 1).to(canvas.x.device)
                self.calls += length
                self.row_calls += length * b
                self.generation_calls += length
            else:
                answer = torch.tensor([list(c) for c in completions[start:start + b]], dtype=torch.long,
                                      device=canvas.x.device)
                if answer.shape[1] != length:
                    raise ValueError(f"completions must have {length} tokens each, got {answer.shape[1]}")
            perm = torch.argsort(torch.rand((b, length), generator=g), dim=1).to(canvas.x.device)
            if rank is None:
                rank = torch.empty_like(perm)
                rank.scatter_(1, perm, torch.arange(length, device=perm.device).expand(b, length))
            self._batches.append((canvas, answer, rank))
        self._logp: dict[int, list] = {}
        self.evaluations = 0

    def log_probs(self, k: int) -> list:
        """Per batch, the model's log-probabilities ``(B, L, V)`` with the first ``k`` positions of each row's order
        revealed (the mask token excluded from the softmax); one batched call per batch, cached."""
        import torch

        if k not in self._logp:
            out = []
            with torch.no_grad():
                for canvas, answer, rank in self._batches:
                    x = canvas.x.clone()
                    x[:, canvas.start:] = torch.where(rank < k, answer, torch.full_like(answer, self.mask_id))
                    logits = self.den(x, canvas.attention_mask)[:, canvas.start:, : self.V].double()
                    logits[..., self.mask_id] = float("-inf")
                    out.append(torch.log_softmax(logits, dim=-1).float())
                    self.calls += 1
                    self.row_calls += x.shape[0]
            self._logp[k] = out
        return self._logp[k]

    def __call__(self, a: int, m: int, b: int) -> float:
        import torch

        L = self.length
        if not 0 <= a < m < b <= L:
            raise ValueError(f"need 0 <= a < m < b <= {L}, got a={a}, m={m}, b={b}")
        self.evaluations += 1
        total, rows = 0.0, 0
        for (canvas, answer, rank), pa, pm in zip(self._batches, self.log_probs(a), self.log_probs(m)):
            p = pm.exp()
            kl = torch.where(p > 0, p * (pm - pa), torch.zeros_like(p)).sum(-1)  # (B, L)
            masked = rank >= m
            total += float((kl * masked).sum() / (L - m))
            rows += kl.shape[0]
        value = (b - m) * total / rows
        if self.rate_term:
            value += (b - m) * math.log((L - a) / (L - m))
        return value


def jys_counts(klub: KLUB, n: int, steps: int, *, search: str = "golden", err: float = 0.25,
               max_iter: int = 32) -> JYSSchedule:
    """The JYS schedule of ``steps`` steps over ``n`` tokens for ``klub`` (:func:`curve_klub` or a
    :class:`ModelKLUB`): levels of splits, each interval split where ``search`` (``golden``, the authors', or
    ``exhaustive``) finds the largest KLUB; full levels while they fit, then the largest gains only."""
    for name, v in (("n", n), ("steps", steps)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if search not in SEARCHES:
        raise ValueError(f"unknown search {search!r} (known: {', '.join(SEARCHES)})")
    memo: dict[tuple[int, int, int], float] = {}

    def value(a: int, m: int, b: int) -> float:
        if (a, m, b) not in memo:
            memo[(a, m, b)] = float(klub(a, m, b))
        return memo[(a, m, b)]

    cuts, levels, gains = [0, n], [[0, n]], []
    while len(cuts) - 1 < min(steps, n):
        need = min(steps, n) - (len(cuts) - 1)
        found = []
        for i, (a, b) in enumerate(zip(cuts, cuts[1:])):
            if b - a < 2:
                continue  # one token: nothing to split
            f = lambda m, a=a, b=b: value(a, m, b)
            m, gain = golden_section_argmax(f, a, b, err=err, max_iter=max_iter) if search == "golden" \
                else exhaustive_argmax(f, a, b)
            found.append((gain, i, m))
        chosen = sorted(found, key=lambda t: (-t[0], t[1]))[:need]
        gains += [g for g, _, _ in chosen]
        cuts = sorted(cuts + [m for _, _, m in chosen])
        levels.append(list(cuts))
    counts = [b - a for a, b in zip(cuts, cuts[1:])] + [0] * max(steps - n, 0)  # more steps than tokens: empty ones
    return JYSSchedule(counts, levels, len(memo), int(getattr(klub, "calls", 0)), int(getattr(klub, "row_calls", 0)),
                       gains)
