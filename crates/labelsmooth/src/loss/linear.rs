//! Fused linear layer + smoothed cross-entropy for large vocabularies.

use super::{CrossEntropy, LossValue, Reduction};
use crate::error::{Error, Result, check_len, rows_of};
use labelsmooth_kernels::matmul::{Mat, Strides};

/// Gradients of [`LinearCrossEntropy`] with respect to its inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearGrads {
    /// d(loss)/d(hidden), `[n, h]`.
    pub hidden: Vec<f32>,
    /// d(loss)/d(weight), in the weight's layout: `[h, v]`, or `[v, h]` with
    /// [`LinearCrossEntropy::with_weight_v_by_h`].
    pub weight: Vec<f32>,
    /// d(loss)/d(bias), `[v]`, when a bias was given.
    pub bias: Option<Vec<f32>>,
}

/// Output layer and smoothed cross-entropy in one: from hidden states `[n, h]`, a weight `[h, v]`
/// and an optional bias `[v]`, the loss of `hidden·weight + bias` against class ids and the
/// gradients for the hidden states, weight and bias, without ever holding the `[n, v]` logits.
///
/// The rows are processed in blocks (as Liger-Kernel's fused linear cross-entropy does): a block's
/// logits are formed by one matrix product, turned into their loss gradient in place by the fused
/// [`CrossEntropy`] kernel, and consumed by the two products of the backward pass before the next
/// block starts. Memory beyond inputs and gradients is one block of logits and its gradient
/// (about `block_rows·v` floats each); the arithmetic is that of the unfused path, with no
/// recomputation.
///
/// ```
/// use labelsmooth::loss::{CrossEntropy, LinearCrossEntropy};
/// let (h, v) = (2, 3);
/// let hidden = [1.0, -1.0, 0.5, 2.0];
/// let weight = [0.1, 0.2, 0.3, -0.4, 0.0, 0.4];
/// let fused = LinearCrossEntropy::new(CrossEntropy::new(v).with_smoothing(0.1));
/// let (loss, grads) = fused.forward_backward(&hidden, h, &weight, None, &[2, 0]).unwrap();
/// assert!(loss.scalar().unwrap() > 0.0);
/// assert_eq!(grads.weight.len(), h * v);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LinearCrossEntropy {
    loss: CrossEntropy,
    block_rows: Option<usize>,
    v_by_h: bool,
}

impl LinearCrossEntropy {
    /// Wraps a cross-entropy over `v` classes (the vocabulary): its smoothing, convention, class
    /// weights, ignore index and reduction apply.
    pub fn new(loss: CrossEntropy) -> Self {
        LinearCrossEntropy {
            loss,
            block_rows: None,
            v_by_h: false,
        }
    }

    /// Takes the weight as `[v, h]` (row-major), the layout of PyTorch's `nn.Linear(h, v).weight`,
    /// and returns its gradient in that layout: no transposed copy is made.
    pub fn with_weight_v_by_h(mut self) -> Self {
        self.v_by_h = true;
        self
    }

    /// Rows per block (default: enough for about 4 M logits, at least 16).
    pub fn with_block_rows(mut self, rows: usize) -> Self {
        self.block_rows = Some(rows.max(1));
        self
    }

    /// The loss alone.
    pub fn forward(
        &self,
        hidden: &[f32],
        h: usize,
        weight: &[f32],
        bias: Option<&[f32]>,
        targets: &[i64],
    ) -> Result<LossValue> {
        self.run(hidden, h, weight, bias, targets, false)
            .map(|(l, _)| l)
    }

    /// The loss and the gradients for hidden states, weight and bias.
    pub fn forward_backward(
        &self,
        hidden: &[f32],
        h: usize,
        weight: &[f32],
        bias: Option<&[f32]>,
        targets: &[i64],
    ) -> Result<(LossValue, LinearGrads)> {
        let (loss, grads) = self.run(hidden, h, weight, bias, targets, true)?;
        Ok((loss, grads.expect("gradients were asked for")))
    }

    fn run(
        &self,
        hidden: &[f32],
        h: usize,
        weight: &[f32],
        bias: Option<&[f32]>,
        targets: &[i64],
        backward: bool,
    ) -> Result<(LossValue, Option<LinearGrads>)> {
        self.loss.validate()?;
        let v = self.loss.classes();
        if h == 0 {
            return Err(Error::InvalidParameter {
                what: "hidden size",
                why: "must be at least 1".into(),
            });
        }
        let n = rows_of("hidden states (n * h values)", hidden.len(), h)?;
        check_len("weight (h * v values)", h * v, weight.len())?;
        if let Some(b) = bias {
            check_len("bias (one per class)", v, b.len())?;
        }
        check_len("targets (one per row of hidden states)", n, targets.len())?;
        if let Some(i) = hidden.iter().position(|x| !x.is_finite()) {
            return Err(Error::InvalidParameter {
                what: "hidden states",
                why: format!(
                    "row {}, column {}: value {} is not finite",
                    i / h,
                    i % h,
                    hidden[i]
                ),
            });
        }
        let reduction = self.loss.reduction();
        let denominator = self.loss.denominator(targets)?;
        let scale = if reduction == Reduction::Mean {
            (1.0 / denominator) as f32
        } else {
            1.0
        };
        let block_loss = self.loss.clone().with_reduction(Reduction::None);
        // (row, column) strides of the weight and its gradient seen as [h, v], and of the
        // weight seen as [v, h].
        let (w_hv, w_vh) = if self.v_by_h {
            ((1, h), (h, 1))
        } else {
            ((v, 1), (1, v))
        };
        let rows = self
            .block_rows
            .unwrap_or_else(|| ((1usize << 22) / v.max(1)).max(16));
        let mut items: Vec<f32> = Vec::with_capacity(n);
        let mut grads = backward.then(|| LinearGrads {
            hidden: vec![0.0; n * h],
            weight: vec![0.0; h * v],
            bias: bias.map(|_| vec![0.0; v]),
        });
        let block_cap = rows.min(n.max(1)) * v;
        let mut logits = vec![0.0f32; block_cap];
        let mut glogits = if backward {
            vec![0.0f32; block_cap]
        } else {
            Vec::new()
        };
        let mut first = true;
        for start in (0..n).step_by(rows) {
            let nb = rows.min(n - start);
            let logits = &mut logits[..nb * v];
            let hb = &hidden[start * h..(start + nb) * h];
            let tb = &targets[start..start + nb];
            match bias {
                Some(b) => logits
                    .chunks_exact_mut(v)
                    .for_each(|r| r.copy_from_slice(b)),
                None => logits.fill(0.0),
            }
            // logits = hb · weight (+ bias already in place)
            matmul(
                nb,
                v,
                h,
                logits,
                (v, 1),
                true,
                1.0,
                hb,
                (h, 1),
                weight,
                w_hv,
            );
            let per_row = match grads.as_mut() {
                Some(g) => {
                    let gl = &mut glogits[..nb * v];
                    let per_row = block_loss.forward_backward(logits, tb, gl)?;
                    // d hidden = scale · G · weightᵀ
                    let dh = &mut g.hidden[start * h..(start + nb) * h];
                    matmul(nb, h, v, dh, (h, 1), false, scale, gl, (v, 1), weight, w_vh);
                    // d weight += scale · hbᵀ · G
                    matmul(
                        h,
                        v,
                        nb,
                        &mut g.weight,
                        w_hv,
                        !first,
                        scale,
                        hb,
                        (1, h),
                        gl,
                        (v, 1),
                    );
                    if let Some(db) = g.bias.as_mut() {
                        for r in gl.chunks_exact(v) {
                            for (d, &x) in db.iter_mut().zip(r) {
                                *d += scale * x;
                            }
                        }
                    }
                    per_row
                }
                None => block_loss.forward(logits, tb)?,
            };
            items.extend_from_slice(per_row.as_slice());
            first = false;
        }
        let total: f64 = items.iter().map(|&x| f64::from(x)).sum();
        let loss = match reduction {
            Reduction::None => LossValue::PerItem(items),
            Reduction::Sum => LossValue::Reduced(total as f32),
            Reduction::Mean => LossValue::Reduced((total / denominator) as f32),
        };
        Ok((loss, grads))
    }
}

/// c = (c if `accumulate`) + alpha·a·b for (row, column) strides of each matrix: a is `[m, k]`,
/// b is `[k, n]`, c is `[m, n]`. Runs on the rayon thread pool.
#[allow(clippy::too_many_arguments)]
fn matmul(
    m: usize,
    n: usize,
    k: usize,
    c: &mut [f32],
    c_strides: (usize, usize),
    accumulate: bool,
    alpha: f32,
    a: &[f32],
    a_strides: (usize, usize),
    b: &[f32],
    b_strides: (usize, usize),
) {
    let s = |(rows, cols): (usize, usize)| Strides { rows, cols };
    labelsmooth_kernels::matmul::matmul(
        (m, n, k),
        c,
        s(c_strides),
        accumulate,
        alpha,
        Mat::new(a, s(a_strides)),
        Mat::new(b, s(b_strides)),
        true,
    );
}

/// The unfused path, for comparison: forms the whole `[n, v]` logits and their gradient, then
/// the two products of the backward pass. Same results as [`LinearCrossEntropy`], with
/// `2·n·v` more floats of memory.
pub fn unfused_linear_cross_entropy(
    loss: &CrossEntropy,
    hidden: &[f32],
    h: usize,
    weight: &[f32],
    bias: Option<&[f32]>,
    targets: &[i64],
) -> Result<(LossValue, LinearGrads)> {
    LinearCrossEntropy::new(loss.clone())
        .with_block_rows(usize::MAX)
        .forward_backward(hidden, h, weight, bias, targets)
}
