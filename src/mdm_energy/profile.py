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

**Block-causal models** (block diffusion: LLaDA 2.x, SDAR; :mod:`~mdm_energy.integrations.block_diffusion`)
decode in their own blocks of :math:`B`, and the first block they decode is the one that holds the prompt's
end, its first :math:`r = n \bmod B` positions the prompt's tail. Their profile (``layout="block-causal"``)
is taken on that path — the model's canvas, its key/value cache, the sampler's own calls — with block
:math:`k` the :math:`k`-th block from the one holding the prompt's end, and :math:`j` the tokens the sampler
has committed in it: block 0 has only :math:`B - r` to commit, so its indices :math:`j \ge B - r` are
reached by fewer rows (by none when every prompt has the same :math:`r`; ``reached`` counts the rows at
each index), and the schedule weighs each index by the share of rows that reach it
(:meth:`InformationProfile.weights`, :func:`profile_schedule`). Its schedules are given in steps per block,
as the model's samplers take them.

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

__all__ = ["ORDERS", "STATISTICS", "DEFAULT_STATISTIC", "LAYOUTS", "InformationProfile", "ProfileSchedule", "estimate_profile",
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
#: sudoku, pycode, on the first task models: mean +0.066, -0.004, +0.120, -0.070; total +0.047, +0.082, +0.050,
#: -0.020; committed +0.034, +0.089, +0.030, -0.025; answer +0.072, +0.029, +0.120, -0.070. On today's
#: checkpoints (countdown's and pycode's third stages, 2026-12-03): mean +0.156, -0.004, +0.120, -0.035; total
#: +0.078, +0.082, +0.050, +0.015; committed +0.100, +0.089, +0.030, +0.025; answer +0.134, +0.029, +0.120,
#: -0.035. The mean wins where nothing is padded (sudoku) and loses where the issue says (countdown-long,
#: pycode); total and committed have the best worst tasks, within 0.01 of each other (total ahead on the first
#: models, committed on today's: noise at ± 0.05), and total's rationale is the simpler one.
DEFAULT_STATISTIC = "total"
#: Where a profile's positions lie (module docstring): a window after the prompt, or a block-causal model's blocks.
LAYOUTS = ("window", "block-causal")
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
    identity of the model profiled (:func:`model_fingerprint`; empty when unknown). ``layout`` is ``"window"``
    (a window after the prompt) or ``"block-causal"`` (a block-causal model's own blocks, module docstring),
    whose ``reached[i]`` is the number of (row, call) records at index ``i`` (0 where no row has a token left
    to commit: ``entropy`` is then 0 and ``stderr`` NaN); empty for a window, where every row reaches every
    index."""

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
    layout: str = "window"
    reached: tuple[int, ...] = ()

    @property
    def blocks(self) -> int:
        """How many blocks the profile has a curve for (1 without ``block_length``)."""
        return self.length // (self.block_length or self.length)

    def smoothed(self) -> np.ndarray:
        """:math:`u` made non-increasing in ``j`` within every block (isotonic regression, weights 1/s.e.²), over
        the indices some row reached; an index none reached carries the fitted value before it (nothing left
        to learn there; :meth:`weights` gives it weight 0)."""
        from scipy.optimize import isotonic_regression

        h = np.asarray(self.entropy, dtype=np.float64)
        se = np.asarray(self.stderr, dtype=np.float64)
        w = 1.0 / np.maximum(np.nan_to_num(se, nan=1.0), 1e-6) ** 2
        Lb = self.block_length or self.length
        if not self.reached:
            return np.concatenate([isotonic_regression(h[k:k + Lb], weights=w[k:k + Lb], increasing=False).x
                                   for k in range(0, self.length, Lb)])
        out = np.zeros(self.length)
        for k in range(0, self.length, Lb):
            ok = np.asarray(self.reached[k:k + Lb]) > 0
            fit = np.zeros(Lb)
            fit[ok] = isotonic_regression(h[k:k + Lb][ok], weights=w[k:k + Lb][ok], increasing=False).x
            last = np.maximum.accumulate(np.where(ok, np.arange(Lb), 0))  # the reached index at or before each
            out[k:k + Lb] = fit[last]
        return out

    def weights(self, block: int = 0) -> np.ndarray:
        r"""Block ``block``'s share of rows with a ``j``-th token to commit, :math:`w(j) = \text{reached}(j) /
        \text{reached}(0)` — the weights of its bound (:func:`~mdm_energy.exact.infocurve_bound`); 1 everywhere
        for a window profile and for every full block."""
        Lb = self.block_length or self.length
        if not 0 <= block < self.blocks:
            raise ValueError(f"block {block} is out of range: the profile has {self.blocks} block(s)")
        if not self.reached:
            return np.ones(Lb)
        r = np.asarray(self.reached[block * Lb:(block + 1) * Lb], dtype=np.float64)
        return r / r[0]

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
                                  block_length=None if bl is None else int(bl), model=dict(data.get("model") or {}),
                                  layout=str(data.get("layout", "window")),
                                  reached=tuple(_count(v) for v in data.get("reached") or ()))
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
    if prof.layout not in LAYOUTS:
        raise ValueError(f"profile file {str(p)!r} is damaged: unknown layout {prof.layout!r}")
    if prof.layout == "block-causal" and (prof.block_length is None or len(prof.reached) != prof.length):
        raise ValueError(f"profile file {str(p)!r} is damaged: a block-causal profile needs its block_length and "
                         f"{prof.length} reached counts")
    if prof.layout == "window" and prof.reached:
        raise ValueError(f"profile file {str(p)!r} is damaged: a window profile has no reached counts")
    if any(v < 0 for v in prof.reached) or (prof.reached and any(
            prof.reached[k] < 1 for k in range(0, prof.length, prof.block_length or prof.length))):
        raise ValueError(f"profile file {str(p)!r} is damaged: reached counts must be >= 0, and >= 1 at each "
                         "block's start")
    return prof


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"a reached count must be an integer, got {value!r}")
    return value


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
    afterwards (:func:`_statistic_records`), all of them from the same calls.

    Around a block-causal denoiser it is block-causal too, so that the sampler's loop lays out the model's own
    canvas and calls the model block by block through its cache (:meth:`block_logits`); each call then records
    every row's window (``served``: the rows the call was for; entropies only in the call's block) and ``free``
    the positions the sampler writes (not the prompt's tail in the first block, not the padding past a row's
    last block)."""

    def __init__(self, den, start: "int | None" = None) -> None:
        self.den, self.start = den, start
        for key in ("mask_id", "vocab_size", "eos_id", "max_length", "stop_ids"):
            setattr(self, key, getattr(den, key, None))
        self.tokens: list[np.ndarray] = []
        self.entropy: list[np.ndarray] = []
        self.served: list[np.ndarray] = []
        self.free: "np.ndarray | None" = None
        self.canvas = None
        if getattr(den, "block_causal", False):
            self.block_causal, self.block_size = True, den.block_size
            self.make_canvas, self.finish = den.make_canvas, den.finish

    def __call__(self, tokens, attention_mask=None):
        logits = self.den(tokens, attention_mask)
        self.record(tokens, logits)
        return logits

    def begin(self, sampler, canvas):
        """A block-causal run starts: its window begins at the canvas's ``start``, on the model's block boundary."""
        self.canvas, self.start = canvas, canvas.start
        self.free = (~canvas.prompt_mask[:, canvas.start:]).cpu().numpy()
        return self.den.begin(sampler, canvas)

    def block_logits(self, state, x, rows, lo: int, hi: int, attention_mask=None):
        logits = self.den.block_logits(state, x, rows, lo, hi, attention_mask)
        self.record(self.canvas.x, logits, rows=rows, lo=lo)  # every row's window, before this call's commit
        return logits

    def record(self, tokens, logits, rows=None, lo: int = 0) -> None:
        """Keep ``tokens``' windows and the entropies of ``logits`` — of every window position, or (``rows``) of
        those rows' positions from ``lo`` (canvas index) on, the other rows and positions left at 0."""
        import torch

        lg = (logits if rows is not None else logits[:, self.start:])[..., : int(self.vocab_size)].double().clone()
        lg[..., int(self.mask_id)] = float("-inf")
        lp = torch.log_softmax(lg, dim=-1)
        ent = (-(lp.exp() * lp.nan_to_num(neginf=0.0)).sum(-1)).cpu().numpy()  # (rows, positions) nats
        window = tokens[:, self.start:].cpu().numpy().astype(np.int64)
        served = np.ones(window.shape[0], dtype=bool)
        if rows is not None:
            full = np.zeros(window.shape)
            r = rows.cpu().numpy()
            full[r, lo - self.start: lo - self.start + ent.shape[1]] = ent
            ent, served = full, np.isin(np.arange(window.shape[0]), r)
        self.tokens.append(window)
        self.entropy.append(ent)
        self.served.append(served)


def _statistic_records(traj: _Trajectory, final, block_length: int, end_ids: Sequence[int]) -> dict:
    """``{statistic: [(profile index, value) arrays]}`` from one batch's trajectory (see the module docstring).

    The profile index of a row at a call is ``b * block_length + j``: ``b`` the block being filled (the first
    with a masked position; blocks fill strictly in order) and ``j`` the tokens committed in it so far (its
    free positions, ``traj.free``, less those still masked: its revealed positions in a window). ``final`` is
    the window after the last call (what that call committed). Rows a call did not serve (``traj.served``)
    give no record at it."""
    X = np.stack(traj.tokens + [np.asarray(final)])  # (C + 1, B, L)
    E = np.stack(traj.entropy)  # (C, B, L)
    M = X == traj.mask_id
    C, B, L = E.shape
    Lb = block_length
    pos = np.arange(L)
    free = np.ones((B, L), dtype=bool) if traj.free is None else np.asarray(traj.free, dtype=bool)
    served = np.stack(traj.served)  # (C, B)
    out: dict[str, list] = {s: [] for s in STATISTICS}
    # the end tokens committed so far, and the answer span: positions before the first of them (a prompt's tail
    # or a block-causal row's padding, which may hold the end token, is not committed)
    ended = ~M[:-1] & np.isin(X[:-1], np.asarray(list(end_ids) or [-1])) & free
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
        j = (free & (pos[None, :] // Lb == blk[:, None])).sum(-1) - n  # Lb - n in a window (every position free)
        keep = live & (n > 0) & served[c]
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


def _summarise(records, length: int, allow_unreached: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, standard error and count of the records at each index; an index no record reached is an error
    unless ``allow_unreached`` (a block-causal first block: then mean 0, s.e. NaN, count 0)."""
    sums, sq, count = np.zeros(length), np.zeros(length), np.zeros(length)
    for js, vals in records:
        np.add.at(sums, js, vals)
        np.add.at(sq, js, vals ** 2)
        np.add.at(count, js, 1)
    if (count == 0).any() and not allow_unreached:
        missing = np.flatnonzero(count == 0)[:5].tolist()
        raise ValueError(f"no sample reached revealed counts {missing}; increase samples")
    n = np.maximum(count, 1)  # = count wherever an index was reached
    mean = sums / n
    var = np.where(count > 1, (sq - count * mean ** 2) / np.maximum(count - 1, 1), np.nan)
    return mean, np.sqrt(np.maximum(var, 0.0) / n), count


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

    A block-causal ``denoiser`` (block diffusion) is profiled in its own blocks (module docstring): ``length``
    is the answer's length, ``block_length`` is the model's block size (or left out), the profile has one curve
    per block from the one holding the prompt's end, and given completions are refused.
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
    block_causal = bool(getattr(denoiser, "block_causal", False))
    if block_causal:
        if block_length not in (None, denoiser.block_size):
            raise ValueError(f"block_length {block_length} differs from the model's block size {denoiser.block_size} "
                             "(a block-causal model decodes its own blocks; leave block_length unset)")
        if completions is not None:
            raise ValueError("given completions are not supported on a block-causal model (its blocks start inside "
                             "the prompt): profile its own generations")
        block_length = int(denoiser.block_size)
    elif block_length is not None:
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
    # a block-causal profile covers the longest layout among the prompts used: block k means the same in every batch
    size = denoiser.window_length(rows[:min(samples, len(rows))], length) if block_causal else length
    while done < samples:
        b = min(batch_size, samples - done)
        idx = [(done + k) % len(rows) for k in range(b)]
        batch = [rows[i] for i in idx]
        given = batch if any(batch) else None
        if block_causal:  # the sampler's own loop on the model's canvas, one token per call in every block
            traj = _Trajectory(denoiser)
            out = FixedCountSampler("linear", denoiser.window_length(batch, length), remasking=remasking,
                                    temperature=tau)(
                traj, given, length, batch_size=b, generator=g)
            final, start = traj.canvas.x, traj.start
            calls += out.calls
        else:
            canvas = make_canvas(denoiser, given, length, batch_size=b)
            start = canvas.start
            traj = _Trajectory(denoiser, start)
            if completions is None:
                sampler = FixedCountSampler("linear", length, remasking=remasking, temperature=tau,
                                            block_length=block_length)
                final = sampler(traj, given, length, batch_size=b, generator=g).tokens
                calls += length
            else:
                final, used_calls = _teacher_forced(traj, canvas, [completions[i] for i in idx], g)
                calls += used_calls
        window = final[:, start:].cpu().numpy()
        if block_causal and window.shape[1] < size:  # a batch of shorter layouts: its last blocks are no row's
            window = np.pad(window, ((0, 0), (0, size - window.shape[1])), constant_values=-1)
            traj.tokens = [np.pad(t, ((0, 0), (0, size - t.shape[1])), constant_values=-1) for t in traj.tokens]
            traj.entropy = [np.pad(e, ((0, 0), (0, size - e.shape[1]))) for e in traj.entropy]
            traj.free = np.pad(traj.free, ((0, 0), (0, size - traj.free.shape[1])))
        got = _statistic_records(traj, window, Lb, end_ids)
        for s in statistics:
            records[s] += got[s]
        done += b
        if progress is not None:
            progress(done)
    meta = {"temperature": tau, "given_completions": completions is not None, "seed": seed, "remasking": remasking}
    if block_causal:
        meta["answer_length"] = length
    out = {}
    for s in statistics:
        mean, se, count = _summarise(records[s], size, allow_unreached=block_causal)
        out[s] = InformationProfile(length=size, entropy=tuple(float(v) for v in mean),
                                    stderr=tuple(float(v) for v in se), samples=samples, order=order, calls=calls,
                                    statistic=s, block_length=block_length, meta=dict(meta),
                                    layout="block-causal" if block_causal else "window",
                                    reached=tuple(int(v) for v in count) if block_causal else ())
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
    after block (``steps`` in all, summing to the window); ``block_counts`` the same per block. For a
    block-causal profile ``steps_per_block`` is what its samplers take (``steps`` covers the profile's
    blocks; a run on a prompt with one block fewer uses the first blocks' schedules)."""

    steps: int
    counts: list[int]
    bound: float
    table: str
    beta: str
    beta_counts: list[int]
    block_counts: list[list[int]] = field(default_factory=list)
    blocks: str = "shared"
    steps_per_block: "int | None" = None

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


def profile_schedule(profile: InformationProfile, steps: "int | None" = None, blocks: "str | None" = None, *,
                     steps_per_block: "int | None" = None) -> ProfileSchedule:
    """The information-curve schedule of ``profile`` for ``steps`` model calls (and its nearest Beta).

    With a block profile the steps are split evenly over the blocks (as every scheduled sampler splits them)
    and ``blocks`` (default :data:`DEFAULT_BLOCK_SCHEDULE`) says whether each block gets its own schedule,
    from its own curve (``"each"``: a ``blocks:`` spec), or all share the one of the mean curve
    (``"shared"``: a ``table:`` spec). Every step commits at least one token when ``steps <= length``.

    ``steps_per_block`` gives the steps per block instead (``steps`` is then that times the blocks); a
    block-causal profile takes only it, since how many blocks a run decodes depends on its prompts. Its
    blocks minimise the bound weighted by the share of rows reaching each index (:meth:`InformationProfile.
    weights`): block 0's counts cover all :math:`B` positions, the sampler clamps them to the :math:`B - r`
    a row has, and a position no row has costs nothing, so the counts spend every step on real tokens where
    the rows share :math:`r`. ``"shared"`` then minimises the sum of the blocks' weighted bounds, each block
    counted once, as a window's shared schedule is the mean curve's; its ties go to the counts most even over
    all blocks, so on a flat curve block 0 may get fewer calls than steps (a step left with only positions no
    row has makes no call: fewer calls, none wasted)."""
    from .exact.search import counts_schedule, infocurve_bound, infocurve_counts, infocurve_counts_shared
    from .schedules import Beta, _fmt

    nb = profile.blocks
    Lb = profile.length // nb
    causal = profile.layout == "block-causal"
    if (steps is None) == (steps_per_block is None):
        raise ValueError("give steps or steps_per_block (one of them)")
    if causal and steps is not None:
        raise ValueError("a block-causal profile takes steps_per_block (how many blocks a run decodes depends on its "
                         "prompts)")
    if steps_per_block is not None:
        _check_int("steps_per_block", steps_per_block, 1)
        if steps_per_block > Lb:
            raise ValueError(f"steps_per_block {steps_per_block} exceeds the profile's blocks of {Lb} (at most one "
                             "call per token)")
        steps = steps_per_block * nb
    _check_int("steps", steps, 1)
    if steps > profile.length:
        raise ValueError(f"steps {steps} exceeds the profile's length {profile.length} (at most one call per token)")
    if blocks is None:
        blocks = DEFAULT_BLOCK_SCHEDULE if nb > 1 else "shared"
    if blocks not in BLOCK_SCHEDULES:
        raise ValueError(f"unknown block schedule {blocks!r} (known: {', '.join(BLOCK_SCHEDULES)})")
    if steps % nb:
        raise ValueError(f"steps {steps} is not divisible by the profile's {nb} blocks of {Lb} (the samplers split "
                         f"the steps evenly over the blocks)")
    per = steps // nb
    weights = [profile.weights(k) if causal else None for k in range(nb)]
    if causal and (blocks == "shared" or nb == 1):
        shared = infocurve_counts_shared([profile.information_curve(k) for k in range(nb)], per, weights)
        per_block = [list(shared.counts)] * nb
        spec = counts_schedule(shared.counts).spec
        blocks = "shared"
    elif blocks == "shared" or nb == 1:
        shared = infocurve_counts(profile.information_curve(), per)
        per_block = [list(shared.counts)] * nb
        spec = counts_schedule(shared.counts).spec
        blocks = "shared"
    else:
        per_block = [list(infocurve_counts(profile.information_curve(k), per, weights[k]).counts) for k in range(nb)]
        specs = [counts_schedule(c).spec for c in per_block]
        spec = specs[0] if len(set(specs)) == 1 else "blocks:" + ";".join(specs)
    bound = float(sum(infocurve_bound(profile.information_curve(k), c, weights[k]) for k, c in enumerate(per_block)))
    summed = np.sum(per_block, axis=0)
    a, b = nearest_beta(summed)
    beta = Beta(round(a, 3), round(b, 3))
    return ProfileSchedule(steps=steps, counts=[int(c) for blk in per_block for c in blk], bound=bound,
                           table=spec, beta=f"beta:{_fmt(beta.a)},{_fmt(beta.b)}",
                           beta_counts=[int(c) for c in beta.counts(Lb, per)] * nb,
                           block_counts=[[int(c) for c in blk] for blk in per_block], blocks=blocks,
                           steps_per_block=per if causal else None)
