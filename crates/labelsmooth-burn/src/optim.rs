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

/// The per-step constants of the update.
#[derive(Debug, Clone, Copy)]
struct AdamScalars {
    beta_1: f32,
    beta_2: f32,
    f1: f32,
    f2: f32,
    combined: f32,
    eps: f32,
    lr: f32,
    penalty: f32,
    decay: bool,
    first: bool,
}

/// One element: Burn's `WeightDecay` and `AdaptiveMomentum` arithmetic, in its order.
#[inline(always)]
fn adam_one(k: &AdamScalars, w: f32, g: f32, m: f32, v: f32) -> (f32, f32, f32) {
    let g = if k.decay { w * k.penalty + g } else { g };
    // Burn starts the moments from (1 − β)·g, not from β·0 + (1 − β)·g.
    let (m, v) = if k.first {
        (g * k.f1, (g * g) * k.f2)
    } else {
        (m * k.beta_1 + g * k.f1, v * k.beta_2 + (g * g) * k.f2)
    };
    (w - ((m * k.combined) / (v.sqrt() + k.eps)) * k.lr, m, v)
}

const L: usize = 16;

#[inline(always)]
fn adam_update_impl(k: &AdamScalars, w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    let n = w.len();
    let full = n - n % L;
    // Sixteen lanes at a time through local arrays, which alias nothing, so the loop vectorizes.
    for i in (0..full).step_by(L) {
        let mut lw: [f32; L] = w[i..i + L].try_into().expect("L");
        let lg: [f32; L] = g[i..i + L].try_into().expect("L");
        let mut lm: [f32; L] = m[i..i + L].try_into().expect("L");
        let mut lv: [f32; L] = v[i..i + L].try_into().expect("L");
        for l in 0..L {
            (lw[l], lm[l], lv[l]) = adam_one(k, lw[l], lg[l], lm[l], lv[l]);
        }
        w[i..i + L].copy_from_slice(&lw);
        m[i..i + L].copy_from_slice(&lm);
        v[i..i + L].copy_from_slice(&lv);
    }
    for i in full..n {
        (w[i], m[i], v[i]) = adam_one(k, w[i], g[i], m[i], v[i]);
    }
}

labelsmooth::simd_dispatch! {
    fn adam_update(k: &AdamScalars, w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) => adam_update_impl
}
