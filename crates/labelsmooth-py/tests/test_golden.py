"""The binding against the reference values computed by PyTorch, Keras, scikit-learn,
torchmetrics and SciPy (tests/golden at the repository's root)."""

import numpy as np
import pytest

import labelsmooth
from labelsmooth import calibration
from conftest import U32, assert_grad, assert_loss, golden, softmax_rounding_bound


def matrix(c, field, cols):
    return np.array(c[field], dtype=np.float32).reshape(-1, cols)


@pytest.mark.parametrize("c", golden("cross_entropy_index"), ids=lambda c: f"n{c['n']}k{c['k']}a{c['alpha']}{c['reduction']}")
def test_cross_entropy_class_ids_equal_pytorch(c):
    x = matrix(c, "logits", c["k"])
    t = np.array(c["targets"], dtype=np.int64)
    w = None if c["weight"] is None else np.array(c["weight"])
    loss, grad = labelsmooth.cross_entropy(
        x, t, label_smoothing=c["alpha"], weight=w,
        ignore_index=-100 if c["ignore_index"] is None else c["ignore_index"],
        reduction=c["reduction"], return_grad=True,
    )
    assert_loss(loss, c["loss"])
    assert grad.shape == x.shape and grad.dtype == np.float32
    k, alpha = c["k"], c["alpha"]
    weights = np.ones(k) if w is None else np.array(c["weight"])
    keep = t != (-100 if c["ignore_index"] is None else c["ignore_index"])
    tt = np.where(keep, t, 0)
    q = np.full((len(t), k), alpha / k)
    q[np.arange(len(t)), tt] += 1 - alpha
    coefs = q * weights * keep[:, None]
    scale = 1.0 / weights[tt][keep].sum() if c["reduction"] == "mean" else 1.0
    bound = softmax_rounding_bound(
        np.array(c["logits"]).reshape(-1, k), coefs, np.where(keep, scale, 0.0), U32
    )
    assert_grad(grad, c["grad_of_sum"], input_rounding=bound)
    # The loss alone is the same number.
    alone = labelsmooth.cross_entropy(
        x, t, label_smoothing=c["alpha"], weight=w, reduction=c["reduction"],
        ignore_index=-100 if c["ignore_index"] is None else c["ignore_index"],
    )
    np.testing.assert_array_equal(np.asarray(alone), np.asarray(loss))


@pytest.mark.parametrize("c", golden("cross_entropy_probs"), ids=lambda c: f"n{c['n']}k{c['k']}a{c['alpha']}{c['reduction']}")
def test_cross_entropy_probability_targets_equal_pytorch(c):
    x = matrix(c, "logits", c["k"])
    q = matrix(c, "target_probs", c["k"])
    w = None if c["weight"] is None else np.array(c["weight"])
    loss, grad = labelsmooth.cross_entropy(
        x, q, label_smoothing=c["alpha"], weight=w, reduction=c["reduction"], return_grad=True
    )
    assert_loss(loss, c["loss"])
    k, alpha = c["k"], c["alpha"]
    weights = np.ones(k) if w is None else np.array(c["weight"])
    coefs = ((1 - alpha) * np.array(c["target_probs"]).reshape(-1, k) + alpha / k) * weights
    scale = 1.0 / c["n"] if c["reduction"] == "mean" else 1.0
    bound = softmax_rounding_bound(
        np.array(c["logits"]).reshape(-1, k), coefs, np.full(c["n"], scale), 2 * U32
    )
    assert_grad(grad, c["grad_of_sum"], input_rounding=bound)


@pytest.mark.parametrize("c", golden("cross_entropy_exclude_true"), ids=lambda c: f"k{c['k']}a{c['alpha']}")
def test_exclude_true_convention(c):
    k = c["k"]
    x = matrix(c, "logits", k)
    t = np.array(c["targets"], dtype=np.int64)
    q = labelsmooth.smooth_labels(t, k, c["alpha"], convention="exclude-true")
    np.testing.assert_allclose(q.ravel(), c["smoothed_targets"], rtol=0, atol=1e-7)
    loss, grad = labelsmooth.cross_entropy(
        x, t, label_smoothing=c["alpha"], convention="exclude-true", return_grad=True
    )
    assert_loss(loss, c["loss"])
    assert_grad(grad, c["grad"])


@pytest.mark.parametrize("c", golden("binary_cross_entropy"), ids=lambda c: f"L{c['labels']}a{c['alpha']}{c['reduction']}")
def test_binary_cross_entropy_equals_pytorch_on_keras_targets(c):
    x = matrix(c, "logits", c["labels"])
    y = matrix(c, "targets", c["labels"])
    q = labelsmooth.smooth_labels(y, c["labels"], c["alpha"], convention="toward-half")
    np.testing.assert_allclose(q.ravel(), c["smoothed_targets"], rtol=0, atol=1e-7)
    loss, grad = labelsmooth.binary_cross_entropy_with_logits(
        x, y, label_smoothing=c["alpha"], reduction=c["reduction"], return_grad=True
    )
    assert_loss(loss, c["loss"])
    assert_grad(grad, c["grad_of_sum"])


@pytest.mark.parametrize(
    "c",
    [c for c in golden("keras_losses") if c["from_logits"]],
    ids=lambda c: f"{c['kind']}a{c['alpha']}",
)
def test_keras_losses_from_logits(c):
    k = c["k"]
    x = matrix(c, "inputs", k)
    y = matrix(c, "onehot", k)
    if c["kind"] == "categorical":
        q = labelsmooth.smooth_labels(y, k, c["alpha"])
        loss = labelsmooth.cross_entropy(x, q)
    else:
        loss = labelsmooth.binary_cross_entropy_with_logits(x, y, label_smoothing=c["alpha"])
    assert_loss(loss, c["loss"])


@pytest.mark.parametrize("c", golden("calibration_curve"), ids=lambda c: f"{c['strategy']}{c['n_bins']}")
def test_calibration_curve_equals_scikit_learn(c):
    prob_true, prob_pred = calibration.calibration_curve(
        c["y_true"], c["y_prob"], n_bins=c["n_bins"], strategy=c["strategy"]
    )
    np.testing.assert_allclose(prob_true, c["prob_true"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(prob_pred, c["prob_pred"], rtol=0, atol=1e-6)


@pytest.mark.parametrize("c", golden("calibration_error"), ids=lambda c: f"{c['norm']}{c['n_bins']}")
def test_calibration_error_equals_torchmetrics(c):
    p = matrix(c, "probs", c["k"])
    v = calibration.calibration_error(p, c["labels"], n_bins=c["n_bins"], norm=c["norm"])
    assert abs(v - c["value"]) <= 1e-5


@pytest.mark.parametrize("c", golden("temperature_scaling"), ids=lambda c: f"n{c['n']}k{c['k']}")
def test_temperature_equals_scipy(c):
    x = matrix(c, "logits", c["k"])
    t, before, after = calibration.fit_temperature(x, c["labels"], return_nll=True)
    assert abs(t - c["temperature"]) <= 1e-4 * c["temperature"]
    assert abs(before - c["nll_before"]) <= 1e-5 * c["nll_before"]
    assert abs(after - c["nll_after"]) <= 1e-5 * c["nll_after"]
    # The NLL of the scaled logits is the fitted minimum.
    scaled = labelsmooth.softmax(calibration.apply_temperature(x, t))
    assert abs(calibration.nll(scaled, c["labels"]) - after) <= 1e-5
