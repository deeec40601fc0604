//! Layers run as single custom operations on the CPU (flex) backend: the forward pass and the
//! whole backward pass are the plain-array kernels of `labelsmooth-kernels`
//! ([`lstm`](labelsmooth_kernels::lstm), [`conv`](labelsmooth_kernels::conv),
//! [`linear`](labelsmooth_kernels::linear)), and reach Burn's autodiff graph as one node each,
//! instead of the hundreds of small tensor operations the same layer takes when written with
//! Burn's tensor API. This module holds the Burn side: the [`FusedOps`] backend extension, the
//! `Backward` implementations that register the kernels' gradients, and the conversions between
//! tensors and arrays. Other backends keep the tensor-API form, which computes the same function.

#[cfg(feature = "wgpu")]
pub mod cube;

use std::borrow::Cow;
use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, backend_extension};
use burn::tensor::{DType, Tensor, TensorData};

use labelsmooth_kernels::activation;
use labelsmooth_kernels::conv::{ConvDims, ConvTape, conv_block_backward, conv_block_forward};
use labelsmooth_kernels::linear::{DenseDims, dense_backward, dense_forward};
use labelsmooth_kernels::lstm::{LstmDims, LstmTape, lstm_backward, lstm_forward};
use labelsmooth_kernels::mobile::{self, DepthwiseDims, NormDims, PointwiseDims};

/// The operations this crate adds to Burn's backends.
#[backend_extension(Flex, Autodiff)]
pub trait FusedOps: Backend {
    /// The last hidden state `[batch, hidden]` of an LSTM over `x` `[batch, steps, input]`,
    /// with weights `[input, 4·hidden]`, `[hidden, 4·hidden]` and bias `[4·hidden]` (gates
    /// ordered i, f, g, o).
    fn lstm_last_hidden(
        x: FloatTensor<Self>,
        w_ih: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// 2 × 2 max-pooling (stride 2) of ReLU of a `k × k` convolution with bias, stride 1 and
    /// zero padding `k / 2`: images `[batch, channels, height, width]` (even sides), weight
    /// `[filters, channels, k, k]` (odd k), bias `[filters]`; output
    /// `[batch, filters, height / 2, width / 2]`.
    fn conv_relu_pool(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// `x·W + b` for `x` `[rows, inputs]`, `W` `[inputs, outputs]`, `b` `[outputs]`; then ReLU
    /// when `relu`.
    fn dense(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        relu: bool,
    ) -> FloatTensor<Self>;

    /// `min(max(x, 0), 6)` elementwise, any shape.
    fn relu6(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// 1 × 1 convolution without bias: images `[batch, inputs, height, width]`, weight
    /// `[outputs, inputs, 1, 1]`; output `[batch, outputs, height, width]`.
    fn pointwise_conv(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self>;

    /// Depthwise 3 × 3 convolution without bias, zero padding 1: images
    /// `[batch, channels, height, width]`, weight `[channels, 1, 3, 3]`, stride 1 or 2.
    fn depthwise_conv(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: usize,
    ) -> FloatTensor<Self>;

    /// Inference form of a MobileNet convolution block: the pointwise (weight
    /// `[outputs, inputs, 1, 1]`, stride 1) or depthwise (weight `[channels, 1, 3, 3]`, stride 1
    /// or 2) convolution of images `[batch, channels, h, w]`, then batch norm on the given
    /// statistics and ReLU6 when `relu6`, each output plane normalized while it is in cache.
    /// Never tracked for gradients: for inference only.
    #[allow(clippy::too_many_arguments)]
    fn conv_norm_act(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: usize,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        var: FloatTensor<Self>,
        epsilon: f64,
        relu6: bool,
    ) -> FloatTensor<Self>;

    /// The mean and biased variance of each channel of images `[batch, channels, h, w]`, as
    /// rows of a `[2, channels]` tensor; never tracked for gradients.
    fn channel_statistics(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// Batch norm of images `[batch, channels, h, w]` with the batch's own statistics `mean`
    /// and `var` (from [`FusedOps::channel_statistics`] of `x`; the gradient treats them as
    /// functions of `x`), weight `gamma` and bias `beta`, then ReLU6 when `relu6`.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_act(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        var: FloatTensor<Self>,
        epsilon: f64,
        relu6: bool,
    ) -> FloatTensor<Self>;
}

/// The elements of a float32 flex tensor in row-major order (borrowed when already so).
fn floats(t: &FlexTensor) -> Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(
            t.to_contiguous()
                .as_slice::<f32>()
                .expect("float32")
                .to_vec(),
        ),
    }
}

fn flex_tensor(values: Vec<f32>, shape: &[usize]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.to_vec()))
}

/// Hands each tracked parent of an operation its gradient (values and shape), in order.
fn register<const N: usize>(
    grads: &mut Gradients,
    parents: [Option<NodeId>; N],
    values: [Option<(Vec<f32>, Vec<usize>)>; N],
) {
    for (parent, value) in parents.into_iter().zip(values) {
        if let (Some(id), Some((v, shape))) = (parent, value) {
            grads.register::<Flex>(id, flex_tensor(v, &shape));
        }
    }
}

fn lstm_dims(x: &FlexTensor, w_hh: &FlexTensor) -> LstmDims {
    let xs = x.layout().shape();
    LstmDims {
        batch: xs[0],
        steps: xs[1],
        input: xs[2],
        hidden: w_hh.layout().shape()[0],
    }
}

impl FusedOps for Flex {
    fn lstm_last_hidden(
        x: FlexTensor,
        w_ih: FlexTensor,
        w_hh: FlexTensor,
        bias: FlexTensor,
    ) -> FlexTensor {
        let d = lstm_dims(&x, &w_hh);
        let (h, _) = lstm_forward(
            d,
            &floats(&x),
            &floats(&w_ih),
            &floats(&w_hh),
            &floats(&bias),
            false,
        );
        flex_tensor(h, &[d.batch, d.hidden])
    }

    fn conv_relu_pool(x: FlexTensor, weight: FlexTensor, bias: FlexTensor) -> FlexTensor {
        let d = conv_dims(&x, &weight);
        let (y, _) = conv_block_forward(d, &floats(&x), &floats(&weight), &floats(&bias), false);
        flex_tensor(y, &d.output_shape())
    }

    fn dense(x: FlexTensor, weight: FlexTensor, bias: FlexTensor, relu: bool) -> FlexTensor {
        let d = dense_dims(&x, &weight);
        let y = dense_forward(d, &floats(&x), &floats(&weight), &floats(&bias), relu);
        flex_tensor(y, &[d.rows, d.outputs])
    }

    fn relu6(x: FlexTensor) -> FlexTensor {
        let shape = x.layout().shape().to_vec();
        flex_tensor(activation::relu6(&floats(&x)), &shape)
    }

    fn pointwise_conv(x: FlexTensor, weight: FlexTensor) -> FlexTensor {
        let (d, [h, w]) = pointwise_dims(&x, &weight);
        let y = mobile::pointwise_forward(d, &floats(&x), &floats(&weight));
        flex_tensor(y, &[d.batch, d.outputs, h, w])
    }

    fn depthwise_conv(x: FlexTensor, weight: FlexTensor, stride: usize) -> FlexTensor {
        let d = depthwise_dims(&x, stride);
        let (oh, ow) = d.output();
        let y = mobile::depthwise_forward(d, &floats(&x), &floats(&weight));
        flex_tensor(y, &[d.batch, d.channels, oh, ow])
    }

    fn channel_statistics(x: FlexTensor) -> FlexTensor {
        let d = norm_dims(&x);
        let (mut mean, var) = mobile::channel_statistics(d, &floats(&x));
        mean.extend(var);
        flex_tensor(mean, &[2, d.channels])
    }

    fn batch_norm_act(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        mean: FlexTensor,
        var: FlexTensor,
        epsilon: f64,
        relu6: bool,
    ) -> FlexTensor {
        let d = norm_dims(&x);
        let shape = x.layout().shape().to_vec();
        let y = mobile::norm_forward(
            d,
            &floats(&x),
            &floats(&gamma),
            &floats(&beta),
            &floats(&mean),
            &floats(&var),
            epsilon as f32,
            relu6,
        );
        flex_tensor(y, &shape)
    }

    fn conv_norm_act(
        x: FlexTensor,
        weight: FlexTensor,
        stride: usize,
        gamma: FlexTensor,
        beta: FlexTensor,
        mean: FlexTensor,
        var: FlexTensor,
        epsilon: f64,
        relu6: bool,
    ) -> FlexTensor {
        let (scale, shift) = norm_affine(
            &floats(&gamma),
            &floats(&beta),
            &floats(&mean),
            &floats(&var),
            epsilon as f32,
        );
        let affine = mobile::Affine {
            scale: &scale,
            shift: &shift,
            relu6,
        };
        let (x_values, w_values) = (floats(&x), floats(&weight));
        let ws = weight.layout().shape();
        if ws[2..] == [1, 1] {
            let (d, [h, w]) = pointwise_dims(&x, &weight);
            let y = mobile::pointwise_forward_affine(d, &x_values, &w_values, affine);
            flex_tensor(y, &[d.batch, d.outputs, h, w])
        } else {
            let d = depthwise_dims(&x, stride);
            let (oh, ow) = d.output();
            let y = mobile::depthwise_forward_affine(d, &x_values, &w_values, affine);
            flex_tensor(y, &[d.batch, d.channels, oh, ow])
        }
    }
}

/// Batch norm on fixed statistics as a scale and a shift per channel, computed as
/// [`mobile::norm_forward`] does.
fn norm_affine(
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    epsilon: f32,
) -> (Vec<f32>, Vec<f32>) {
    gamma
        .iter()
        .zip(beta)
        .zip(mean.iter().zip(var))
        .map(|((&g, &b), (&m, &v))| {
            let scale = g / (v + epsilon).sqrt();
            (scale, b - m * scale)
        })
        .unzip()
}

fn norm_dims(x: &FlexTensor) -> NormDims {
    let xs = x.layout().shape();
    NormDims {
        batch: xs[0],
        channels: xs[1],
        pixels: xs[2..].iter().product(),
    }
}

/// An operation without tracked parents.
#[derive(Debug)]
struct Untracked;

impl Backward<Flex, 0> for Untracked {
    type State = ();

    fn backward(self, _: Ops<Self::State, 0>, _: &mut Gradients, _: &mut Checkpointer) {}
}

#[derive(Debug)]
struct NormBackward;

/// What the backward pass of batch norm (+ ReLU6) needs.
#[derive(Debug, Clone)]
struct NormState {
    x: FlexTensor,
    /// The output, when ReLU6 followed.
    y: Option<FlexTensor>,
    gamma: FlexTensor,
    mean: FlexTensor,
    var: FlexTensor,
    epsilon: f64,
}

impl Backward<Flex, 3> for NormBackward {
    type State = NormState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let s = ops.state;
        let dy = grads.consume::<Flex>(&ops.node);
        let d = norm_dims(&s.x);
        let shape = s.x.layout().shape().to_vec();
        let y = s.y.as_ref().map(floats);
        let (dx, dgamma, dbeta) = mobile::norm_backward(
            d,
            &floats(&s.x),
            y.as_deref(),
            &floats(&s.gamma),
            &floats(&s.mean),
            &floats(&s.var),
            s.epsilon as f32,
            &floats(&dy),
        );
        register(
            grads,
            ops.parents.map(|p| p.map(|n| n.id)),
            [
                Some((dx, shape)),
                Some((dgamma, vec![d.channels])),
                Some((dbeta, vec![d.channels])),
            ],
        );
    }
}

fn pointwise_dims(x: &FlexTensor, weight: &FlexTensor) -> (PointwiseDims, [usize; 2]) {
    let xs = x.layout().shape();
    (
        PointwiseDims {
            batch: xs[0],
            inputs: xs[1],
            outputs: weight.layout().shape()[0],
            pixels: xs[2] * xs[3],
        },
        [xs[2], xs[3]],
    )
}

fn depthwise_dims(x: &FlexTensor, stride: usize) -> DepthwiseDims {
    let xs = x.layout().shape();
    DepthwiseDims {
        batch: xs[0],
        channels: xs[1],
        height: xs[2],
        width: xs[3],
        stride,
    }
}

#[derive(Debug)]
struct PointwiseBackward;

impl Backward<Flex, 2> for PointwiseBackward {
    /// The input and the weight.
    type State = (FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (x, weight) = ops.state;
        let dy = grads.consume::<Flex>(&ops.node);
        let [px, pw] = ops.parents;
        let (d, [h, w]) = pointwise_dims(&x, &weight);
        let (dx, dw) = mobile::pointwise_backward(
            d,
            &floats(&x),
            &floats(&weight),
            &floats(&dy),
            px.is_some(),
        );
        register(
            grads,
            [px, pw].map(|p| p.map(|n| n.id)),
            [
                dx.map(|v| (v, vec![d.batch, d.inputs, h, w])),
                Some((dw, vec![d.outputs, d.inputs, 1, 1])),
            ],
        );
    }
}

#[derive(Debug)]
struct DepthwiseBackward;

impl Backward<Flex, 2> for DepthwiseBackward {
    /// The input, the weight and the stride.
    type State = (FlexTensor, FlexTensor, usize);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (x, weight, stride) = ops.state;
        let dy = grads.consume::<Flex>(&ops.node);
        let [px, pw] = ops.parents;
        let d = depthwise_dims(&x, stride);
        let (dx, dw) = mobile::depthwise_backward(
            d,
            &floats(&x),
            &floats(&weight),
            &floats(&dy),
            px.is_some(),
        );
        register(
            grads,
            [px, pw].map(|p| p.map(|n| n.id)),
            [
                dx.map(|v| (v, vec![d.batch, d.channels, d.height, d.width])),
                Some((dw, vec![d.channels, 1, 3, 3])),
            ],
        );
    }
}

#[derive(Debug)]
struct Relu6Backward;

impl Backward<Flex, 1> for Relu6Backward {
    /// The output.
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let y = ops.state;
        let dy = grads.consume::<Flex>(&ops.node);
        let shape = y.layout().shape().to_vec();
        let dx = activation::relu6_backward(&floats(&y), &floats(&dy));
        register(
            grads,
            ops.parents.map(|p| p.map(|n| n.id)),
            [Some((dx, shape))],
        );
    }
}

fn dense_dims(x: &FlexTensor, weight: &FlexTensor) -> DenseDims {
    let ws = weight.layout().shape();
    DenseDims {
        rows: x.layout().shape()[0],
        inputs: ws[0],
        outputs: ws[1],
    }
}

#[derive(Debug)]
struct DenseBackward;

/// What the backward pass of the dense layer needs.
#[derive(Debug, Clone)]
struct DenseState {
    dims: DenseDims,
    x: FlexTensor,
    weight: FlexTensor,
    /// The output, when the layer has a ReLU.
    y: Option<FlexTensor>,
}

impl Backward<Flex, 3> for DenseBackward {
    type State = DenseState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let s = ops.state;
        let d = s.dims;
        let dy = grads.consume::<Flex>(&ops.node);
        let [px, pw, pb] = ops.parents;
        let y = s.y.as_ref().map(floats);
        let g = dense_backward(
            d,
            &floats(&s.x),
            &floats(&s.weight),
            y.as_deref(),
            &floats(&dy),
            px.is_some(),
        );
        register(
            grads,
            [px, pw, pb].map(|p| p.map(|n| n.id)),
            [
                g.x.map(|v| (v, vec![d.rows, d.inputs])),
                Some((g.weight, vec![d.inputs, d.outputs])),
                Some((g.bias, vec![d.outputs])),
            ],
        );
    }
}

fn conv_dims(x: &FlexTensor, weight: &FlexTensor) -> ConvDims {
    let xs = x.layout().shape();
    let ws = weight.layout().shape();
    ConvDims {
        batch: xs[0],
        channels: xs[1],
        height: xs[2],
        width: xs[3],
        filters: ws[0],
        kernel: ws[2],
    }
}

#[derive(Debug)]
struct ConvBackward;

/// What the backward pass of the convolution block needs.
#[derive(Debug, Clone)]
struct ConvState {
    dims: ConvDims,
    weight: FlexTensor,
    tape: Arc<ConvTape>,
}

impl Backward<Flex, 3> for ConvBackward {
    type State = ConvState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let s = ops.state;
        let d = s.dims;
        let dy = grads.consume::<Flex>(&ops.node);
        let [px, pw, pb] = ops.parents;
        let g = conv_block_backward(d, &floats(&s.weight), &s.tape, &floats(&dy), px.is_some());
        register(
            grads,
            [px, pw, pb].map(|p| p.map(|n| n.id)),
            [
                g.x.map(|v| (v, vec![d.batch, d.channels, d.height, d.width])),
                Some((g.weight, vec![d.filters, d.channels, d.kernel, d.kernel])),
                Some((g.bias, vec![d.filters])),
            ],
        );
    }
}

#[derive(Debug)]
struct LstmBackward;

/// What the backward pass of the LSTM needs: its inputs and the forward pass's tape.
#[derive(Debug, Clone)]
struct LstmState {
    dims: LstmDims,
    x: FlexTensor,
    w_ih: FlexTensor,
    w_hh: FlexTensor,
    tape: Arc<LstmTape>,
}

impl Backward<Flex, 4> for LstmBackward {
    type State = LstmState;

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let s = ops.state;
        let d = s.dims;
        let d_h = grads.consume::<Flex>(&ops.node);
        let g = lstm_backward(
            d,
            &floats(&s.x),
            &floats(&s.w_ih),
            &floats(&s.w_hh),
            &s.tape,
            &floats(&d_h),
        );
        let g4 = 4 * d.hidden;
        register(
            grads,
            ops.parents.map(|p| p.map(|n| n.id)),
            [
                Some((g.x, vec![d.batch, d.steps, d.input])),
                Some((g.w_ih, vec![d.input, g4])),
                Some((g.w_hh, vec![d.hidden, g4])),
                Some((g.bias, vec![g4])),
            ],
        );
    }
}

impl<C: CheckpointStrategy> FusedOps for Autodiff<Flex, C> {
    fn lstm_last_hidden(
        x: FloatTensor<Self>,
        w_ih: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let prep = LstmBackward
            .prepare::<C>([x.node(), w_ih.node(), w_hh.node(), bias.node()])
            .compute_bound()
            .stateful();
        let (x, w_ih, w_hh, bias) = (
            x.into_primitive(),
            w_ih.into_primitive(),
            w_hh.into_primitive(),
            bias.into_primitive(),
        );
        let d = lstm_dims(&x, &w_hh);
        match prep {
            OpsKind::Tracked(prep) => {
                let (h, tape) = lstm_forward(
                    d,
                    &floats(&x),
                    &floats(&w_ih),
                    &floats(&w_hh),
                    &floats(&bias),
                    true,
                );
                let state = LstmState {
                    dims: d,
                    x,
                    w_ih,
                    w_hh,
                    tape: Arc::new(tape.expect("tape kept")),
                };
                prep.finish(state, flex_tensor(h, &[d.batch, d.hidden]))
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::lstm_last_hidden(x, w_ih, w_hh, bias)),
        }
    }

    fn conv_relu_pool(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let prep = ConvBackward
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful();
        let (x, weight, bias) = (
            x.into_primitive(),
            weight.into_primitive(),
            bias.into_primitive(),
        );
        let d = conv_dims(&x, &weight);
        match prep {
            OpsKind::Tracked(prep) => {
                let (y, tape) =
                    conv_block_forward(d, &floats(&x), &floats(&weight), &floats(&bias), true);
                let state = ConvState {
                    dims: d,
                    weight,
                    tape: Arc::new(tape.expect("tape kept")),
                };
                prep.finish(state, flex_tensor(y, &d.output_shape()))
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::conv_relu_pool(x, weight, bias)),
        }
    }

    fn dense(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        relu: bool,
    ) -> FloatTensor<Self> {
        let prep = DenseBackward
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful();
        let (x, weight, bias) = (
            x.into_primitive(),
            weight.into_primitive(),
            bias.into_primitive(),
        );
        match prep {
            OpsKind::Tracked(prep) => {
                let d = dense_dims(&x, &weight);
                let y = dense_forward(d, &floats(&x), &floats(&weight), &floats(&bias), relu);
                let y = flex_tensor(y, &[d.rows, d.outputs]);
                let state = DenseState {
                    dims: d,
                    x,
                    weight,
                    y: relu.then(|| y.clone()),
                };
                prep.finish(state, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::dense(x, weight, bias, relu)),
        }
    }

    fn relu6(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let prep = Relu6Backward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful();
        let x = x.into_primitive();
        match prep {
            OpsKind::Tracked(prep) => {
                let y = Flex::relu6(x);
                prep.finish(y.clone(), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::relu6(x)),
        }
    }

    fn pointwise_conv(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        let prep = PointwiseBackward
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful();
        let (x, weight) = (x.into_primitive(), weight.into_primitive());
        match prep {
            OpsKind::Tracked(prep) => {
                let y = Flex::pointwise_conv(x.clone(), weight.clone());
                prep.finish((x, weight), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::pointwise_conv(x, weight)),
        }
    }

    fn depthwise_conv(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: usize,
    ) -> FloatTensor<Self> {
        let prep = DepthwiseBackward
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful();
        let (x, weight) = (x.into_primitive(), weight.into_primitive());
        match prep {
            OpsKind::Tracked(prep) => {
                let y = Flex::depthwise_conv(x.clone(), weight.clone(), stride);
                prep.finish((x, weight, stride), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::depthwise_conv(x, weight, stride)),
        }
    }

    fn conv_norm_act(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: usize,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        var: FloatTensor<Self>,
        epsilon: f64,
        relu6: bool,
    ) -> FloatTensor<Self> {
        // Inference only: no parents, as documented on the trait.
        Untracked
            .prepare::<C>([])
            .compute_bound()
            .stateless(Flex::conv_norm_act(
                x.into_primitive(),
                weight.into_primitive(),
                stride,
                gamma.into_primitive(),
                beta.into_primitive(),
                mean.into_primitive(),
                var.into_primitive(),
                epsilon,
                relu6,
            ))
    }

    fn channel_statistics(x: FloatTensor<Self>) -> FloatTensor<Self> {
        // No parents: the statistics are a constant to the graph.
        Untracked
            .prepare::<C>([])
            .compute_bound()
            .stateless(Flex::channel_statistics(x.into_primitive()))
    }

    fn batch_norm_act(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        var: FloatTensor<Self>,
        epsilon: f64,
        relu6: bool,
    ) -> FloatTensor<Self> {
        let prep = NormBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful();
        let (x, gamma, beta, mean, var) = (
            x.into_primitive(),
            gamma.into_primitive(),
            beta.into_primitive(),
            mean.into_primitive(),
            var.into_primitive(),
        );
        match prep {
            OpsKind::Tracked(prep) => {
                let y = Flex::batch_norm_act(
                    x.clone(),
                    gamma.clone(),
                    beta,
                    mean.clone(),
                    var.clone(),
                    epsilon,
                    relu6,
                );
                let state = NormState {
                    x,
                    y: relu6.then(|| y.clone()),
                    gamma,
                    mean,
                    var,
                    epsilon,
                };
                prep.finish(state, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::batch_norm_act(
                x, gamma, beta, mean, var, epsilon, relu6,
            )),
        }
    }
}

/// [`FusedOps::relu6`] on Burn tensors (CPU backend, float32 only: see [`fusable`]).
pub fn relu6<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(Dispatch::relu6(x.into_dispatch()))
}

/// [`FusedOps::pointwise_conv`] on Burn tensors (CPU backend, float32 only).
pub fn pointwise_conv(x: Tensor<4>, weight: Tensor<4>) -> Tensor<4> {
    Tensor::from_dispatch(Dispatch::pointwise_conv(
        x.into_dispatch(),
        weight.into_dispatch(),
    ))
}

/// [`FusedOps::depthwise_conv`] on Burn tensors (CPU backend, float32 only).
pub fn depthwise_conv(x: Tensor<4>, weight: Tensor<4>, stride: usize) -> Tensor<4> {
    Tensor::from_dispatch(Dispatch::depthwise_conv(
        x.into_dispatch(),
        weight.into_dispatch(),
        stride,
    ))
}

/// [`FusedOps::conv_norm_act`] on Burn tensors (CPU backend, float32 only; nothing tracked
/// for gradients): `statistics` are the running mean and variance.
#[allow(clippy::too_many_arguments)]
pub fn conv_norm_act(
    x: Tensor<4>,
    weight: Tensor<4>,
    stride: usize,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    (mean, var): (Tensor<1>, Tensor<1>),
    epsilon: f64,
    relu6: bool,
) -> Tensor<4> {
    Tensor::from_dispatch(Dispatch::conv_norm_act(
        x.into_dispatch(),
        weight.into_dispatch(),
        stride,
        gamma.into_dispatch(),
        beta.into_dispatch(),
        mean.into_dispatch(),
        var.into_dispatch(),
        epsilon,
        relu6,
    ))
}

/// [`FusedOps::channel_statistics`] on Burn tensors: `(mean, variance)`, `[channels]` each.
pub fn channel_statistics(x: Tensor<4>) -> (Tensor<1>, Tensor<1>) {
    let [_, channels, ..] = x.dims();
    let s: Tensor<2> = Tensor::from_dispatch(Dispatch::channel_statistics(x.into_dispatch()));
    (
        s.clone().narrow(0, 0, 1).reshape([channels]),
        s.narrow(0, 1, 1).reshape([channels]),
    )
}

/// [`FusedOps::batch_norm_act`] on Burn tensors (CPU backend, float32 only).
pub fn batch_norm_act(
    x: Tensor<4>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    (mean, var): (Tensor<1>, Tensor<1>),
    epsilon: f64,
    relu6: bool,
) -> Tensor<4> {
    Tensor::from_dispatch(Dispatch::batch_norm_act(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        mean.into_dispatch(),
        var.into_dispatch(),
        epsilon,
        relu6,
    ))
}

/// Whether `t` lives on the CPU backend in float32, where the fused operations run.
pub fn fusable<const D: usize>(t: &Tensor<D>) -> bool {
    crate::loss::is_cpu(&t.device()) && t.dtype() == DType::F32
}

/// [`FusedOps::lstm_last_hidden`] on Burn tensors (CPU backend, float32 only: see
/// [`fusable`]).
pub fn lstm_last_hidden(
    x: Tensor<3>,
    w_ih: Tensor<2>,
    w_hh: Tensor<2>,
    bias: Tensor<1>,
) -> Tensor<2> {
    Tensor::from_dispatch(Dispatch::lstm_last_hidden(
        x.into_dispatch(),
        w_ih.into_dispatch(),
        w_hh.into_dispatch(),
        bias.into_dispatch(),
    ))
}

/// [`FusedOps::conv_relu_pool`] on Burn tensors (CPU backend, float32 only: see [`fusable`]).
pub fn conv_relu_pool(x: Tensor<4>, weight: Tensor<4>, bias: Tensor<1>) -> Tensor<4> {
    Tensor::from_dispatch(Dispatch::conv_relu_pool(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
    ))
}

/// [`FusedOps::dense`] on Burn tensors (CPU backend, float32 only: see [`fusable`]).
pub fn dense(x: Tensor<2>, weight: Tensor<2>, bias: Tensor<1>, relu: bool) -> Tensor<2> {
    Tensor::from_dispatch(Dispatch::dense(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        relu,
    ))
}
