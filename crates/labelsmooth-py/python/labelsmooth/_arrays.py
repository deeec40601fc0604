"""Conversions of what users pass into the arrays the native functions take."""

from __future__ import annotations

import numpy as np


def _numeric(x, name: str, kinds: str) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype.kind not in kinds:
        raise TypeError(f"{name} must hold numbers, got an array of dtype {a.dtype}")
    return a


def float_matrix(x, name: str) -> np.ndarray:
    """``x`` as a float32 C-contiguous ``[N, C]`` array (no copy when it already is one)."""
    a = _numeric(x, name, "fiub")
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D [N, C], got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} is empty (shape {a.shape})")
    return np.ascontiguousarray(a, dtype=np.float32)


def float_vector(x, name: str, length: int) -> np.ndarray:
    """``x`` as a float32 vector of ``length`` values."""
    a = _numeric(x, name, "fiub")
    if a.shape != (length,):
        raise ValueError(f"{name} has shape {a.shape}, expected ({length},)")
    return np.ascontiguousarray(a, dtype=np.float32)


def class_ids(x, name: str) -> np.ndarray:
    """``x`` as int64 class ids; floats are refused unless every value is a whole number."""
    a = np.asarray(x)
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
            raise TypeError(f"{name} must hold integer class ids, got dtype {a.dtype}")
    elif a.dtype.kind not in "iub":
        raise TypeError(f"{name} must hold integer class ids, got an array of dtype {a.dtype}")
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one id per row), got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} is empty")
    return np.ascontiguousarray(a, dtype=np.int64)
