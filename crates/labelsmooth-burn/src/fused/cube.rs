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
use burn::backend::{Backend, Dispatch, TensorMetadata, backend_extension};
use burn::tensor::{DType, Int, Shape};
use burn_cubecl::CubeBackend;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;
use cubecl::{CubeCount, CubeDim};

/// Units per cube: one cube takes one row.
pub const BLOCK: usize = 256;

/// The smoothed cross-entropy this crate adds to the CubeCL backends.
#[backend_extension(Cube: cfg(feature = "wgpu"), Autodiff)]
pub trait SmoothedCrossEntropyOps: Backend {
    /// The loss of each row `[n]` of `logits` `[n, k]` against `targets` `[n]` (class ids;
    /// a negative id marks a row to ignore), with class `weights` `[k]` summing to
    /// `weight_sum`, the target class given `on` and every class `off` (so the true class
    /// gets `on` in total with `off` included: `on = off + (1 − α)` for the uniform convention).
    fn smoothed_cross_entropy_rows(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
        weights: FloatTensor<Self>,
        on: f32,
        off: f32,
        weight_sum: f32,
    ) -> FloatTensor<Self>;

    /// The rows of [`smoothed_cross_entropy_rows`](Self::smoothed_cross_entropy_rows) and
    /// the gradient `[n, k]` of each row's loss with respect to its logits, from one launch.
    fn smoothed_cross_entropy_rows_grad(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
        weights: FloatTensor<Self>,
        on: f32,
        off: f32,
        weight_sum: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
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
    #[define(F, I)] _dtypes: [ElemType; 2],
) {
    let row = CUBE_POS_X as usize;
    let unit = UNIT_POS_X as usize;
    let k = logits.shape(1);
    let base = row * k;
    let target = i32::cast_from(targets[row]);

    // The walk: every unit starts from the row's first logit with an empty sum, so that a unit
    // beyond the row's end merges as nothing.
    let mut m = logits[base];
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
        sx += weights[j] * x;
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
            rows[row] = at_target * (lse - logits[base + t]) + off * (weight_sum * lse - sum_wx);
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

/// Launches the kernel: the rows, and the gradient when `with_grad`.
fn launch(
    logits: CubeTensor,
    targets: CubeTensor,
    weights: CubeTensor,
    (on, off, weight_sum): (f32, f32, f32),
    with_grad: bool,
) -> (CubeTensor, Option<CubeTensor>) {
    let logits = into_contiguous(logits);
    let targets = into_contiguous(targets);
    let weights = into_contiguous(weights);
    let shape = logits.shape();
    let (n, k) = (shape[0], shape[1]);
    let dtype = logits.dtype;
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
            CubeCount::Static(n as u32, 1, 1),
            CubeDim::new_1d(BLOCK as u32),
            logits.into_tensor_arg(),
            targets.into_tensor_arg(),
            weights.into_tensor_arg(),
            rows.clone().into_tensor_arg(),
            grad.clone().into_tensor_arg(),
            on,
            off,
            weight_sum,
            BLOCK,
            with_grad,
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
        on: f32,
        off: f32,
        weight_sum: f32,
    ) -> FloatTensor<Self> {
        launch(logits, targets, weights, (on, off, weight_sum), false).0
    }

    fn smoothed_cross_entropy_rows_grad(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
        weights: FloatTensor<Self>,
        on: f32,
        off: f32,
        weight_sum: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (rows, grad) = launch(logits, targets, weights, (on, off, weight_sum), true);
        (rows, grad.expect("requested"))
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
        on: f32,
        off: f32,
        weight_sum: f32,
    ) -> FloatTensor<Self> {
        let prep = RowsBackward
            .prepare::<C>([logits.node()])
            .compute_bound()
            .stateful();
        let (logits, weights) = (logits.into_primitive(), weights.into_primitive());
        match prep {
            OpsKind::Tracked(prep) => {
                let (rows, grad) = B::smoothed_cross_entropy_rows_grad(
                    logits, targets, weights, on, off, weight_sum,
                );
                prep.finish(grad, rows)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::smoothed_cross_entropy_rows(
                logits, targets, weights, on, off, weight_sum,
            )),
        }
    }

    fn smoothed_cross_entropy_rows_grad(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
        weights: FloatTensor<Self>,
        on: f32,
        off: f32,
        weight_sum: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        // Values only: neither output is part of the graph.
        let (rows, grad) = B::smoothed_cross_entropy_rows_grad(
            logits.into_primitive(),
            targets,
            weights.into_primitive(),
            on,
            off,
            weight_sum,
        );
        (
            Constant.prepare::<C>([]).compute_bound().stateless(rows),
            Constant.prepare::<C>([]).compute_bound().stateless(grad),
        )
    }
}

/// [`SmoothedCrossEntropyOps::smoothed_cross_entropy_rows`] on Burn tensors on a CubeCL device.
pub fn smoothed_cross_entropy_rows(
    logits: burn::tensor::Tensor<2>,
    targets: burn::tensor::Tensor<1, Int>,
    weights: burn::tensor::Tensor<1>,
    on: f32,
    off: f32,
    weight_sum: f32,
) -> burn::tensor::Tensor<1> {
    burn::tensor::Tensor::from_dispatch(Dispatch::smoothed_cross_entropy_rows(
        logits.into_dispatch(),
        targets.into_dispatch(),
        weights.into_dispatch(),
        on,
        off,
        weight_sum,
    ))
}
