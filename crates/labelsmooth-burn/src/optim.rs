//! Adam whose update runs in one pass over each parameter on the CPU backend.
//!
//! Burn's `Adam` forms the update from about ten tensor operations per parameter, each
//! allocating its result; for the small networks of the benchmarks that is a fifth of a training
//! step. [`FusedAdam`] computes the same arithmetic, in the same order and in float32, in one
//! loop, and keeps Burn's own optimizer state type, so that off the CPU it hands the step to
//! Burn's `Adam` unchanged.

use burn::optim::{
    AdamConfig, AdamState, AdaptiveMomentumState, LearningRate, ModuleOptimizer, Optimizer,
    decay::WeightDecayConfig,
};
use burn::tensor::{Device, Tensor, TensorData};
use labelsmooth_kernels::adam::{AdamScalars, adam_update};

/// Configuration of [`FusedAdam`] (the hyper-parameters of Burn's `AdamConfig`, without
/// AMSGrad and gradient clipping).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FusedAdamConfig {
    /// Decay of the first moment.
    pub beta_1: f32,
    /// Decay of the second moment.
    pub beta_2: f32,
    /// Added to the root of the second moment.
    pub epsilon: f32,
    /// L2 penalty added to the gradient (`grad + λ·w`, Burn's `WeightDecay`).
    pub weight_decay: Option<f32>,
}

impl Default for FusedAdamConfig {
    fn default() -> Self {
        FusedAdamConfig {
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-8,
            weight_decay: None,
        }
    }
}

impl FusedAdamConfig {
    /// The optimizer.
    pub fn build(&self) -> FusedAdam {
        let mut fallback = AdamConfig::new()
            .with_beta_1(self.beta_1)
            .with_beta_2(self.beta_2)
            .with_epsilon(self.epsilon);
        if let Some(penalty) = self.weight_decay {
            fallback = fallback.with_weight_decay(Some(WeightDecayConfig::new(penalty)));
        }
        FusedAdam {
            config: *self,
            fallback: fallback.build(),
        }
    }

    /// The optimizer, ready to step a module (`optim.step(lr, model, grads)`).
    pub fn init(&self) -> ModuleOptimizer {
        ModuleOptimizer::from(self.build())
    }
}

/// Adam with a fused update on the CPU backend (float32) and Burn's `Adam` elsewhere; both keep
/// Burn's `AdamState`.
#[derive(Clone)]
pub struct FusedAdam {
    config: FusedAdamConfig,
    fallback: burn::optim::Adam,
}

fn floats<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().expect("float32 tensor")
}

impl Optimizer for FusedAdam {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        if !crate::fused::fusable(&tensor) || !crate::fused::fusable(&grad) {
            return self.fallback.step(lr, tensor, grad, state);
        }
        let c = self.config;
        let device = tensor.device();
        let shape = tensor.shape();
        let (time, m, v) = match state {
            Some(s) => (
                s.momentum.time + 1,
                Some(floats(s.momentum.moment_1)),
                Some(floats(s.momentum.moment_2)),
            ),
            None => (1, None, None),
        };
        let mut w = floats(tensor);
        let g = floats(grad);
        let n = w.len();
        let mut m = m.unwrap_or_else(|| vec![0.0; n]);
        let mut v = v.unwrap_or_else(|| vec![0.0; n]);
        // The scalars exactly as Burn's `AdaptiveMomentum` forms them.
        let (f1, f2) = (1.0 - c.beta_1, 1.0 - c.beta_2);
        let bias_correction2_sqrt = (1.0 - c.beta_2.powi(time as i32)).sqrt();
        let k = AdamScalars {
            beta_1: c.beta_1,
            beta_2: c.beta_2,
            f1,
            f2,
            combined: bias_correction2_sqrt / (1.0 - c.beta_1.powi(time as i32)),
            eps: c.epsilon * bias_correction2_sqrt,
            lr: lr as f32,
            penalty: c.weight_decay.unwrap_or(0.0),
            decay: c.weight_decay.is_some(),
            first: time == 1,
        };
        adam_update(&k, &mut w, &g, &mut m, &mut v);
        let tensor_of = |values: Vec<f32>| {
            Tensor::<D>::from_data(TensorData::new(values, shape.clone()), &device)
        };
        let state = AdamState::new(AdaptiveMomentumState::new(time, tensor_of(m), tensor_of(v)));
        (tensor_of(w), Some(state))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        burn::optim::Adam::to_device(state, device)
    }
}
