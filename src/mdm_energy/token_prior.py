r"""Background token frequencies for PC-Sampler's calibrated confidence (``pc-sampler``'s ``token_prior``).

PC-Sampler scores a candidate :math:`v` by its probability times its *surprisal* under a background corpus,
:math:`-\log(f_v + 10^{-9})`, so that tokens every text is full of (spaces, newlines, punctuation, EOS) do not
win early. The authors build :math:`f` from token counts of a reference corpus; here a user supplies the
counts in a file (nothing is downloaded), or picks one of two keywords:

* ``uniform`` (the default): no table; every token gets the same frequency :math:`f = 1/V` (:math:`V` the
  vocabulary size — not a table's :math:`1/N`), so the calibration is the constant factor
  :math:`-\log(1/V + 10^{-9}) \approx \log V` and the confidence :math:`\min(p \log V, \alpha)`. With the
  default clip :math:`\alpha = 10`, every candidate with :math:`p \log V > 10` — :math:`p > 0.851` for LLaDA's
  :math:`V = 126{,}464` — ties at the clip, and those are ordered by the position weight alone (by position,
  lower first, at :math:`\lambda = 0`);
* ``off``: no calibration at all — the score's confidence is the plain probability :math:`p` (no clip).

A file holds **counts** (non-negative numbers) per token id, in one of these forms:

* the authors' JSON, ``{"num_token": N, "p_baseline_dict": {"<id>": count, ...}}`` (their counting script
  writes the same table under ``"token_frequency_dict"``, also read);
* a JSON object ``{"<id>": count, ...}`` or a JSON list ``[count_0, count_1, ...]`` (index = id);
* text, one ``id count`` pair per line (blank lines and lines starting with ``#`` are skipped).

:math:`f_v = \text{count}_v / N`, with :math:`N` the file's ``num_token`` or else the sum of the counts, and a
token the table lacks gets :math:`1/N` (one count), as in the authors' loader. A token *listed* with count 0 is
not the same: it gets :math:`f = 0`, so its surprisal is :math:`-\log(10^{-9}) \approx 20.7` (the most any token
gets), as the authors' loader does too; leave a token out to give it one count. :func:`count_tokens` makes such a
table from token ids of one's own texts (``count_tokens(ids).write("counts.json")``). This module is torch-free: the
registry's validator reads the file (so a bad file is refused before anything runs) and the sampler turns it
into a tensor.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["PRIOR_KEYWORDS", "TokenCounts", "count_tokens", "read_token_counts", "check_token_prior"]

#: The ``token_prior`` values that name no file.
PRIOR_KEYWORDS = ("uniform", "off")


@dataclass(frozen=True)
class TokenCounts:
    """A token-count table: ``ids[i]`` was seen ``counts[i]`` times, out of ``total`` tokens (``N``)."""

    ids: tuple[int, ...]
    counts: tuple[float, ...]
    total: float

    def frequency(self, token: int) -> float:
        """:math:`f_v`: the count over ``total``, one count for a token the table lacks."""
        table = dict(zip(self.ids, self.counts))
        return table.get(token, 1.0) / self.total


    def write(self, path: "str | os.PathLike[str]") -> None:
        """Save the table in the authors' format, ``{"num_token": N, "p_baseline_dict": {"<id>": count}}``."""
        table = {str(t): (int(c) if float(c).is_integer() else c) for t, c in zip(self.ids, self.counts)}
        total = int(self.total) if float(self.total).is_integer() else self.total
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"num_token": total, "p_baseline_dict": table}, f)


def count_tokens(sequences) -> TokenCounts:
    """The count table of a corpus given as sequences of token ids (e.g. a tokenizer's output on your texts);
    ``count_tokens(seqs).write("counts.json")`` makes a file for ``token_prior``."""
    seen: dict[int, int] = {}
    for seq in sequences:
        for t in seq:
            t = int(t)
            if t < 0:
                raise ValueError(f"token ids must be >= 0, got {t}")
            seen[t] = seen.get(t, 0) + 1
    if not seen:
        raise ValueError("count_tokens needs at least one token")
    ids = tuple(sorted(seen))
    return TokenCounts(ids, tuple(float(seen[t]) for t in ids), float(sum(seen.values())))


def _bad(path: str, why: str) -> ValueError:
    return ValueError(f"the token_prior file {path!r}: {why}")


def _count(path: str, key: object, value: object) -> tuple[int, float]:
    if isinstance(key, int) and not isinstance(key, bool):
        token = key
    elif isinstance(key, str) and key.strip().isascii() and key.strip().isdigit():
        token = int(key)
    else:
        token = -1
    if token < 0:
        raise _bad(path, f"token ids must be integers >= 0, got {key!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise _bad(path, f"token {token} has count {value!r}; counts must be finite numbers >= 0")
    return token, float(value)


def _parse(path: str, text: str) -> TokenCounts:
    total = None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if text.lstrip()[:1] in ("{", "["):  # meant as JSON: say where it breaks, not how it fails as text
            raise _bad(path, f"is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
        data = None
        pairs = []
        for n, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) != 2:
                raise _bad(path, f"line {n} is not 'id count' (and the file is not JSON): {line[:60]!r}")
            try:
                value = float(parts[1])
            except ValueError:
                raise _bad(path, f"line {n}: the count {parts[1]!r} is not a number") from None
            pairs.append(_count(path, parts[0], value))
    if data is not None:
        if isinstance(data, dict) and ("p_baseline_dict" in data or "token_frequency_dict" in data):
            table = data.get("p_baseline_dict", data.get("token_frequency_dict"))
            total = data.get("num_token")
            if total is not None and (isinstance(total, bool) or not isinstance(total, (int, float))
                                      or not math.isfinite(total) or total <= 0):
                raise _bad(path, f"num_token must be a number > 0, got {total!r}")
            data = table
        if isinstance(data, dict):
            pairs = [_count(path, k, v) for k, v in data.items()]
        elif isinstance(data, list):
            pairs = [_count(path, i, v) for i, v in enumerate(data)]
        else:
            raise _bad(path, "a JSON prior must be an object of counts by token id or a list of counts")
    if not pairs:
        raise _bad(path, "the table is empty")
    ids = [t for t, _ in pairs]
    if len(set(ids)) != len(ids):
        raise _bad(path, f"token {next(t for t in ids if ids.count(t) > 1)} is listed twice")
    counts = tuple(c for _, c in pairs)
    total = float(total) if total is not None else math.fsum(counts)
    if total <= 0:
        raise _bad(path, "the counts sum to 0")
    return TokenCounts(tuple(ids), counts, total)


@lru_cache(maxsize=8)
def _read(path: str, stamp: tuple[int, int]) -> TokenCounts:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise _bad(path, f"cannot be read ({type(exc).__name__}: {exc.strerror if isinstance(exc, OSError) else exc})") from None
    return _parse(path, text)


def read_token_counts(path: str) -> TokenCounts:
    """The table of the file ``path`` (read once per file version); ``ValueError`` in one line naming it."""
    try:
        st = os.stat(path)
    except OSError:
        raise ValueError(f"token_prior {path!r} does not exist (give a file of token counts, 'uniform' or 'off')") from None
    if not os.path.isfile(path):
        raise ValueError(f"token_prior {path!r} is not a file (give a file of token counts, 'uniform' or 'off')")
    return _read(os.path.abspath(path), (st.st_mtime_ns, st.st_size))


def check_token_prior(value: object) -> str:
    """The option's validator: a keyword of :data:`PRIOR_KEYWORDS`, or the path of a readable count table."""
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise ValueError(f"token_prior must be 'uniform', 'off' or the path of a file of token counts, got {value!r}")
    value = os.fspath(value)
    if value in PRIOR_KEYWORDS:
        return value
    read_token_counts(value)
    return value
