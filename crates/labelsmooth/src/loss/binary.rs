//! Binary and multi-label cross-entropy with logits, smoothed toward 0.5.

use super::{LossValue, Reduction, reduce};
use crate::error::{Error, Result, check_alpha, check_len, rows_of};
use crate::targets::{BinaryConvention, binary_on_off};

/// Binary cross-entropy with logits over `[n, labels]` (one independent sigmoid per label), with
/// label smoothing: a target y ∈ [0, 1] becomes y(1 − α) + α/2 ([`BinaryConvention::TowardHalf`],
/// Keras) or y(1 − α) + α/L ([`BinaryConvention::OverLabels`]).
///
/// Equals PyTorch's `F.binary_cross_entropy_with_logits(logits, smoothed, pos_weight=...)`: the
/// element loss is (1 − y)·x + (1 + (p − 1)·y)·softplus(−x) with p the positive weight of the label
/// (1 when unset). `mean` divides by n·labels. Logits must be finite; targets in [0, 1].
///
/// ```
/// use labelsmooth::loss::{BinaryCrossEntropy, Reduction};
/// let bce = BinaryCrossEntropy::new(2).with_smoothing(0.1).with_reduction(Reduction::None);
/// let loss = bce.forward(&[0.0, 0.0], &[1.0, 0.0]).unwrap();
/// // At logit 0 the loss is ln 2 whatever the target.
/// assert!((loss.as_slice()[0] - std::f32::consts::LN_2).abs() < 1e-6);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct BinaryCrossEntropy {
    n_labels: usize,
    alpha: f32,
    convention: BinaryConvention,
    pos_weight: Option<Vec<f32>>,
    reduction: Reduction,
}

impl BinaryCrossEntropy {
    /// Binary cross-entropy over `n_labels` label columns, no smoothing, mean reduction.
    pub fn new(n_labels: usize) -> Self {
        BinaryCrossEntropy {
            n_labels,
            alpha: 0.0,
            convention: BinaryConvention::TowardHalf,
            pos_weight: None,
            reduction: Reduction::Mean,
        }
    }

    /// Sets the smoothing factor α (checked to lie in [0, 1] when the loss runs).
    pub fn with_smoothing(mut self, alpha: f32) -> Self {
        self.alpha = alpha;
        self
    }

    /// Sets the smoothing convention.
    pub fn with_convention(mut self, convention: BinaryConvention) -> Self {
        self.convention = convention;
        self
    }

    /// Sets one weight per label for the positive term (PyTorch's `pos_weight`; finite, ≥ 0).
    pub fn with_pos_weight(mut self, pos_weight: Vec<f32>) -> Self {
        self.pos_weight = Some(pos_weight);
        self
    }

    /// Sets the reduction.
    pub fn with_reduction(mut self, reduction: Reduction) -> Self {
        self.reduction = reduction;
        self
    }

    /// The loss alone.
    pub fn forward(&self, logits: &[f32], targets: &[f32]) -> Result<LossValue> {
        self.run(logits, targets, None)
    }

    /// The loss, with d(loss)/d(logits) written to `grad` (as long as `logits`).
    pub fn forward_backward(
        &self,
        logits: &[f32],
        targets: &[f32],
        grad: &mut [f32],
    ) -> Result<LossValue> {
        check_len(
            "gradient buffer (as long as the logits)",
            logits.len(),
            grad.len(),
        )?;
        self.run(logits, targets, Some(grad))
    }

    fn run(&self, logits: &[f32], targets: &[f32], grad: Option<&mut [f32]>) -> Result<LossValue> {
        check_alpha(self.alpha)?;
        let l = self.n_labels;
        let n = rows_of("logits (n * labels values)", logits.len(), l)?;
        check_len("targets (n * labels values)", logits.len(), targets.len())?;
        if let Some(pw) = &self.pos_weight {
            check_len("positive weights (one per label)", l, pw.len())?;
            if let Some((class, &v)) = pw
                .iter()
                .enumerate()
                .find(|(_, v)| !(v.is_finite() && **v >= 0.0))
            {
                return Err(Error::InvalidWeight {
                    class,
                    value: f64::from(v),
                });
            }
        }
        if n == 0 && self.reduction == Reduction::Mean {
            return Err(Error::Empty {
                what: "the batch",
                why: "a mean loss needs at least one row",
            });
        }
        let (on, off) = binary_on_off(f64::from(self.alpha), l, self.convention);
        let scale = if self.reduction == Reduction::Mean {
            1.0 / (n * l) as f64
        } else {
            1.0
        };
        let mut items = Vec::with_capacity(logits.len());
        let mut grad = grad;
        for (i, (&x, &y)) in logits.iter().zip(targets).enumerate() {
            if !x.is_finite() {
                return Err(Error::InvalidLogit {
                    row: i / l,
                    class: i % l,
                    value: x,
                    hint: " (binary cross-entropy needs finite logits)",
                });
            }
            if !(0.0..=1.0).contains(&y) {
                return Err(Error::InvalidLabel {
                    row: i / l,
                    column: i % l,
                    value: f64::from(y),
                    expected: "a target in [0, 1]",
                });
            }
            let y = f64::from(y);
            let q = y * on + (1.0 - y) * off;
            let x = f64::from(x);
            let pw = self
                .pos_weight
                .as_ref()
                .map_or(1.0, |p| f64::from(p[i % l]));
            let lw = 1.0 + (pw - 1.0) * q;
            // softplus(−x) = log(1 + e^{−x}), stable for either sign.
            let softplus_neg = (-x.abs()).exp().ln_1p() + (-x).max(0.0);
            items.push((1.0 - q) * x + lw * softplus_neg);
            if let Some(g) = grad.as_deref_mut() {
                // d/dx = (1 − q) − lw·σ(−x) = lw·σ(x) − pw·q, with σ evaluated stably.
                let sig = if x >= 0.0 {
                    1.0 / (1.0 + (-x).exp())
                } else {
                    let e = x.exp();
                    e / (1.0 + e)
                };
                g[i] = (scale * (lw * sig - pw * q)) as f32;
            }
        }
        Ok(reduce(items, self.reduction, (n * l) as f64))
    }
}
