"""Every kind of bad input raises a Python exception naming what is wrong; none crashes."""

import numpy as np
import pytest

import labelsmooth
from labelsmooth import calibration

X = np.zeros((3, 4), dtype=np.float32)
T = np.array([0, 1, 3])


@pytest.mark.parametrize(
    "call, kind, words",
    [
        (lambda: labelsmooth.cross_entropy(X, np.array([0, 1, 4])), ValueError, "row 2: class id 4 is out of range for 4 classes"),
        (lambda: labelsmooth.cross_entropy(X, np.array([0, -1, 2])), ValueError, "row 1: class id -1"),
        (lambda: labelsmooth.cross_entropy(X, T, label_smoothing=1.5), ValueError, "outside [0, 1]"),
        (lambda: labelsmooth.cross_entropy(X, T, label_smoothing=float("nan")), ValueError, "outside [0, 1]"),
        (lambda: labelsmooth.cross_entropy(X, T, label_smoothing="a"), TypeError, "label_smoothing"),
        (lambda: labelsmooth.cross_entropy(X, T, reduction="avg"), ValueError, "`avg` is not one of none, sum, mean"),
        (lambda: labelsmooth.cross_entropy(X, T, convention="fair"), ValueError, "convention `fair`"),
        (lambda: labelsmooth.cross_entropy(X, np.array([0, 1])), ValueError, "one class id per row"),
        (lambda: labelsmooth.cross_entropy(X[0], T), ValueError, "logits must be"),
        (lambda: labelsmooth.cross_entropy(np.zeros((0, 4)), np.zeros(0, dtype=int)), ValueError, "empty"),
        (lambda: labelsmooth.cross_entropy(np.full((3, 4), np.nan), T), ValueError, "row 0, class 0: logit is NaN"),
        (lambda: labelsmooth.cross_entropy(np.array([["a", "b"]]), [0]), TypeError, "dtype"),
        (lambda: labelsmooth.cross_entropy(X, np.array(["a", "b", "c"])), TypeError, "class ids"),
        (lambda: labelsmooth.cross_entropy(X, np.array([0.5, 1, 2])), TypeError, "class ids"),
        (lambda: labelsmooth.cross_entropy(X, T, weight=[1, 2]), ValueError, "weight has shape (2,), expected (4,)"),
        (lambda: labelsmooth.cross_entropy(X, T, weight=[1, -2, 1, 1]), ValueError, "class weight 1 is -2"),
        (lambda: labelsmooth.cross_entropy(X, np.full(3, -100)), ValueError, "the batch after ignored rows and zero weights is empty"),
        (lambda: labelsmooth.cross_entropy(X, np.full((3, 4), 0.5, dtype=np.float32)), ValueError, "row 0"),
        (lambda: labelsmooth.cross_entropy(X, np.zeros((3, 5), dtype=np.float32)), ValueError, "target has shape (3, 5)"),
        (lambda: labelsmooth.cross_entropy(X, T, out=np.zeros((3, 5), dtype=np.float32)), ValueError, "out has shape (3, 5), expected (3, 4)"),
        (lambda: labelsmooth.cross_entropy(X, T, out=np.zeros((3, 4))), TypeError, "float32"),
        (lambda: labelsmooth.cross_entropy(X, T, out=np.zeros((4, 3), dtype=np.float32).T), TypeError, "C-contiguous"),
        (lambda: labelsmooth.binary_cross_entropy_with_logits(X, np.full((3, 4), 2.0)), ValueError, "row 0, column 0: label 2"),
        (lambda: labelsmooth.binary_cross_entropy_with_logits(X, X[:2]), ValueError, "target has shape"),
        (lambda: labelsmooth.binary_cross_entropy_with_logits(X, X, convention="keras"), ValueError, "convention `keras`"),
        (lambda: labelsmooth.confidence_penalty(X, -1.0), ValueError, "beta: -1 is not finite and >= 0"),
        (lambda: labelsmooth.confidence_penalty(X, None), TypeError, "beta"),
        (lambda: labelsmooth.smooth_labels([0, 5], 3, 0.1), ValueError, "row 1: class id 5"),
        (lambda: labelsmooth.smooth_labels([0, 1], 3, -0.1), ValueError, "outside [0, 1]"),
        (lambda: labelsmooth.smooth_labels(np.ones((2, 3)), 3, 0.1, convention="exclude-true"), ValueError, "not one-hot"),
        (lambda: labelsmooth.smooth_labels(np.eye(3), 4, 0.1), ValueError, "num_classes is 4"),
        (lambda: labelsmooth.smooth_labels([0], 1, 0.1, convention="exclude-true"), ValueError, "at least 2 classes"),
        (lambda: labelsmooth.convert_alpha(1.0, 10, "exclude-true", "uniform"), ValueError, "outside [0, 1]"),
        (lambda: labelsmooth.convert_alpha(0.1, 10, "uniform", "fairseq"), ValueError, "`fairseq`"),
        (lambda: calibration.calibration_curve([0, 2], [0.1, 0.2]), ValueError, "0 or 1"),
        (lambda: calibration.calibration_curve([0, 1], [0.1]), ValueError, "y_prob has shape"),
        (lambda: calibration.calibration_curve([0, 1], [0.1, 1.5]), ValueError, "probability 1.5 is outside [0, 1]"),
        (lambda: calibration.calibration_curve([0, 1], [0.1, 0.2], n_bins=0), ValueError, "bin"),
        (lambda: calibration.calibration_error([[0.5, 0.5]], [0, 1]), ValueError, "labels has 2 values, probs has 1 rows"),
        (lambda: calibration.calibration_error([[0.5, 1.7]], [0]), ValueError, "row 0: probabilities sum to 2.2, not 1"),
        (lambda: calibration.calibration_error([[0.35, 0.15], [0.2, 0.8]], [0, 1]), ValueError, "row 0: probabilities sum to 0.5"),
        (lambda: calibration.brier_score([0.2, 1.5], [0, 1]), ValueError, "row 1: probability 1.5 is outside [0, 1]"),
        (lambda: calibration.calibration_error([[0.5, 0.5]], [0], n_bins=2**46), MemoryError, "70368744177664 bins needs"),
        (lambda: calibration.calibration_curve([0, 1], [0.1, 0.2], n_bins=2**62), MemoryError, "bins needs"),
        (lambda: calibration.reliability_bins([[0.5, 0.5]], [0], n_bins=2.7), TypeError, "n_bins must be an integer"),
        (lambda: calibration.reliability_bins([[0.5, 0.5]], [0], n_bins=-1), ValueError, "n_bins must be at least 1, got -1"),
        (lambda: calibration.apply_temperature(X, "x"), TypeError, "temperature must be a number"),
        (lambda: labelsmooth.smooth_labels([0], 2**46, 0.2), MemoryError, "smoothed targets of 70368744177664 classes needs"),
        (lambda: labelsmooth.smooth_labels([0], -1, 0.2), ValueError, "num_classes must be at least 1, got -1"),
        (lambda: labelsmooth.convert_alpha(0.1, 2.5, "uniform", "exclude-true"), TypeError, "k must be an integer"),
        (lambda: labelsmooth.cross_entropy(X, np.array([0, 1, 2**64 - 100], dtype=np.uint64)), ValueError, "target: row 2: class id 18446744073709551516 is out of range"),
        (lambda: labelsmooth.cross_entropy(X, np.array([0, 1, 2.0**70])), ValueError, "target: row 2"),
        (lambda: labelsmooth.cross_entropy(X, T, ignore_index=2**70), ValueError, "ignore_index 1180591620717411303424 does not fit in 64 bits"),
        (lambda: labelsmooth.confidence_penalty(X, 1.0, threshold="a"), TypeError, "threshold must be a number"),
        (lambda: labelsmooth.cross_entropy(X, T, out=np.frombuffer(memoryview(X), dtype=np.float32).reshape(3, 4)), ValueError, "out shares memory with an input"),
        (lambda: calibration.calibration_error([[0.5, 0.5]], [0], norm="l3"), ValueError, "norm `l3`"),
        (lambda: calibration.calibration_error([[0.5, 0.5]], [0], strategy="log"), ValueError, "`log`"),
        (lambda: calibration.brier_score([[0.5, 0.5]], [2]), ValueError, "class id 2"),
        (lambda: calibration.nll(np.zeros((0, 2)), []), ValueError, "empty"),
        (lambda: calibration.fit_temperature([[np.inf, 0.0]], [0]), ValueError, "row 0, class 0: logit is inf"),
        (lambda: calibration.apply_temperature(X, 0.0), ValueError, "temperature"),
    ],
)
def test_bad_input_raises(call, kind, words):
    with pytest.raises(kind) as e:
        call()
    assert words in str(e.value), str(e.value)
