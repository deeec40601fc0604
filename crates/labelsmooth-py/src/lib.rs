//! The native half of the `labelsmooth` Python package: thin functions over the `labelsmooth`
//! core that take NumPy arrays of exact dtypes (float32 C-contiguous matrices, int64 labels) and
//! release the GIL while a kernel runs. The Python half (`python/labelsmooth`) converts what users
//! pass, checks shapes and names arguments as PyTorch and scikit-learn do.

// The functions take the keyword arguments of the Python functions they serve.
#![allow(clippy::too_many_arguments)]

use labelsmooth::calibration::{self, Binning, Norm};
use labelsmooth::error::Error;
use labelsmooth::loss::{
    BinaryCrossEntropy, ConfidencePenalty, CrossEntropy, LinearCrossEntropy, LossValue, Reduction,
    SoftCrossEntropy,
};
use labelsmooth::targets::{self, BinaryConvention, Convention};
use numpy::ndarray::Array2;
use numpy::{
    Element, IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// A report's error: `OSError` when a file could not be written, else `ValueError`, with the
/// whole chain of messages.
fn report_error(e: anyhow::Error) -> PyErr {
    let message = format!("{e:#}");
    if e.chain().any(|c| c.is::<std::io::Error>()) {
        pyo3::exceptions::PyOSError::new_err(message)
    } else {
        PyValueError::new_err(message)
    }
}

/// The core's error as a `ValueError` carrying its message.
fn value_error(e: Error) -> PyErr {
    PyValueError::new_err(e.to_string())
}

fn parse<T: std::str::FromStr<Err = Error>>(s: &str) -> PyResult<T> {
    s.parse().map_err(value_error)
}

fn binary_convention(s: &str) -> PyResult<BinaryConvention> {
    match s {
        "toward-half" | "toward_half" => Ok(BinaryConvention::TowardHalf),
        "over-labels" | "over_labels" => Ok(BinaryConvention::OverLabels),
        other => Err(PyValueError::new_err(format!(
            "binary convention `{other}` is not one of toward-half, over-labels"
        ))),
    }
}

fn norm(s: &str) -> PyResult<Norm> {
    match s {
        "l1" => Ok(Norm::L1),
        "l2" => Ok(Norm::L2),
        "max" => Ok(Norm::Max),
        other => Err(PyValueError::new_err(format!(
            "norm `{other}` is not one of l1, l2, max"
        ))),
    }
}

/// The values of a C-contiguous array (the Python half makes them so).
fn values<'a, T: Element, D: numpy::ndarray::Dimension>(
    a: &'a numpy::PyReadonlyArray<'_, T, D>,
    what: &str,
) -> PyResult<&'a [T]> {
    a.as_slice()
        .map_err(|_| PyValueError::new_err(format!("{what} must be a C-contiguous array")))
}

/// Class ids as the core's `usize`, refusing negative ones with the core's message.
fn class_ids(labels: &[i64], k: usize) -> PyResult<Vec<usize>> {
    labels
        .iter()
        .enumerate()
        .map(|(row, &c)| {
            usize::try_from(c).map_err(|_| value_error(Error::ClassOutOfRange { row, class: c, k }))
        })
        .collect()
}

fn matrix(py: Python<'_>, n: usize, k: usize, v: Vec<f32>) -> PyResult<Py<PyAny>> {
    let a = Array2::from_shape_vec((n, k), v)
        .map_err(|e| PyValueError::new_err(format!("result of the wrong size: {e}")))?;
    Ok(a.into_pyarray(py).into_any().unbind())
}

fn loss_object(py: Python<'_>, v: LossValue) -> PyResult<Py<PyAny>> {
    Ok(match v {
        LossValue::Reduced(x) => f64::from(x).into_pyobject(py)?.into_any().unbind(),
        LossValue::PerItem(v) => PyArray1::from_vec(py, v).into_any().unbind(),
    })
}

type LossAndGrad = (Py<PyAny>, Option<Py<PyAny>>);

/// Runs a loss with the GIL released: `f` gets a gradient buffer of `n * k` values when
/// `want_grad` or an `out` array is given. That buffer is `out`, or a new NumPy array (NumPy's
/// allocator puts large arrays on huge pages), handed back without a copy.
fn run_loss<F>(
    py: Python<'_>,
    n: usize,
    k: usize,
    want_grad: bool,
    out: Option<Bound<'_, PyArray2<f32>>>,
    f: F,
) -> PyResult<LossAndGrad>
where
    F: FnOnce(Option<&mut [f32]>) -> labelsmooth::Result<LossValue> + Send,
{
    if !want_grad && out.is_none() {
        let value = py.detach(move || f(None)).map_err(value_error)?;
        return Ok((loss_object(py, value)?, None));
    }
    let grad = match out {
        Some(o) => {
            if o.shape() != [n, k] {
                return Err(PyValueError::new_err(format!(
                    "out has shape {:?}, expected ({n}, {k})",
                    o.shape()
                )));
            }
            o
        }
        None => PyArray2::<f32>::zeros(py, [n, k], false),
    };
    let mut view = grad
        .try_readwrite()
        .map_err(|_| PyValueError::new_err("out must be writeable and not in use elsewhere"))?;
    let buffer = view
        .as_slice_mut()
        .map_err(|_| PyValueError::new_err("out must be a C-contiguous float32 array"))?;
    let value = py.detach(move || f(Some(buffer))).map_err(value_error)?;
    drop(view);
    Ok((loss_object(py, value)?, Some(grad.into_any().unbind())))
}

fn shape2<T: Element>(a: &PyReadonlyArray2<'_, T>) -> (usize, usize) {
    a.as_array().dim()
}

/// Probability or logit rows `[n, k]` and their class ids `[n]`, each id checked against `k`.
fn rows_and_ids<'a>(
    rows: &'a PyReadonlyArray2<'_, f32>,
    what: &str,
    labels: &PyReadonlyArray1<'_, i64>,
) -> PyResult<(&'a [f32], Vec<usize>, usize)> {
    let (_, k) = shape2(rows);
    let y = class_ids(values(labels, "labels")?, k)?;
    Ok((values(rows, what)?, y, k))
}

/// Cross-entropy of logits `[n, k]` against class ids `[n]`.
#[pyfunction]
#[pyo3(signature = (logits, target, smoothing, convention, weight, ignore_index, reduction, grad, out=None))]
fn cross_entropy_ids(
    py: Python<'_>,
    logits: PyReadonlyArray2<'_, f32>,
    target: PyReadonlyArray1<'_, i64>,
    smoothing: f32,
    convention: &str,
    weight: Option<PyReadonlyArray1<'_, f32>>,
    ignore_index: Option<i64>,
    reduction: &str,
    grad: bool,
    out: Option<Bound<'_, PyArray2<f32>>>,
) -> PyResult<LossAndGrad> {
    let (n, k) = shape2(&logits);
    let mut ce = CrossEntropy::new(k)
        .with_smoothing(smoothing)
        .with_convention(parse(convention)?)
        .with_reduction(parse::<Reduction>(reduction)?);
    if let Some(w) = &weight {
        ce = ce.with_weights(values(w, "weight")?.to_vec());
    }
    if let Some(i) = ignore_index {
        ce = ce.with_ignore_index(i);
    }
    let x = values(&logits, "logits")?;
    let t = values(&target, "target")?;
    run_loss(py, n, k, grad, out, move |g| match g {
        Some(g) => ce.forward_backward(x, t, g),
        None => ce.forward(x, t),
    })
}

/// Cross-entropy of logits `[n, k]` against probability rows `[n, k]`.
#[pyfunction]
#[pyo3(signature = (logits, target, smoothing, weight, reduction, grad, out=None))]
fn cross_entropy_probs(
    py: Python<'_>,
    logits: PyReadonlyArray2<'_, f32>,
    target: PyReadonlyArray2<'_, f32>,
    smoothing: f32,
    weight: Option<PyReadonlyArray1<'_, f32>>,
    reduction: &str,
    grad: bool,
    out: Option<Bound<'_, PyArray2<f32>>>,
) -> PyResult<LossAndGrad> {
    let (n, k) = shape2(&logits);
    let mut ce = SoftCrossEntropy::new(k)
        .with_smoothing(smoothing)
        .with_reduction(parse::<Reduction>(reduction)?);
    if let Some(w) = &weight {
        ce = ce.with_weights(values(w, "weight")?.to_vec());
    }
    let x = values(&logits, "logits")?;
    let t = values(&target, "target")?;
    run_loss(py, n, k, grad, out, move |g| match g {
        Some(g) => ce.forward_backward(x, t, g),
        None => ce.forward(x, t),
    })
}

/// Binary cross-entropy with logits `[n, labels]` against 0/1 targets `[n, labels]`.
#[pyfunction]
#[pyo3(signature = (logits, target, smoothing, convention, pos_weight, reduction, grad, out=None))]
fn binary_cross_entropy(
    py: Python<'_>,
    logits: PyReadonlyArray2<'_, f32>,
    target: PyReadonlyArray2<'_, f32>,
    smoothing: f32,
    convention: &str,
    pos_weight: Option<PyReadonlyArray1<'_, f32>>,
    reduction: &str,
    grad: bool,
    out: Option<Bound<'_, PyArray2<f32>>>,
) -> PyResult<LossAndGrad> {
    let (n, l) = shape2(&logits);
    let mut bce = BinaryCrossEntropy::new(l)
        .with_smoothing(smoothing)
        .with_convention(binary_convention(convention)?)
        .with_reduction(parse::<Reduction>(reduction)?);
    if let Some(w) = &pos_weight {
        bce = bce.with_pos_weight(values(w, "pos_weight")?.to_vec());
    }
    let x = values(&logits, "logits")?;
    let t = values(&target, "target")?;
    run_loss(py, n, l, grad, out, move |g| match g {
        Some(g) => bce.forward_backward(x, t, g),
        None => bce.forward(x, t),
    })
}

/// The confidence penalty −β·H(softmax(logits)) of logits `[n, k]`.
#[pyfunction]
#[pyo3(signature = (logits, beta, threshold, reduction, grad, out=None))]
fn confidence_penalty(
    py: Python<'_>,
    logits: PyReadonlyArray2<'_, f32>,
    beta: f32,
    threshold: Option<f32>,
    reduction: &str,
    grad: bool,
    out: Option<Bound<'_, PyArray2<f32>>>,
) -> PyResult<LossAndGrad> {
    let (n, k) = shape2(&logits);
    let mut p = ConfidencePenalty::new(beta).with_reduction(parse::<Reduction>(reduction)?);
    if let Some(t) = threshold {
        p = p.with_threshold(t);
    }
    let x = values(&logits, "logits")?;
    run_loss(py, n, k, grad, out, move |g| match g {
        Some(g) => p.forward_backward(x, k, g),
        None => p.forward(x, k),
    })
}

/// The gradients of [`linear_cross_entropy`]: hidden states, weight and bias.
type LinearGrads = (Py<PyAny>, Py<PyAny>, Option<Py<PyAny>>);

/// Output layer and cross-entropy in one, without the `[n, v]` logits: hidden states `[n, h]`,
/// a weight `[v, h]` (as `torch.nn.Linear` stores it) and a bias `[v]`, against class ids `[n]`.
#[pyfunction]
#[pyo3(signature = (hidden, weight, bias, target, smoothing, convention, class_weight, ignore_index, reduction, grad))]
fn linear_cross_entropy(
    py: Python<'_>,
    hidden: PyReadonlyArray2<'_, f32>,
    weight: PyReadonlyArray2<'_, f32>,
    bias: Option<PyReadonlyArray1<'_, f32>>,
    target: PyReadonlyArray1<'_, i64>,
    smoothing: f32,
    convention: &str,
    class_weight: Option<PyReadonlyArray1<'_, f32>>,
    ignore_index: Option<i64>,
    reduction: &str,
    grad: bool,
) -> PyResult<(Py<PyAny>, Option<LinearGrads>)> {
    let (n, h) = shape2(&hidden);
    let (v, hw) = shape2(&weight);
    if hw != h {
        return Err(PyValueError::new_err(format!(
            "weight has shape ({v}, {hw}), expected (classes, {h}): one row of {h} values per class"
        )));
    }
    let mut ce = CrossEntropy::new(v)
        .with_smoothing(smoothing)
        .with_convention(parse(convention)?)
        .with_reduction(parse::<Reduction>(reduction)?);
    if let Some(w) = &class_weight {
        ce = ce.with_weights(values(w, "class_weight")?.to_vec());
    }
    if let Some(i) = ignore_index {
        ce = ce.with_ignore_index(i);
    }
    let fused = LinearCrossEntropy::new(ce).with_weight_v_by_h();
    let x = values(&hidden, "hidden")?;
    let w = values(&weight, "weight")?;
    let b = bias.as_ref().map(|b| values(b, "bias")).transpose()?;
    let t = values(&target, "target")?;
    if grad {
        let (loss, g) = py
            .detach(|| fused.forward_backward(x, h, w, b, t))
            .map_err(value_error)?;
        let grads = (
            matrix(py, n, h, g.hidden)?,
            matrix(py, v, h, g.weight)?,
            g.bias
                .map(|d| PyArray1::from_vec(py, d).into_any().unbind()),
        );
        Ok((loss_object(py, loss)?, Some(grads)))
    } else {
        let loss = py
            .detach(|| fused.forward(x, h, w, b, t))
            .map_err(value_error)?;
        Ok((loss_object(py, loss)?, None))
    }
}

/// Smoothed target rows `[n, k]` from class ids `[n]`.
#[pyfunction]
fn smooth_ids(
    py: Python<'_>,
    ids: PyReadonlyArray1<'_, i64>,
    k: usize,
    alpha: f32,
    convention: &str,
) -> PyResult<Py<PyAny>> {
    let ids = class_ids(values(&ids, "labels")?, k)?;
    let convention = parse(convention)?;
    let q = py
        .detach(|| targets::smooth_class_ids(&ids, k, alpha, convention))
        .map_err(value_error)?;
    matrix(py, ids.len(), k, q)
}

/// Probability rows `[n, k]` mixed with the uniform distribution: (1 − α)·p + α/K.
#[pyfunction]
fn smooth_probs(
    py: Python<'_>,
    probs: PyReadonlyArray2<'_, f32>,
    alpha: f32,
) -> PyResult<Py<PyAny>> {
    let (n, k) = shape2(&probs);
    let p = values(&probs, "labels")?;
    let q = py
        .detach(|| targets::smooth_probabilities(p, k, alpha))
        .map_err(value_error)?;
    matrix(py, n, k, q)
}

/// Binary or multi-label 0/1 rows `[n, labels]`, smoothed.
#[pyfunction]
fn smooth_binary(
    py: Python<'_>,
    labels: PyReadonlyArray2<'_, f32>,
    alpha: f32,
    convention: &str,
) -> PyResult<Py<PyAny>> {
    let (n, l) = shape2(&labels);
    let (y, convention) = (values(&labels, "labels")?, binary_convention(convention)?);
    let q = py
        .detach(|| targets::smooth_binary(y, l, alpha, convention))
        .map_err(value_error)?;
    matrix(py, n, l, q)
}

/// The factor of convention `to` that gives the targets `alpha` gives in convention `from_`.
#[pyfunction]
fn convert_alpha(alpha: f64, k: usize, from_: &str, to: &str) -> PyResult<f64> {
    parse::<Convention>(from_)?
        .convert(alpha, k, parse(to)?)
        .map_err(value_error)
}

/// scikit-learn's `calibration_curve`: `(prob_true, prob_pred)` over non-empty bins.
#[pyfunction]
fn calibration_curve(
    py: Python<'_>,
    y_true: PyReadonlyArray1<'_, i64>,
    y_prob: PyReadonlyArray1<'_, f64>,
    n_bins: usize,
    strategy: &str,
) -> PyResult<(Py<PyAny>, Py<PyAny>)> {
    let labels = values(&y_true, "y_true")?;
    let y: Vec<usize> = labels
        .iter()
        .enumerate()
        .map(|(row, &v)| match v {
            0 | 1 => Ok(v as usize),
            _ => Err(value_error(Error::InvalidLabel {
                row,
                column: 0,
                value: v as f64,
                expected: "0 or 1",
            })),
        })
        .collect::<PyResult<_>>()?;
    let p = values(&y_prob, "y_prob")?;
    let binning: Binning = parse(strategy)?;
    let c = py
        .detach(|| calibration::calibration_curve(&y, p, n_bins, binning))
        .map_err(value_error)?;
    Ok((
        PyArray1::from_vec(py, c.prob_true).into_any().unbind(),
        PyArray1::from_vec(py, c.prob_pred).into_any().unbind(),
    ))
}

/// The bins of a reliability diagram over top-label confidences, as a dict of arrays.
#[pyfunction]
fn reliability_bins<'py>(
    py: Python<'py>,
    probs: PyReadonlyArray2<'py, f32>,
    labels: PyReadonlyArray1<'py, i64>,
    n_bins: usize,
    strategy: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let (p, y, k) = rows_and_ids(&probs, "probs", &labels)?;
    let binning: Binning = parse(strategy)?;
    let bins = py
        .detach(|| calibration::reliability_bins(p, &y, k, n_bins, binning))
        .map_err(value_error)?;
    let d = PyDict::new(py);
    let column =
        |f: fn(&calibration::ReliabilityBin) -> f64| -> Vec<f64> { bins.iter().map(f).collect() };
    d.set_item("lower", PyArray1::from_vec(py, column(|b| b.lower)))?;
    d.set_item("upper", PyArray1::from_vec(py, column(|b| b.upper)))?;
    d.set_item(
        "count",
        PyArray1::from_vec(py, bins.iter().map(|b| b.count as i64).collect()),
    )?;
    d.set_item(
        "confidence",
        PyArray1::from_vec(py, column(|b| b.mean_confidence)),
    )?;
    d.set_item("accuracy", PyArray1::from_vec(py, column(|b| b.accuracy)))?;
    Ok(d)
}

/// Top-label calibration error of probability rows (ECE, RMS or MCE by `norm`).
#[pyfunction]
fn calibration_error(
    py: Python<'_>,
    probs: PyReadonlyArray2<'_, f32>,
    labels: PyReadonlyArray1<'_, i64>,
    n_bins: usize,
    norm_name: &str,
    strategy: &str,
) -> PyResult<f64> {
    let (p, y, k) = rows_and_ids(&probs, "probs", &labels)?;
    let (nm, binning) = (norm(norm_name)?, parse::<Binning>(strategy)?);
    py.detach(|| calibration::calibration_error(p, &y, k, n_bins, nm, binning))
        .map_err(value_error)
}

/// Multi-class Brier score: the mean over rows of Σ_j (p_j − onehot_j)².
#[pyfunction]
fn brier_score(
    py: Python<'_>,
    probs: PyReadonlyArray2<'_, f32>,
    labels: PyReadonlyArray1<'_, i64>,
) -> PyResult<f64> {
    let (p, y, k) = rows_and_ids(&probs, "probs", &labels)?;
    py.detach(|| calibration::brier_score(p, &y, k))
        .map_err(value_error)
}

/// Mean negative log-likelihood of the labels under probability rows.
#[pyfunction]
fn nll(
    py: Python<'_>,
    probs: PyReadonlyArray2<'_, f32>,
    labels: PyReadonlyArray1<'_, i64>,
) -> PyResult<f64> {
    let (p, y, k) = rows_and_ids(&probs, "probs", &labels)?;
    py.detach(|| calibration::negative_log_likelihood(p, &y, k))
        .map_err(value_error)
}

/// Temperature scaling: `(T, nll_before, nll_after)` for logits `[n, k]` and labels.
#[pyfunction]
fn fit_temperature(
    py: Python<'_>,
    logits: PyReadonlyArray2<'_, f32>,
    labels: PyReadonlyArray1<'_, i64>,
) -> PyResult<(f64, f64, f64)> {
    let (x, y, k) = rows_and_ids(&logits, "logits", &labels)?;
    let fit = py
        .detach(|| calibration::fit_temperature(x, &y, k))
        .map_err(value_error)?;
    Ok((fit.temperature, fit.nll_before, fit.nll_after))
}

/// Logits divided by the temperature.
#[pyfunction]
fn apply_temperature(
    py: Python<'_>,
    logits: PyReadonlyArray2<'_, f32>,
    temperature: f64,
) -> PyResult<Py<PyAny>> {
    let (n, k) = shape2(&logits);
    let x = values(&logits, "logits")?;
    let v = py
        .detach(|| calibration::apply_temperature(x, temperature))
        .map_err(value_error)?;
    matrix(py, n, k, v)
}

/// Row-wise softmax of logits `[n, k]`.
#[pyfunction]
fn softmax(py: Python<'_>, logits: PyReadonlyArray2<'_, f32>) -> PyResult<Py<PyAny>> {
    let (n, k) = shape2(&logits);
    let x = values(&logits, "logits")?;
    let v = py
        .detach(|| calibration::softmax(x, k))
        .map_err(value_error)?;
    matrix(py, n, k, v)
}

/// The native module `labelsmooth._native`.
/// The calibration report of `predictions` `[n, cols]` (logits or probabilities; one
/// column: of class 1) against `labels`: the figures written into `figures`, the page to `html`;
/// returns the results (the command's `results.json`) as JSON text.
#[pyfunction]
fn calibration_report(
    py: Python<'_>,
    predictions: PyReadonlyArray2<'_, f64>,
    labels: PyReadonlyArray1<'_, i64>,
    from_logits: bool,
    html: std::path::PathBuf,
    figures: std::path::PathBuf,
    source: &str,
    class_names: Option<Vec<String>>,
    n_bins: usize,
    strategy: &str,
    fit_temperature: bool,
    fit_fraction: f64,
    seed: u64,
    renormalize: bool,
) -> PyResult<String> {
    use labelsmooth_report::calibrate::{FitPlan, Predictions, calibrate};
    let cols = predictions.shape()[1];
    let x = values(&predictions, "predictions")?;
    let y = values(&labels, "labels")?
        .iter()
        .enumerate()
        .map(|(row, &v)| {
            usize::try_from(v).map_err(|_| {
                PyValueError::new_err(format!("labels: row {row}: class id {v} is negative"))
            })
        })
        .collect::<PyResult<Vec<usize>>>()?;
    let binning: Binning = parse(strategy)?;
    py.detach(|| {
        let set = if from_logits {
            Predictions::from_logits(x, cols, y)
        } else {
            Predictions::from_probabilities(x, cols, y, renormalize)
        }?;
        let set = match class_names {
            Some(names) => set.with_class_names(names)?,
            None => set,
        };
        let plan = if fit_temperature {
            Some(FitPlan::split(&set, fit_fraction, seed)?)
        } else {
            None
        };
        let c = calibrate(&set, plan, n_bins, binning)?;
        c.write_report(source, &figures, &html)?;
        Ok(serde_json::to_string(&c)?)
    })
    .map_err(report_error)
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(cross_entropy_ids, m)?)?;
    m.add_function(wrap_pyfunction!(cross_entropy_probs, m)?)?;
    m.add_function(wrap_pyfunction!(binary_cross_entropy, m)?)?;
    m.add_function(wrap_pyfunction!(confidence_penalty, m)?)?;
    m.add_function(wrap_pyfunction!(linear_cross_entropy, m)?)?;
    m.add_function(wrap_pyfunction!(smooth_ids, m)?)?;
    m.add_function(wrap_pyfunction!(smooth_probs, m)?)?;
    m.add_function(wrap_pyfunction!(smooth_binary, m)?)?;
    m.add_function(wrap_pyfunction!(convert_alpha, m)?)?;
    m.add_function(wrap_pyfunction!(calibration_curve, m)?)?;
    m.add_function(wrap_pyfunction!(reliability_bins, m)?)?;
    m.add_function(wrap_pyfunction!(calibration_error, m)?)?;
    m.add_function(wrap_pyfunction!(brier_score, m)?)?;
    m.add_function(wrap_pyfunction!(nll, m)?)?;
    m.add_function(wrap_pyfunction!(fit_temperature, m)?)?;
    m.add_function(wrap_pyfunction!(apply_temperature, m)?)?;
    m.add_function(wrap_pyfunction!(softmax, m)?)?;
    m.add_function(wrap_pyfunction!(calibration_report, m)?)?;
    Ok(())
}
