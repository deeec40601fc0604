//! The model families: an MLP for tables, a small CNN for images, and Embedding → LSTM → Dense
//! → Dense for text (MobileNetV2 is in [`crate::mobilenet`]). Each is a `Module` built from its
//! `Config`.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{
    Dropout, DropoutConfig, Embedding, EmbeddingConfig, Initializer, Linear, LinearConfig,
    PaddingConfig2d,
};
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::{Device, Int, Tensor};

/// `layer(x)`, then ReLU when `relu_after`: one fused operation on the CPU backend
/// ([`crate::fused::dense`]), Burn's `Linear` elsewhere.
fn dense(layer: &Linear, x: Tensor<2>, relu_after: bool) -> Tensor<2> {
    match &layer.bias {
        Some(bias) if crate::fused::fusable(&x) => {
            crate::fused::dense(x, layer.weight.val(), bias.val(), relu_after)
        }
        _ => {
            let y = layer.forward(x);
            if relu_after { relu(y) } else { y }
        }
    }
}

/// Configuration of [`Mlp`].
#[derive(Config, Debug)]
pub struct MlpConfig {
    /// Input features.
    pub input: usize,
    /// Sizes of the hidden layers.
    pub hidden: Vec<usize>,
    /// Classes.
    pub classes: usize,
    /// Dropout probability after each hidden layer (0 = none).
    #[config(default = 0.0)]
    pub dropout: f64,
}

impl MlpConfig {
    /// Builds the network.
    pub fn init(&self, device: &Device) -> Mlp {
        let mut layers = Vec::new();
        let mut d = self.input;
        for &h in &self.hidden {
            layers.push(LinearConfig::new(d, h).init(device));
            d = h;
        }
        Mlp {
            layers,
            output: LinearConfig::new(d, self.classes).init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

/// Fully connected network with ReLU: `input → hidden... → classes` logits.
#[derive(Module, Debug)]
pub struct Mlp {
    /// Hidden layers.
    pub layers: Vec<Linear>,
    /// Output layer (logits).
    pub output: Linear,
    dropout: Dropout,
}

impl Mlp {
    /// Logits `[n, classes]` of inputs `[n, input]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        dense(&self.output, self.features(x), false)
    }

    /// Activations of the last hidden layer (the penultimate layer).
    pub fn features(&self, x: Tensor<2>) -> Tensor<2> {
        let mut x = x;
        for layer in &self.layers {
            x = self.dropout.forward(dense(layer, x, true));
        }
        x
    }
}

/// Configuration of [`ConvNet`].
#[derive(Config, Debug)]
pub struct ConvNetConfig {
    /// Input channels (1 grey, 3 RGB).
    pub channels: usize,
    /// Input height and width (square images, divisible by 4).
    pub size: usize,
    /// Classes.
    pub classes: usize,
    /// Filters of the two convolutions.
    #[config(default = "[16, 32]")]
    pub filters: [usize; 2],
    /// Units of the dense hidden layer.
    #[config(default = 128)]
    pub hidden: usize,
    /// Dropout before the output layer (0 = none).
    #[config(default = 0.0)]
    pub dropout: f64,
}

impl ConvNetConfig {
    /// Builds the network.
    pub fn init(&self, device: &Device) -> ConvNet {
        let [f1, f2] = self.filters;
        let side = self.size / 4;
        let conv = |i: usize, o: usize| {
            Conv2dConfig::new([i, o], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device)
        };
        ConvNet {
            conv1: conv(self.channels, f1),
            conv2: conv(f1, f2),
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            dense: LinearConfig::new(f2 * side * side, self.hidden).init(device),
            output: LinearConfig::new(self.hidden, self.classes).init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

/// Two 3×3 convolutions with ReLU and 2×2 max-pooling, then a dense hidden layer and the output:
/// the CNN of the PyTorch reference benchmark.
#[derive(Module, Debug)]
pub struct ConvNet {
    conv1: Conv2d,
    conv2: Conv2d,
    pool: MaxPool2d,
    dense: Linear,
    output: Linear,
    dropout: Dropout,
}

impl ConvNet {
    /// The output layer (its weight columns are the class templates).
    pub fn output_layer(&self) -> &Linear {
        &self.output
    }

    /// Logits `[n, classes]` of images `[n, channels, size, size]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        dense(&self.output, self.features(x), false)
    }

    /// max-pool(ReLU(conv(x))): one fused operation on the CPU backend
    /// ([`crate::fused::conv_relu_pool`]), Burn's tensor operations elsewhere.
    fn conv_block(&self, conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
        match &conv.bias {
            Some(bias) if crate::fused::fusable(&x) => {
                crate::fused::conv_relu_pool(x, conv.weight.val(), bias.val())
            }
            _ => self.pool.forward(relu(conv.forward(x))),
        }
    }

    /// The dense hidden layer's activations (the penultimate layer).
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.conv_block(&self.conv1, x);
        let x = self.conv_block(&self.conv2, x);
        let x: Tensor<2> = x.flatten(1, 3);
        self.dropout.forward(dense(&self.dense, x, true))
    }
}

/// Configuration of [`FastLstm`].
#[derive(Config, Debug)]
pub struct FastLstmConfig {
    /// Input features per step.
    pub input: usize,
    /// Hidden units.
    pub hidden: usize,
}

impl FastLstmConfig {
    /// Builds the layer (Xavier-uniform weights, forget-gate bias 1).
    pub fn init(&self, device: &Device) -> FastLstm {
        let h = self.hidden;
        let init = Initializer::XavierUniform { gain: 1.0 };
        let mut bias = vec![0.0f32; 4 * h];
        bias[h..2 * h].iter_mut().for_each(|b| *b = 1.0);
        FastLstm {
            input_weight: init.init_with(
                [self.input, 4 * h],
                Some(self.input),
                Some(4 * h),
                device,
            ),
            hidden_weight: init.init_with([h, 4 * h], Some(h), Some(4 * h), device),
            bias: Param::from_tensor(Tensor::<1>::from_floats(bias.as_slice(), device)),
            hidden: h,
        }
    }
}

/// An LSTM layer (i, f, o = σ, candidate g = tanh, c = f·c + i·g, h = o·tanh(c), from zero
/// state). On the CPU backend it runs as one fused operation, forward and backward through
/// time written by hand ([`crate::fused::lstm_last_hidden`]); elsewhere with one input product for all
/// steps and one hidden product per step in Burn's tensor API.
///
/// Gates are ordered input, forget, candidate, output in the weight columns.
#[derive(Module, Debug)]
pub struct FastLstm {
    input_weight: Param<Tensor<2>>,
    hidden_weight: Param<Tensor<2>>,
    bias: Param<Tensor<1>>,
    hidden: usize,
}

impl FastLstm {
    /// The last hidden state `[batch, hidden]` of sequences `[batch, steps, input]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<2> {
        if crate::fused::fusable(&x) {
            return crate::fused::lstm_last_hidden(
                x,
                self.input_weight.val(),
                self.hidden_weight.val(),
                self.bias.val(),
            );
        }
        self.forward_tensor_ops(x)
    }

    /// [`FastLstm::forward`] written with Burn's tensor operations (what runs off the CPU
    /// backend).
    fn forward_tensor_ops(&self, x: Tensor<3>) -> Tensor<2> {
        let [b, t, d] = x.dims();
        let h = self.hidden;
        let device = x.device();
        let projected = (x.reshape([b * t, d]).matmul(self.input_weight.val())
            + self.bias.val().reshape([1, 4 * h]))
        .reshape([b, t, 4 * h]);
        let w_hh = self.hidden_weight.val();
        let mut state_h = Tensor::<2>::zeros([b, h], &device);
        let mut state_c = Tensor::<2>::zeros([b, h], &device);
        for step in 0..t {
            let gates = projected.clone().narrow(1, step, 1).reshape([b, 4 * h])
                + state_h.matmul(w_hh.clone());
            let g = gates.clone().narrow(1, 2 * h, h).tanh();
            let s = sigmoid(gates);
            let i = s.clone().narrow(1, 0, h);
            let f = s.clone().narrow(1, h, h);
            let o = s.narrow(1, 3 * h, h);
            state_c = f * state_c + i * g;
            state_h = o * state_c.clone().tanh();
        }
        state_h
    }
}

/// Configuration of [`TextClassifier`].
#[derive(Config, Debug)]
pub struct TextClassifierConfig {
    /// Vocabulary size (token ids `0..vocab`).
    pub vocab: usize,
    /// Classes.
    pub classes: usize,
    /// Embedding size.
    #[config(default = 16)]
    pub embedding: usize,
    /// LSTM hidden units.
    #[config(default = 64)]
    pub hidden: usize,
    /// Units of the dense layer after the LSTM.
    #[config(default = 32)]
    pub dense: usize,
    /// Dropout before the output layer.
    #[config(default = 0.0)]
    pub dropout: f64,
}

impl TextClassifierConfig {
    /// Builds the network.
    pub fn init(&self, device: &Device) -> TextClassifier {
        TextClassifier {
            embedding: EmbeddingConfig::new(self.vocab, self.embedding).init(device),
            lstm: FastLstmConfig::new(self.embedding, self.hidden).init(device),
            dense: LinearConfig::new(self.hidden, self.dense).init(device),
            output: LinearConfig::new(self.dense, self.classes).init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

/// Embedding → LSTM (last state) → Dense + ReLU → Dense: the deck's sentiment model.
#[derive(Module, Debug)]
pub struct TextClassifier {
    embedding: Embedding,
    lstm: FastLstm,
    dense: Linear,
    output: Linear,
    dropout: Dropout,
}

impl TextClassifier {
    /// The output layer (its weight columns are the class templates).
    pub fn output_layer(&self) -> &Linear {
        &self.output
    }

    /// Logits `[n, classes]` of token ids `[n, steps]`.
    pub fn forward(&self, tokens: Tensor<2, Int>) -> Tensor<2> {
        dense(&self.output, self.features(tokens), false)
    }

    /// The dense layer's activations (the penultimate layer).
    pub fn features(&self, tokens: Tensor<2, Int>) -> Tensor<2> {
        let x = self.lstm.forward(self.embedding.forward(tokens));
        self.dropout.forward(dense(&self.dense, x, true))
    }
}
