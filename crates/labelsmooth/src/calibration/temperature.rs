//! Temperature scaling (Guo et al. 2017): one scalar T dividing the logits, fitted by minimizing
//! the mean negative log-likelihood on held-out data.

use crate::error::{Error, Result, check_len, rows_of};

/// The outcome of [`fit_temperature`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TemperatureFit {
    /// The fitted temperature T (divide logits by it).
    pub temperature: f64,
    /// Mean NLL at T = 1.
    pub nll_before: f64,
    /// Mean NLL at the fitted T.
    pub nll_after: f64,
    /// Newton and bisection steps taken.
    pub iterations: usize,
}

/// Fits T in [0.01, 100]: see [`fit_temperature_bounded`].
///
/// ```
/// use labelsmooth::calibration::fit_temperature;
/// // Over-confident logits: the right class wins only 3 times in 4.
/// let logits = [4.0, 0.0, 4.0, 0.0, 4.0, 0.0, 4.0, 0.0];
/// let fit = fit_temperature(&logits, &[0, 0, 0, 1], 2).unwrap();
/// // softmax(4/T) should be 0.75: T = 4 / ln 3.
/// assert!((fit.temperature - 4.0 / 3f64.ln()).abs() < 1e-9);
/// assert!(fit.nll_after < fit.nll_before);
/// ```
pub fn fit_temperature(logits: &[f32], labels: &[usize], k: usize) -> Result<TemperatureFit> {
    fit_temperature_bounded(logits, labels, k, 0.01, 100.0)
}

/// Fits the temperature T in `[lower, upper]` that minimizes the mean NLL of softmax(logits / T).
///
/// The NLL is convex in β = 1/T (a log-sum-exp minus a linear term), so the minimum is found to
/// machine precision by Newton's method on β, safeguarded by bisection; when the optimum lies
/// outside the bounds the nearest bound is returned. SciPy's bounded scalar search reaches the
/// same point to within its tolerance (1e-5).
pub fn fit_temperature_bounded(
    logits: &[f32],
    labels: &[usize],
    k: usize,
    lower: f64,
    upper: f64,
) -> Result<TemperatureFit> {
    if !(lower > 0.0 && upper.is_finite() && lower < upper) {
        return Err(Error::InvalidParameter {
            what: "temperature bounds",
            why: format!("need 0 < lower < upper < inf, got [{lower}, {upper}]"),
        });
    }
    let x = checked_logits(logits, labels, k)?;
    let (b_lo, b_hi) = (1.0 / upper, 1.0 / lower);
    let nll_before = nll_terms(&x, labels, k, 1.0).0;
    let (_, d_lo, _) = nll_terms(&x, labels, k, b_lo);
    let (_, d_hi, _) = nll_terms(&x, labels, k, b_hi);
    let mut iterations = 0;
    let beta = if d_lo >= 0.0 {
        b_lo
    } else if d_hi <= 0.0 {
        b_hi
    } else {
        let (mut lo, mut hi) = (b_lo, b_hi);
        let mut beta = 1.0f64.clamp(lo, hi);
        for _ in 0..200 {
            iterations += 1;
            let (_, d, dd) = nll_terms(&x, labels, k, beta);
            if d == 0.0 {
                break;
            }
            if d < 0.0 {
                lo = beta;
            } else {
                hi = beta;
            }
            let newton = beta - d / dd;
            let next = if dd > 0.0 && newton > lo && newton < hi {
                newton
            } else {
                0.5 * (lo + hi)
            };
            let done = (next - beta).abs() <= 1e-14 * beta.abs() || hi - lo <= 1e-15 * hi;
            beta = next;
            if done {
                break;
            }
        }
        beta
    };
    Ok(TemperatureFit {
        temperature: 1.0 / beta,
        nll_before,
        nll_after: nll_terms(&x, labels, k, beta).0,
        iterations,
    })
}

/// The logits as `f64` after checking shapes, labels and finiteness.
fn checked_logits(logits: &[f32], labels: &[usize], k: usize) -> Result<Vec<f64>> {
    let n = rows_of("logits (n * k values)", logits.len(), k)?;
    check_len("labels (one per row of logits)", n, labels.len())?;
    if n == 0 {
        return Err(Error::Empty {
            what: "the logits",
            why: "fitting a temperature needs at least one sample",
        });
    }
    for (row, &y) in labels.iter().enumerate() {
        if y >= k {
            return Err(Error::ClassOutOfRange {
                row,
                class: i64::try_from(y).unwrap_or(i64::MAX),
                k,
            });
        }
    }
    if let Some(i) = logits.iter().position(|v| !v.is_finite()) {
        return Err(Error::InvalidLogit {
            row: i / k,
            class: i % k,
            value: logits[i],
            hint: " (temperature scaling needs finite logits)",
        });
    }
    Ok(logits.iter().map(|&v| f64::from(v)).collect())
}

/// Mean negative log-likelihood of `softmax(logits / temperature)` at the labels, computed with
/// log-softmax in `f64` and no clipping: a label whose probability underflows still counts its
/// full −log p (PyTorch's `cross_entropy` on the scaled logits).
///
/// ```
/// use labelsmooth::calibration::logit_nll;
/// // −log softmax([0, 100])[0] = 100 + log(1 + e^−100), far above −log(1e-15) ≈ 34.5.
/// let nll = logit_nll(&[0.0, 100.0], &[0], 2, 1.0).unwrap();
/// assert!((nll - 100.0).abs() < 1e-9);
/// let cooler = logit_nll(&[0.0, 100.0], &[0], 2, 2.0).unwrap();
/// assert!((cooler - 50.0).abs() < 1e-9);
/// ```
pub fn logit_nll(logits: &[f32], labels: &[usize], k: usize, temperature: f64) -> Result<f64> {
    if !(temperature > 0.0 && temperature.is_finite()) {
        return Err(Error::InvalidParameter {
            what: "temperature",
            why: format!("{temperature} is not finite and > 0"),
        });
    }
    let x = checked_logits(logits, labels, k)?;
    Ok(nll_terms(&x, labels, k, 1.0 / temperature).0)
}

/// Mean NLL of softmax(β·x) and its first and second derivatives in β.
fn nll_terms(x: &[f64], labels: &[usize], k: usize, beta: f64) -> (f64, f64, f64) {
    let (mut f, mut d1, mut d2) = (0.0, 0.0, 0.0);
    for (row, &y) in x.chunks_exact(k).zip(labels) {
        let m = row.iter().fold(f64::NEG_INFINITY, |a, &v| a.max(beta * v));
        let (mut s, mut sx, mut sxx) = (0.0, 0.0, 0.0);
        for &v in row {
            let e = (beta * v - m).exp();
            s += e;
            sx += e * v;
            sxx += e * v * v;
        }
        let mean = sx / s;
        f += m + s.ln() - beta * row[y];
        d1 += mean - row[y];
        d2 += (sxx / s - mean * mean).max(0.0);
    }
    let n = labels.len() as f64;
    (f / n, d1 / n, d2 / n)
}

/// Logits divided by the temperature `t` (finite, > 0).
///
/// ```
/// use labelsmooth::calibration::apply_temperature;
/// assert_eq!(apply_temperature(&[2.0, -4.0], 2.0).unwrap(), vec![1.0, -2.0]);
/// ```
pub fn apply_temperature(logits: &[f32], t: f64) -> Result<Vec<f32>> {
    if !(t.is_finite() && t > 0.0) {
        return Err(Error::InvalidParameter {
            what: "temperature",
            why: format!("{t} is not finite and > 0"),
        });
    }
    Ok(logits.iter().map(|&v| (f64::from(v) / t) as f32).collect())
}
