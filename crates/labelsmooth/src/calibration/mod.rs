//! Calibration: reliability curves and bins, calibration errors (ECE, MCE, RMS), Brier score,
//! negative log-likelihood, accuracy, and temperature scaling.
//!
//! Probabilities are row-major `[n, k]` rows; labels are class ids. Sums run in `f64`.
//!
//! ```
//! use labelsmooth::calibration::{calibration_error, Binning, Norm};
//! // Two confident, correct predictions and one confident mistake.
//! let probs = [0.9, 0.1, 0.8, 0.2, 0.9, 0.1];
//! let ece = calibration_error(&probs, &[0, 0, 1], 2, 10, Norm::L1, Binning::Uniform).unwrap();
//! assert!(ece > 0.2);
//! ```

mod classes;
mod temperature;

pub use classes::{ClassScores, confusion_matrix, per_class_scores};
pub use temperature::{
    TemperatureFit, apply_temperature, fit_temperature, fit_temperature_bounded, logit_nll,
};

use crate::error::{Error, Result, check_len, rows_of};

/// How bins are laid out on [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Binning {
    /// Equal width: bin i is [i/B, (i+1)/B), the last bin closed at 1.
    #[default]
    Uniform,
    /// Equal mass ("adaptive"): bins hold as equal numbers of samples as possible.
    /// For [`calibration_curve`], scikit-learn's `strategy="quantile"` edges.
    Quantile,
}

impl std::str::FromStr for Binning {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "uniform" => Ok(Binning::Uniform),
            "quantile" | "adaptive" => Ok(Binning::Quantile),
            other => Err(Error::InvalidParameter {
                what: "binning",
                why: format!("`{other}` is not one of uniform, quantile"),
            }),
        }
    }
}

/// Norm of a calibration error over bins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Norm {
    /// Expected calibration error: Σ_b (n_b/n)·|acc_b − conf_b|.
    #[default]
    L1,
    /// Root-mean-square calibration error: sqrt(Σ_b (n_b/n)·(acc_b − conf_b)²).
    L2,
    /// Maximum calibration error: max over non-empty bins of |acc_b − conf_b|.
    Max,
}

/// The binary calibration curve of scikit-learn's `calibration_curve`: per non-empty bin, the
/// fraction of positives and the mean predicted probability.
#[derive(Debug, Clone, PartialEq)]
pub struct CalibrationCurve {
    /// Fraction of positive labels per non-empty bin.
    pub prob_true: Vec<f64>,
    /// Mean predicted probability per non-empty bin.
    pub prob_pred: Vec<f64>,
    /// Number of samples per non-empty bin.
    pub counts: Vec<usize>,
}

/// scikit-learn's `calibration_curve(y_true, y_prob, n_bins, strategy)` for 0/1 labels and
/// predicted probabilities of class 1; empty bins are dropped.
///
/// Edges are `linspace(0, 1, n_bins + 1)` (`Uniform`) or the `linspace(0, 100, n_bins + 1)`
/// percentiles of `y_prob` with linear interpolation (`Quantile`); a probability goes to the bin
/// found by a left-sided search among the inner edges, as scikit-learn does.
///
/// ```
/// use labelsmooth::calibration::{calibration_curve, Binning};
/// let c = calibration_curve(&[0, 0, 1, 1], &[0.1, 0.2, 0.7, 0.9], 2, Binning::Uniform).unwrap();
/// assert_eq!(c.prob_true, vec![0.0, 1.0]);
/// assert_eq!(c.counts, vec![2, 2]);
/// ```
pub fn calibration_curve(
    y_true: &[usize],
    y_prob: &[f64],
    n_bins: usize,
    binning: Binning,
) -> Result<CalibrationCurve> {
    if n_bins == 0 {
        return Err(Error::NoBins);
    }
    check_len("probabilities (one per label)", y_true.len(), y_prob.len())?;
    if y_true.is_empty() {
        return Err(Error::Empty {
            what: "the labels",
            why: "a calibration curve needs at least one sample",
        });
    }
    for (row, (&y, &p)) in y_true.iter().zip(y_prob).enumerate() {
        if y > 1 {
            return Err(Error::InvalidLabel {
                row,
                column: 0,
                value: y as f64,
                expected: "0 or 1",
            });
        }
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::InvalidProbability {
                row,
                column: 0,
                value: p,
            });
        }
    }
    let edges: Vec<f64> = match binning {
        Binning::Uniform => (0..=n_bins).map(|i| i as f64 / n_bins as f64).collect(),
        Binning::Quantile => {
            let mut sorted = y_prob.to_vec();
            sorted.sort_by(f64::total_cmp);
            (0..=n_bins)
                .map(|i| {
                    // numpy.linspace(0, 1, n_bins + 1) * 100, as scikit-learn passes it.
                    let fraction = if i == n_bins {
                        1.0
                    } else {
                        i as f64 * (1.0 / n_bins as f64)
                    };
                    percentile_linear(&sorted, fraction * 100.0)
                })
                .collect()
        }
    };
    let inner = &edges[1..n_bins];
    let mut sum_prob = vec![0.0f64; n_bins];
    let mut sum_true = vec![0.0f64; n_bins];
    let mut count = vec![0usize; n_bins];
    for (&y, &p) in y_true.iter().zip(y_prob) {
        // numpy.searchsorted(inner, p, side="left"): the number of edges strictly below p.
        let b = inner.partition_point(|&e| e < p);
        sum_prob[b] += p;
        sum_true[b] += y as f64;
        count[b] += 1;
    }
    let mut curve = CalibrationCurve {
        prob_true: Vec::new(),
        prob_pred: Vec::new(),
        counts: Vec::new(),
    };
    for b in 0..n_bins {
        if count[b] > 0 {
            curve.prob_true.push(sum_true[b] / count[b] as f64);
            curve.prob_pred.push(sum_prob[b] / count[b] as f64);
            curve.counts.push(count[b]);
        }
    }
    Ok(curve)
}

/// numpy's default (`linear`) percentile of sorted data, `q` in [0, 100], with numpy's rounding:
/// the position is (q / 100)·(n − 1) and the interpolation runs from the nearer neighbour.
fn percentile_linear(sorted: &[f64], q: f64) -> f64 {
    let pos = q / 100.0 * (sorted.len() - 1) as f64;
    let lo = (pos.floor() as usize).min(sorted.len() - 1);
    let hi = (lo + 1).min(sorted.len() - 1);
    let t = pos - lo as f64;
    let (a, b) = (sorted[lo], sorted[hi]);
    let diff = b - a;
    if t >= 0.5 {
        b - diff * (1.0 - t)
    } else {
        a + diff * t
    }
}

/// One bin of a reliability diagram over top-label confidences. With the `serde` feature it
/// serializes as `{lower, upper, count, confidence, accuracy}`.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ReliabilityBin {
    /// Lower edge of the bin.
    pub lower: f64,
    /// Upper edge of the bin.
    pub upper: f64,
    /// Samples in the bin.
    pub count: usize,
    /// Mean top-label confidence of those samples (0 when empty).
    #[cfg_attr(feature = "serde", serde(rename = "confidence"))]
    pub mean_confidence: f64,
    /// Fraction of those samples whose top label is correct (0 when empty).
    pub accuracy: f64,
}

/// Top-label confidence (largest probability) and whether its class (the first largest) is the
/// label, per row of `probs` `[n, k]`. Checks probabilities (finite, in [0, 1]) and labels.
pub fn top_label(probs: &[f32], labels: &[usize], k: usize) -> Result<Vec<(f32, bool)>> {
    let n = rows_of("probabilities (n * k values)", probs.len(), k)?;
    check_len("labels (one per row of probabilities)", n, labels.len())?;
    let mut out = Vec::with_capacity(n);
    for (row, (p, &y)) in probs.chunks_exact(k).zip(labels).enumerate() {
        if y >= k {
            return Err(Error::ClassOutOfRange {
                row,
                class: i64::try_from(y).unwrap_or(i64::MAX),
                k,
            });
        }
        let mut best = 0;
        for (column, &v) in p.iter().enumerate() {
            if !(0.0..=1.0).contains(&v) {
                return Err(Error::InvalidProbability {
                    row,
                    column,
                    value: f64::from(v),
                });
            }
            if v > p[best] {
                best = column;
            }
        }
        out.push((p[best], best == y));
    }
    Ok(out)
}

/// Per-bin reliability data (count, mean confidence, accuracy) of top-label predictions, for
/// reliability diagrams and calibration errors.
///
/// `Uniform` bins are [i/B, (i+1)/B) with the last bin closed: a confidence of exactly 1 falls in
/// the last bin and one of exactly 0 in the first. `Quantile` bins split the sorted confidences
/// into B groups whose sizes differ by at most one; their edges are the smallest and largest
/// confidence of each group. All B bins are returned, empty ones with count 0.
///
/// ```
/// use labelsmooth::calibration::{reliability_bins, Binning};
/// let bins = reliability_bins(&[1.0, 0.0, 0.5, 0.5], &[0, 1], 2, 4, Binning::Uniform).unwrap();
/// assert_eq!(bins[3].count, 1); // confidence 1.0 lands in the last bin
/// assert_eq!(bins[2].count, 1);
/// ```
pub fn reliability_bins(
    probs: &[f32],
    labels: &[usize],
    k: usize,
    n_bins: usize,
    binning: Binning,
) -> Result<Vec<ReliabilityBin>> {
    if n_bins == 0 {
        return Err(Error::NoBins);
    }
    let top = top_label(probs, labels, k)?;
    Ok(bins_of(&top, n_bins, binning))
}

fn bins_of(top: &[(f32, bool)], n_bins: usize, binning: Binning) -> Vec<ReliabilityBin> {
    let mut conf = vec![0.0f64; n_bins];
    let mut hits = vec![0.0f64; n_bins];
    let mut count = vec![0usize; n_bins];
    let mut edges: Vec<(f64, f64)> = Vec::with_capacity(n_bins);
    match binning {
        Binning::Uniform => {
            let upper_edges = linspace_f32(n_bins);
            for &(c, hit) in top {
                // Edges as float32 values, as torchmetrics compares them; 1.0 joins the last bin.
                let b = upper_edges[1..]
                    .partition_point(|&e| e <= c)
                    .min(n_bins - 1);
                conf[b] += f64::from(c);
                hits[b] += f64::from(u8::from(hit));
                count[b] += 1;
            }
            for b in 0..n_bins {
                edges.push((b as f64 / n_bins as f64, (b + 1) as f64 / n_bins as f64));
            }
        }
        Binning::Quantile => {
            let mut sorted = top.to_vec();
            sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
            let n = sorted.len();
            let mut start = 0;
            for b in 0..n_bins {
                let size = n / n_bins + usize::from(b < n % n_bins);
                let group = &sorted[start..start + size];
                for &(c, hit) in group {
                    conf[b] += f64::from(c);
                    hits[b] += f64::from(u8::from(hit));
                }
                count[b] = size;
                let lo = group.first().map_or(0.0, |g| f64::from(g.0));
                let hi = group.last().map_or(lo, |g| f64::from(g.0));
                edges.push((lo, hi));
                start += size;
            }
        }
    }
    (0..n_bins)
        .map(|b| {
            let c = count[b].max(1) as f64;
            ReliabilityBin {
                lower: edges[b].0,
                upper: edges[b].1,
                count: count[b],
                mean_confidence: conf[b] / c,
                accuracy: hits[b] / c,
            }
        })
        .collect()
}

/// Bin edges `linspace(0, 1, n_bins + 1)` in float32, computed as `torch.linspace` does.
fn linspace_f32(n_bins: usize) -> Vec<f32> {
    let steps = n_bins + 1;
    let step = 1.0f32 / n_bins as f32;
    let half = steps / 2;
    (0..steps)
        .map(|i| {
            if i < half {
                step * i as f32
            } else {
                1.0 - step * (steps - 1 - i) as f32
            }
        })
        .collect()
}

/// Calibration error of top-label predictions from reliability bins.
///
/// With `Uniform` bins this equals torchmetrics' `MulticlassCalibrationError(num_classes=k,
/// n_bins, norm)` (norm `l1` = ECE, `l2` = RMS, `max` = MCE), except that a confidence of exactly
/// 1.0, which torchmetrics puts in an extra bin of its own, is counted in the last bin here.
///
/// ```
/// use labelsmooth::calibration::{calibration_error, Binning, Norm};
/// // Perfect confidence, perfect accuracy: no calibration error.
/// let e = calibration_error(&[1.0, 0.0, 0.0, 1.0], &[0, 1], 2, 15, Norm::Max, Binning::Uniform).unwrap();
/// assert_eq!(e, 0.0);
/// ```
pub fn calibration_error(
    probs: &[f32],
    labels: &[usize],
    k: usize,
    n_bins: usize,
    norm: Norm,
    binning: Binning,
) -> Result<f64> {
    let bins = reliability_bins(probs, labels, k, n_bins, binning)?;
    error_of_bins(&bins, norm)
}

/// Calibration error from bins computed by [`reliability_bins`].
pub fn error_of_bins(bins: &[ReliabilityBin], norm: Norm) -> Result<f64> {
    let total: usize = bins.iter().map(|b| b.count).sum();
    if total == 0 {
        return Err(Error::Empty {
            what: "the predictions",
            why: "a calibration error needs at least one sample",
        });
    }
    let gaps = bins.iter().filter(|b| b.count > 0).map(|b| {
        (
            b.count as f64 / total as f64,
            (b.accuracy - b.mean_confidence).abs(),
        )
    });
    Ok(match norm {
        Norm::L1 => gaps.map(|(w, g)| w * g).sum(),
        Norm::L2 => gaps.map(|(w, g)| w * g * g).sum::<f64>().sqrt(),
        Norm::Max => gaps.map(|(_, g)| g).fold(0.0, f64::max),
    })
}

/// Multi-class Brier score: the mean over rows of Σ_j (p_j − onehot_j)².
///
/// ```
/// use labelsmooth::calibration::brier_score;
/// assert_eq!(brier_score(&[0.5, 0.5], &[0], 2).unwrap(), 0.5);
/// ```
pub fn brier_score(probs: &[f32], labels: &[usize], k: usize) -> Result<f64> {
    let top = top_label(probs, labels, k)?;
    if top.is_empty() {
        return Err(Error::Empty {
            what: "the predictions",
            why: "a Brier score is a mean over samples",
        });
    }
    let mut sum = 0.0f64;
    for (p, &y) in probs.chunks_exact(k).zip(labels) {
        for (j, &v) in p.iter().enumerate() {
            let d = f64::from(v) - f64::from(u8::from(j == y));
            sum += d * d;
        }
    }
    Ok(sum / labels.len() as f64)
}

/// Binary Brier score as scikit-learn's `brier_score_loss`: the mean of (P(class 1) − y)² over
/// rows of two-class probabilities `[n, 2]`; half of [`brier_score`] on the same rows.
///
/// ```
/// use labelsmooth::calibration::{binary_brier_score, brier_score};
/// let p = [0.2, 0.8, 0.2, 0.8];
/// assert!((binary_brier_score(&p, &[1, 0]).unwrap() - (0.04 + 0.64) / 2.0).abs() < 1e-7);
/// assert_eq!(binary_brier_score(&p, &[1, 0]).unwrap() * 2.0, brier_score(&p, &[1, 0], 2).unwrap());
/// ```
pub fn binary_brier_score(probs: &[f32], labels: &[usize]) -> Result<f64> {
    Ok(brier_score(probs, labels, 2)? / 2.0)
}

/// Reliability bins of two-class probabilities `[n, 2]` as torchmetrics'
/// `BinaryCalibrationError` forms them: the confidence is P(class 1) (not the top label's
/// probability) and a bin's accuracy is its fraction of label 1. [`error_of_bins`] on them gives
/// torchmetrics' binary ECE / RMS / MCE, which differ from the top-label errors of
/// [`reliability_bins`].
///
/// ```
/// use labelsmooth::calibration::{Binning, Norm, binary_reliability_bins, error_of_bins};
/// // P(1) = 0.3 and 0.8, both labels 1: bins [0, .5) and [.5, 1].
/// let bins = binary_reliability_bins(&[0.7, 0.3, 0.2, 0.8], &[1, 1], 2, Binning::Uniform).unwrap();
/// let ece = error_of_bins(&bins, Norm::L1).unwrap();
/// assert!((ece - (0.5 * 0.7 + 0.5 * 0.2)).abs() < 1e-7);
/// ```
pub fn binary_reliability_bins(
    probs: &[f32],
    labels: &[usize],
    n_bins: usize,
    binning: Binning,
) -> Result<Vec<ReliabilityBin>> {
    if n_bins == 0 {
        return Err(Error::NoBins);
    }
    top_label(probs, labels, 2)?;
    let positive: Vec<(f32, bool)> = probs
        .chunks_exact(2)
        .zip(labels)
        .map(|(p, &y)| (p[1], y == 1))
        .collect();
    Ok(bins_of(&positive, n_bins, binning))
}

/// Mean negative log-likelihood −log p_label of predicted probabilities, each clipped below at
/// 1e-15 so that a zero probability on the label gives a large, finite value.
///
/// ```
/// use labelsmooth::calibration::negative_log_likelihood;
/// let nll = negative_log_likelihood(&[0.25, 0.75], &[1], 2).unwrap();
/// assert!((nll - 0.75f64.ln().abs()).abs() < 1e-7);
/// ```
pub fn negative_log_likelihood(probs: &[f32], labels: &[usize], k: usize) -> Result<f64> {
    let top = top_label(probs, labels, k)?;
    if top.is_empty() {
        return Err(Error::Empty {
            what: "the predictions",
            why: "a negative log-likelihood is a mean over samples",
        });
    }
    let sum: f64 = probs
        .chunks_exact(k)
        .zip(labels)
        .map(|(p, &y)| -f64::from(p[y]).max(1e-15).ln())
        .sum();
    Ok(sum / labels.len() as f64)
}

/// Fraction of rows whose largest probability (or logit) is at the label.
///
/// Scores may be probabilities or logits: only their order matters. NaN scores are refused.
///
/// ```
/// use labelsmooth::calibration::accuracy;
/// assert_eq!(accuracy(&[0.2, 0.8, 0.9, 0.1], &[1, 1], 2).unwrap(), 0.5);
/// ```
pub fn accuracy(scores: &[f32], labels: &[usize], k: usize) -> Result<f64> {
    let n = rows_of("scores (n * k values)", scores.len(), k)?;
    check_len("labels (one per row of scores)", n, labels.len())?;
    if n == 0 {
        return Err(Error::Empty {
            what: "the predictions",
            why: "accuracy is a mean over samples",
        });
    }
    let mut hits = 0usize;
    for (row, (s, &y)) in scores.chunks_exact(k).zip(labels).enumerate() {
        if y >= k {
            return Err(Error::ClassOutOfRange {
                row,
                class: i64::try_from(y).unwrap_or(i64::MAX),
                k,
            });
        }
        if let Some(class) = s.iter().position(|v| v.is_nan()) {
            return Err(Error::InvalidLogit {
                row,
                class,
                value: f32::NAN,
                hint: "",
            });
        }
        hits += usize::from(argmax(s) == y);
    }
    Ok(hits as f64 / n as f64)
}

/// Index of the first largest value.
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (j, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = j;
        }
    }
    best
}

/// Softmax of logits `[n, k]`, row by row (stable for any finite logits; −inf gives 0).
///
/// ```
/// use labelsmooth::calibration::softmax;
/// let p = softmax(&[0.0, 0.0, 3.0, f32::NEG_INFINITY], 2).unwrap();
/// assert_eq!(p, vec![0.5, 0.5, 1.0, 0.0]);
/// ```
pub fn softmax(logits: &[f32], k: usize) -> Result<Vec<f32>> {
    rows_of("logits (n * k values)", logits.len(), k)?;
    crate::loss::check_logits_finite_above(logits, k)?;
    let mut out = vec![0.0f32; logits.len()];
    for (row, (x, p)) in logits
        .chunks_exact(k)
        .zip(out.chunks_exact_mut(k))
        .enumerate()
    {
        let st = labelsmooth_kernels::softmax_row::row_stats(x, None, Some(p));
        if st.max == f32::NEG_INFINITY {
            return Err(crate::loss::logit_error(logits, k, row, None));
        }
        let inv = (1.0 / st.sum_exp) as f32;
        p.iter_mut().for_each(|v| *v *= inv);
    }
    Ok(out)
}
