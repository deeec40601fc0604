//! A dense layer on plain arrays: `y = x·W + b`, optionally followed by ReLU, forward and
//! backward. `x` is `[rows, inputs]`, `W` is `[inputs, outputs]` (Burn's `Linear` layout).
//!
//! Products use the register-blocked [`small_matmul_acc`]; large layers split their rows
//! over the threads, small ones (a training step of a small MLP) stay on the calling thread,
//! where waking the pool would cost more than the arithmetic.

use rayon::prelude::*;

use crate::array::{column_sums, transpose};
use crate::matmul::{small_matmul_acc, transposed_product_acc};

/// Multiply-adds below which a product runs on the calling thread.
const PARALLEL_WORK: usize = 1 << 21;

/// Sizes of one dense layer call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DenseDims {
    /// Rows of `x` (samples).
    pub rows: usize,
    /// Input features.
    pub inputs: usize,
    /// Output features.
    pub outputs: usize,
}

/// Gradients of the layer's inputs.
#[derive(Debug, Clone)]
pub struct DenseGrads {
    /// Of `x` (when asked for).
    pub x: Option<Vec<f32>>,
    /// Of `W`.
    pub weight: Vec<f32>,
    /// Of `b`.
    pub bias: Vec<f32>,
}

/// c[m, n] += a[m, k] · b[k, n] (all row-major, contiguous), rows of c split over the threads
/// when the product is large.
fn product(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let threads = rayon::current_num_threads();
    if m * n * k < PARALLEL_WORK || threads < 2 || m < 2 {
        small_matmul_acc((m, n, k), a, k, b, n, c, n);
        return;
    }
    let rows = m.div_ceil(threads);
    c.par_chunks_mut(rows * n)
        .zip(a.par_chunks(rows * k))
        .for_each(|(c, a)| small_matmul_acc((c.len() / n, n, k), a, k, b, n, c, n));
}

/// `x·W + b`, then ReLU when `relu`.
pub fn dense_forward(
    d: DenseDims,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    relu: bool,
) -> Vec<f32> {
    assert_eq!(x.len(), d.rows * d.inputs, "dense: x");
    assert_eq!(weight.len(), d.inputs * d.outputs, "dense: weight");
    assert_eq!(bias.len(), d.outputs, "dense: bias");
    let mut y = Vec::with_capacity(d.rows * d.outputs);
    for _ in 0..d.rows {
        y.extend_from_slice(bias);
    }
    product(d.rows, d.outputs, d.inputs, x, weight, &mut y);
    if relu {
        for v in &mut y {
            *v = v.max(0.0);
        }
    }
    y
}

/// Gradients given the output gradient `dy`; `y` is the forward output, needed (for its
/// sign) when the layer has a ReLU. The gradient of `x` only when `want_x`.
pub fn dense_backward(
    d: DenseDims,
    x: &[f32],
    weight: &[f32],
    y: Option<&[f32]>,
    dy: &[f32],
    want_x: bool,
) -> DenseGrads {
    assert_eq!(dy.len(), d.rows * d.outputs, "dense: dy");
    let dz: Vec<f32> = match y {
        Some(y) => dy
            .iter()
            .zip(y)
            .map(|(&g, &v)| if v > 0.0 { g } else { 0.0 })
            .collect(),
        None => dy.to_vec(),
    };
    // dW = xᵀ · dz
    let mut dw = vec![0.0f32; d.inputs * d.outputs];
    transposed_product_acc((d.inputs, d.outputs, d.rows), x, &dz, &mut dw, true);
    // dx = dz · Wᵀ
    let dx = want_x.then(|| {
        let w_t = transpose(d.inputs, d.outputs, weight);
        let mut dx = vec![0.0f32; d.rows * d.inputs];
        product(d.rows, d.inputs, d.outputs, &dz, &w_t, &mut dx);
        dx
    });
    DenseGrads {
        x: dx,
        weight: dw,
        bias: column_sums(d.outputs, &dz),
    }
}
