//! Cross-entropy with probability targets, and cross-entropy of predicted probabilities.

use rayon::prelude::*;

use super::{LossValue, Reduction, logit_error, reduce, worth_parallel};
use crate::error::{Error, Result, check_alpha, check_len, check_weights, rows_of};
use crate::targets::check_probability_rows;

/// Cross-entropy of logits `[n, k]` against probability rows `[n, k]` (soft labels, mixup), with
/// label smoothing: the targets become (1 − α)·p + α/K, as in PyTorch's
/// `F.cross_entropy(logits, probs, weight, reduction, label_smoothing)`.
///
/// With class weights the row loss is −Σ_j w_j·q_j·log softmax_j; `mean` divides by n (PyTorch's
/// rule for probability targets). Target rows must hold values in [0, 1] summing to 1 within 1e-4.
///
/// ```
/// use labelsmooth::loss::{CrossEntropy, SoftCrossEntropy};
/// let logits = [0.3, -1.2, 2.0, 0.1];
/// // One-hot probability targets give the class-id loss.
/// let soft = SoftCrossEntropy::new(2).with_smoothing(0.1).forward(&logits, &[1.0, 0.0, 0.0, 1.0]).unwrap();
/// let hard = CrossEntropy::new(2).with_smoothing(0.1).forward(&logits, &[0, 1]).unwrap();
/// assert!((soft.scalar().unwrap() - hard.scalar().unwrap()).abs() < 1e-6);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SoftCrossEntropy {
    k: usize,
    alpha: f32,
    weights: Option<Vec<f32>>,
    reduction: Reduction,
}

impl SoftCrossEntropy {
    /// Cross-entropy over `k` classes, no smoothing, no weights, mean reduction.
    pub fn new(k: usize) -> Self {
        SoftCrossEntropy {
            k,
            alpha: 0.0,
            weights: None,
            reduction: Reduction::Mean,
        }
    }

    /// Sets the smoothing factor α (checked to lie in [0, 1] when the loss runs).
    pub fn with_smoothing(mut self, alpha: f32) -> Self {
        self.alpha = alpha;
        self
    }

    /// Sets one weight per class (finite, ≥ 0).
    pub fn with_weights(mut self, weights: Vec<f32>) -> Self {
        self.weights = Some(weights);
        self
    }

    /// Sets the reduction.
    pub fn with_reduction(mut self, reduction: Reduction) -> Self {
        self.reduction = reduction;
        self
    }

    /// Checks the configuration: α in [0, 1] and, if set, one finite weight ≥ 0 per class.
    pub fn validate(&self) -> Result<()> {
        check_alpha(self.alpha)?;
        if let Some(w) = &self.weights {
            check_weights(w, self.k)?;
        }
        Ok(())
    }

    /// The loss alone.
    pub fn forward(&self, logits: &[f32], target_probs: &[f32]) -> Result<LossValue> {
        self.run(logits, target_probs, None)
    }

    /// The loss, with d(loss)/d(logits) written to `grad` (as long as `logits`).
    pub fn forward_backward(
        &self,
        logits: &[f32],
        target_probs: &[f32],
        grad: &mut [f32],
    ) -> Result<LossValue> {
        check_len(
            "gradient buffer (as long as the logits)",
            logits.len(),
            grad.len(),
        )?;
        self.run(logits, target_probs, Some(grad))
    }

    fn run(
        &self,
        logits: &[f32],
        target_probs: &[f32],
        grad: Option<&mut [f32]>,
    ) -> Result<LossValue> {
        self.validate()?;
        let k = self.k;
        let n = rows_of("logits (n * k values)", logits.len(), k)?;
        check_len(
            "target probabilities (n * k values)",
            logits.len(),
            target_probs.len(),
        )?;
        check_probability_rows(target_probs, n, k)?;
        if n == 0 && self.reduction == Reduction::Mean {
            return Err(Error::Empty {
                what: "the batch",
                why: "a mean loss needs at least one row",
            });
        }
        let alpha = f64::from(self.alpha);
        let weights = self.weights.as_deref();
        let scale = if self.reduction == Reduction::Mean {
            1.0 / n as f64
        } else {
            1.0
        };
        // Probability targets are the less common, smaller case: computed in float64 throughout,
        // so that p_j·C − c_j keeps its digits when predictions match the targets.
        let eval = |x: &[f32], p: &[f32], g: Option<&mut [f32]>| -> f64 {
            let coef = |j: usize| {
                let q = (1.0 - alpha) * f64::from(p[j]) + alpha / k as f64;
                q * weights.map_or(1.0, |w| f64::from(w[j]))
            };
            let mut top = 0;
            for (j, &v) in x.iter().enumerate() {
                if v.is_nan() || v == f32::INFINITY {
                    return f64::NAN;
                }
                if v > x[top] {
                    top = j;
                }
            }
            let m = f64::from(x[top]);
            if m == f64::NEG_INFINITY {
                return f64::NAN;
            }
            let (mut s_other, mut total, mut linear) = (0.0f64, 0.0f64, 0.0f64);
            for (j, &v) in x.iter().enumerate() {
                let d = f64::from(v) - m;
                if j != top {
                    s_other += d.exp();
                }
                let c = coef(j);
                if c != 0.0 {
                    total += c;
                    linear += c * d;
                }
            }
            let s = 1.0 + s_other;
            if let Some(g) = g {
                for (j, (gj, &v)) in g.iter_mut().zip(x).enumerate() {
                    let c = coef(j);
                    let d = if j == top {
                        (total - c) - total * s_other / s
                    } else {
                        (f64::from(v) - m).exp() / s * total - c
                    };
                    *gj = (scale * d) as f32;
                }
            }
            total * s_other.ln_1p() - linear
        };
        let mut items = vec![0.0f64; n];
        let parallel = worth_parallel(n, k);
        match grad {
            Some(grad) if parallel => logits
                .par_chunks_exact(k)
                .zip(target_probs.par_chunks_exact(k))
                .zip(grad.par_chunks_exact_mut(k))
                .zip(items.par_iter_mut())
                .for_each(|(((x, p), g), out)| *out = eval(x, p, Some(g))),
            Some(grad) => {
                for (((x, p), g), out) in logits
                    .chunks_exact(k)
                    .zip(target_probs.chunks_exact(k))
                    .zip(grad.chunks_exact_mut(k))
                    .zip(items.iter_mut())
                {
                    *out = eval(x, p, Some(g));
                }
            }
            None => {
                for ((x, p), out) in logits
                    .chunks_exact(k)
                    .zip(target_probs.chunks_exact(k))
                    .zip(items.iter_mut())
                {
                    *out = eval(x, p, None);
                }
            }
        }
        if let Some(bad) = items.iter().position(|v| v.is_nan()) {
            return Err(logit_error(logits, k, bad, None));
        }
        Ok(reduce(items, self.reduction, n as f64))
    }
}

/// Per-row cross-entropy −Σ_j q_j·log p̂_j of predicted probabilities `[n, k]` against target
/// distributions `[n, k]`, computed as Keras does with `from_logits=False`: each predicted row is
/// divided by its sum, then clipped to [ε, 1 − ε] (Keras' ε is 1e-7).
///
/// ```
/// use labelsmooth::loss::probability_cross_entropy;
/// let per_row = probability_cross_entropy(&[0.5, 0.5, 1.0, 0.0], &[1.0, 0.0, 0.0, 1.0], 2, 1e-7).unwrap();
/// assert!((per_row[0] - std::f32::consts::LN_2).abs() < 1e-6);
/// assert!((per_row[1] - 1e-7f64.ln().abs() as f32).abs() < 1e-4);
/// ```
pub fn probability_cross_entropy(
    probs: &[f32],
    target_probs: &[f32],
    k: usize,
    eps: f64,
) -> Result<Vec<f32>> {
    let n = rows_of("predicted probabilities (n * k values)", probs.len(), k)?;
    check_len(
        "target probabilities (n * k values)",
        probs.len(),
        target_probs.len(),
    )?;
    if !(0.0..0.5).contains(&eps) {
        return Err(Error::InvalidParameter {
            what: "epsilon",
            why: format!("{eps} is not in [0, 0.5)"),
        });
    }
    let mut out = Vec::with_capacity(n);
    for row in 0..n {
        let p = &probs[row * k..(row + 1) * k];
        let q = &target_probs[row * k..(row + 1) * k];
        let mut sum = 0.0f64;
        for (column, &v) in p.iter().enumerate() {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(Error::InvalidProbability {
                    row,
                    column,
                    value: f64::from(v),
                });
            }
            sum += f64::from(v);
        }
        if sum <= 0.0 {
            return Err(Error::RowNotNormalized { row, sum });
        }
        let mut loss = 0.0f64;
        for (j, (&pj, &qj)) in p.iter().zip(q).enumerate() {
            if !qj.is_finite() {
                return Err(Error::InvalidProbability {
                    row,
                    column: j,
                    value: f64::from(qj),
                });
            }
            let v = (f64::from(pj) / sum).clamp(eps, 1.0 - eps);
            loss -= f64::from(qj) * v.ln();
        }
        out.push(loss as f32);
    }
    Ok(out)
}
