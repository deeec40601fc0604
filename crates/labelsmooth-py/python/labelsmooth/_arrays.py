"""Conversions of what users pass into the arrays the native functions take."""

from __future__ import annotations

import operator
import os

import numpy as np

_I64_MAX = np.iinfo(np.int64).max


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
    """``x`` as int64 class ids; floats are refused unless every value is a whole number, and
    ids beyond int64 are refused rather than wrapped."""
    a = np.asarray(x)
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
            raise TypeError(f"{name} must hold integer class ids, got dtype {a.dtype}")
        big = np.flatnonzero(np.abs(a.ravel()) > 2.0**62)
    elif a.dtype.kind == "u":
        big = np.flatnonzero(a.ravel() > _I64_MAX)
    elif a.dtype.kind in "ib":
        big = np.empty(0, dtype=np.intp)
    else:
        raise TypeError(f"{name} must hold integer class ids, got an array of dtype {a.dtype}")
    if big.size:
        raise ValueError(f"{name}: row {big[0]}: class id {a.ravel()[big[0]]} is out of range")
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one id per row), got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} is empty")
    return np.ascontiguousarray(a, dtype=np.int64)


def count(x, name: str, minimum: int = 1) -> int:
    """An integer parameter (a number of classes or bins): a Python or NumPy integer of at least
    ``minimum``."""
    try:
        v = operator.index(x)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {x!r}") from None
    if v < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {v}")
    return v


def int64(x, name: str) -> int:
    """An integer that fits int64 (an ignore index)."""
    try:
        v = operator.index(x)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {x!r}") from None
    if not -_I64_MAX - 1 <= v <= _I64_MAX:
        raise ValueError(f"{name} {v} does not fit in 64 bits")
    return v


def number(x, name: str) -> float:
    """A real number parameter."""
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"{name} must be a number, got {x!r}")
    try:
        return float(x)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {x!r}") from None


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 46


def fits(elements: int, itemsize: int, what: str) -> None:
    """Refuses a result of ``elements`` values that could not fit in this machine's memory, with
    a ``MemoryError`` naming it, before any allocation is tried."""
    need = elements * itemsize
    have = _memory_bytes()
    if need > have:
        raise MemoryError(
            f"{what} needs {need / 2**30:.3g} GiB, more than this machine's {have / 2**30:.3g} GiB"
        )


def no_overlap(out: np.ndarray, inputs, name: str = "out") -> None:
    """Refuses an output array that shares memory with an input."""
    for a in inputs:
        if a is not None and np.may_share_memory(out, a):
            raise ValueError(f"{name} shares memory with an input; pass a separate array")
