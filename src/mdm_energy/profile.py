r"""A model's information profile and the schedule it implies — no labels, no task metric (docs/design.md §5).

The **information profile** of a model on a window of :math:`L` positions is a non-increasing curve
:math:`u(j)`, :math:`j = 0 .. L-1` revealed positions, whose fall says how much a position's prediction
gains from the positions revealed before it; the information curve :math:`Z_{j+1} = u(0) - u(j)` and the
counts per step that minimise the information-curve bound (:func:`~mdm_energy.exact.infocurve_counts`,
:math:`B(c) = \sum_m \sum_{j=c_{m-1}}^{c_m - 1} (u(c_{m-1}) - u(j))`: each token of a step pays the fall of
:math:`u` it would have seen had it waited for its turn) are a schedule derived from the model alone.

**Statistics** (``statistic=``), at a call with :math:`j` positions revealed, masked set :math:`M_j`
(:math:`|M_j| = L - j`), entropies :math:`H_i(j)` (nats) of the model's prediction at position :math:`i`:

* ``"mean"`` — :math:`u(j) = \frac{1}{|M_j|}\sum_{i\in M_j} H_i(j)`, the mean entropy of a masked position.
  With :math:`S` uniform and :math:`x` from the model's own law this is :math:`H(X_i \mid X_S)`, so
  :math:`Z` is exactly the exact engine's information curve
  (:meth:`~mdm_energy.exact.ExactDenoiser.information_curve`). Under the confidence order it is biased
  upwards: the easy positions leave :math:`M_j` first, so the mean over the rest *rises* (on windows
  padded with end tokens the padding goes first), the isotonic fit goes flat and the schedule dumps the
  window into one call.
* ``"total"`` — :math:`u(j) = \frac{1}{L}\sum_{i\in M_j} H_i(j) = \frac{L-j}{L}\,\text{mean}(j)`, the total
  entropy still to be resolved (per window position). It falls under every order: a commit removes its
  position's entropy and on average lowers the others'. Easy (padding) positions carry almost no
  entropy, so committing them barely moves :math:`u` and the bound lets them go together; the answer's
  positions carry it, so the steps are small there. Under the random order, :math:`u(j) = \frac{L-j}{L}
  H(X_i \mid X_S)`: the bound sums the entropy a step's tokens could still have lost, including their own
  (a finer-than-linear split even for independent tokens).
* ``"committed"`` — :math:`e(j) = \sum_{i \in M_j \setminus M_{j+1}} H_i(j)`, the entropy of the token the
  call commits, and :math:`u(j) = \frac{1}{L}\sum_{j' \ge j} e(j')`, the entropy the sampler will still
  commit: along the sampler's path a chain-rule estimate of :math:`H(X_{M_j} \mid x_{\bar M_j})`. A step
  from :math:`a` to :math:`b` pays :math:`\frac1L\sum_{j'=a}^{b-2} (b-1-j')\, e(j')`: batching is cheap
  where the committed tokens were certain.
* ``"answer"`` — the mean of :math:`H_i(j)` over the masked positions before the first committed end token
  (the answer span; all of :math:`M_j` until an end token is committed; 0 once the span is filled), so
  that padding beyond the answer does not enter the curve. It only helps once the end token that closes
  the answer is committed: where the sampler fills the padding from the window's end leftwards (pycode),
  every masked position stays before the first committed end token and ``answer`` is ``mean``.

With ``block_length`` (semi-autoregressive blocks) every statistic is taken over the current block's
positions (:math:`L` above is then the block length) and the profile holds one curve per block, block
:math:`b`'s at indices :math:`b L_b .. (b+1) L_b - 1`, on the sampler's own path through the blocks.

**Estimation** (one model call per revealed count, for a whole batch of completions):

* ``order="confidence"`` (the default: every sampler's default is low_confidence remasking) — the
  fixed-count sampler's own path (``remasking``, one token per step, at the sampler's temperature). Its
  revealed sets are not uniform, so this measures what the confidence sampler faces after ``j`` commits.
* ``order="random"`` — the order of random remasking, ancestral and Euler sampling: the fixed-count
  sampler with one token per step, random positions, at temperature 1 generates the completion, and each
  call's entropies are recorded. The revealed set after ``j`` calls is uniform and its tokens are drawn
  from the model's own law, so the ``mean`` statistic *is* the Monte Carlo estimate of :math:`H(X_i \mid
  X_S)`. With given completions (unlabelled answers), their tokens are revealed in uniformly random order.

The schedule uses the profile made non-increasing (per block) by isotonic regression weighted by the
inverse variances.

**Default statistic: ``"total"``**: on the quick measurement of benchmarks/profile_statistics.py
(benchmarks/results/profile_statistics_quick.md) it has the best worst task of the four, and it is the
one that cannot rise under the confidence order; see :data:`DEFAULT_STATISTIC` for the numbers.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["ORDERS", "STATISTICS", "DEFAULT_STATISTIC", "InformationProfile", "ProfileSchedule", "estimate_profile",
           "estimate_profiles", "profile_schedule", "nearest_beta", "load_profile", "model_fingerprint",
           "check_profile_model"]

ORDERS = ("random", "confidence")
#: The statistics a profile can be made of (module docstring).
STATISTICS = ("mean", "total", "committed", "answer")
#: The statistic profiles use unless told: the total remaining entropy. It falls under the confidence order,
#: padded windows included, where the mean rises and its schedule degenerates into one call, and it is what
#: the bound sums along the sampler's path (the entropy a step's tokens could still lose). Measured
#: (benchmarks/profile_statistics.py --quick: 40 paired test items, so ± about 0.05 a cell; the full run is
#: the lead's) as the mean paired difference to linear over each task's step grid — countdown, countdown-long,
#: sudoku, pycode: mean +0.066, -0.004, +0.120, -0.070; total +0.047, +0.082, +0.050, -0.020; committed
#: +0.034, +0.089, +0.030, -0.025; answer +0.072, +0.029, +0.120, -0.070. The mean wins where nothing is
#: padded (sudoku) and loses where the issue says (countdown-long, pycode); total has the best worst task,
#: committed is within noise of it, and total's rationale is the simpler one.
DEFAULT_STATISTIC = "total"
#: Bounds of the estimation's inputs (the command line's and the library's): a window of at most this many
#: positions (a profile costs one call per position) and at most this many completions.
MAX_PROFILE_LENGTH = 16_384
MAX_SAMPLES = 1_000_000
_FORMAT = "mdm-energy information profile"


@dataclass(frozen=True)
class InformationProfile:
    """``entropy[j]`` = :math:`u(j)` (nats; the ``statistic``'s value, module docstring) for ``j = 0 .. length - 1``
    revealed positions, with its standard error over ``samples`` completions; ``calls`` is the number of
    batched model calls spent. With ``block_length``, one curve per block, back to back. ``model`` is the
    identity of the model profiled (:func:`model_fingerprint`; empty when unknown)."""

    length: int
    entropy: tuple[float, ...]
    stderr: tuple[float, ...]
    samples: int
    order: str
    calls: int
    source: str = ""
    meta: dict = field(default_factory=dict)
    statistic: str = "mean"
    block_length: "int | None" = None
    model: dict = field(default_factory=dict)

    @property
    def blocks(self) -> int:
        """How many blocks the profile has a curve for (1 without ``block_length``)."""
        return self.length // (self.block_length or self.length)

    def smoothed(self) -> np.ndarray:
        """:math:`u` made non-increasing in ``j`` within every block (isotonic regression, weights 1/s.e.²)."""
        from scipy.optimize import isotonic_regression

        h = np.asarray(self.entropy, dtype=np.float64)
        se = np.asarray(self.stderr, dtype=np.float64)
        w = 1.0 / np.maximum(np.nan_to_num(se, nan=1.0), 1e-6) ** 2
        Lb = self.block_length or self.length
        return np.concatenate([isotonic_regression(h[k:k + Lb], weights=w[k:k + Lb], increasing=False).x
                               for k in range(0, self.length, Lb)])

    def information_curve(self, block: "int | None" = None) -> np.ndarray:
        """:math:`Z_j = u(0) - u(j-1)` for ``j = 1 .. length`` (``Z_1 = 0``), from the smoothed profile; with
        blocks, block ``block``'s curve, or (``None``) the mean of the blocks' curves (the shared schedule's)."""
        Lb = self.block_length or self.length
        h = self.smoothed().reshape(self.blocks, Lb)
        Z = np.maximum(h[:, :1] - h, 0.0)
        if block is None:
            return Z.mean(0)
        if not 0 <= block < self.blocks:
            raise ValueError(f"block {block} is out of range: the profile has {self.blocks} block(s)")
        return Z[block]

    def as_json(self) -> dict[str, Any]:
        return {"format": _FORMAT, **asdict(self)}

    def save(self, path: "str | os.PathLike[str]") -> None:
        from ._io import atomic_write

        text = json.dumps(self.as_json(), indent=1) + "\n"
        atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def load_profile(path: "str | os.PathLike[str]") -> InformationProfile:
    """A profile written by :meth:`InformationProfile.save`; anything else is a ``ValueError`` naming the file.
    Files from before statistics were recorded load as the ``mean`` statistic (the only one then)."""
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
        bl = data.get("block_length")
        prof = InformationProfile(length=int(data["length"]), entropy=tuple(float(v) for v in data["entropy"]),
                                  stderr=tuple(float(v) for v in data["stderr"]), samples=int(data["samples"]),
                                  order=str(data["order"]), calls=int(data["calls"]), source=str(data.get("source", "")),
                                  meta=dict(data.get("meta", {})), statistic=str(data.get("statistic", "mean")),
                                  block_length=None if bl is None else int(bl), model=dict(data.get("model") or {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"profile file {str(p)!r} is damaged: {type(exc).__name__} {exc}") from None
    if prof.length < 1 or len(prof.entropy) != prof.length or len(prof.stderr) != prof.length:
        raise ValueError(f"profile file {str(p)!r} is damaged: entropy and stderr must have length {prof.length}")
    if not all(math.isfinite(v) and v >= 0 for v in prof.entropy):
        raise ValueError(f"profile file {str(p)!r} is damaged: entropies must be finite and >= 0")
    if prof.statistic not in STATISTICS:
        raise ValueError(f"profile file {str(p)!r} is damaged: unknown statistic {prof.statistic!r}")
    if prof.block_length is not None and (prof.block_length < 1 or prof.length % prof.block_length):
        raise ValueError(f"profile file {str(p)!r} is damaged: block_length {prof.block_length} does not divide "
                         f"its length {prof.length}")
    return prof


def model_fingerprint(folder: "str | os.PathLike[str]") -> dict[str, str]:
    """The identity of a model folder, recorded in a profile and checked when it is used: its name and the
    first 16 hex digits of a SHA-256 over its ``config.json`` and, for every weights file (``*.safetensors``,
    ``*.bin``), its name, size and first and last MiB — cheap on a 16 GB model, and different for retrained
    weights of the same shape."""
    root = Path(folder)
    h = hashlib.sha256()
    cfg = root / "config.json"
    if cfg.is_file():
        h.update(cfg.read_bytes())
    for f in sorted([*root.glob("*.safetensors"), *root.glob("*.bin")]):
        size = f.stat().st_size
        h.update(f"{f.name}:{size}:".encode())
        with open(f, "rb") as fh:
            h.update(fh.read(2 ** 20))
            if size > 2 ** 20:
                fh.seek(max(size - 2 ** 20, 2 ** 20))
                h.update(fh.read())
    return {"name": root.resolve().name, "fingerprint": h.hexdigest()[:16]}


def check_profile_model(profile: InformationProfile, identity: dict, what: str = "the profile") -> None:
    """``ValueError`` (one line) when ``profile`` was made on another model than ``identity``
    (:func:`model_fingerprint`); a profile that recorded no model passes."""
    got = profile.model.get("fingerprint")
    if got and got != identity.get("fingerprint"):
        raise ValueError(f"{what} was made on another model: {profile.model.get('name', '?')} (fingerprint {got}), "
                         f"not {identity.get('name', '?')} (fingerprint {identity.get('fingerprint')})")


# --- estimation ------------------------------------------------------------------------------------------


class _Trajectory:
    """A denoiser wrapper that keeps, at every call, each row's window: its tokens, which positions are masked
    and the entropy (nats) of the model's prediction at every position. The statistics are computed from it
    afterwards (:func:`_statistic_records`), all of them from the same calls."""

    def __init__(self, den, start: int) -> None:
        self.den, self.start = den, start
        for key in ("mask_id", "vocab_size", "eos_id", "max_length", "stop_ids"):
            setattr(self, key, getattr(den, key, None))
        self.tokens: list[np.ndarray] = []
        self.entropy: list[np.ndarray] = []

    def __call__(self, tokens, attention_mask=None):
        logits = self.den(tokens, attention_mask)
        self.record(tokens, logits)
        return logits

    def record(self, tokens, logits) -> None:
        import torch

        lg = logits[:, self.start:, : int(self.vocab_size)].double().clone()
        lg[..., int(self.mask_id)] = float("-inf")
        lp = torch.log_softmax(lg, dim=-1)
        ent = -(lp.exp() * lp.nan_to_num(neginf=0.0)).sum(-1)  # (B, L) nats
        self.tokens.append(tokens[:, self.start:].cpu().numpy().astype(np.int64))
        self.entropy.append(ent.cpu().numpy())


def _statistic_records(traj: _Trajectory, final, block_length: int, end_ids: Sequence[int]) -> dict:
    """``{statistic: [(profile index, value) arrays]}`` from one batch's trajectory (see the module docstring).

    The profile index of a row at a call is ``b * block_length + j``: ``b`` the block being filled (the first
    with a masked position; blocks fill strictly in order) and ``j`` its revealed positions. ``final`` is the
    window after the last call (what that call committed)."""
    X = np.stack(traj.tokens + [np.asarray(final)])  # (C + 1, B, L)
    E = np.stack(traj.entropy)  # (C, B, L)
    M = X == traj.mask_id
    C, B, L = E.shape
    Lb = block_length
    pos = np.arange(L)
    out: dict[str, list] = {s: [] for s in STATISTICS}
    # the end tokens committed so far, and the answer span: positions before the first of them
    ended = ~M[:-1] & np.isin(X[:-1], np.asarray(list(end_ids) or [-1]))
    first_end = np.where(ended.any(-1), ended.argmax(-1), L)  # (C, B)
    e_rows = np.zeros((C, B))  # entropy committed by each call, and the index it belongs to
    idx_rows = np.full((C, B), -1, dtype=np.int64)
    for c in range(C):
        m = M[c]
        live = m.any(-1)
        if not live.any():
            continue
        blk = np.where(live, m.argmax(-1) // Lb, 0)
        inb = m & (pos[None, :] // Lb == blk[:, None])
        n = inb.sum(-1)
        j = Lb - n
        keep = live & (n > 0)
        idx = blk * Lb + j
        H = E[c]
        tot = (H * inb).sum(-1)
        out["mean"].append((idx[keep], (tot / np.maximum(n, 1))[keep]))
        out["total"].append((idx[keep], (tot / Lb)[keep]))
        span = inb & (pos[None, :] < first_end[c][:, None])
        ns = span.sum(-1)
        out["answer"].append((idx[keep], np.where(ns > 0, (H * span).sum(-1) / np.maximum(ns, 1), 0.0)[keep]))
        committed = inb & ~M[c + 1]
        e_rows[c] = np.where(keep, (H * committed).sum(-1), 0.0)
        idx_rows[c] = np.where(keep, idx, -1)
    # committed: u(j) = (1/Lb) * sum of the entropy committed from index j to the end of its block, per row
    for b in range(B):
        ix, ev = idx_rows[:, b], e_rows[:, b]
        ok = ix >= 0
        ix, ev = ix[ok], ev[ok]
        if not len(ix):
            continue
        blk = ix // Lb
        tail = np.zeros(len(ix))
        for k in range(len(ix) - 1, -1, -1):  # calls in order; a block's calls are contiguous
            tail[k] = ev[k] + (tail[k + 1] if k + 1 < len(ix) and blk[k + 1] == blk[k] else 0.0)
        out["committed"].append((ix, tail / Lb))
    return out


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


def _check_int(name: str, value: Any, low: int, high: "int | None" = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        limit = f">= {low}" if high is None else f"in [{low}, {high:,}]"
        raise ValueError(f"{name} must be an integer {limit}, got {value!r}")


def estimate_profile(
    denoiser,
    prompts: "Sequence[Sequence[int]] | None",
    length: int,
    *,
    samples: int = 256,
    order: str = "confidence",
    statistic: str = DEFAULT_STATISTIC,
    remasking: "str | None" = None,
    block_length: "int | None" = None,
    completions: "Sequence[Sequence[int]] | None" = None,
    temperature: "float | None" = None,
    batch_size: int = 128,
    seed: int = 0,
    progress=None,
) -> InformationProfile:
    """Estimate the information profile of ``denoiser`` on windows of ``length`` positions.

    ``prompts`` (token ids; ``None`` for unconditional windows) are cycled to make ``samples`` rows.
    ``completions`` (token ids of exactly ``length`` per prompt, unlabelled answers) are revealed in random
    order instead of generating; otherwise the model generates (see the module docstring for the orders and
    statistics). ``order="confidence"`` follows the fixed-count sampler with ``remasking`` (default
    ``low_confidence``, the default sampler's); ``block_length`` fills the window block by block as that
    sampler does and gives one curve per block. ``temperature`` defaults to 1 for the random order (the
    model's law) and 0 for the confidence order (LLaDA's sampler). ``progress(done)`` is called after every
    batch. :func:`estimate_profiles` gives every statistic from the same calls.
    """
    return estimate_profiles(denoiser, prompts, length, samples=samples, order=order, statistics=(statistic,),
                             remasking=remasking, block_length=block_length, completions=completions,
                             temperature=temperature, batch_size=batch_size, seed=seed, progress=progress)[statistic]


def estimate_profiles(
    denoiser,
    prompts: "Sequence[Sequence[int]] | None",
    length: int,
    *,
    samples: int = 256,
    order: str = "confidence",
    statistics: Sequence[str] = STATISTICS,
    remasking: "str | None" = None,
    block_length: "int | None" = None,
    completions: "Sequence[Sequence[int]] | None" = None,
    temperature: "float | None" = None,
    batch_size: int = 128,
    seed: int = 0,
    progress=None,
) -> "dict[str, InformationProfile]":
    """:func:`estimate_profile` for several statistics at once (one set of model calls): ``{statistic: profile}``."""
    import torch

    from .registry import REMASKING
    from .sampling import FixedCountSampler, make_canvas

    _check_int("length", length, 1, MAX_PROFILE_LENGTH)
    _check_int("samples", samples, 1, MAX_SAMPLES)
    _check_int("batch_size", batch_size, 1)
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r} (known: {', '.join(ORDERS)})")
    for st in statistics:
        if st not in STATISTICS:
            raise ValueError(f"unknown profile statistic {st!r} (known: {', '.join(STATISTICS)})")
    if remasking is None:
        remasking = "random" if order == "random" else "low_confidence"
    if remasking not in REMASKING:
        raise ValueError(f"unknown remasking {remasking!r} (known: {', '.join(REMASKING)})")
    if (remasking == "random") != (order == "random"):
        raise ValueError(f"order {order!r} does not match remasking {remasking!r}: the random order is random "
                         "remasking's, the confidence order is that of the other rules")
    if block_length is not None:
        _check_int("block_length", block_length, 1)
        if length % block_length:
            raise ValueError(f"block_length {block_length} does not divide the window of {length}")
    Lb = block_length or length
    if completions is not None and order != "random":
        raise ValueError("given completions are revealed in random order: use order='random'")
    if completions is not None and block_length is not None and block_length != length:
        raise ValueError("given completions are revealed over the whole window: leave block_length out")
    rows = [list(p) for p in prompts] if prompts else [[]]
    if completions is not None:
        if len(completions) != len(rows):
            raise ValueError(f"give one completion per prompt: {len(rows)} prompts, {len(completions)} completions")
        bad = [k for k, c in enumerate(completions) if len(c) != length]
        if bad:
            raise ValueError(f"completion {bad[0]} has {len(completions[bad[0]])} tokens, not the length {length}")
    tau = temperature if temperature is not None else (1.0 if order == "random" else 0.0)
    end_ids = sorted({int(t) for t in [getattr(denoiser, "eos_id", None), *(getattr(denoiser, "stop_ids", None) or ())]
                      if t is not None})
    g = torch.Generator().manual_seed(seed)
    records: dict[str, list] = {s: [] for s in statistics}
    calls, done = 0, 0
    while done < samples:
        b = min(batch_size, samples - done)
        idx = [(done + k) % len(rows) for k in range(b)]
        batch = [rows[i] for i in idx]
        canvas = make_canvas(denoiser, batch if any(batch) else None, length, batch_size=b)
        traj = _Trajectory(denoiser, canvas.start)
        if completions is None:
            sampler = FixedCountSampler("linear", length, remasking=remasking, temperature=tau,
                                        block_length=block_length)
            final = sampler(traj, batch if any(batch) else None, length, batch_size=b, generator=g).tokens
            calls += length
        else:
            final, used = _teacher_forced(traj, canvas, [completions[i] for i in idx], g)
            calls += used
        got = _statistic_records(traj, final[:, canvas.start:].cpu().numpy(), Lb, end_ids)
        for s in statistics:
            records[s] += got[s]
        done += b
        if progress is not None:
            progress(done)
    meta = {"temperature": tau, "given_completions": completions is not None, "seed": seed, "remasking": remasking}
    out = {}
    for s in statistics:
        mean, se, _ = _summarise(records[s], length)
        out[s] = InformationProfile(length=length, entropy=tuple(float(v) for v in mean),
                                    stderr=tuple(float(v) for v in se), samples=samples, order=order, calls=calls,
                                    statistic=s, block_length=block_length, meta=dict(meta))
    return out


def _teacher_forced(rec: _Trajectory, canvas, completions, g):
    """Reveal the given completions one position per call, each row in its own random order; the final
    canvas (every answer revealed) and the calls made."""
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
        x = canvas.x.clone()
        x[:, canvas.start:] = answer
    return x, L


# --- the schedule ----------------------------------------------------------------------------------------


#: How a profile with blocks turns into a schedule unless told (``profile_schedule(blocks=...)``): ``"each"``,
#: one schedule per block from that block's own curve (a ``blocks:`` spec), or ``"shared"``, one schedule
#: from the mean of the blocks' curves replayed in every block (a ``table:`` spec). Measured on
#: countdown-long in blocks of 24 (benchmarks/profile_statistics.py --quick, 40 items): the two score the
#: same at every N of the grid (mean difference to linear +0.014 each), so the default is ``"each"`` on its
#: rationale: each block's counts minimise that block's own bound, so the sum of the blocks' bounds is never
#: above the shared schedule's — and a block that is all padding gets even counts instead of the answer's.
DEFAULT_BLOCK_SCHEDULE = "each"
BLOCK_SCHEDULES = ("each", "shared")


@dataclass(frozen=True)
class ProfileSchedule:
    """The counts per step minimising the information-curve bound of a profile, as a schedule spec (``table``:
    a ``table:`` spec, or with one schedule per block a ``blocks:`` spec of them), and the Beta schedule
    nearest to them (least squares on the cumulative counts). ``counts`` are every step of the run, block
    after block (``steps`` in all, summing to the window); ``block_counts`` the same per block."""

    steps: int
    counts: list[int]
    bound: float
    table: str
    beta: str
    beta_counts: list[int]
    block_counts: list[list[int]] = field(default_factory=list)
    blocks: str = "shared"

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


def profile_schedule(profile: InformationProfile, steps: int, blocks: "str | None" = None) -> ProfileSchedule:
    """The information-curve schedule of ``profile`` for ``steps`` model calls (and its nearest Beta).

    With a block profile the steps are split evenly over the blocks (as every scheduled sampler splits them)
    and ``blocks`` (default :data:`DEFAULT_BLOCK_SCHEDULE`) says whether each block gets its own schedule,
    from its own curve (``"each"``: a ``blocks:`` spec), or all share the one of the mean curve
    (``"shared"``: a ``table:`` spec). Every step commits at least one token when ``steps <= length``."""
    from .exact.search import counts_schedule, infocurve_bound, infocurve_counts
    from .schedules import Beta, _fmt

    _check_int("steps", steps, 1)
    if steps > profile.length:
        raise ValueError(f"steps {steps} exceeds the profile's length {profile.length} (at most one call per token)")
    nb = profile.blocks
    Lb = profile.length // nb
    if blocks is None:
        blocks = DEFAULT_BLOCK_SCHEDULE if nb > 1 else "shared"
    if blocks not in BLOCK_SCHEDULES:
        raise ValueError(f"unknown block schedule {blocks!r} (known: {', '.join(BLOCK_SCHEDULES)})")
    if steps % nb:
        raise ValueError(f"steps {steps} is not divisible by the profile's {nb} blocks of {Lb} (the samplers split "
                         f"the steps evenly over the blocks)")
    per = steps // nb
    if blocks == "shared" or nb == 1:
        shared = infocurve_counts(profile.information_curve(), per)
        per_block = [list(shared.counts)] * nb
        spec = counts_schedule(shared.counts).spec
        blocks = "shared"
    else:
        per_block = [list(infocurve_counts(profile.information_curve(k), per).counts) for k in range(nb)]
        specs = [counts_schedule(c).spec for c in per_block]
        spec = specs[0] if len(set(specs)) == 1 else "blocks:" + ";".join(specs)
    bound = float(sum(infocurve_bound(profile.information_curve(k), c) for k, c in enumerate(per_block)))
    summed = np.sum(per_block, axis=0)
    a, b = nearest_beta(summed)
    beta = Beta(round(a, 3), round(b, 3))
    return ProfileSchedule(steps=steps, counts=[int(c) for blk in per_block for c in blk], bound=bound,
                           table=spec, beta=f"beta:{_fmt(beta.a)},{_fmt(beta.b)}",
                           beta_counts=[int(c) for c in beta.counts(Lb, per)] * nb,
                           block_counts=[[int(c) for c in blk] for blk in per_block], blocks=blocks)
