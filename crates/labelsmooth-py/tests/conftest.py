import json
from pathlib import Path

import numpy as np
import pytest

GOLDEN = Path(__file__).resolve().parents[3] / "tests" / "golden"


def golden(name):
    """The cases of one reference file (tests/golden/README.md gives the schema)."""
    return json.loads((GOLDEN / f"{name}.json").read_text())["cases"]


def assert_loss(got, want, rel=1e-5, floor=1e-6):
    got = np.asarray(got, dtype=np.float64).ravel()
    want = np.asarray(want, dtype=np.float64).ravel()
    assert got.shape == want.shape
    tol = np.maximum(rel * np.abs(want), floor)
    bad = np.abs(got - want) > tol
    assert not bad.any(), f"loss {got[bad][:5]} != reference {want[bad][:5]}"


U32 = 2.0**-24  # unit roundoff of float32


def softmax_rounding_bound(logits, coefs, scales, coef_rel):
    """First-order bound on how much the gradient g_j = s·(p_j·C − c_j) of a softmax
    cross-entropy moves when the float64 reference logits x and the coefficients c (smoothed
    target times weight, relative rounding `coef_rel`) are rounded to float32:
    |δg_j| ≤ s·(C·p_j·(u|x_j| + Σ_i p_i·u|x_i|) + p_j·Σ_i |δc_i| + |δc_j|)."""
    x = np.asarray(logits, dtype=np.float64)
    c = np.asarray(coefs, dtype=np.float64)
    p = np.exp(x - x.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    total = c.sum(axis=1, keepdims=True)
    spread = (p * U32 * np.abs(x)).sum(axis=1, keepdims=True)
    dc = (coef_rel * np.abs(c)).sum(axis=1, keepdims=True)
    s = np.asarray(scales, dtype=np.float64).reshape(-1, 1)
    return s * (total * p * (U32 * np.abs(x) + spread) + p * dc + coef_rel * np.abs(c))


def assert_grad(got, want, tol=1e-6, input_rounding=0.0):
    """Gradients agree to `tol` of the largest |reference gradient|, plus, per element, what
    rounding the reference's float64 inputs to float32 may move them by."""
    got = np.asarray(got, dtype=np.float64).ravel()
    want = np.asarray(want, dtype=np.float64).ravel()
    assert got.shape == want.shape
    scale = np.abs(want).max()
    if scale == 0.0:
        assert (got == 0.0).all(), "the gradient should be 0"
        return
    slack = tol * scale + 1e-12 + np.broadcast_to(np.asarray(input_rounding).ravel(), got.shape)
    bad = np.abs(got - want) > slack
    err = (np.abs(got - want) / scale).max()
    assert not bad.any(), f"gradient differs by {err:.3g} of its largest value"


@pytest.fixture
def rng():
    return np.random.default_rng(7)
