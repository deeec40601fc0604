//! Smoothed cross-entropy on Burn's CubeCL backends (wgpu; CUDA where it builds): one kernel
//! launch computes each row's loss and, when the logits are tracked, its gradient.
//!
//! One cube (work group) of [`BLOCK`] units takes one row. Each unit walks the row with stride
//! [`BLOCK`] keeping a running maximum and Σexp relative to it (the online softmax), and the
//! weighted sum of the logits; the cube merges the partial results in shared memory. The row's
//! log-sum-exp then gives the loss, and a second walk over the row (which the first walk left in
//! the cache) writes `∂loss/∂logits` without storing probabilities anywhere.
//!
//! With targets `q_j = off + (on − off)·[j = t]` and class weights `w`, a row's loss is
//! `Σ_j w_j q_j (lse − x_j) = (on − off)·w_t·(lse − x_t) + off·(W·lse − Σ_j w_j x_j)` where
//! `W = Σ_j w_j`, and its gradient is
//! `p_j·((on − off)·w_t + off·W) − off·w_j − (on − off)·w_t·[j = t]`. Rows whose target is
//! negative (ignored) give 0 and a zero gradient.

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::cubecl::dtype_to_storage_type;
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Backend, Dispatch, Slice, TensorMetadata, backend_extension};
use burn::tensor::{DType, Int, Shape};
use burn_cubecl::CubeBackend;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;
use cubecl::{CubeCount, CubeDim};

/// Units per cube: one cube takes one row.
pub const BLOCK: usize = 256;

/// The target distribution and class weights as the kernel takes them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Coefficients {
    /// The target distribution's weight on the true class (`1 − α + α/k` for the uniform
    /// convention).
    pub on: f32,
    /// Its weight on each other class (`α/k` for the uniform convention).
    pub off: f32,
    /// The sum of the class weights (`k` without weights).
    pub weight_sum: f32,
}

/// The smoothed cross-entropy this crate adds to the CubeCL backends.
#[backend_extension(Cube: cfg(feature = "wgpu"), Autodiff)]
pub trait SmoothedCrossEntropyOps: Backend {
    /// The loss of each row `[n]` of `logits` `[n, k]` against `targets` `[n]` (class ids;
    /// a negative id marks a row to ignore), with class `weights` `[k]` (the logits' dtype)
    /// and the target distribution of `coefficients`. `n·k` must be below 2³²: the kernel
    /// indexes with 32 bits.
    fn smoothed_cross_entropy_rows(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
        weights: FloatTensor<Self>,
        coefficients: Coefficients,
    ) -> FloatTensor<Self>;

    /// The rows of [`smoothed_cross_entropy_rows`](Self::smoothed_cross_entropy_rows) and
    /// the gradient `[n, k]` of each row's loss with respect to its logits, from one launch.
    fn smoothed_cross_entropy_rows_grad(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
        weights: FloatTensor<Self>,
        coefficients: Coefficients,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// `scale · Σ_i loss_i` (`[1]`) of the logits `hidden·weight + bias` (a linear output
    /// layer: `hidden` `[n, h]` with `n > 0`, `weight` `[h, k]`, `bias` `[k]`), formed
    /// `block_rows` rows at a time so that the `[n, k]` logits never exist whole; the other
    /// arguments as in [`smoothed_cross_entropy_rows`](Self::smoothed_cross_entropy_rows).
    #[allow(clippy::too_many_arguments)]
    fn linear_smoothed_cross_entropy(
        hidden: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        targets: IntTensor<Self>,
        weights: FloatTensor<Self>,
        coefficients: Coefficients,
        scale: f32,
        block_rows: usize,
    ) -> FloatTensor<Self>;

    /// The loss of [`linear_smoothed_cross_entropy`](Self::linear_smoothed_cross_entropy) and
    /// its gradients for `hidden`, `weight` and `bias`, each block's consumed by the two
    /// products of the backward pass before the next block's logits are formed.
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn linear_smoothed_cross_entropy_grad(
        hidden: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        targets: IntTensor<Self>,
        weights: FloatTensor<Self>,
        coefficients: Coefficients,
        scale: f32,
        block_rows: usize,
    ) -> (
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
    );
}

/// The gradients of a linear layer's hidden states, weight and bias.
type LinearGrads<B> = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

/// Adds `b` to the running total `a`.
fn accumulate<B: Backend>(a: Option<FloatTensor<B>>, b: FloatTensor<B>) -> Option<FloatTensor<B>> {
    Some(match a {
        Some(a) => B::float_add(a, b),
        None => b,
    })
}

/// The blocks of the fused linear + cross-entropy on any backend with the row kernel.
#[allow(clippy::too_many_arguments)]
fn linear_blocks<B: SmoothedCrossEntropyOps>(
    hidden: FloatTensor<B>,
    weight: FloatTensor<B>,
    bias: FloatTensor<B>,
    targets: IntTensor<B>,
    weights: FloatTensor<B>,
    coefficients: Coefficients,
    scale: f32,
    block_rows: usize,
    with_grad: bool,
) -> (FloatTensor<B>, Option<LinearGrads<B>>) {
    let n = hidden.shape()[0];
    let k = weight.shape()[1];
    let bias_row = B::float_reshape(bias, Shape::new([1, k]));
    let weight_t = with_grad.then(|| B::float_transpose(weight.clone()));
    let (mut total, mut d_weight, mut d_bias) = (None, None, None);
    let mut d_hidden = Vec::new();
    let mut start = 0;
    while start < n {
        let end = (start + block_rows.max(1)).min(n);
        let rows = Slice::new(start as isize, Some(end as isize), 1);
        let block = B::float_slice(hidden.clone(), &[rows, Slice::from(..)]);
        let block_targets = B::int_slice(targets.clone(), &[rows]);
        let logits = B::float_add(
            B::float_matmul(block.clone(), weight.clone()),
            bias_row.clone(),
        );
        let losses = match &weight_t {
            Some(weight_t) => {
                let (losses, g) = B::smoothed_cross_entropy_rows_grad(
                    logits,
                    block_targets,
                    weights.clone(),
                    coefficients,
                );
                let g = B::float_mul_scalar(g, scale.into());
                d_hidden.push(B::float_matmul(g.clone(), weight_t.clone()));
                d_weight = accumulate::<B>(
                    d_weight,
                    B::float_matmul(B::float_transpose(block), g.clone()),
                );
                d_bias = accumulate::<B>(d_bias, B::float_sum_dim(g, 0));
                losses
            }
            None => {
                B::smoothed_cross_entropy_rows(logits, block_targets, weights.clone(), coefficients)
            }
        };
        total = accumulate::<B>(total, B::float_sum(losses));
        start = end;
    }
    let total = B::float_mul_scalar(total.expect("at least one row"), scale.into());
    let grads = with_grad.then(|| {
        (
            B::float_cat(d_hidden, 0),
            d_weight.expect("at least one row"),
            B::float_reshape(d_bias.expect("at least one row"), Shape::new([k])),
        )
    });
    (total, grads)
}

/// Merges the running maximum and Σexp of two partial walks over a row.
#[cube]
fn merge<F: Float>(m1: F, s1: F, m2: F, s2: F) -> (F, F) {
    let m = F::max(m1, m2);
    (m, s1 * F::exp(m1 - m) + s2 * F::exp(m2 - m))
}

#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn smoothed_cross_entropy_kernel<F: Float, I: Numeric>(
    logits: &Tensor<F>,
    targets: &Tensor<I>,
    weights: &Tensor<F>,
    rows: &mut Tensor<F>,
    grad: &mut Tensor<F>,
    on: f32,
    off: f32,
    weight_sum: f32,
    #[comptime] block: usize,
    #[comptime] with_grad: bool,
    #[comptime] spread: bool,
    #[define(F, I)] _dtypes: [ElemType; 2],
) {
    // Rows beyond the first dimension's limit of work groups continue in the second.
    let row = CUBE_POS_Y as usize * CUBE_COUNT_X as usize + CUBE_POS_X as usize;
    if row >= rows.shape(0) {
        // The whole cube leaves: no unit of it reaches the barriers below.
        terminate!();
    }
    let unit = UNIT_POS_X as usize;
    let k = logits.shape(1);
    let base = row * k;
    let target = i32::cast_from(targets[row]);

    // The walk: every unit starts from the lowest finite value with an empty sum, so that a
    // unit beyond the row's end merges as nothing and a logit of −∞ (a masked class) adds 0.
    let mut m = F::new(-3.402_823_5e38);
    let mut s = F::new(0.0);
    let mut sx = F::new(0.0);
    let mut j = unit;
    loop {
        if j >= k {
            break;
        }
        let x = logits[base + j];
        if x > m {
            s = s * F::exp(m - x) + F::new(1.0);
            m = x;
        } else {
            s += F::exp(x - m);
        }
        if spread {
            sx += weights[j] * x;
        }
        j += block;
    }

    let mut shared_m = Shared::<[F]>::new_slice(block);
    let mut shared_s = Shared::<[F]>::new_slice(block);
    let mut shared_x = Shared::<[F]>::new_slice(block);
    shared_m[unit] = m;
    shared_s[unit] = s;
    shared_x[unit] = sx;
    sync_cube();
    let mut stride = CUBE_DIM_X as usize / 2;
    loop {
        if stride == 0 {
            break;
        }
        if unit < stride {
            let (mm, ss) = merge::<F>(
                shared_m[unit],
                shared_s[unit],
                shared_m[unit + stride],
                shared_s[unit + stride],
            );
            shared_m[unit] = mm;
            shared_s[unit] = ss;
            let other = shared_x[unit + stride];
            shared_x[unit] += other;
        }
        sync_cube();
        stride /= 2;
    }
    let lse = shared_m[0] + F::ln(shared_s[0]);
    let sum_wx = shared_x[0];

    let on = F::cast_from(on);
    let off = F::cast_from(off);
    let weight_sum = F::cast_from(weight_sum);
    let kept = target >= 0;
    let mut t = 0usize;
    let mut at_target = F::new(0.0);
    if kept {
        t = usize::cast_from(target);
        at_target = (on - off) * weights[t];
        if unit == 0 {
            let mut loss = at_target * (lse - logits[base + t]);
            if spread {
                loss += off * (weight_sum * lse - sum_wx);
            }
            rows[row] = loss;
        }
    } else if unit == 0 {
        rows[row] = F::new(0.0);
    }

    if with_grad {
        let scale = at_target + off * weight_sum;
        let mut j = unit;
        loop {
            if j >= k {
                break;
            }
            let mut g = F::new(0.0);
            if kept {
                g = F::exp(logits[base + j] - lse) * scale - off * weights[j];
                if j == t {
                    g -= at_target;
                }
            }
            grad[base + j] = g;
            j += block;
        }
    }
}

/// A contiguous float tensor of `shape` on the device of `like`.
fn empty_like(like: &CubeTensor, shape: Shape, dtype: DType) -> CubeTensor {
    let handle = like.client.empty(shape.num_elements() * dtype.size());
    CubeTensor::new_contiguous(
        like.client.clone(),
        like.device.clone(),
        shape,
        handle,
        dtype,
    )
}

/// Work groups per dimension that every GPU API allows.
const MAX_GROUPS: usize = 65_535;

/// One work group per row, in as many rows of at most [`MAX_GROUPS`] as `n` needs.
fn cube_count(n: usize) -> CubeCount {
    let x = n.min(MAX_GROUPS);
    CubeCount::Static(x as u32, n.div_ceil(x) as u32, 1)
}

/// Launches the kernel: the rows, and the gradient when `with_grad`.
fn launch(
    logits: CubeTensor,
    targets: CubeTensor,
    weights: CubeTensor,
    coefficients: Coefficients,
    with_grad: bool,
) -> (CubeTensor, Option<CubeTensor>) {
    let logits = into_contiguous(logits);
    let targets = into_contiguous(targets);
    let weights = into_contiguous(weights);
    let shape = logits.shape();
    let (n, k) = (shape[0], shape[1]);
    let dtype = logits.dtype;
    assert_eq!(targets.shape().num_elements(), n, "one target per row");
    assert_eq!(weights.shape().num_elements(), k, "one weight per class");
    assert_eq!(weights.dtype, dtype, "weights in the logits' dtype");
    assert!(n * k < u32::MAX as usize, "logits beyond 32-bit indexing");
    let rows = empty_like(&logits, Shape::new([n]), dtype);
    // Without a gradient the kernel writes none: one element stands in for it.
    let grad_shape = if with_grad {
        Shape::new([n, k])
    } else {
        Shape::new([1, 1])
    };
    let grad = empty_like(&logits, grad_shape, dtype);
    if n > 0 {
        let dtypes = [
            dtype_to_storage_type(dtype),
            dtype_to_storage_type(targets.dtype),
        ];
        smoothed_cross_entropy_kernel::launch(
            &logits.client.clone(),
            cube_count(n),
            CubeDim::new_1d(BLOCK as u32),
            logits.into_tensor_arg(),
            targets.into_tensor_arg(),
            weights.into_tensor_arg(),
            rows.clone().into_tensor_arg(),
            grad.clone().into_tensor_arg(),
            coefficients.on,
            coefficients.off,
            coefficients.weight_sum,
            BLOCK,
            with_grad,
            coefficients.off != 0.0,
            dtypes,
        );
    }
    (rows, with_grad.then_some(grad))
}

impl SmoothedCrossEntropyOps for CubeBackend {
    fn smoothed_cross_entropy_rows(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
        weights: FloatTensor<Self>,
        coefficients: Coefficients,
    ) -> FloatTensor<Self> {
        launch(logits, targets, weights, coefficients, false).0
    }

    fn smoothed_cross_entropy_rows_grad(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
        weights: FloatTensor<Self>,
        coefficients: Coefficients,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (rows, grad) = launch(logits, targets, weights, coefficients, true);
        (rows, grad.expect("requested"))
    }

    fn linear_smoothed_cross_entropy(
        hidden: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        targets: IntTensor<Self>,
        weights: FloatTensor<Self>,
        coefficients: Coefficients,
        scale: f32,
        block_rows: usize,
    ) -> FloatTensor<Self> {
        linear_blocks::<Self>(
            hidden,
            weight,
            bias,
            targets,
            weights,
            coefficients,
            scale,
            block_rows,
            false,
        )
        .0
    }

    fn linear_smoothed_cross_entropy_grad(
        hidden: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        targets: IntTensor<Self>,
        weights: FloatTensor<Self>,
        coefficients: Coefficients,
        scale: f32,
        block_rows: usize,
    ) -> (
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
    ) {
        let (loss, grads) = linear_blocks::<Self>(
            hidden,
            weight,
            bias,
            targets,
            weights,
            coefficients,
            scale,
            block_rows,
            true,
        );
        let (d_hidden, d_weight, d_bias) = grads.expect("requested");
        (loss, d_hidden, d_weight, d_bias)
    }
}

/// The backward step of the fused linear layer + loss: its stored gradients times the upstream
/// gradient of the scalar loss.
#[derive(Debug)]
struct LinearBackward;

impl<B: Backend> Backward<B, 3> for LinearBackward {
    type State = LinearGrads<B>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let upstream = grads.consume::<B>(&ops.node);
        let (d_hidden, d_weight, d_bias) = ops.state;
        let [hidden, weight, bias] = ops.parents;
        let matrix = B::float_reshape(upstream.clone(), Shape::new([1, 1]));
        if let Some(node) = hidden {
            grads.register::<B>(node.id, B::float_mul(d_hidden, matrix.clone()));
        }
        if let Some(node) = weight {
            grads.register::<B>(node.id, B::float_mul(d_weight, matrix));
        }
        if let Some(node) = bias {
            grads.register::<B>(node.id, B::float_mul(d_bias, upstream));
        }
    }
}

/// The step of an output outside the graph.
#[derive(Debug)]
struct Constant;

impl<B: Backend> Backward<B, 0> for Constant {
    type State = ();

    fn backward(self, _: Ops<Self::State, 0>, _: &mut Gradients, _: &mut Checkpointer) {}
}

/// The backward step: the upstream gradient of each row times that row's gradient.
#[derive(Debug)]
struct RowsBackward;

impl<B: Backend> Backward<B, 1> for RowsBackward {
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let upstream = grads.consume::<B>(&ops.node);
        let [node] = ops.parents;
        if let Some(node) = node {
            let n = upstream.shape().num_elements();
            let upstream = B::float_reshape(upstream, Shape::new([n, 1]));
            grads.register::<B>(node.id, B::float_mul(ops.state, upstream));
        }
    }
}

impl<B: SmoothedCrossEntropyOps, C: CheckpointStrategy> SmoothedCrossEntropyOps for Autodiff<B, C> {
    fn smoothed_cross_entropy_rows(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
        weights: FloatTensor<Self>,
        coefficients: Coefficients,
    ) -> FloatTensor<Self> {
        let prep = RowsBackward
            .prepare::<C>([logits.node()])
            .compute_bound()
            .stateful();
        let (logits, weights) = (logits.into_primitive(), weights.into_primitive());
        match prep {
            OpsKind::Tracked(prep) => {
                let (rows, grad) =
                    B::smoothed_cross_entropy_rows_grad(logits, targets, weights, coefficients);
                prep.finish(grad, rows)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::smoothed_cross_entropy_rows(
                logits,
                targets,
                weights,
                coefficients,
            )),
        }
    }

    fn smoothed_cross_entropy_rows_grad(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
        weights: FloatTensor<Self>,
        coefficients: Coefficients,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        // Values only: neither output is part of the graph.
        let (rows, grad) = B::smoothed_cross_entropy_rows_grad(
            logits.into_primitive(),
            targets,
            weights.into_primitive(),
            coefficients,
        );
        (
            Constant.prepare::<C>([]).compute_bound().stateless(rows),
            Constant.prepare::<C>([]).compute_bound().stateless(grad),
        )
    }

    fn linear_smoothed_cross_entropy(
        hidden: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        targets: IntTensor<Self>,
        weights: FloatTensor<Self>,
        coefficients: Coefficients,
        scale: f32,
        block_rows: usize,
    ) -> FloatTensor<Self> {
        let prep = LinearBackward
            .prepare::<C>([hidden.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful();
        let (hidden, weight, bias, weights) = (
            hidden.into_primitive(),
            weight.into_primitive(),
            bias.into_primitive(),
            weights.into_primitive(),
        );
        match prep {
            OpsKind::Tracked(prep) => {
                let (loss, d_hidden, d_weight, d_bias) = B::linear_smoothed_cross_entropy_grad(
                    hidden,
                    weight,
                    bias,
                    targets,
                    weights,
                    coefficients,
                    scale,
                    block_rows,
                );
                prep.finish((d_hidden, d_weight, d_bias), loss)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::linear_smoothed_cross_entropy(
                hidden,
                weight,
                bias,
                targets,
                weights,
                coefficients,
                scale,
                block_rows,
            )),
        }
    }

    fn linear_smoothed_cross_entropy_grad(
        hidden: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        targets: IntTensor<Self>,
        weights: FloatTensor<Self>,
        coefficients: Coefficients,
        scale: f32,
        block_rows: usize,
    ) -> (
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
    ) {
        // Values only: no output is part of the graph.
        let (loss, d_hidden, d_weight, d_bias) = B::linear_smoothed_cross_entropy_grad(
            hidden.into_primitive(),
            weight.into_primitive(),
            bias.into_primitive(),
            targets,
            weights.into_primitive(),
            coefficients,
            scale,
            block_rows,
        );
        let constant = |t| Constant.prepare::<C>([]).compute_bound().stateless(t);
        (
            constant(loss),
            constant(d_hidden),
            constant(d_weight),
            constant(d_bias),
        )
    }
}

/// [`SmoothedCrossEntropyOps::linear_smoothed_cross_entropy`] on Burn tensors on a CubeCL
/// device.
#[allow(clippy::too_many_arguments)]
pub fn linear_smoothed_cross_entropy(
    hidden: burn::tensor::Tensor<2>,
    weight: burn::tensor::Tensor<2>,
    bias: burn::tensor::Tensor<1>,
    targets: burn::tensor::Tensor<1, Int>,
    weights: burn::tensor::Tensor<1>,
    coefficients: Coefficients,
    scale: f32,
    block_rows: usize,
) -> burn::tensor::Tensor<1> {
    burn::tensor::Tensor::from_dispatch(Dispatch::linear_smoothed_cross_entropy(
        hidden.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        targets.into_dispatch(),
        weights.into_dispatch(),
        coefficients,
        scale,
        block_rows,
    ))
}

/// [`SmoothedCrossEntropyOps::smoothed_cross_entropy_rows`] on Burn tensors on a CubeCL device.
pub fn smoothed_cross_entropy_rows(
    logits: burn::tensor::Tensor<2>,
    targets: burn::tensor::Tensor<1, Int>,
    weights: burn::tensor::Tensor<1>,
    coefficients: Coefficients,
) -> burn::tensor::Tensor<1> {
    burn::tensor::Tensor::from_dispatch(Dispatch::smoothed_cross_entropy_rows(
        logits.into_dispatch(),
        targets.into_dispatch(),
        weights.into_dispatch(),
        coefficients,
    ))
}
