"""The binding against mathematics: each loss written from its definition in float64 NumPy,
gradients against central finite differences of that definition, and invariances."""

import numpy as np
import pytest

import labelsmooth
from labelsmooth import calibration


def log_softmax(x):
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


def targets(t, k, alpha, convention):
    n = len(t)
    if convention == "uniform":
        q = np.full((n, k), alpha / k)
        q[np.arange(n), t] += 1 - alpha
    else:
        q = np.full((n, k), alpha / (k - 1))
        q[np.arange(n), t] = 1 - alpha
    return q


def ce_reference(x, t, k, alpha, convention, w, ignore, reduction):
    """PyTorch's definition: per row −Σ_j w_j q_j log p_j with q the smoothed target; rows
    whose target is `ignore` count zero; "mean" divides by the sum of w over kept targets."""
    keep = t != ignore
    tt = np.where(keep, t, 0)
    q = targets(tt, k, alpha, convention)
    w = np.ones(k) if w is None else w
    rows = -(q * w * log_softmax(x)).sum(axis=1) * keep
    if reduction == "none":
        return rows
    if reduction == "sum":
        return rows.sum()
    return rows.sum() / (w[tt] * keep).sum()


def finite_diff(f, x, h=1e-5):
    g = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        e = np.zeros_like(x)
        e[idx] = h
        g[idx] = (f(x + e) - f(x - e)) / (2 * h)
    return g


@pytest.mark.parametrize("convention", ["uniform", "exclude-true"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_value_and_gradient(rng, convention, reduction, weighted):
    for _ in range(5):
        n, k = rng.integers(1, 7), rng.integers(2, 9)
        x = rng.normal(size=(n, k)).astype(np.float32) * 3
        t = rng.integers(0, k, size=n)
        t[rng.random(n) < 0.2] = -100
        if (t == -100).all():
            t[0] = 0
        alpha = float(rng.choice([0.0, 0.1, 0.37, 1.0]))
        w = rng.uniform(0.1, 2.0, size=k) if weighted else None
        x64 = x.astype(np.float64)
        want = ce_reference(x64, t, k, alpha, convention, w, -100, reduction)
        loss, grad = labelsmooth.cross_entropy(
            x, t, label_smoothing=alpha, convention=convention, weight=w,
            reduction=reduction, return_grad=True,
        )
        np.testing.assert_allclose(loss, want, rtol=1e-5, atol=1e-6)
        total = lambda z: np.sum(ce_reference(z, t, k, alpha, convention, w, -100, reduction))
        np.testing.assert_allclose(grad, finite_diff(total, x64), rtol=0, atol=2e-5)


def test_probability_targets_value_and_gradient(rng):
    n, k = 6, 5
    x = rng.normal(size=(n, k)).astype(np.float32)
    q = rng.dirichlet(np.ones(k), size=n).astype(np.float32)
    alpha = 0.2
    qs = (1 - alpha) * q.astype(np.float64) + alpha / k
    f = lambda z: -(qs * log_softmax(z)).sum() / n
    loss, grad = labelsmooth.cross_entropy(x, q, label_smoothing=alpha, return_grad=True)
    np.testing.assert_allclose(loss, f(x.astype(np.float64)), rtol=1e-5)
    np.testing.assert_allclose(grad, finite_diff(f, x.astype(np.float64)), atol=2e-6)


@pytest.mark.parametrize("convention", ["toward-half", "over-labels"])
def test_binary_value_and_gradient(rng, convention):
    n, l = 5, 4
    x = (rng.normal(size=(n, l)) * 2).astype(np.float32)
    y = (rng.random((n, l)) < 0.4).astype(np.float32)
    pw = rng.uniform(0.5, 3.0, size=l)
    alpha = 0.3
    prior = 0.5 if convention == "toward-half" else 1.0 / l
    q = y * (1 - alpha) + alpha * prior

    def f(z):
        log_sig = -np.logaddexp(0, -z)
        log_one_minus = -np.logaddexp(0, z)
        return -(pw * q * log_sig + (1 - q) * log_one_minus).mean()

    loss, grad = labelsmooth.binary_cross_entropy_with_logits(
        x, y, label_smoothing=alpha, convention=convention, pos_weight=pw, return_grad=True
    )
    np.testing.assert_allclose(loss, f(x.astype(np.float64)), rtol=1e-5)
    np.testing.assert_allclose(grad, finite_diff(f, x.astype(np.float64)), atol=2e-6)


def test_confidence_penalty_value_and_gradient(rng):
    x = rng.normal(size=(4, 6)).astype(np.float32)
    beta = 0.7

    def f(z):
        lp = log_softmax(z)
        return beta * (np.exp(lp) * lp).sum(axis=1).mean()  # −β·H

    loss, grad = labelsmooth.confidence_penalty(x, beta, return_grad=True)
    np.testing.assert_allclose(loss, f(x.astype(np.float64)), rtol=1e-5)
    np.testing.assert_allclose(grad, finite_diff(f, x.astype(np.float64)), atol=2e-6)


def test_spatial_logits_equal_flattened_rows(rng):
    # [N, C, H, W] with targets [N, H, W], as PyTorch's segmentation use.
    x = rng.normal(size=(2, 4, 3, 5)).astype(np.float32)
    t = rng.integers(0, 4, size=(2, 3, 5))
    rows = np.moveaxis(x, 1, -1).reshape(-1, 4)
    per, grad = labelsmooth.cross_entropy(x, t, label_smoothing=0.1, reduction="none", return_grad=True)
    flat, flat_grad = labelsmooth.cross_entropy(
        rows, t.reshape(-1), label_smoothing=0.1, reduction="none", return_grad=True
    )
    assert per.shape == (2, 3, 5) and grad.shape == x.shape
    np.testing.assert_array_equal(per.ravel(), flat)
    np.testing.assert_array_equal(np.moveaxis(grad, 1, -1).reshape(-1, 4), flat_grad)


def test_any_layout_and_dtype_gives_the_same_loss(rng):
    x = rng.normal(size=(8, 5))
    t = rng.integers(0, 5, size=8)
    want = labelsmooth.cross_entropy(x.astype(np.float32), t, label_smoothing=0.2)
    # float64, a transposed view made C-order again, a strided view, int32 ids, a list.
    assert labelsmooth.cross_entropy(x, t, label_smoothing=0.2) == want
    xt = np.asfortranarray(x.astype(np.float32))
    assert labelsmooth.cross_entropy(xt, t, label_smoothing=0.2) == want
    wide = np.zeros((8, 10), dtype=np.float32)
    wide[:, ::2] = x
    assert labelsmooth.cross_entropy(wide[:, ::2], t.astype(np.int32), label_smoothing=0.2) == want
    assert labelsmooth.cross_entropy(x.tolist(), t.tolist(), label_smoothing=0.2) == want


def test_shift_invariance(rng):
    x = rng.normal(size=(5, 7)).astype(np.float32)
    t = rng.integers(0, 7, size=5)
    a = labelsmooth.cross_entropy(x, t, label_smoothing=0.3, reduction="none")
    b = labelsmooth.cross_entropy(x + 11.0, t, label_smoothing=0.3, reduction="none")
    np.testing.assert_allclose(a, b, rtol=1e-5)


def test_smoothed_labels_and_converted_factors(rng):
    t = rng.integers(0, 10, size=20)
    for conv in ["uniform", "exclude-true"]:
        q = labelsmooth.smooth_labels(t, 10, 0.1, convention=conv)
        np.testing.assert_allclose(q.sum(axis=1), 1.0, atol=1e-6)
    b = labelsmooth.convert_alpha(0.1, 10, "uniform", "exclude-true")
    np.testing.assert_allclose(
        labelsmooth.smooth_labels(t, 10, b, convention="exclude-true"),
        labelsmooth.smooth_labels(t, 10, 0.1),
        atol=1e-7,
    )
    # One-hot rows smooth as their class ids do, in both conventions.
    onehot = np.eye(10)[t]
    for conv in ["uniform", "exclude-true"]:
        np.testing.assert_array_equal(
            labelsmooth.smooth_labels(onehot, 10, 0.2, convention=conv),
            labelsmooth.smooth_labels(t, 10, 0.2, convention=conv),
        )
    multi = (rng.random((4, 3)) < 0.5).astype(int)
    np.testing.assert_allclose(
        labelsmooth.smooth_labels(multi, 3, 0.2, convention="over-labels"),
        multi * 0.8 + 0.2 / 3,
        atol=1e-7,
    )


def test_calibration_metrics_from_their_definitions(rng):
    n, k = 200, 4
    p = rng.dirichlet(np.ones(k), size=n)
    y = rng.integers(0, k, size=n)
    conf = p.astype(np.float32).max(axis=1).astype(np.float64)
    hit = p.astype(np.float32).argmax(axis=1) == y
    bins = calibration.reliability_bins(p, y, n_bins=10)
    assert bins["count"].sum() == n
    edges = np.minimum((conf * 10).astype(int), 9)
    for b in range(10):
        sel = edges == b
        assert bins["count"][b] == sel.sum()
        if sel.any():
            assert abs(bins["confidence"][b] - conf[sel].mean()) < 1e-6
            assert abs(bins["accuracy"][b] - hit[sel].mean()) < 1e-12
    gaps = np.abs(bins["accuracy"] - bins["confidence"])
    weights = bins["count"] / n
    assert abs(calibration.calibration_error(p, y, n_bins=10) - (weights * gaps).sum()) < 1e-9
    assert abs(calibration.calibration_error(p, y, n_bins=10, norm="max") - gaps[bins["count"] > 0].max()) < 1e-9
    onehot = np.eye(k)[y]
    assert abs(calibration.brier_score(p, y) - ((p - onehot) ** 2).sum(axis=1).mean()) < 1e-6
    assert abs(calibration.nll(p, y) - (-np.log(p[np.arange(n), y])).mean()) < 1e-5


def test_gradient_written_into_a_given_array(rng):
    x = rng.normal(size=(9, 6)).astype(np.float32)
    t = rng.integers(0, 6, size=9)
    want_loss, want = labelsmooth.cross_entropy(x, t, label_smoothing=0.1, return_grad=True)
    out = np.full((9, 6), np.nan, dtype=np.float32)
    loss, grad = labelsmooth.cross_entropy(x, t, label_smoothing=0.1, out=out)
    assert grad is out and loss == want_loss
    np.testing.assert_array_equal(out, want)
    q = rng.dirichlet(np.ones(6), size=9)
    _, grad = labelsmooth.cross_entropy(x, q, out=out)
    np.testing.assert_array_equal(out, labelsmooth.cross_entropy(x, q, return_grad=True)[1])
