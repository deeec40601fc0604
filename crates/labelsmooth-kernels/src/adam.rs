//! Adam's update on plain arrays: one pass over a parameter, weights and both moments updated
//! in place, with the arithmetic of Burn's `Adam` in its order.

use crate::simd_dispatch;

/// The per-step constants of the update.
///
/// The caller forms them the way its reference optimizer does (for Burn's `Adam`:
/// `combined = √(1 − β₂ᵗ) / (1 − β₁ᵗ)` and `eps = ε·√(1 − β₂ᵗ)`), so that the update repeats
/// that optimizer's rounding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamScalars {
    /// Decay of the first moment, β₁.
    pub beta_1: f32,
    /// Decay of the second moment, β₂.
    pub beta_2: f32,
    /// 1 − β₁.
    pub f1: f32,
    /// 1 − β₂.
    pub f2: f32,
    /// Both bias corrections in one factor of the step.
    pub combined: f32,
    /// Added to √v, already scaled by the second moment's bias correction.
    pub eps: f32,
    /// Learning rate.
    pub lr: f32,
    /// L2 penalty λ added to the gradient as λ·w, when `decay`.
    pub penalty: f32,
    /// Whether the penalty applies.
    pub decay: bool,
    /// Whether this is the first step (the moments start from the gradient alone).
    pub first: bool,
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

/// Lanes per step: one AVX-512 register.
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

simd_dispatch! {
    /// One Adam step over a parameter in place: weights `w`, gradient `g`, moments `m` and `v`
    /// (all as long as `w`), element by element in the order of Burn's `WeightDecay` and
    /// `AdaptiveMomentum`, in float32.
    ///
    /// # Panics
    /// If `g`, `m` or `v` is shorter than `w`.
    pub fn adam_update(k: &AdamScalars, w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32])
        => adam_update_impl, on adam_update_on
}
