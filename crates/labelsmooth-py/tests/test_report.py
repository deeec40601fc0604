"""labelsmooth.report: the metrics against their definitions computed here in NumPy, the files
it writes, the choice between probabilities and logits, and every bad input."""

import base64
import os
import re
import struct

import numpy as np
import pytest

import labelsmooth
from labelsmooth import calibration


def softmax64(x):
    z = np.exp(x - x.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def logits_with_signal(n=400, k=4, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, size=n)
    x = scale * (rng.normal(size=(n, k)) + 2.0 * np.eye(k)[y])
    return x, y


def png_size(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_the_metrics_follow_their_definitions(tmp_path):
    x, y = logits_with_signal()
    r = labelsmooth.report(x, y, tmp_path / "r.html", n_bins=10)
    p = softmax64(x)
    conf, pred = p.max(axis=1), p.argmax(axis=1)
    right = pred == y
    assert r["n"] == len(y)
    assert r["accuracy"] == pytest.approx(right.mean(), abs=1e-12)
    assert r["nll"] == pytest.approx(-np.log(p[np.arange(len(y)), y]).mean(), rel=1e-5)
    assert r["brier"] == pytest.approx(((p - np.eye(4)[y]) ** 2).sum(axis=1).mean(), rel=1e-5)
    # ECE / MCE / RMS over ten equal-width bins of the top-label confidence, (lo, hi].
    b = np.clip(np.ceil(conf * 10).astype(int) - 1, 0, 9)
    gaps, weights = [], []
    for i in range(10):
        m = b == i
        if m.any():
            gaps.append(abs(conf[m].mean() - right[m].mean()))
            weights.append(m.mean())
    gaps, weights = np.array(gaps), np.array(weights)
    assert r["ece"] == pytest.approx((weights * gaps).sum(), abs=1e-5)
    assert r["mce"] == pytest.approx(gaps.max(), abs=1e-5)
    assert r["rmsce"] == pytest.approx(np.sqrt((weights * gaps**2).sum()), abs=1e-5)
    assert "nll_clipped_at" not in r and "temperature" not in r
    cm = np.zeros((4, 4), dtype=int)
    np.add.at(cm, (y, pred), 1)
    assert r["confusion_matrix"] == cm.tolist()
    for c, row in enumerate(r["per_class"]):
        assert row["class"] == str(c)
        assert row["support"] == cm[c].sum()
        assert row["recall"] == pytest.approx(cm[c, c] / cm[c].sum())
        assert row["precision"] == pytest.approx(cm[c, c] / cm[:, c].sum())
    # The same numbers as the calibration module.
    probs = p.astype(np.float32)
    assert r["ece"] == pytest.approx(calibration.calibration_error(probs, y, n_bins=10), abs=1e-6)
    assert r["brier"] == pytest.approx(calibration.brier_score(probs, y), rel=1e-5)


def test_probabilities_and_logits_of_the_same_predictions_agree(tmp_path):
    x, y = logits_with_signal(seed=1)
    p = softmax64(x)
    from_logits = labelsmooth.report(x, y, tmp_path / "a.html")
    from_probs = labelsmooth.report(p, y, tmp_path / "b.html")
    assert from_probs["nll_clipped_at"] == 1e-15 and "nll_clipped_at" not in from_logits
    for key in ("accuracy", "ece", "mce", "brier"):
        assert from_probs[key] == pytest.approx(from_logits[key], abs=1e-6), key
    assert from_probs["nll"] == pytest.approx(from_logits["nll"], rel=1e-5)
    # Told otherwise, the probabilities are taken as logits: other numbers.
    as_logits = labelsmooth.report(p, y, tmp_path / "c.html", logits=True)
    assert as_logits["nll"] > from_logits["nll"] + 0.1
    assert "the given logits" in (tmp_path / "c.html").read_text()


def test_two_classes_in_one_column_match_scikit_learns_curve(tmp_path):
    rng = np.random.default_rng(2)
    p1 = rng.uniform(size=500)
    y = (rng.uniform(size=500) < p1).astype(int)
    r = labelsmooth.report(p1, y, tmp_path / "r.html", n_bins=5)
    prob_true, prob_pred = calibration.calibration_curve(y, p1, n_bins=5)
    np.testing.assert_allclose(r["calibration_curve"]["prob_true"], prob_true, atol=1e-6)
    np.testing.assert_allclose(r["calibration_curve"]["prob_pred"], prob_pred, atol=1e-6)
    assert r["brier_binary"] == pytest.approx(((p1 - y) ** 2).mean(), rel=1e-5)
    assert r["brier"] == pytest.approx(2 * r["brier_binary"], rel=1e-5)


def test_a_fitted_temperature_undoes_a_known_overconfidence(tmp_path):
    # Labels drawn from softmax(z): z is calibrated, 4·z is over-confident by a temperature of 4.
    rng = np.random.default_rng(3)
    z = rng.normal(size=(6000, 3)) * 1.5
    y = np.array([rng.choice(3, p=row) for row in softmax64(z)])
    r = labelsmooth.report(4.0 * z, y, tmp_path / "r.html", fit_temperature=True, seed=7)
    assert r["temperature"] == pytest.approx(4.0, rel=0.08)
    assert r["fit_rows"] + r["after"]["n"] == 6000
    assert r["after"]["nll"] < r["before_scaling"]["nll"]
    assert r["after"]["ece"] < r["before_scaling"]["ece"]


def test_the_page_embeds_every_figure_and_the_figures_are_written(tmp_path):
    x, y = logits_with_signal(k=3)
    names = ["cat", "dog, big", "<fox> & co"]
    out = tmp_path / "report.html"
    labelsmooth.report(x, y, out, class_names=names, fit_temperature=True)
    page = out.read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 4
    for data in images:
        w, h = png_size(base64.b64decode(data))
        assert w >= 400 and h >= 300
    figures = tmp_path / "report_figures"
    stems = {"reliability", "reliability_scaled", "confidence_histogram", "confusion_matrix"}
    assert {f.name for f in figures.iterdir()} == {f"{s}.{e}" for s in stems for e in ("png", "svg")}
    assert "&lt;fox&gt; &amp; co" in page and "<fox>" not in page
    assert "dog, big" in page
    assert not any(name.endswith(".tmp") for name in os.listdir(tmp_path))
    # Without a fitted temperature: one diagram fewer; figures where asked.
    other = tmp_path / "other"
    labelsmooth.report(x, y, tmp_path / "plain.html", figures=other, source="my model")
    plain = (tmp_path / "plain.html").read_text()
    assert len(re.findall("data:image/png;base64,", plain)) == 3
    assert "Calibration: my model" in plain
    assert (other / "reliability.svg").is_file()


@pytest.mark.parametrize(
    "kwargs, kind, words",
    [
        (dict(probs_or_logits=np.zeros((0, 3)), labels=[]), ValueError, "empty"),
        (dict(probs_or_logits=np.zeros((2, 3, 1)), labels=[0, 1]), ValueError, "[N, C] or [N]"),
        (dict(probs_or_logits=np.array([["a", "b"]]), labels=[0]), TypeError, "dtype"),
        (dict(probs_or_logits=np.zeros((2, 3)), labels=[0]), ValueError, "labels has 1 values"),
        (dict(probs_or_logits=np.zeros((2, 3)), labels=[0, 3]), ValueError, "row 1: class id 3 is out of range for 3 classes"),
        (dict(probs_or_logits=np.zeros((2, 3)), labels=[0, -1]), ValueError, "row 1: class id -1"),
        (dict(probs_or_logits=np.zeros((2, 3)), labels=[0.5, 1]), TypeError, "class ids"),
        (dict(probs_or_logits=[[0.0, np.nan], [0.0, 1.0]], labels=[0, 1]), ValueError, "row 0 holds nan"),
        (dict(probs_or_logits=[[0.0, 1.0], [np.inf, 1.0]], labels=[0, 1]), ValueError, "row 1 holds inf"),
        (dict(probs_or_logits=[[0.5, 0.5], [0.7, 0.6]], labels=[0, 1], logits=False), ValueError, "row 1: probabilities sum to 1.3"),
        (dict(probs_or_logits=[[0.5, 0.5], [1.5, -0.5]], labels=[0, 1], logits=False), ValueError, "row 1: a probability is outside [0, 1]"),
        (dict(probs_or_logits=[[0.5, 0.5], [0.0, 0.0]], labels=[0, 1], logits=False, renormalize=True), ValueError, "row 1: probabilities sum to 0"),
        (dict(probs_or_logits=np.zeros((2, 3)), labels=[0, 1], logits="yes"), TypeError, "logits must be"),
        (dict(probs_or_logits=np.zeros((2, 3)), labels=[0, 1], class_names=["a", "b"]), ValueError, "2 class names for predictions of 3 classes"),
        (dict(probs_or_logits=np.zeros((2, 3)), labels=[0, 1], class_names="abc"), TypeError, "class_names"),
        (dict(probs_or_logits=np.zeros((2, 3)), labels=[0, 1], n_bins=0), ValueError, "n_bins must be at least 1"),
        (dict(probs_or_logits=np.zeros((2, 3)), labels=[0, 1], strategy="equal"), ValueError, "strategy 'equal'"),
        (dict(probs_or_logits=np.zeros((2, 3)), labels=[0, 1], fit_fraction=1.0), ValueError, "fit_fraction 1.0"),
        (dict(probs_or_logits=np.zeros((2, 3)), labels=[0, 1], seed=-1), ValueError, "seed must be at least 0"),
        (dict(probs_or_logits=np.zeros((2, 3)), labels=[0, 1], fit_temperature=True), ValueError, "too few rows to fit the temperature"),
    ],
)
def test_bad_input_raises_and_writes_nothing(tmp_path, kwargs, kind, words):
    out = tmp_path / "r.html"
    with pytest.raises(kind) as e:
        labelsmooth.report(out=out, **kwargs)
    assert words in str(e.value)
    assert not out.exists()
    assert not any(name.endswith(".tmp") for name in os.listdir(tmp_path))


def test_unusable_output_paths_raise_before_any_work(tmp_path):
    x, y = logits_with_signal(n=20)
    with pytest.raises(IsADirectoryError, match="is a folder"):
        labelsmooth.report(x, y, tmp_path)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        labelsmooth.report(x, y, tmp_path / "missing" / "r.html")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(FileNotFoundError, match="no such folder"):
        labelsmooth.report(x, y, blocker / "r.html")
    # A figures folder that cannot be made is an OSError naming it, and no page is written.
    with pytest.raises(OSError, match="cannot create"):
        labelsmooth.report(x, y, tmp_path / "r.html", figures=blocker / "figures")
    assert not (tmp_path / "r.html").exists()
    assert not (tmp_path / "missing").exists()
