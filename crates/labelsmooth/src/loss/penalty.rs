//! The confidence penalty of Pereyra et al. 2017.

use super::{LossValue, Reduction, check_logits_finite_above, reduce};
use crate::error::{Error, Result, check_len, rows_of};
use labelsmooth_kernels::softmax_row;

/// The confidence penalty: β·max(0, Γ − H(softmax(x))) per row, where H is the entropy of the
/// predicted distribution (Pereyra et al. 2017, "Regularizing neural networks by penalizing
/// confident output distributions"). Without a threshold Γ the term is −β·H: added to a loss, it
/// rewards spread-out predictions. With a threshold, only rows whose entropy falls below Γ are
/// penalized.
///
/// Add it to a cross-entropy: [`ConfidencePenalty::forward_backward_add`] adds its gradient to the
/// one already in the buffer. `mean` divides by n.
///
/// ```
/// use labelsmooth::loss::ConfidencePenalty;
/// // Uniform logits over 4 classes have entropy ln 4.
/// let p = ConfidencePenalty::new(0.5).forward(&[1.0; 4], 4).unwrap();
/// assert!((p.scalar().unwrap() + 0.5 * 4f32.ln()).abs() < 1e-6);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ConfidencePenalty {
    beta: f32,
    threshold: Option<f32>,
    reduction: Reduction,
}

impl ConfidencePenalty {
    /// A penalty of strength `beta` (finite, ≥ 0), no threshold, mean reduction.
    pub fn new(beta: f32) -> Self {
        ConfidencePenalty {
            beta,
            threshold: None,
            reduction: Reduction::Mean,
        }
    }

    /// Penalize only rows with entropy below `threshold` (in nats).
    pub fn with_threshold(mut self, threshold: f32) -> Self {
        self.threshold = Some(threshold);
        self
    }

    /// Sets the reduction.
    pub fn with_reduction(mut self, reduction: Reduction) -> Self {
        self.reduction = reduction;
        self
    }

    /// The penalty of logits `[n, k]`.
    pub fn forward(&self, logits: &[f32], k: usize) -> Result<LossValue> {
        self.run(logits, k, None, false)
    }

    /// The penalty, with its gradient written to `grad`.
    pub fn forward_backward(
        &self,
        logits: &[f32],
        k: usize,
        grad: &mut [f32],
    ) -> Result<LossValue> {
        check_len(
            "gradient buffer (as long as the logits)",
            logits.len(),
            grad.len(),
        )?;
        self.run(logits, k, Some(grad), false)
    }

    /// The penalty, with its gradient added to what `grad` already holds (a loss's gradient).
    pub fn forward_backward_add(
        &self,
        logits: &[f32],
        k: usize,
        grad: &mut [f32],
    ) -> Result<LossValue> {
        check_len(
            "gradient buffer (as long as the logits)",
            logits.len(),
            grad.len(),
        )?;
        self.run(logits, k, Some(grad), true)
    }

    /// Checks the configuration: β finite and ≥ 0, a finite threshold.
    pub fn validate(&self) -> Result<()> {
        if !(self.beta.is_finite() && self.beta >= 0.0) {
            return Err(Error::InvalidParameter {
                what: "confidence penalty beta",
                why: format!("{} is not finite and >= 0", self.beta),
            });
        }
        if let Some(t) = self.threshold
            && !t.is_finite()
        {
            return Err(Error::InvalidParameter {
                what: "confidence penalty threshold",
                why: format!("{t} is not finite"),
            });
        }
        Ok(())
    }

    fn run(
        &self,
        logits: &[f32],
        k: usize,
        grad: Option<&mut [f32]>,
        add: bool,
    ) -> Result<LossValue> {
        self.validate()?;
        let n = rows_of("logits (n * k values)", logits.len(), k)?;
        if n == 0 && self.reduction == Reduction::Mean {
            return Err(Error::Empty {
                what: "the batch",
                why: "a mean penalty needs at least one row",
            });
        }
        check_logits_finite_above(logits, k)?;
        let beta = f64::from(self.beta);
        let scale = if self.reduction == Reduction::Mean {
            1.0 / n as f64
        } else {
            1.0
        };
        let mut items = Vec::with_capacity(n);
        let mut probs = vec![0.0f32; k];
        let mut grad = grad;
        for (row, x) in logits.chunks_exact(k).enumerate() {
            let st = softmax_row::row_stats(x, None, Some(&mut probs));
            let log_s = st.sum_exp.ln();
            // H = log s − Σ p_j (x_j − m), skipping p_j = 0 (masked classes).
            let mut mean_shift = 0.0f64;
            for (&e, &xj) in probs.iter().zip(x) {
                if e != 0.0 {
                    mean_shift += f64::from(e) / st.sum_exp * (f64::from(xj) - f64::from(st.max));
                }
            }
            let entropy = log_s - mean_shift;
            let (value, active) = match self.threshold {
                None => (-beta * entropy, true),
                Some(t) => {
                    let gap = f64::from(t) - entropy;
                    if gap > 0.0 {
                        (beta * gap, true)
                    } else {
                        (0.0, false)
                    }
                }
            };
            items.push(value);
            if let Some(g) = grad.as_deref_mut() {
                let g = &mut g[row * k..(row + 1) * k];
                for ((gj, &e), &xj) in g.iter_mut().zip(&probs).zip(x) {
                    // d(−βH)/dx_j = β·p_j·(log p_j + H).
                    let d = if active && e != 0.0 {
                        let p = f64::from(e) / st.sum_exp;
                        let log_p = f64::from(xj) - f64::from(st.max) - log_s;
                        scale * beta * p * (log_p + entropy)
                    } else {
                        0.0
                    };
                    if add {
                        *gj += d as f32;
                    } else {
                        *gj = d as f32;
                    }
                }
            }
        }
        Ok(reduce(items, self.reduction, n as f64))
    }
}
