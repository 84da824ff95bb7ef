"""Shared statistics for the law tests."""

from __future__ import annotations

import numpy as np
from scipy import stats


def chi_square_pvalue(samples: np.ndarray, law: np.ndarray) -> float:
    """Pearson chi-square p-value of samples (rows of token ids) against an exact law of shape (d,)*n.

    Bins with expected count < 5 are pooled; a sample outside the law's support fails outright.
    """
    idx = np.ravel_multi_index(np.asarray(samples).T, law.shape)
    observed = np.bincount(idx, minlength=law.size).astype(float)
    expected = law.reshape(-1) * len(samples)
    assert observed[expected == 0].sum() == 0, "sampled a sequence the exact law gives probability 0"
    keep = expected >= 5
    obs = np.append(observed[keep], observed[~keep].sum())
    exp = np.append(expected[keep], expected[~keep].sum())
    if exp[-1] == 0:
        obs, exp = obs[:-1], exp[:-1]
    return float(stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue)
