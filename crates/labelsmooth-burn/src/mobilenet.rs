//! MobileNetV2 as `torchvision.models.mobilenet_v2` builds it, layer for layer, so that its
//! weights load one-to-one ([`crate::import`]).
//!
//! `features` is the same sequence as torchvision's: a 3×3 stride-2 convolution with batch
//! norm and ReLU6, seventeen inverted residual blocks (expansion t, channels c, repeats n,
//! stride s: (1,16,1,1), (6,24,2,2), (6,32,3,2), (6,64,4,2), (6,96,3,1), (6,160,3,2),
//! (6,320,1,1)), a 1×1 convolution to 1280 channels (more for widths above 1), each with
//! batch norm (ε = 1e-5, momentum 0.1) and ReLU6 except the linear projection of each block.
//! Then global average pooling, dropout and the linear classifier. Channels are scaled by the
//! width and rounded to multiples of 8 as torchvision's `_make_divisible` does.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Initializer, Linear, LinearConfig,
    PaddingConfig2d,
};
use burn::tensor::{Device, Tensor};

/// The inverted residual stages: (expansion t, channels c, repeats n, first stride s).
pub const STAGES: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

/// `v` rounded to the nearest multiple of `divisor`, at least `divisor`, and never more than
/// 10% below `v` (torchvision's `_make_divisible`).
///
/// ```
/// use labelsmooth_burn::mobilenet::make_divisible;
/// assert_eq!(make_divisible(32.0 * 0.35, 8), 16);
/// assert_eq!(make_divisible(1280.0, 8), 1280);
/// assert_eq!(make_divisible(24.0 * 0.5, 8), 16);
/// ```
pub fn make_divisible(v: f64, divisor: usize) -> usize {
    let d = divisor as f64;
    let mut rounded = (((v + d / 2.0).floor() as usize) / divisor * divisor).max(divisor);
    if (rounded as f64) < 0.9 * v {
        rounded += divisor;
    }
    rounded
}

/// Configuration of [`MobileNetV2`].
#[derive(Config, Debug)]
pub struct MobileNetV2Config {
    /// Classes of the classifier.
    pub classes: usize,
    /// Width multiplier of every layer's channels (torchvision's `width_mult`).
    #[config(default = 1.0)]
    pub width: f64,
    /// Dropout before the classifier (torchvision's default 0.2).
    #[config(default = 0.2)]
    pub dropout: f64,
}

impl MobileNetV2Config {
    /// Channels of the first convolution.
    pub fn stem_channels(&self) -> usize {
        make_divisible(32.0 * self.width, 8)
    }

    /// Channels of the pooled features (the classifier's inputs).
    pub fn feature_channels(&self) -> usize {
        make_divisible(1280.0 * self.width.max(1.0), 8)
    }

    /// Builds the network with torchvision's initialization: convolutions Kaiming-normal
    /// (fan-out), batch norm weights 1 and biases 0, the classifier N(0, 0.01²) with zero bias.
    pub fn init(&self, device: &Device) -> MobileNetV2 {
        let mut features = Vec::new();
        let mut c_in = self.stem_channels();
        features.push(Feature::Stem(ConvBnAct::new(3, c_in, 3, 2, 1, device)));
        for &(t, c, n, s) in &STAGES {
            let c_out = make_divisible(c as f64 * self.width, 8);
            for i in 0..n {
                let stride = if i == 0 { s } else { 1 };
                features.push(Feature::Block(InvertedResidual::new(
                    c_in, c_out, stride, t, device,
                )));
                c_in = c_out;
            }
        }
        let last = self.feature_channels();
        features.push(Feature::Stem(ConvBnAct::new(c_in, last, 1, 1, 1, device)));
        let classifier = classifier(last, self.classes, device);
        MobileNetV2 {
            features,
            pool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            dropout: DropoutConfig::new(self.dropout).init(),
            classifier,
        }
    }
}

/// The classifier as torchvision initializes it: weights N(0, 0.01²), biases 0.
fn classifier(inputs: usize, classes: usize, device: &Device) -> Linear {
    let mut layer = LinearConfig::new(inputs, classes)
        .with_initializer(Initializer::Normal {
            mean: 0.0,
            std: 0.01,
        })
        .init(device);
    if let Some(b) = layer.bias.take() {
        layer.bias = Some(b.map(|t| t.zeros_like()));
    }
    layer
}

fn conv(
    c_in: usize,
    c_out: usize,
    kernel: usize,
    stride: usize,
    groups: usize,
    device: &Device,
) -> Conv2d {
    let pad = (kernel - 1) / 2;
    Conv2dConfig::new([c_in, c_out], [kernel, kernel])
        .with_stride([stride, stride])
        .with_groups(groups)
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(false)
        .with_initializer(Initializer::KaimingNormal {
            gain: std::f64::consts::SQRT_2,
            fan_out_only: true,
        })
        .init(device)
}

fn batch_norm(c: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(c)
        .with_epsilon(1e-5)
        .with_momentum(0.1)
        .init(device)
}

/// ReLU6: one fused operation on the CPU backend, Burn's clamp elsewhere.
fn relu6(x: Tensor<4>) -> Tensor<4> {
    if crate::fused::fusable(&x) {
        crate::fused::relu6(x)
    } else {
        x.clamp(0.0, 6.0)
    }
}

/// The two convolutions the CPU kernels fuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    /// 1×1, stride 1, one group.
    Pointwise,
    /// 3×3, one filter per channel, stride 1 or 2.
    Depthwise,
}

/// Which fused kernel computes `conv` on `x`, if any (only on the CPU backend in float32).
fn kernel_for(conv: &Conv2d, x: &Tensor<4>) -> Option<Kernel> {
    let [out, per_group, kh, kw] = conv.weight.dims();
    let [_, channels, ..] = x.dims();
    if !crate::fused::fusable(x) || conv.dilation != [1, 1] || conv.stride[0] != conv.stride[1] {
        return None;
    }
    if [kh, kw] == [1, 1] && conv.groups == 1 && conv.stride == [1, 1] {
        return Some(Kernel::Pointwise);
    }
    let depthwise = conv.groups == channels && per_group == 1 && out == channels;
    ([kh, kw] == [3, 3] && depthwise && conv.stride[0] <= 2).then_some(Kernel::Depthwise)
}

/// The convolution without bias: the fused pointwise or depthwise operation on the CPU backend
/// when it is one of those, Burn's `conv2d` otherwise.
fn convolve(conv: &Conv2d, weight: Tensor<4>, x: Tensor<4>) -> Tensor<4> {
    match kernel_for(conv, &x) {
        Some(Kernel::Pointwise) => return crate::fused::pointwise_conv(x, weight),
        Some(Kernel::Depthwise) => return crate::fused::depthwise_conv(x, weight, conv.stride[0]),
        None => {}
    }
    let [_, _, kh, kw] = weight.dims();
    // Every convolution here pads (k − 1) / 2 on each side, as torchvision's.
    let (pad_rows, pad_cols) = ((kh - 1) / 2, (kw - 1) / 2);
    burn::tensor::module::conv2d(
        x,
        weight,
        None,
        burn::tensor::ops::ConvOptions::new_with_padding(
            conv.stride,
            [(pad_rows, pad_rows), (pad_cols, pad_cols)],
            conv.dilation,
            conv.groups,
        ),
    )
}

/// Batch norm on its running statistics folded into the convolution before it: the weights
/// scaled by γ/√(σ² + ε) per output channel and a bias β − μ·γ/√(σ² + ε), one pass over the
/// activations instead of two.
fn folded_conv_bn(conv: &Conv2d, bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    let scale = bn.gamma.val() / (bn.running_var.value() + bn.epsilon).sqrt();
    let [out, ..] = conv.weight.dims();
    let weight = conv.weight.val() * scale.clone().reshape([out, 1, 1, 1]);
    let bias = bn.beta.val() - bn.running_mean.value() * scale;
    convolve(conv, weight, x) + bias.reshape([1, out, 1, 1])
}

/// Batch norm on the batch's own statistics as one operation (then ReLU6 when `relu6`), with
/// the running statistics updated as Burn's `BatchNorm` does (momentum, biased variance).
fn fused_batch_norm(bn: &BatchNorm, y: Tensor<4>, relu6: bool) -> Tensor<4> {
    let device = y.device();
    let (mean, var) = crate::fused::channel_statistics(y.clone());
    let m = bn.momentum;
    let update = |running: &burn::module::RunningState<Tensor<1>>, batch: &Tensor<1>| {
        let next = running
            .value_sync()
            .to_device(&device)
            .mul_scalar(1.0 - m)
            .add(batch.clone().mul_scalar(m));
        running.update(next.detach());
    };
    update(&bn.running_mean, &mean);
    update(&bn.running_var, &var);
    crate::fused::batch_norm_act(
        y,
        bn.gamma.val(),
        bn.beta.val(),
        (mean, var),
        bn.epsilon,
        relu6,
    )
}

/// Convolution, batch norm, and ReLU6 when `act`. On the batch's statistics (training), batch
/// norm and the activation are one fused operation on the CPU backend. On the running
/// statistics (inference, or a frozen backbone), they are one fused pass after the convolution
/// on the CPU backend when nothing is tracked for gradients, and batch norm is folded into the
/// convolution otherwise.
fn conv_bn_act(conv: &Conv2d, bn: &BatchNorm, x: Tensor<4>, act: bool) -> Tensor<4> {
    let batch_statistics = x.device().is_autodiff() && bn.training.is_enabled();
    if batch_statistics {
        let y = convolve(conv, conv.weight.val(), x);
        if crate::fused::fusable(&y) {
            return fused_batch_norm(bn, y, act);
        }
        let y = bn.forward(y);
        return if act { relu6(y) } else { y };
    }
    let untracked = !x.is_require_grad()
        && !conv.weight.val().is_require_grad()
        && !bn.gamma.val().is_require_grad()
        && !bn.beta.val().is_require_grad();
    if untracked && crate::fused::fusable(&x) {
        // Nothing to differentiate: batch norm on the running statistics and the activation
        // applied to each plane of the convolution's output as it is written.
        let statistics = (bn.running_mean.value(), bn.running_var.value());
        if kernel_for(conv, &x).is_some() {
            return crate::fused::conv_norm_act(
                x,
                conv.weight.val(),
                conv.stride[0],
                bn.gamma.val(),
                bn.beta.val(),
                statistics,
                bn.epsilon,
                act,
            );
        }
        let y = convolve(conv, conv.weight.val(), x);
        return crate::fused::batch_norm_act(
            y,
            bn.gamma.val(),
            bn.beta.val(),
            statistics,
            bn.epsilon,
            act,
        );
    }
    let y = folded_conv_bn(conv, bn, x);
    if act { relu6(y) } else { y }
}

/// Convolution (no bias), batch norm, ReLU6: torchvision's `Conv2dNormActivation`.
#[derive(Module, Debug)]
pub struct ConvBnAct {
    /// The convolution.
    pub conv: Conv2d,
    /// Its batch norm.
    pub bn: BatchNorm,
}

impl ConvBnAct {
    fn new(
        c_in: usize,
        c_out: usize,
        kernel: usize,
        stride: usize,
        groups: usize,
        device: &Device,
    ) -> Self {
        ConvBnAct {
            conv: conv(c_in, c_out, kernel, stride, groups, device),
            bn: batch_norm(c_out, device),
        }
    }

    /// ReLU6(BN(conv(x))).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        conv_bn_act(&self.conv, &self.bn, x, true)
    }
}

/// One layer of an inverted residual block, in torchvision's order: `ConvBnAct` for the
/// expansion and the depthwise convolution, then the projection's `Conv` and its `Norm`.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Layer {
    /// Convolution, batch norm, ReLU6.
    ConvBnAct(ConvBnAct),
    /// The linear 1×1 projection.
    Conv(Conv2d),
    /// The projection's batch norm (no activation after it).
    Norm(BatchNorm),
}

impl Layer {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Layer::ConvBnAct(l) => l.forward(x),
            Layer::Conv(c) => convolve(c, c.weight.val(), x),
            Layer::Norm(b) => b.forward(x),
        }
    }
}

/// 1×1 expansion (when t > 1), 3×3 depthwise convolution, linear 1×1 projection, and the input
/// added back when the stride is 1 and the channels stay the same.
#[derive(Module, Debug)]
pub struct InvertedResidual {
    /// The layers, as torchvision's `conv` sequence.
    pub conv: Vec<Layer>,
    residual: bool,
}

impl InvertedResidual {
    fn new(c_in: usize, c_out: usize, stride: usize, t: usize, device: &Device) -> Self {
        let hidden = c_in * t;
        let mut conv = Vec::new();
        if t != 1 {
            conv.push(Layer::ConvBnAct(ConvBnAct::new(
                c_in, hidden, 1, 1, 1, device,
            )));
        }
        conv.push(Layer::ConvBnAct(ConvBnAct::new(
            hidden, hidden, 3, stride, hidden, device,
        )));
        conv.push(Layer::Conv(self::conv(hidden, c_out, 1, 1, 1, device)));
        conv.push(Layer::Norm(batch_norm(c_out, device)));
        InvertedResidual {
            conv,
            residual: stride == 1 && c_in == c_out,
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut h = x.clone();
        let mut layers = self.conv.iter().peekable();
        while let Some(l) = layers.next() {
            h = match (l, layers.peek()) {
                (Layer::Conv(c), Some(Layer::Norm(b))) => {
                    layers.next();
                    conv_bn_act(c, b, h, false)
                }
                _ => l.forward(h),
            };
        }
        if self.residual { h + x } else { h }
    }
}

/// One entry of `features`: a convolution block (the first and the last) or an inverted
/// residual block.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Feature {
    /// Convolution, batch norm, ReLU6.
    Stem(ConvBnAct),
    /// Inverted residual block.
    Block(InvertedResidual),
}

impl Feature {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Feature::Stem(l) => l.forward(x),
            Feature::Block(b) => b.forward(x),
        }
    }
}

/// MobileNetV2 (see the module documentation).
#[derive(Module, Debug)]
pub struct MobileNetV2 {
    /// The convolutional backbone, as torchvision's `features`.
    pub features: Vec<Feature>,
    pool: AdaptiveAvgPool2d,
    dropout: Dropout,
    /// The linear classifier on the pooled features.
    pub classifier: Linear,
}

impl MobileNetV2 {
    /// Logits `[n, classes]` of images `[n, 3, h, w]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.head(self.features(x))
    }

    /// The pooled features `[n, channels]` (global average of the backbone's last map).
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = x;
        for f in &self.features {
            x = f.forward(x);
        }
        self.pool.forward(x).flatten(1, 3)
    }

    /// Dropout, then the classifier, on pooled features.
    pub fn head(&self, features: Tensor<2>) -> Tensor<2> {
        self.classifier.forward(self.dropout.forward(features))
    }

    /// The same network with a new classifier for `classes` classes (initialized as
    /// torchvision does), for fine-tuning on other data.
    pub fn with_classes(mut self, classes: usize, device: &Device) -> MobileNetV2 {
        let [inputs, _] = self.classifier.weight.dims();
        self.classifier = classifier(inputs, classes, device);
        self
    }

    /// The backbone frozen (no gradients, batch norm on its running statistics) or not.
    pub fn with_frozen_backbone(mut self, frozen: bool) -> MobileNetV2 {
        self.features = self
            .features
            .into_iter()
            .map(|f| if frozen { f.freeze() } else { f.unfreeze() })
            .collect();
        self
    }
}
