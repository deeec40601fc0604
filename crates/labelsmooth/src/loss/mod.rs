//! Losses with exact gradients on row-major `f32` logits `[n, k]`.
//!
//! - [`CrossEntropy`]: class-id targets, smoothing in either [`Convention`](crate::targets::Convention),
//!   class weights, ignore index, PyTorch's reductions. Never builds an `[n, k]` target matrix.
//! - [`SoftCrossEntropy`]: probability targets (soft labels, mixup), smoothed as PyTorch does.
//! - [`BinaryCrossEntropy`]: binary and multi-label targets with logits, smoothed toward 0.5.
//! - [`ConfidencePenalty`]: −β·H(softmax), Pereyra et al. 2017, with an optional threshold.
//! - [`Distillation`]: Hinton et al. 2015's student loss, (1 − λ)·CE + λ·τ²·KL against a teacher.
//! - [`LinearCrossEntropy`]: output layer + smoothed cross-entropy fused for large vocabularies.
//! - [`probability_cross_entropy`]: cross-entropy of predicted probabilities (Keras'
//!   `from_logits=False`).
//!
//! Each loss has `forward` (the loss alone) and `forward_backward`, which also writes
//! d(loss)/d(logits) into a buffer the caller provides. With [`Reduction::None`] the gradient is
//! that of the sum of the per-row losses. Sums run in `f64`; values come back as `f32`.
//!
//! ```
//! use labelsmooth::loss::{CrossEntropy, Reduction};
//! let logits = [2.0, 0.5, -1.0, 0.0, 1.0, 0.0];
//! let ce = CrossEntropy::new(3).with_smoothing(0.1);
//! let mut grad = [0.0; 6];
//! let loss = ce.forward_backward(&logits, &[0, 1], &mut grad).unwrap();
//! assert!((loss.scalar().unwrap() - 0.50471).abs() < 1e-4);
//! // Each gradient row sums to zero: softmax minus a distribution.
//! assert!((grad[0] + grad[1] + grad[2]).abs() < 1e-6);
//! ```

mod binary;
mod cross_entropy;
mod distill;
mod linear;
mod penalty;
mod soft;

pub use binary::BinaryCrossEntropy;
pub use cross_entropy::{CrossEntropy, smoothed_cross_entropy};
pub use distill::Distillation;
pub use linear::{LinearCrossEntropy, LinearGrads, unfused_linear_cross_entropy};
pub use penalty::ConfidencePenalty;
pub use soft::{SoftCrossEntropy, probability_cross_entropy};

use crate::error::{Error, Result};

/// Whether `n` rows of `k` classes are enough work to split over threads.
fn worth_parallel(n: usize, k: usize) -> bool {
    n > 1 && n.saturating_mul(k) >= 1 << 16 && rayon::current_num_threads() > 1
}

/// Number of rows per parallel task so that a task holds at least `min_work` elements.
fn rows_per_task(k: usize, min_work: usize) -> usize {
    (min_work / k.max(1)).max(1)
}

/// How per-row losses are combined, as PyTorch's `reduction` argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Reduction {
    /// One loss per row (per element for binary cross-entropy).
    None,
    /// The sum of the per-row losses.
    Sum,
    /// The mean: weighted by the targets' class weights for class-id targets (PyTorch's
    /// normalization), over rows otherwise.
    #[default]
    Mean,
}

impl std::str::FromStr for Reduction {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(Reduction::None),
            "sum" => Ok(Reduction::Sum),
            "mean" => Ok(Reduction::Mean),
            other => Err(Error::InvalidParameter {
                what: "reduction",
                why: format!("`{other}` is not one of none, sum, mean"),
            }),
        }
    }
}

/// A loss value: one number, or one per row (per element) with [`Reduction::None`].
#[derive(Debug, Clone, PartialEq)]
pub enum LossValue {
    /// A reduced loss (sum or mean).
    Reduced(f32),
    /// Unreduced losses.
    PerItem(Vec<f32>),
}

impl LossValue {
    /// The reduced value, or `None` for per-item losses.
    ///
    /// ```
    /// # use labelsmooth::loss::LossValue;
    /// assert_eq!(LossValue::Reduced(1.5).scalar(), Some(1.5));
    /// ```
    pub fn scalar(&self) -> Option<f32> {
        match self {
            LossValue::Reduced(v) => Some(*v),
            LossValue::PerItem(_) => None,
        }
    }

    /// All values as a slice (one element for a reduced loss).
    pub fn as_slice(&self) -> &[f32] {
        match self {
            LossValue::Reduced(v) => std::slice::from_ref(v),
            LossValue::PerItem(v) => v,
        }
    }
}

/// Reduces per-item `f64` losses with `denominator` used by `Mean`.
pub(crate) fn reduce(items: Vec<f64>, reduction: Reduction, denominator: f64) -> LossValue {
    match reduction {
        Reduction::None => LossValue::PerItem(items.into_iter().map(|v| v as f32).collect()),
        Reduction::Sum => LossValue::Reduced(items.iter().sum::<f64>() as f32),
        Reduction::Mean => LossValue::Reduced((items.iter().sum::<f64>() / denominator) as f32),
    }
}

/// Finds the first invalid logit of `row` (NaN, +inf, or −inf at the target) for an error message.
pub(crate) fn logit_error(logits: &[f32], k: usize, row: usize, target: Option<usize>) -> Error {
    let r = &logits[row * k..(row + 1) * k];
    if let Some((class, &value)) = r
        .iter()
        .enumerate()
        .find(|(_, v)| v.is_nan() || **v == f32::INFINITY)
    {
        return Error::InvalidLogit {
            row,
            class,
            value,
            hint: "",
        };
    }
    let class = target.unwrap_or(0);
    Error::InvalidLogit {
        row,
        class,
        value: r.get(class).copied().unwrap_or(f32::NAN),
        hint: " (the target class needs a finite logit)",
    }
}

/// Scans for the first NaN or +inf logit.
pub(crate) fn check_logits_finite_above(logits: &[f32], k: usize) -> Result<()> {
    if let Some(i) = logits
        .iter()
        .position(|v| v.is_nan() || *v == f32::INFINITY)
    {
        return Err(logit_error(logits, k, i / k, None));
    }
    Ok(())
}
