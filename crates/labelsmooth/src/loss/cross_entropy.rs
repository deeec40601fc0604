//! Smoothed cross-entropy with class-id targets: one fused pass per row.

use rayon::prelude::*;

use super::{LossValue, Reduction, logit_error, reduce, rows_per_task, worth_parallel};
use crate::error::{Error, Result, check_alpha, check_len, check_weights, rows_of};
use crate::targets::Convention;
use labelsmooth_kernels::softmax_row;

/// Cross-entropy of logits `[n, k]` against class ids, with label smoothing.
///
/// For a row with target t the loss is Σ_j c_j·(logsumexp(x) − x_j), where the coefficients are
/// the smoothed target distribution times the class weights:
/// c_t = on·w_t and c_j = off·w_j for j ≠ t, (on, off) given by the [`Convention`].
/// With [`Convention::Uniform`] this is exactly PyTorch's
/// `F.cross_entropy(logits, target, weight, ignore_index, reduction, label_smoothing)`,
/// including its `mean`: the sum divided by the sum of the targets' weights over rows that are not
/// ignored (the number of such rows without weights).
///
/// Memory beyond the logits and the gradient is O(n): no target matrix is built. Rows are split
/// over the rayon thread pool when the batch is large enough to pay.
///
/// A logit of −inf marks a masked class: allowed wherever the target's logit is finite. Its
/// probability is exactly 0; with α > 0 its share of the smoothed target makes the loss +inf, as in
/// PyTorch (mask classes with α = 0, or give them weight 0).
///
/// ```
/// use labelsmooth::loss::{CrossEntropy, Reduction};
/// use labelsmooth::targets::Convention;
/// let logits = [1.0, 2.0, 3.0, 1.0, 1.0, 1.0];
/// let ce = CrossEntropy::new(3)
///     .with_smoothing(0.2)
///     .with_convention(Convention::ExcludeTrue)
///     .with_ignore_index(-100)
///     .with_reduction(Reduction::None);
/// let loss = ce.forward(&logits, &[2, -100]).unwrap();
/// assert_eq!(loss.as_slice()[1], 0.0);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CrossEntropy {
    k: usize,
    alpha: f32,
    convention: Convention,
    weights: Option<Vec<f32>>,
    ignore_index: Option<i64>,
    reduction: Reduction,
}

impl CrossEntropy {
    /// Plain cross-entropy over `k` classes: no smoothing, uniform convention, no weights, no ignore
    /// index, mean reduction.
    pub fn new(k: usize) -> Self {
        CrossEntropy {
            k,
            alpha: 0.0,
            convention: Convention::Uniform,
            weights: None,
            ignore_index: None,
            reduction: Reduction::Mean,
        }
    }

    /// Sets the smoothing factor α (checked to lie in [0, 1] when the loss runs).
    pub fn with_smoothing(mut self, alpha: f32) -> Self {
        self.alpha = alpha;
        self
    }

    /// Sets the smoothing convention.
    pub fn with_convention(mut self, convention: Convention) -> Self {
        self.convention = convention;
        self
    }

    /// Sets one weight per class (finite, ≥ 0).
    pub fn with_weights(mut self, weights: Vec<f32>) -> Self {
        self.weights = Some(weights);
        self
    }

    /// Rows whose target equals `index` contribute no loss and no gradient (PyTorch uses −100).
    pub fn with_ignore_index(mut self, index: i64) -> Self {
        self.ignore_index = Some(index);
        self
    }

    /// Sets the reduction.
    pub fn with_reduction(mut self, reduction: Reduction) -> Self {
        self.reduction = reduction;
        self
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.k
    }

    /// Checks the configuration: α in [0, 1], k ≥ 1 (≥ 2 for `ExcludeTrue`), valid weights.
    pub fn validate(&self) -> Result<()> {
        check_alpha(self.alpha)?;
        self.convention.check_classes(self.k)?;
        if let Some(w) = &self.weights {
            check_weights(w, self.k)?;
        }
        Ok(())
    }

    /// The loss alone.
    pub fn forward(&self, logits: &[f32], targets: &[i64]) -> Result<LossValue> {
        self.run(logits, targets, None)
    }

    /// The loss, with d(loss)/d(logits) written to `grad` (as long as `logits`). With
    /// [`Reduction::None`] the gradient is that of the sum of the per-row losses. On error the
    /// contents of `grad` are unspecified.
    pub fn forward_backward(
        &self,
        logits: &[f32],
        targets: &[i64],
        grad: &mut [f32],
    ) -> Result<LossValue> {
        check_len(
            "gradient buffer (as long as the logits)",
            logits.len(),
            grad.len(),
        )?;
        self.run(logits, targets, Some(grad))
    }

    /// Checks the targets and returns the divisor of `mean`: the sum of the targets' weights over
    /// rows that are not ignored (their number without weights). An error for `mean` when it is 0.
    ///
    /// ```
    /// use labelsmooth::loss::CrossEntropy;
    /// let ce = CrossEntropy::new(3).with_weights(vec![1.0, 2.0, 3.0]).with_ignore_index(-100);
    /// assert_eq!(ce.denominator(&[2, -100, 1]).unwrap(), 5.0);
    /// ```
    pub fn denominator(&self, targets: &[i64]) -> Result<f64> {
        let k = self.k;
        let weights = self.weights.as_deref();
        let mut denominator = 0.0f64;
        for (row, &t) in targets.iter().enumerate() {
            if Some(t) == self.ignore_index {
                continue;
            }
            if t < 0 || t as u64 >= k as u64 {
                return Err(Error::ClassOutOfRange { row, class: t, k });
            }
            denominator += weights.map_or(1.0, |w| f64::from(w[t as usize]));
        }
        if self.reduction == Reduction::Mean {
            if targets.is_empty() {
                return Err(Error::Empty {
                    what: "the batch",
                    why: "a mean loss needs at least one row",
                });
            }
            if denominator == 0.0 {
                return Err(Error::Empty {
                    what: "the batch after ignored rows and zero weights",
                    why: "the mean divides by the targets' total weight, which is 0",
                });
            }
        }
        Ok(denominator)
    }

    /// Reduction of this loss.
    pub fn reduction(&self) -> Reduction {
        self.reduction
    }

    /// Smoothing factor α.
    pub fn smoothing(&self) -> f32 {
        self.alpha
    }

    /// How α spreads over the classes.
    pub fn convention(&self) -> Convention {
        self.convention
    }

    /// The target value that marks ignored rows, if any.
    pub fn ignore_index(&self) -> Option<i64> {
        self.ignore_index
    }

    /// One weight per class, if any.
    pub fn weights(&self) -> Option<&[f32]> {
        self.weights.as_deref()
    }

    fn run(&self, logits: &[f32], targets: &[i64], grad: Option<&mut [f32]>) -> Result<LossValue> {
        self.validate()?;
        let k = self.k;
        let n = rows_of("logits (n * k values)", logits.len(), k)?;
        check_len("targets (one per row of logits)", n, targets.len())?;
        let denominator = self.denominator(targets)?;
        let weights = self.weights.as_deref();
        let (on, off) = self.convention.on_off(f64::from(self.alpha), k)?;
        let row = RowLoss {
            k,
            on,
            off,
            weights,
            weight_sum: weights.map_or(k as f64, |w| w.iter().map(|&v| f64::from(v)).sum()),
            ignore_index: self.ignore_index,
            scale: if self.reduction == Reduction::Mean {
                1.0 / denominator
            } else {
                1.0
            },
        };
        let mut items = vec![0.0f64; n];
        let parallel = worth_parallel(n, k);
        let min_len = rows_per_task(k, 1 << 14);
        match grad {
            Some(grad) => {
                if parallel {
                    logits
                        .par_chunks_exact(k)
                        .zip(grad.par_chunks_exact_mut(k))
                        .zip(targets.par_iter())
                        .zip(items.par_iter_mut())
                        .with_min_len(min_len)
                        .for_each(|(((x, g), &t), out)| *out = row.eval(x, t, Some(g)));
                } else {
                    for (((x, g), &t), out) in logits
                        .chunks_exact(k)
                        .zip(grad.chunks_exact_mut(k))
                        .zip(targets)
                        .zip(items.iter_mut())
                    {
                        *out = row.eval(x, t, Some(g));
                    }
                }
            }
            None => {
                if parallel {
                    logits
                        .par_chunks_exact(k)
                        .zip(targets.par_iter())
                        .zip(items.par_iter_mut())
                        .with_min_len(min_len)
                        .for_each(|((x, &t), out)| *out = row.eval(x, t, None));
                } else {
                    for ((x, &t), out) in logits.chunks_exact(k).zip(targets).zip(items.iter_mut())
                    {
                        *out = row.eval(x, t, None);
                    }
                }
            }
        }
        if let Some(bad) = items.iter().position(|v| v.is_nan()) {
            let target = usize::try_from(targets[bad]).ok();
            return Err(logit_error(logits, k, bad, target));
        }
        Ok(reduce(items, self.reduction, denominator))
    }
}

/// Everything a row needs, shared by all rows of a call.
struct RowLoss<'a> {
    k: usize,
    on: f64,
    off: f64,
    weights: Option<&'a [f32]>,
    weight_sum: f64,
    ignore_index: Option<i64>,
    scale: f64,
}

impl RowLoss<'_> {
    /// Loss of one row (NaN when its logits are invalid), writing its gradient when asked.
    #[inline]
    fn eval(&self, x: &[f32], t: i64, grad: Option<&mut [f32]>) -> f64 {
        if Some(t) == self.ignore_index {
            if let Some(g) = grad {
                g.fill(0.0);
            }
            return 0.0;
        }
        let t = t as usize;
        debug_assert!(t < self.k);
        let wt = self.weights.map_or(1.0, |w| f64::from(w[t]));
        let xt = x[t];
        if xt == f32::NEG_INFINITY {
            return f64::NAN;
        }
        let mut grad = grad;
        let st = softmax_row::row_stats(x, self.weights, grad.as_deref_mut());
        if st.sum_shift.is_nan() {
            return f64::NAN;
        }
        let log_s = st.log_sum();
        let dt = f64::from(xt) - f64::from(st.max);
        let extra = (self.on - self.off) * wt;
        let total = self.off * self.weight_sum + extra;
        let mut linear = extra * dt;
        if self.off != 0.0 {
            linear += self.off * st.wsum_shift;
        }
        if let Some(g) = grad {
            let a = (self.scale * total / st.sum_exp) as f32;
            let b = (self.scale * self.off) as f32;
            let e_t = f64::from(g[t]);
            let top = softmax_row::affine(g, a, b, self.weights);
            // p_t·C − c_t = (C − c_t) − C·(1 − p_t): the form that keeps its digits as p_t → 1.
            let rest = self.off * (self.weight_sum - wt);
            let g_t = self.scale * (rest - total * st.one_minus_p(xt, e_t));
            g[t] = g_t as f32;
            // Each g_j = p_j·C − c_j carries float32 error up to ~1.3e-7·C. When the row's largest
            // gradient is small next to C (predictions close to the smoothed target), that error
            // would exceed 1e-6 of it: redo such a row in float64.
            if f64::from(top).max(g_t.abs()) < 0.25 * total * self.scale {
                self.exact_grad(x, t, wt, st.max, g);
            }
        }
        total * log_s - linear
    }
}

impl RowLoss<'_> {
    /// The gradient of one row computed in float64 throughout.
    #[cold]
    fn exact_grad(&self, x: &[f32], t: usize, wt: f64, max: f32, g: &mut [f32]) {
        let m = f64::from(max);
        let mut s = 0.0f64;
        let mut s_other = 0.0f64;
        for (j, &v) in x.iter().enumerate() {
            let e = (f64::from(v) - m).exp();
            s += e;
            if j != t {
                s_other += e;
            }
        }
        let total = self.off * self.weight_sum + (self.on - self.off) * wt;
        for (j, (gj, &v)) in g.iter_mut().zip(x).enumerate() {
            let d = if j == t {
                self.off * (self.weight_sum - wt) - total * s_other / s
            } else {
                let wj = self.weights.map_or(1.0, |w| f64::from(w[j]));
                (f64::from(v) - m).exp() / s * total - self.off * wj
            };
            *gj = (self.scale * d) as f32;
        }
    }
}

/// Mean smoothed cross-entropy (uniform convention, PyTorch's `label_smoothing`) of logits `[n, k]`
/// against class ids: the plain-function form of [`CrossEntropy`].
///
/// ```
/// use labelsmooth::loss::smoothed_cross_entropy;
/// let l0 = smoothed_cross_entropy(&[3.0, 0.0, 0.0, 3.0], &[0, 1], 2, 0.0).unwrap();
/// let l1 = smoothed_cross_entropy(&[3.0, 0.0, 0.0, 3.0], &[0, 1], 2, 0.1).unwrap();
/// assert!(l1 > l0);
/// ```
pub fn smoothed_cross_entropy(
    logits: &[f32],
    targets: &[i64],
    k: usize,
    alpha: f32,
) -> Result<f32> {
    let v = CrossEntropy::new(k)
        .with_smoothing(alpha)
        .forward(logits, targets)?;
    Ok(v.as_slice()[0])
}
