"""``labelsmooth.report``: the calibration report the ``labelsmooth calibrate`` command writes."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Optional, Sequence, Union

import numpy as np

from . import _native
from ._arrays import class_ids, count, number
from .calibration import _bins

PathLike = Union[str, "os.PathLike[str]"]


def _looks_like_probabilities(a: np.ndarray) -> bool:
    if not np.all((a >= 0.0) & (a <= 1.0)):
        return False
    return a.shape[1] == 1 or bool(np.all(np.abs(a.sum(axis=1) - 1.0) <= 1e-3))


def report(
    probs_or_logits,
    labels,
    out: PathLike = "report.html",
    *,
    class_names: Optional[Sequence[str]] = None,
    logits: Optional[bool] = None,
    n_bins: int = 15,
    strategy: str = "uniform",
    fit_temperature: bool = False,
    fit_fraction: float = 0.5,
    seed: int = 0,
    renormalize: bool = False,
    figures: Optional[PathLike] = None,
    source: Optional[str] = None,
) -> Dict[str, Any]:
    """Writes the calibration report of predictions against their true classes, the one
    ``labelsmooth calibrate --out`` writes, and returns its results.

    ``probs_or_logits`` is ``[N, C]`` (softmax outputs or logits), or ``[N]`` for two classes
    (P(class 1) or the logit of class 1); ``labels`` are the ``N`` true class ids. ``logits``
    says which they are; by default, values all in [0, 1] whose rows sum to 1 (within 1e-3) are
    probabilities, anything else logits. The NLL of logits is exact; that of probabilities is
    −log p with p clipped below at 1e-15.

    Written: the figures, as PNG and SVG, into ``figures`` (default: the folder ``<out's
    stem>_figures`` beside ``out``), namely the reliability diagram, the top-label confidence
    histogram and the confusion matrix; then the HTML page ``out``, which embeds them and opens
    from disk with no network. The page is written atomically, after every figure.

    ``n_bins`` and ``strategy`` (``"uniform"`` or ``"quantile"``) lay out the bins of ECE / MCE /
    RMS and the diagram. With ``fit_temperature``, a temperature is fitted on a stratified share
    ``fit_fraction`` of each class (``seed``) and the metrics before and after it are reported on
    the other rows, with their own reliability diagram. ``renormalize`` divides probability rows
    by their sum instead of refusing rows that do not sum to 1. ``source`` names the predictions
    in the page's title ("Calibration: <source>").

    Returns the results as a dict (``results.json`` of the command): ``n``, ``accuracy``,
    ``nll``, ``brier``, ``ece``, ``mce``, ``rmsce``, ``bins``, ``per_class``,
    ``confusion_matrix``; for two classes ``brier_binary``, ``ece_binary`` and
    ``calibration_curve``; with a fitted temperature ``temperature``, ``before_scaling`` and
    ``after``.

    >>> import numpy as np, tempfile, os
    >>> import labelsmooth
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 3, size=300)
    >>> x = rng.normal(size=(300, 3)) + 3.0 * np.eye(3)[y]  # logits that carry signal
    >>> with tempfile.TemporaryDirectory() as d:
    ...     r = labelsmooth.report(x, y, os.path.join(d, "report.html"), class_names=["a", "b", "c"])
    ...     sorted(os.listdir(os.path.join(d, "report_figures")))[:2]
    ['confidence_histogram.png', 'confidence_histogram.svg']
    >>> r["n"], bool(r["accuracy"] == np.mean(x.argmax(axis=1) == y)), r["per_class"][0]["class"]
    (300, True, 'a')
    """
    a = np.asarray(probs_or_logits)
    if a.dtype.kind not in "fiub":
        raise TypeError(f"probs_or_logits must hold numbers, got an array of dtype {a.dtype}")
    if a.ndim == 1:
        a = a.reshape(-1, 1)
    if a.ndim != 2:
        raise ValueError(f"probs_or_logits must be [N, C] or [N], got shape {np.shape(probs_or_logits)}")
    if a.size == 0:
        raise ValueError(f"probs_or_logits is empty (shape {np.shape(probs_or_logits)})")
    a = np.ascontiguousarray(a, dtype=np.float64)
    ids = class_ids(labels, "labels")
    if ids.shape[0] != a.shape[0]:
        raise ValueError(f"labels has {ids.shape[0]} values, probs_or_logits has {a.shape[0]} rows")
    k = max(a.shape[1], 2)
    bad = np.flatnonzero((ids < 0) | (ids >= k))
    if bad.size:
        raise ValueError(f"labels: row {bad[0]}: class id {ids[bad[0]]} is out of range for {k} classes")
    if logits is None:
        from_logits = not _looks_like_probabilities(a)
    elif isinstance(logits, (bool, np.bool_)):
        from_logits = bool(logits)
    else:
        raise TypeError(f"logits must be True, False or None, got {logits!r}")
    finite = np.isfinite(a).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise ValueError(f"probs_or_logits: row {row} holds {a[row][~np.isfinite(a[row])][0]}")
    if not from_logits:
        outside = ((a < 0.0) | (a > 1.0)).any(axis=1)
        if outside.any():
            row = int(np.flatnonzero(outside)[0])
            raise ValueError(f"probs_or_logits: row {row}: a probability is outside [0, 1]")
        sums = a.sum(axis=1) if a.shape[1] > 1 else np.ones(a.shape[0])
        off = np.abs(sums - 1.0) > 1e-3
        if off.any() and not renormalize:
            row = int(np.flatnonzero(off)[0])
            raise ValueError(
                f"probs_or_logits: row {row}: probabilities sum to {sums[row]:.6g}, not 1 "
                "(renormalize=True divides each row by its sum)"
            )
        if (sums <= 0.0).any():
            row = int(np.flatnonzero(sums <= 0.0)[0])
            raise ValueError(f"probs_or_logits: row {row}: probabilities sum to 0: nothing to renormalize")
    if class_names is not None:
        if isinstance(class_names, (str, bytes)):
            raise TypeError("class_names must be a sequence of names, not one string")
        names = [str(c) for c in class_names]
        if len(names) != k:
            raise ValueError(f"{len(names)} class names for predictions of {k} classes")
    else:
        names = None
    bins = _bins(n_bins)
    if strategy not in ("uniform", "quantile"):
        raise ValueError(f"strategy {strategy!r} is not one of 'uniform', 'quantile'")
    fraction = number(fit_fraction, "fit_fraction")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fit_fraction {fraction} is not strictly between 0 and 1")
    seed = count(seed, "seed", minimum=0)
    if seed >= 2**64:
        raise ValueError(f"seed {seed} does not fit in 64 bits")
    html = os.fspath(out)
    if os.path.isdir(html):
        raise IsADirectoryError(f"{html}: is a folder; give the path of the HTML file to write")
    parent = os.path.dirname(os.path.abspath(html))
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"{parent}: no such folder for the report")
    if not os.access(parent, os.W_OK):
        raise PermissionError(f"{parent}: the folder of the report is not writable")
    if figures is None:
        stem = os.path.splitext(os.path.basename(html))[0] or "report"
        figures = os.path.join(parent, f"{stem}_figures")
    text = _native.calibration_report(
        a,
        ids,
        from_logits,
        html,
        os.fspath(figures),
        source if source is not None else ("the given logits" if from_logits else "the given probabilities"),
        names,
        bins,
        strategy,
        bool(fit_temperature),
        fraction,
        seed,
        bool(renormalize),
    )
    return json.loads(text)
