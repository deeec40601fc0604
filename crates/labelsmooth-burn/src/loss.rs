//! Loss modules for Burn tensors with autodiff, on the semantics of the core library.
//!
//! Each is a `Config` that builds a `Module`, as Burn's own losses are:
//! `SmoothedCrossEntropyConfig::new(10).with_smoothing(0.1).init(&device)`.
//!
//! [`SmoothedCrossEntropy`] runs the core's fused kernel when its input lives on the CPU (flex)
//! device: the loss and d(loss)/d(logits) come from one pass over the logits, and the gradient
//! reaches the graph through a surrogate whose derivative is exactly that gradient. On other
//! devices (and when `fused` is off) it is built from tensor operations.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Device, Int, Tensor, TensorData};
use labelsmooth::loss::{CrossEntropy, Distillation, LossValue, Reduction};
use labelsmooth::targets::{BinaryConvention, Convention, check_smoothing};

/// Configuration of [`SmoothedCrossEntropy`].
#[derive(Config, Debug)]
pub struct SmoothedCrossEntropyConfig {
    /// Number of classes.
    pub classes: usize,
    /// Smoothing factor α in [0, 1].
    #[config(default = 0.0)]
    pub smoothing: f32,
    /// How α spreads over the classes.
    #[config(default = "Convention::Uniform")]
    pub convention: Convention,
    /// One weight per class (finite, ≥ 0).
    pub weights: Option<Vec<f32>>,
    /// Targets equal to this are ignored (PyTorch uses −100).
    pub ignore_index: Option<i64>,
    /// Reduction (PyTorch's normalization for `mean`).
    #[config(default = "Reduction::Mean")]
    pub reduction: Reduction,
    /// Use the fused CPU kernel when the logits are on the flex device.
    #[config(default = true)]
    pub fused: bool,
}

impl SmoothedCrossEntropyConfig {
    /// Builds the loss; an invalid configuration (α outside [0, 1], bad weights, exclude-true
    /// with fewer than 2 classes) is an error.
    pub fn try_init(&self, device: &Device) -> labelsmooth::Result<SmoothedCrossEntropy> {
        let mut kernel = CrossEntropy::new(self.classes)
            .with_smoothing(self.smoothing)
            .with_convention(self.convention)
            .with_reduction(self.reduction);
        if let Some(w) = &self.weights {
            kernel = kernel.with_weights(w.clone());
        }
        if let Some(i) = self.ignore_index {
            kernel = kernel.with_ignore_index(i);
        }
        kernel.validate()?;
        Ok(SmoothedCrossEntropy {
            weights: self
                .weights
                .as_ref()
                .map(|w| Tensor::<1>::from_floats(w.as_slice(), device)),
            kernel,
            fused: self.fused,
        })
    }

    /// Builds the loss; panics on an invalid configuration, as Burn's own `init` does.
    pub fn init(&self, device: &Device) -> SmoothedCrossEntropy {
        self.try_init(device)
            .unwrap_or_else(|e| panic!("invalid cross-entropy configuration: {e}"))
    }
}

/// Smoothed cross-entropy of logits `[n, k]` against class ids `[n]`: the core's
/// [`CrossEntropy`] for Burn tensors. Returns `[1]` (sum, mean) or `[n]` (none).
#[derive(Module, Debug)]
pub struct SmoothedCrossEntropy {
    /// The core loss: the semantics, and the fused kernel on the CPU.
    #[module(skip)]
    kernel: CrossEntropy,
    /// The class weights on the device, for the tensor-operation path.
    weights: Option<Tensor<1>>,
    fused: bool,
}

impl SmoothedCrossEntropy {
    /// The core loss this module computes.
    pub fn core(&self) -> &CrossEntropy {
        &self.kernel
    }

    /// The loss; panics on invalid input (class id out of range, NaN logits): use
    /// [`try_forward`](Self::try_forward) to get an error instead.
    pub fn forward(&self, logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
        self.try_forward(logits, targets)
            .unwrap_or_else(|e| panic!("cross-entropy: {e}"))
    }

    /// The loss, or the core library's error for invalid input.
    pub fn try_forward(
        &self,
        logits: Tensor<2>,
        targets: Tensor<1, Int>,
    ) -> labelsmooth::Result<Tensor<1>> {
        let device = logits.device();
        let [n, k] = logits.dims();
        check_len("logits columns (the classes)", self.kernel.classes(), k)?;
        let ids = class_ids(&targets);
        check_len("targets (one per row of logits)", n, ids.len())?;
        if self.fused && is_cpu(&device) {
            return self.forward_fused(logits, &ids);
        }
        let denominator = self.kernel.denominator(&ids)?;
        // The kernel addresses the logits with 32-bit indices.
        #[cfg(feature = "wgpu")]
        if self.fused
            && logits.dtype() == burn::tensor::DType::F32
            && n.saturating_mul(k) < u32::MAX as usize
        {
            return Ok(self.forward_cube(logits, &ids, denominator));
        }
        Ok(self.forward_tensor_ops(logits, &ids, denominator))
    }

    /// On a CubeCL device: the rows and their gradient from one kernel launch
    /// ([`crate::fused::cube`]), reduced with tensor operations.
    #[cfg(feature = "wgpu")]
    fn forward_cube(&self, logits: Tensor<2>, ids: &[i64], denominator: f64) -> Tensor<1> {
        let [_, k] = logits.dims();
        let (targets, weights, coefficients) = self.cube_inputs(ids, k, &logits.device());
        let rows =
            crate::fused::cube::smoothed_cross_entropy_rows(logits, targets, weights, coefficients);
        self.reduce(rows, denominator)
    }

    /// The loss of each row reduced as configured (`mean` divides by `denominator`).
    fn reduce(&self, rows: Tensor<1>, denominator: f64) -> Tensor<1> {
        match self.kernel.reduction() {
            Reduction::None => rows,
            Reduction::Sum => rows.sum().reshape([1]),
            Reduction::Mean => rows.sum().reshape([1]).div_scalar(denominator as f32),
        }
    }

    /// What the CubeCL kernel takes: the class ids with −1 for ignored rows, the class weights
    /// on the device (ones without), and the target distribution.
    #[cfg(feature = "wgpu")]
    fn cube_inputs(
        &self,
        ids: &[i64],
        k: usize,
        device: &Device,
    ) -> (Tensor<1, Int>, Tensor<1>, crate::fused::cube::Coefficients) {
        let (on, off) = self.on_off(k);
        let ignore = self.kernel.ignore_index();
        // Validated by `denominator`: every id is in range or ignored.
        let targets: Vec<i32> = ids
            .iter()
            .map(|&t| if Some(t) == ignore { -1 } else { t as i32 })
            .collect();
        let targets = Tensor::<1, Int>::from_data(TensorData::new(targets, [ids.len()]), device);
        let (weights, weight_sum) = match (&self.weights, self.kernel.weights()) {
            (Some(w), Some(values)) => (w.clone(), values.iter().map(|&v| f64::from(v)).sum()),
            _ => (Tensor::<1>::ones([k], device), k as f64),
        };
        let weights = weights.cast(burn::tensor::DType::F32);
        let coefficients = crate::fused::cube::Coefficients {
            on: on as f32,
            off: off as f32,
            weight_sum: weight_sum as f32,
        };
        (targets, weights, coefficients)
    }

    /// The target distribution's weight on the true class and on each other class.
    fn on_off(&self, k: usize) -> (f64, f64) {
        self.kernel
            .convention()
            .on_off(f64::from(self.kernel.smoothing()), k)
            .expect("validated at init")
    }

    /// The loss of a linear output layer's logits `hidden·weight + bias` (`hidden` `[n, h]`,
    /// `weight` `[h, k]` as Burn's `Linear` stores it, `bias` `[k]`) against `targets` `[n]`.
    ///
    /// On a CubeCL device (the `wgpu` feature) with the fused path and a `sum` or `mean`
    /// reduction, the logits are formed `block_rows` rows at a time, each block's loss gradient
    /// is written by the kernel and consumed by the backward products before the next block
    /// (Liger-Kernel's fused linear cross-entropy): the `[n, k]` logits never exist whole, and
    /// the gradients are computed in the forward pass. Elsewhere the whole logits are formed and
    /// passed to [`try_forward`](Self::try_forward). A weight or bias of the wrong shape is an
    /// error.
    pub fn try_forward_linear(
        &self,
        hidden: Tensor<2>,
        weight: Tensor<2>,
        bias: Tensor<1>,
        targets: Tensor<1, Int>,
        block_rows: usize,
    ) -> labelsmooth::Result<Tensor<1>> {
        let [n, h] = hidden.dims();
        let [wh, k] = weight.dims();
        let classes = self.kernel.classes();
        check_len("weight rows (the hidden size)", h, wh)?;
        check_len("weight columns (the classes)", classes, k)?;
        check_len("bias", k, bias.dims()[0])?;
        #[cfg(feature = "wgpu")]
        {
            let device = hidden.device();
            let scalar = !matches!(self.kernel.reduction(), Reduction::None);
            if self.fused
                && scalar
                && n > 0
                && !is_cpu(&device)
                && hidden.dtype() == burn::tensor::DType::F32
                && block_rows.max(1).saturating_mul(k) < u32::MAX as usize
            {
                let ids = class_ids(&targets);
                check_len("targets (one per row of hidden states)", n, ids.len())?;
                let denominator = self.kernel.denominator(&ids)?;
                let scale = match self.kernel.reduction() {
                    Reduction::Mean => 1.0 / denominator,
                    _ => 1.0,
                };
                let (targets, weights, coefficients) = self.cube_inputs(&ids, k, &device);
                return Ok(crate::fused::cube::linear_smoothed_cross_entropy(
                    hidden,
                    weight,
                    bias,
                    targets,
                    weights,
                    coefficients,
                    scale as f32,
                    block_rows,
                ));
            }
        }
        let _ = (n, block_rows);
        let logits = hidden.matmul(weight) + bias.reshape([1, k]);
        self.try_forward(logits, targets)
    }

    fn forward_fused(&self, logits: Tensor<2>, ids: &[i64]) -> labelsmooth::Result<Tensor<1>> {
        let device = logits.device();
        let [n, k] = logits.dims();
        let x: Vec<f32> = logits
            .to_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .expect("float logits");
        let kernel = &self.kernel;
        if !logits.is_tracked() {
            let value = kernel.forward(&x, ids)?;
            return Ok(loss_tensor(&value, &device));
        }
        let mut grad = vec![0.0f32; n * k];
        let value = kernel.forward_backward(&x, ids, &mut grad)?;
        let g = Tensor::<2>::from_data(TensorData::new(grad, [n, k]), &device);
        // Value: the kernel's loss; derivative with respect to the logits: exactly `grad`.
        let per_row = (logits * g).sum_dim(1).reshape([n]);
        let surrogate = match kernel.reduction() {
            Reduction::None => per_row,
            _ => per_row.sum().reshape([1]),
        };
        Ok(surrogate.clone() - surrogate.detach() + loss_tensor(&value, &device))
    }

    fn forward_tensor_ops(&self, logits: Tensor<2>, ids: &[i64], denominator: f64) -> Tensor<1> {
        let device = logits.device();
        let [n, k] = logits.dims();
        let (on, off) = self.on_off(k);
        let ignore = self.kernel.ignore_index();
        let ignored: Vec<bool> = ids.iter().map(|&t| Some(t) == ignore).collect();
        let safe: Vec<i64> = ids
            .iter()
            .zip(&ignored)
            .map(|(&t, &ig)| if ig { 0 } else { t })
            .collect();
        let keep: Vec<f32> = ignored.iter().map(|&ig| f32::from(u8::from(!ig))).collect();
        let keep = Tensor::<1>::from_floats(keep.as_slice(), &device).reshape([n, 1]);
        let index =
            Tensor::<1, Int>::from_data(TensorData::new(safe, [n]), &device).reshape([n, 1]);
        let neg_logp = log_softmax(logits, 1).neg();
        let at_target = neg_logp.clone().gather(1, index.clone());
        let (w_t, spread) = match &self.weights {
            Some(w) => {
                let w_t = w.clone().reshape([1, k]).repeat_dim(0, n).gather(1, index);
                let spread = (neg_logp * w.clone().reshape([1, k])).sum_dim(1);
                (Some(w_t), spread)
            }
            None => (None, neg_logp.sum_dim(1)),
        };
        let target_term = match w_t {
            Some(w_t) => at_target * w_t,
            None => at_target,
        };
        let mut row = target_term.mul_scalar((on - off) as f32);
        if off != 0.0 {
            row = row + spread.mul_scalar(off as f32);
        }
        self.reduce((row * keep).reshape([n]), denominator)
    }
}

/// The class ids of `targets` on the host.
fn class_ids(targets: &Tensor<1, Int>) -> Vec<i64> {
    targets
        .to_data()
        .convert::<i64>()
        .try_to_vec::<i64>()
        .expect("integer targets")
}

/// A length that must equal what the loss expects, as the core reports it.
fn check_len(what: &'static str, expected: usize, actual: usize) -> labelsmooth::Result<()> {
    if expected == actual {
        Ok(())
    } else {
        Err(labelsmooth::Error::LengthMismatch {
            what,
            expected,
            actual,
        })
    }
}

fn loss_tensor(value: &LossValue, device: &Device) -> Tensor<1> {
    let v = value.as_slice();
    Tensor::<1>::from_floats(v, device)
}

/// Whether tensors on `device` live in host memory (the flex CPU backend).
pub fn is_cpu(device: &Device) -> bool {
    *device == Device::flex() || *device == Device::flex().autodiff()
}

/// Configuration of [`SoftCrossEntropy`].
#[derive(Config, Debug)]
pub struct SoftCrossEntropyConfig {
    /// Smoothing factor α in [0, 1] applied to the target distributions.
    #[config(default = 0.0)]
    pub smoothing: f32,
    /// One weight per class.
    pub weights: Option<Vec<f32>>,
}

impl SoftCrossEntropyConfig {
    /// Builds the loss; α outside [0, 1] or a weight that is not finite and ≥ 0 is an error.
    pub fn try_init(&self, device: &Device) -> labelsmooth::Result<SoftCrossEntropy> {
        check_smoothing(self.smoothing)?;
        if let Some(w) = &self.weights {
            labelsmooth::loss::SoftCrossEntropy::new(w.len())
                .with_weights(w.clone())
                .validate()?;
        }
        Ok(SoftCrossEntropy {
            smoothing: self.smoothing,
            weights: self
                .weights
                .as_ref()
                .map(|w| Tensor::<1>::from_floats(w.as_slice(), device)),
        })
    }

    /// Builds the loss; panics on an invalid configuration, as Burn's own `init` does.
    pub fn init(&self, device: &Device) -> SoftCrossEntropy {
        self.try_init(device)
            .unwrap_or_else(|e| panic!("invalid soft cross-entropy configuration: {e}"))
    }
}

/// Cross-entropy against probability targets `[n, k]` (mixup, distillation), smoothed toward
/// uniform, mean over rows: the core's [`labelsmooth::loss::SoftCrossEntropy`].
#[derive(Module, Debug)]
pub struct SoftCrossEntropy {
    smoothing: f32,
    weights: Option<Tensor<1>>,
}

impl SoftCrossEntropy {
    /// Mean loss, `[1]`.
    pub fn forward(&self, logits: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
        let [n, k] = logits.dims();
        let a = self.smoothing;
        let q = targets.mul_scalar(1.0 - a).add_scalar(a / k as f32);
        let q = match &self.weights {
            Some(w) => q * w.clone().reshape([1, k]),
            None => q,
        };
        (log_softmax(logits, 1) * q)
            .sum()
            .neg()
            .div_scalar(n as f32)
            .reshape([1])
    }
}

/// Configuration of [`DistillationLoss`].
#[derive(Config, Debug)]
pub struct DistillationConfig {
    /// Number of classes.
    pub classes: usize,
    /// Temperature τ that softens the teacher's and the student's outputs (finite, > 0).
    #[config(default = 4.0)]
    pub temperature: f32,
    /// Weight λ of the teacher's term, in [0, 1].
    #[config(default = 0.5)]
    pub weight: f32,
    /// Smoothing factor α of the true-label term, in [0, 1].
    #[config(default = 0.0)]
    pub smoothing: f32,
    /// How α spreads over the classes in the true-label term.
    #[config(default = "Convention::Uniform")]
    pub convention: Convention,
    /// Use the fused CPU kernel when the logits are on the flex device.
    #[config(default = true)]
    pub fused: bool,
}

impl DistillationConfig {
    /// Builds the loss; τ ≤ 0, λ or α outside [0, 1] is an error.
    pub fn try_init(&self, device: &Device) -> labelsmooth::Result<DistillationLoss> {
        let kernel = Distillation::new(self.classes)
            .with_temperature(self.temperature)
            .with_weight(self.weight)
            .with_smoothing(self.smoothing)
            .with_convention(self.convention);
        kernel.validate()?;
        let hard = SmoothedCrossEntropyConfig::new(self.classes)
            .with_smoothing(self.smoothing)
            .with_convention(self.convention)
            .with_fused(self.fused)
            .try_init(device)?;
        Ok(DistillationLoss {
            kernel,
            hard,
            fused: self.fused,
        })
    }

    /// Builds the loss; panics on an invalid configuration, as Burn's own `init` does.
    pub fn init(&self, device: &Device) -> DistillationLoss {
        self.try_init(device)
            .unwrap_or_else(|e| panic!("invalid distillation configuration: {e}"))
    }
}

/// The distillation loss of student logits `[n, k]` against teacher logits `[n, k]` and class
/// ids `[n]`, mean over rows: the core's [`Distillation`],
/// (1 − λ)·CE_α(s, y) + λ·τ²·KL(softmax(t/τ) ‖ softmax(s/τ)). The teacher's logits are
/// constants (no gradient flows to them).
#[derive(Module, Debug)]
pub struct DistillationLoss {
    #[module(skip)]
    kernel: Distillation,
    hard: SmoothedCrossEntropy,
    fused: bool,
}

impl DistillationLoss {
    /// The mean loss `[1]`, or the core library's error for invalid input.
    pub fn try_forward(
        &self,
        student: Tensor<2>,
        teacher: Tensor<2>,
        targets: Tensor<1, Int>,
    ) -> labelsmooth::Result<Tensor<1>> {
        let device = student.device();
        let [n, k] = student.dims();
        if teacher.dims() != [n, k] {
            return Err(labelsmooth::Error::InvalidParameter {
                what: "teacher logits",
                why: format!(
                    "shape {:?} differs from the student's [{n}, {k}]",
                    teacher.dims()
                ),
            });
        }
        if self.fused && is_cpu(&device) {
            let ids = class_ids(&targets);
            let floats = |t: Tensor<2>| -> Vec<f32> {
                t.to_data()
                    .convert::<f32>()
                    .try_to_vec::<f32>()
                    .expect("float logits")
            };
            let (s, t) = (floats(student.clone()), floats(teacher));
            let mut grad = vec![0.0f32; n * k];
            let value = self.kernel.forward_backward(&s, &t, &ids, &mut grad)?;
            let g = Tensor::<2>::from_data(TensorData::new(grad, [n, k]), &device);
            let surrogate = (student * g).sum().reshape([1]);
            return Ok(surrogate.clone() - surrogate.detach() + loss_tensor(&value, &device));
        }
        let tau = self.kernel.temperature();
        let lambda = self.kernel.weight();
        let hard = self.hard.try_forward(student.clone(), targets)?;
        let teacher = teacher.detach();
        if !teacher.clone().is_finite().all().into_scalar::<bool>() {
            return Err(labelsmooth::Error::InvalidParameter {
                what: "teacher logits",
                why: "they hold a value that is not a finite number".into(),
            });
        }
        let log_pt = log_softmax(teacher.clone().div_scalar(tau), 1);
        let pt = softmax(teacher.div_scalar(tau), 1);
        let log_ps = log_softmax(student.div_scalar(tau), 1);
        let kl = (pt * (log_pt - log_ps))
            .sum()
            .div_scalar(n as f32)
            .reshape([1]);
        Ok(hard.mul_scalar(1.0 - lambda) + kl.mul_scalar(lambda * tau * tau))
    }
}

/// Configuration of [`BinaryCrossEntropy`].
#[derive(Config, Debug)]
pub struct BinaryCrossEntropyConfig {
    /// Smoothing factor α in [0, 1].
    #[config(default = 0.0)]
    pub smoothing: f32,
    /// Where α moves the targets.
    #[config(default = "BinaryConvention::TowardHalf")]
    pub convention: BinaryConvention,
}

impl BinaryCrossEntropyConfig {
    /// Builds the loss; α outside [0, 1] is an error.
    pub fn try_init(&self) -> labelsmooth::Result<BinaryCrossEntropy> {
        check_smoothing(self.smoothing)?;
        Ok(BinaryCrossEntropy {
            smoothing: self.smoothing,
            convention: self.convention,
        })
    }

    /// Builds the loss; panics on an invalid configuration, as Burn's own `init` does.
    pub fn init(&self) -> BinaryCrossEntropy {
        self.try_init()
            .unwrap_or_else(|e| panic!("invalid binary cross-entropy configuration: {e}"))
    }
}

/// Binary / multi-label cross-entropy with logits `[n, labels]` and targets in [0, 1], smoothed
/// toward 0.5 (Keras) or 1/L; mean over all elements.
#[derive(Module, Debug)]
pub struct BinaryCrossEntropy {
    smoothing: f32,
    #[module(skip)]
    convention: BinaryConvention,
}

impl BinaryCrossEntropy {
    /// Mean loss, `[1]`.
    pub fn forward(&self, logits: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
        let [n, l] = logits.dims();
        let (on, off) = self.convention.on_off(f64::from(self.smoothing), l);
        let q = targets.mul_scalar((on - off) as f32).add_scalar(off as f32);
        // max(x, 0) − x·q + log(1 + e^{−|x|})
        let loss =
            logits.clone().clamp_min(0.0) - logits.clone() * q + logits.abs().neg().exp().log1p();
        loss.sum().div_scalar((n * l) as f32).reshape([1])
    }
}

/// Configuration of [`ConfidencePenalty`].
#[derive(Config, Debug)]
pub struct ConfidencePenaltyConfig {
    /// Strength β ≥ 0.
    pub beta: f32,
    /// Penalize only rows with entropy below this many nats.
    pub threshold: Option<f32>,
}

impl ConfidencePenaltyConfig {
    /// Builds the penalty; β that is not finite and ≥ 0, or a threshold that is not finite, is
    /// an error.
    pub fn try_init(&self) -> labelsmooth::Result<ConfidencePenalty> {
        let mut core = labelsmooth::loss::ConfidencePenalty::new(self.beta);
        if let Some(t) = self.threshold {
            core = core.with_threshold(t);
        }
        core.validate()?;
        Ok(ConfidencePenalty {
            beta: self.beta,
            threshold: self.threshold,
        })
    }

    /// Builds the penalty; panics on an invalid configuration, as Burn's own `init` does.
    pub fn init(&self) -> ConfidencePenalty {
        self.try_init()
            .unwrap_or_else(|e| panic!("invalid confidence penalty configuration: {e}"))
    }
}

/// The confidence penalty of Pereyra et al. 2017, mean over rows: −β·H(softmax(x)), or
/// β·max(0, Γ − H) with a threshold Γ. Add it to a cross-entropy.
#[derive(Module, Debug)]
pub struct ConfidencePenalty {
    beta: f32,
    threshold: Option<f32>,
}

impl ConfidencePenalty {
    /// Mean penalty, `[1]`.
    pub fn forward(&self, logits: Tensor<2>) -> Tensor<1> {
        let [n, _] = logits.dims();
        let entropy = (softmax(logits.clone(), 1) * log_softmax(logits, 1))
            .sum_dim(1)
            .neg();
        let per_row = match self.threshold {
            None => entropy.neg(),
            Some(t) => entropy.neg().add_scalar(t).clamp_min(0.0),
        };
        per_row
            .sum()
            .mul_scalar(self.beta)
            .div_scalar(n as f32)
            .reshape([1])
    }
}
