"""Float / numpy / torch dispatch for the numeric core.

The theory code works in float64 numpy. Public functions accept a Python float, a numpy array or a
torch tensor and hand the result back in the same kind (a float for a float, an array of the same
shape for an array, a tensor of the same dtype and device for a tensor). torch is never imported
here: a tensor is recognised only if the caller has already imported torch.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Union

import numpy as np

ArrayLike = Union[float, int, np.ndarray, "torch.Tensor"]  # noqa: F821 (torch is optional here)

__all__ = ["ArrayLike", "to_numpy", "check_unit_interval"]


def _is_tensor(x: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def to_numpy(x: ArrayLike) -> tuple[np.ndarray, Callable[[np.ndarray], Any]]:
    """Return ``x`` as a float64 array and a function that converts a result back to ``x``'s kind."""
    if _is_tensor(x):
        torch = sys.modules["torch"]
        dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
        device = x.device
        arr = x.detach().to("cpu", torch.float64).numpy()
        return arr, lambda r: torch.as_tensor(np.asarray(r, dtype=np.float64)).to(device, dtype)
    if isinstance(x, np.ndarray):
        return x.astype(np.float64, copy=False), lambda r: np.asarray(r, dtype=np.float64)
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise TypeError(f"expected a float, numpy array or torch tensor, got {type(x).__name__}")
    return np.asarray(float(x), dtype=np.float64), lambda r: float(r)


def check_unit_interval(x: np.ndarray, name: str) -> None:
    """Raise ``ValueError`` naming the first value of ``x`` outside [0, 1] (NaN included)."""
    bad = ~((x >= 0.0) & (x <= 1.0))
    if np.any(bad):
        first = float(np.asarray(x)[bad].flat[0])
        raise ValueError(f"{name} must lie in [0, 1], got {first!r}")
