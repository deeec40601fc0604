"""Calibration of classifiers: reliability curves, ECE / MCE / RMS, Brier score, NLL and
temperature scaling (Guo et al. 2017), from the labelsmooth Rust core.

Probabilities are rows ``[N, C]`` summing to 1 within 1e-3 (a 1-D array of P(class 1) is read
as two-class rows); labels are integer class ids ``[N]``. Confidences are top-label: the largest probability
of a row, correct when its class (the first largest) is the label.

>>> import numpy as np
>>> from labelsmooth import calibration
>>> p = np.array([[0.95, 0.05], [0.85, 0.15], [0.25, 0.75]])
>>> # Three bins of one row each: (|1 - 0.95| + |0 - 0.85| + |1 - 0.75|) / 3
>>> round(calibration.calibration_error(p, [0, 1, 1], n_bins=10), 6)
0.383333
"""

from __future__ import annotations

from typing import Dict, Tuple

import numpy as np

from . import _native
from ._arrays import class_ids, count, fits, float_matrix, number

__all__ = [
    "apply_temperature",
    "brier_score",
    "calibration_curve",
    "calibration_error",
    "fit_temperature",
    "nll",
    "reliability_bins",
]


def _probs(p) -> np.ndarray:
    a = np.asarray(p)
    if a.ndim == 1 and a.dtype.kind in "fiu":
        bad = np.flatnonzero(~((a >= 0) & (a <= 1)))
        if bad.size:
            raise ValueError(f"row {bad[0]}: probability {a[bad[0]]} is outside [0, 1]")
        a = np.stack([1.0 - a.astype(np.float64), a.astype(np.float64)], axis=1)
    rows = float_matrix(a, "probs")
    sums = rows.sum(axis=1, dtype=np.float64)
    bad = np.flatnonzero(~(np.abs(sums - 1.0) <= 1e-3))
    if bad.size:
        raise ValueError(
            f"row {bad[0]}: probabilities sum to {sums[bad[0]]:.6g}, not 1 (pass softmax outputs, "
            "not logits)"
        )
    return rows


def _bins(n_bins) -> int:
    n = count(n_bins, "n_bins")
    fits(n, 32, f"{n} bins")
    return n


def _labels(y, n: int) -> np.ndarray:
    ids = class_ids(y, "labels")
    if ids.shape[0] != n:
        raise ValueError(f"labels has {ids.shape[0]} values, probs has {n} rows")
    return ids


def calibration_curve(y_true, y_prob, *, n_bins: int = 5, strategy: str = "uniform") -> Tuple[np.ndarray, np.ndarray]:
    """scikit-learn's ``calibration_curve(y_true, y_prob, n_bins, strategy)`` for 0/1 labels
    and probabilities of class 1: ``(prob_true, prob_pred)`` per non-empty bin, float64.
    ``strategy`` is ``"uniform"`` (equal widths) or ``"quantile"`` (equal counts)."""
    y = class_ids(y_true, "y_true")
    p = np.asarray(y_prob)
    if p.dtype.kind not in "fiu":
        raise TypeError(f"y_prob must hold numbers, got an array of dtype {p.dtype}")
    if p.shape != y.shape:
        raise ValueError(f"y_prob has shape {p.shape}, expected {y.shape} (one per label)")
    return _native.calibration_curve(y, np.ascontiguousarray(p, dtype=np.float64), _bins(n_bins), strategy)


def reliability_bins(probs, labels, *, n_bins: int = 15, strategy: str = "uniform") -> Dict[str, np.ndarray]:
    """The bins of a reliability diagram: a dict of arrays ``lower``, ``upper``, ``count``,
    ``confidence`` (mean top-label confidence) and ``accuracy``, one value per bin (empty bins
    included, with 0 confidence and accuracy)."""
    p = _probs(probs)
    return _native.reliability_bins(p, _labels(labels, p.shape[0]), _bins(n_bins), strategy)


def calibration_error(probs, labels, *, n_bins: int = 15, norm: str = "l1", strategy: str = "uniform") -> float:
    """Top-label calibration error over ``n_bins`` bins: ``norm="l1"`` the expected calibration
    error (ECE), ``"l2"`` the root-mean-square error, ``"max"`` the maximum (MCE); as
    torchmetrics' ``MulticlassCalibrationError`` with equal-width bins."""
    p = _probs(probs)
    return _native.calibration_error(p, _labels(labels, p.shape[0]), _bins(n_bins), norm, strategy)


def brier_score(probs, labels) -> float:
    """Multi-class Brier score: the mean over rows of Σ_j (p_j − onehot_j)² (twice
    scikit-learn's ``brier_score_loss`` on two-class rows)."""
    p = _probs(probs)
    return _native.brier_score(p, _labels(labels, p.shape[0]))


def nll(probs, labels) -> float:
    """Mean negative log-likelihood of the labels under the probability rows."""
    p = _probs(probs)
    return _native.nll(p, _labels(labels, p.shape[0]))


def fit_temperature(logits, labels, *, return_nll: bool = False):
    """The temperature T > 0 minimizing the mean NLL of softmax(logits / T) on held-out
    ``logits`` ``[N, C]`` and labels. With ``return_nll``, ``(T, nll_before, nll_after)``.

    T is searched in [0.01, 100]. A fit at a bound says the logits carry no usable confidence
    (100: predictions no better than chance, the NLL still falling toward the uniform
    distribution) or that they separate the labels perfectly (0.01).

    >>> import numpy as np
    >>> from labelsmooth import calibration
    >>> x = np.array([[4.0, 0.0]] * 4)  # right 3 times in 4: softmax(4 / T) should be 0.75
    >>> print(f"{calibration.fit_temperature(x, [0, 0, 0, 1]):.6f}  {4 / np.log(3):.6f}")
    3.640957  3.640957
    """
    x = float_matrix(logits, "logits")
    t, before, after = _native.fit_temperature(x, _labels(labels, x.shape[0]))
    return (t, before, after) if return_nll else t


def apply_temperature(logits, temperature: float) -> np.ndarray:
    """Logits divided by ``temperature`` (finite, > 0), float32; softmax them for calibrated
    probabilities."""
    return _native.apply_temperature(float_matrix(logits, "logits"), number(temperature, "temperature"))
