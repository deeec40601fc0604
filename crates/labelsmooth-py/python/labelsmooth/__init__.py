"""Label smoothing for NumPy and PyTorch users, from the labelsmooth Rust core.

Smoothed targets in every convention, the smoothed cross-entropy, binary cross-entropy and
confidence penalty with their exact gradients (PyTorch's argument names and reductions), and
calibration metrics (:mod:`labelsmooth.calibration`) and the calibration report with its figures
(:func:`report`).

Arrays: float32 C-contiguous inputs are read in place; any other float or integer dtype, or a
strided view, is converted to a float32 C-contiguous copy first. Class ids are int64 (other
integer dtypes are converted). The GIL is released while a kernel runs.

Errors: a ``ValueError`` carrying the core's message (which row, which class, which value) for
bad values and shapes; a ``TypeError`` for inputs that do not hold numbers.

>>> import numpy as np, labelsmooth
>>> logits = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]], dtype=np.float32)
>>> round(labelsmooth.cross_entropy(logits, np.array([0, 2]), label_smoothing=0.1), 6)
0.345456
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from . import _native
from . import calibration
from ._arrays import class_ids, count, fits, float_matrix, float_vector, int64, no_overlap, number
from ._report import report

__all__ = [
    "binary_cross_entropy_with_logits",
    "calibration",
    "confidence_penalty",
    "convert_alpha",
    "cross_entropy",
    "linear_cross_entropy",
    "report",
    "smooth_labels",
    "softmax",
    "__version__",
]

__version__: str = _native.__version__

_CONVENTIONS = ("uniform", "exclude-true")
_BINARY_CONVENTIONS = ("toward-half", "over-labels")


def _check_alpha(alpha: float, name: str = "label_smoothing") -> float:
    a = number(alpha, name)
    if not 0.0 <= a <= 1.0:  # also refuses NaN
        raise ValueError(f"{name} {a} is outside [0, 1]")
    return a


def _check_convention(convention: str) -> None:
    if convention not in _CONVENTIONS:
        raise ValueError(f"convention `{convention}` is not one of {', '.join(_CONVENTIONS)}")


def _row_ids(target, rows: int) -> np.ndarray:
    """Class ids, one per row of ``rows``."""
    ids = class_ids(target, "target")
    if ids.shape != (rows,):
        raise ValueError(
            f"target has shape {np.shape(target)}, expected ({rows},): one class id per row"
        )
    return ids


def _check_out(out, shape) -> None:
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a NumPy array, got {type(out).__name__}")
    if out.dtype != np.float32 or not out.flags.c_contiguous or not out.flags.writeable:
        raise TypeError("out must be a writeable C-contiguous float32 array")
    if out.shape != tuple(shape):
        raise ValueError(f"out has shape {out.shape}, expected {tuple(shape)}")


def _finish(loss, grad, shape, return_grad: bool, moved: bool):
    """Puts per-item losses and the gradient back in the caller's layout."""
    if isinstance(loss, np.ndarray) and shape is not None:
        loss = loss.reshape(shape)
    if not return_grad:
        return loss
    if moved:
        grad = np.moveaxis(grad.reshape(shape + (grad.shape[1],)), -1, 1)
    return loss, grad


def cross_entropy(
    logits,
    target,
    *,
    label_smoothing: float = 0.0,
    convention: str = "uniform",
    weight=None,
    ignore_index: int = -100,
    reduction: str = "mean",
    return_grad: bool = False,
    out: Optional[np.ndarray] = None,
):
    """Cross-entropy of logits against class ids or probability rows, with label smoothing.

    The arguments are those of ``torch.nn.functional.cross_entropy`` and the results equal it:

    - ``logits``: ``[N, C]``, or ``[N, C, d1, ...]`` with ``target`` ``[N, d1, ...]`` (the class
      dimension is the second, as in PyTorch).
    - ``target``: integer class ids ``[N]`` (``ignore_index`` marks rows left out), or float
      probability rows of the logits' shape (``ignore_index`` does not apply).
    - ``label_smoothing``: α in [0, 1]. ``convention="uniform"`` (PyTorch, Keras) puts
      1 − α + α/C on the target class and α/C elsewhere; ``"exclude-true"`` (fairseq) puts 1 − α
      on the target and α/(C − 1) elsewhere (class-id targets only).
    - ``weight``: per-class weights ``[C]``; ``"mean"`` then divides by the summed weights of
      the rows' targets, as PyTorch does.
    - ``reduction``: ``"mean"``, ``"sum"`` or ``"none"`` (one loss per row, float32).
    - ``return_grad``: also return d(loss)/d(logits) (of the summed losses for ``"none"``),
      float32 in the logits' shape.
    - ``out``: a float32 C-contiguous ``[N, C]`` array to write that gradient into (implies
      ``return_grad``); reusing one across calls saves allocating and faulting in a new one.

    Returns the loss (a Python float, or an array for ``"none"``), or ``(loss, grad)``.
    Where PyTorch returns NaN, a ``"mean"`` over rows that are all ignored (or weigh 0), this
    raises a ``ValueError``.

    >>> import numpy as np, labelsmooth
    >>> x = np.zeros((1, 4), dtype=np.float32)
    >>> loss, grad = labelsmooth.cross_entropy(x, np.array([1]), return_grad=True)
    >>> round(loss, 6), grad.round(2).tolist()
    (1.386294, [[0.25, -0.75, 0.25, 0.25]])
    """
    _check_convention(convention)
    alpha = _check_alpha(label_smoothing)
    x = np.asarray(logits)
    t = np.asarray(target)
    if x.ndim < 2:
        raise ValueError(f"logits must be [N, C] or [N, C, d1, ...], got shape {x.shape}")
    # Probability targets have the logits' shape; float arrays of the targets' shape are ids.
    probabilities = t.dtype.kind == "f" and t.ndim == x.ndim
    moved = x.ndim > 2
    shape = None
    if moved:
        # [N, C, d1, ...] -> [N * d1 * ..., C], as PyTorch's loss treats each position as a row.
        c = x.shape[1]
        shape = (x.shape[0],) + x.shape[2:]
        want = x.shape if probabilities else shape
        if t.shape != want:
            raise ValueError(f"target has shape {t.shape}, expected {want} for logits {x.shape}")
        x = np.moveaxis(x, 1, -1).reshape(-1, c)
        t = np.moveaxis(t, 1, -1).reshape(-1, c) if probabilities else t.reshape(-1)
    xm = float_matrix(x, "logits")
    w = None if weight is None else float_vector(weight, "weight", xm.shape[1])
    if out is not None:
        if moved:
            raise ValueError("out takes [N, C] logits only")
        _check_out(out, xm.shape)
        no_overlap(out, [xm, t, w])
        return_grad = True
    if probabilities:
        if convention != "uniform":
            raise ValueError("probability targets take the uniform convention only")
        tm = float_matrix(t, "target")
        if tm.shape != xm.shape:
            raise ValueError(f"target has shape {tm.shape}, expected {xm.shape} (the logits')")
        loss, grad = _native.cross_entropy_probs(xm, tm, alpha, w, reduction, return_grad, out)
    else:
        ids = _row_ids(t, xm.shape[0])
        loss, grad = _native.cross_entropy_ids(
            xm, ids, alpha, convention, w, int64(ignore_index, "ignore_index"), reduction,
            return_grad, out,
        )
    return _finish(loss, grad, shape, return_grad, moved)


def binary_cross_entropy_with_logits(
    input,
    target,
    *,
    label_smoothing: float = 0.0,
    convention: str = "toward-half",
    pos_weight=None,
    reduction: str = "mean",
    return_grad: bool = False,
):
    """Binary cross-entropy with logits on smoothed 0/1 targets.

    As ``torch.nn.functional.binary_cross_entropy_with_logits`` on targets moved by
    ``label_smoothing``: ``"toward-half"`` gives y(1 − α) + α/2 (Keras'
    ``BinaryCrossentropy(label_smoothing=α)``), ``"over-labels"`` y(1 − α) + α/L over the L label
    columns. ``input`` and ``target`` are ``[N]`` or ``[N, L]``; targets are in [0, 1] (0/1
    labels, or soft targets, smoothed the same way); ``pos_weight`` is ``[L]``. ``"mean"``
    averages over every element.

    >>> import numpy as np, labelsmooth
    >>> loss = labelsmooth.binary_cross_entropy_with_logits(
    ...     np.array([0.0]), np.array([1.0]), label_smoothing=0.2)
    >>> round(loss, 6)
    0.693147
    """
    if convention not in _BINARY_CONVENTIONS:
        raise ValueError(
            f"convention `{convention}` is not one of {', '.join(_BINARY_CONVENTIONS)}"
        )
    alpha = _check_alpha(label_smoothing)
    x = np.asarray(input)
    t = np.asarray(target)
    if x.shape != t.shape:
        raise ValueError(f"target has shape {t.shape}, expected {x.shape} (the input's)")
    one_d = x.ndim == 1
    if one_d:
        x, t = x.reshape(-1, 1), t.reshape(-1, 1)
    xm = float_matrix(x, "input")
    tm = float_matrix(t, "target")
    pw = None if pos_weight is None else float_vector(pos_weight, "pos_weight", xm.shape[1])
    loss, grad = _native.binary_cross_entropy(
        xm, tm, alpha, convention, pw, reduction, return_grad
    )
    if isinstance(loss, np.ndarray):
        loss = loss.reshape(np.shape(input))
    if not return_grad:
        return loss
    return loss, grad.reshape(np.shape(input))


def confidence_penalty(
    logits,
    beta: float,
    *,
    threshold: Optional[float] = None,
    reduction: str = "mean",
    return_grad: bool = False,
):
    """The confidence penalty −β·H(softmax(logits)) of Pereyra et al. (2017), per row.

    Add it to a loss to penalize low-entropy (over-confident) outputs; ``threshold`` (nats)
    penalizes only rows whose entropy is below it. ``logits`` is ``[N, C]``.

    >>> import numpy as np, labelsmooth
    >>> round(labelsmooth.confidence_penalty(np.zeros((1, 4)), 0.5), 6)  # -0.5 * ln 4
    -0.693147
    """
    b = number(beta, "beta")
    xm = float_matrix(logits, "logits")
    t = None if threshold is None else number(threshold, "threshold")
    loss, grad = _native.confidence_penalty(xm, b, t, reduction, return_grad)
    return (loss, grad) if return_grad else loss


def linear_cross_entropy(
    hidden,
    weight,
    bias,
    target,
    *,
    label_smoothing: float = 0.0,
    convention: str = "uniform",
    class_weight=None,
    ignore_index: int = -100,
    reduction: str = "mean",
    return_grad: bool = False,
):
    """An output layer and the smoothed cross-entropy in one, for large vocabularies.

    The loss of ``cross_entropy(hidden @ weight.T + bias, target, ...)`` without ever holding the
    ``[N, V]`` logits: rows are processed in blocks whose logits are formed, turned into their
    gradient and consumed before the next block. ``hidden`` is ``[N, H]``, ``weight`` ``[V, H]``
    (the layout of ``torch.nn.Linear(H, V).weight``), ``bias`` ``[V]`` or ``None``, ``target``
    class ids ``[N]``; ``class_weight`` are per-class weights (PyTorch's ``weight=``).

    With ``return_grad``, returns ``(loss, (d_hidden, d_weight, d_bias))`` (``d_bias`` is
    ``None`` without a bias), the gradients of the summed losses for ``"none"``.

    >>> import numpy as np, labelsmooth
    >>> h = np.ones((2, 3), dtype=np.float32)
    >>> w = np.zeros((5, 3), dtype=np.float32)
    >>> round(labelsmooth.linear_cross_entropy(h, w, None, np.array([0, 4])), 6)  # ln 5
    1.609438
    """
    _check_convention(convention)
    alpha = _check_alpha(label_smoothing)
    x = float_matrix(hidden, "hidden")
    w = float_matrix(weight, "weight")
    b = None if bias is None else float_vector(bias, "bias", w.shape[0])
    cw = None if class_weight is None else float_vector(class_weight, "class_weight", w.shape[0])
    ids = _row_ids(target, x.shape[0])
    loss, grads = _native.linear_cross_entropy(
        x, w, b, ids, alpha, convention, cw, int64(ignore_index, "ignore_index"), reduction,
        return_grad,
    )
    return (loss, grads) if return_grad else loss


def smooth_labels(y, num_classes: int, alpha: float, convention: str = "uniform") -> np.ndarray:
    """Smoothed target rows, float32 ``[N, num_classes]``.

    - ``y`` integer class ids ``[N]``: ``convention`` ``"uniform"`` (1 − α + α/K on the class,
      α/K elsewhere) or ``"exclude-true"`` (1 − α on the class, α/(K − 1) elsewhere).
    - ``y`` rows ``[N, num_classes]``: with ``"uniform"``, probability rows (one-hot or soft) mixed
      with the uniform distribution; with ``"exclude-true"``, one-hot rows; with
      ``"toward-half"`` or ``"over-labels"``, binary or multi-hot 0/1 rows, each label moved
      toward 1/2 or toward 1/L (see :func:`binary_cross_entropy_with_logits`).

    >>> import labelsmooth
    >>> labelsmooth.smooth_labels([2, 0], 4, 0.2).tolist()[0]
    [0.05000000074505806, 0.05000000074505806, 0.8500000238418579, 0.05000000074505806]
    """
    alpha = _check_alpha(alpha, "alpha")
    k = count(num_classes, "num_classes")
    a = np.asarray(y)
    fits(max(a.shape[0] if a.ndim else 1, 1) * k, 4, f"smoothed targets of {k} classes")
    if convention in _BINARY_CONVENTIONS:
        rows = float_matrix(a.reshape(-1, 1) if a.ndim == 1 else a, "y")
        if rows.shape[1] != k:
            raise ValueError(f"y has {rows.shape[1]} label columns, num_classes is {k}")
        return _native.smooth_binary(rows, alpha, convention)
    if convention not in _CONVENTIONS:
        known = ", ".join(_CONVENTIONS + _BINARY_CONVENTIONS)
        raise ValueError(f"convention `{convention}` is not one of {known}")
    if a.ndim == 1:
        return _native.smooth_ids(class_ids(a, "y"), k, alpha, convention)
    rows = float_matrix(a, "y")
    if rows.shape[1] != k:
        raise ValueError(f"y has {rows.shape[1]} columns, num_classes is {k}")
    if convention == "uniform":
        return _native.smooth_probs(rows, alpha)
    hot = (rows == 1.0).sum(axis=1)
    cold = (rows == 0.0).sum(axis=1)
    bad = np.flatnonzero((hot != 1) | (hot + cold != k))
    if bad.size:
        raise ValueError(f"row {bad[0]} is not one-hot: exclude-true smoothing needs class ids")
    return _native.smooth_ids(rows.argmax(axis=1).astype(np.int64), k, alpha, convention)


def convert_alpha(alpha: float, k: int, from_: str, to: str) -> float:
    """The smoothing factor of convention ``to`` that gives the same targets as ``alpha`` in
    convention ``from_`` for ``k`` classes (``"uniform"`` or ``"exclude-true"``).

    >>> import labelsmooth
    >>> round(labelsmooth.convert_alpha(0.1, 10, "uniform", "exclude-true"), 12)
    0.09
    """
    return _native.convert_alpha(_check_alpha(alpha, "alpha"), count(k, "k"), from_, to)


def softmax(logits) -> np.ndarray:
    """Row-wise softmax of logits ``[N, C]``, float32."""
    return _native.softmax(float_matrix(logits, "logits"))

