//! Row kernels of the softmax losses: max, Σexp, Σ(x − m) and Σw(x − m) in one pass over a row,
//! and the gradient finished in place while the row is still in cache.
//!
//! The loops work on fixed lanes of 16 floats that the compiler turns into vector code, in each
//! copy that [`simd_dispatch!`](crate::simd_dispatch) compiles.

use crate::math::exp_nonpos;
use crate::simd_dispatch;

/// Lanes per step: one AVX-512 register, two AVX2 registers.
const L: usize = 16;
/// Elements summed in `f32` lanes before the partial sums move to `f64`.
const BLOCK: usize = 512;

/// What one pass over a row of logits gives.
#[derive(Debug, Clone, Copy)]
pub struct RowStats {
    /// Largest logit (ignoring NaN).
    pub max: f32,
    /// Σ exp(x − max) = `n_max` + `sum_exp_below`.
    pub sum_exp: f64,
    /// How many logits equal the max (each contributes exactly 1 to `sum_exp`).
    pub n_max: f64,
    /// Σ exp(x − max) over logits below the max, summed apart so that 1 − p_max keeps its
    /// precision when the max dominates.
    pub sum_exp_below: f64,
    /// Σ (x − max): NaN when the row holds a NaN or +inf.
    pub sum_shift: f64,
    /// Σ w·(x − max) over classes with w ≠ 0 (equals `sum_shift` when unweighted).
    pub wsum_shift: f64,
}

#[inline(always)]
fn max_impl(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; L];
    let mut chunks = x.chunks_exact(L);
    for c in &mut chunks {
        for l in 0..L {
            acc[l] = if c[l] > acc[l] { c[l] } else { acc[l] };
        }
    }
    let mut m = f32::NEG_INFINITY;
    for &v in acc.iter().chain(chunks.remainder()) {
        if v > m {
            m = v;
        }
    }
    m
}

/// Sums of one row; with `STORE` it also writes exp(x − m) to `store`, with `WEIGHTED` it forms
/// Σ w(x − m) from `w` (which must then be as long as `x`).
#[inline(always)]
fn stats_impl<const WEIGHTED: bool, const STORE: bool>(
    x: &[f32],
    w: &[f32],
    store: &mut [f32],
) -> RowStats {
    let len = x.len();
    if WEIGHTED {
        assert!(w.len() == len);
    }
    if STORE {
        assert!(store.len() == len);
    }
    let m = max_impl(x);
    let (mut se, mut sn, mut ss, mut sw) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    let full = len - len % L;
    let mut start = 0;
    while start < full {
        let end = (start + BLOCK).min(full);
        let mut ae = [0.0f32; L];
        let mut an = [0.0f32; L];
        let mut at = [0.0f32; L];
        let mut aw = [0.0f32; L];
        let mut base = start;
        while base < end {
            let xc: &[f32; L] = x[base..base + L].try_into().unwrap();
            let mut ec = [0.0f32; L];
            for l in 0..L {
                let d = xc[l] - m;
                let e = exp_nonpos(d);
                ec[l] = e;
                let top = d == 0.0;
                ae[l] += if top { 0.0 } else { e };
                an[l] += if top { 1.0 } else { 0.0 };
                at[l] += d;
            }
            if WEIGHTED {
                let wc: &[f32; L] = w[base..base + L].try_into().unwrap();
                for l in 0..L {
                    let d = xc[l] - m;
                    aw[l] += if wc[l] != 0.0 { wc[l] * d } else { 0.0 };
                }
            }
            if STORE {
                let sc: &mut [f32; L] = (&mut store[base..base + L]).try_into().unwrap();
                *sc = ec;
            }
            base += L;
        }
        for l in 0..L {
            se += f64::from(ae[l]);
            sn += f64::from(an[l]);
            ss += f64::from(at[l]);
            sw += f64::from(aw[l]);
        }
        start = end;
    }
    for i in full..len {
        let d = x[i] - m;
        let e = exp_nonpos(d);
        if d == 0.0 {
            sn += 1.0;
        } else {
            se += f64::from(e);
        }
        ss += f64::from(d);
        if WEIGHTED && w[i] != 0.0 {
            sw += f64::from(w[i] * d);
        }
        if STORE {
            store[i] = e;
        }
    }
    RowStats {
        max: m,
        sum_exp: sn + se,
        n_max: sn,
        sum_exp_below: se,
        sum_shift: ss,
        wsum_shift: if WEIGHTED { sw } else { ss },
    }
}

/// g ← g·a − b·w (or g·a − b without weights), in place; returns max |g| after the update.
#[inline(always)]
fn affine_impl<const WEIGHTED: bool>(g: &mut [f32], a: f32, b: f32, w: &[f32]) -> f32 {
    let mut top = [0.0f32; L];
    if WEIGHTED {
        assert!(w.len() == g.len());
    }
    let full = g.len() - g.len() % L;
    let mut base = 0;
    while base < full {
        let gc: &mut [f32; L] = (&mut g[base..base + L]).try_into().unwrap();
        for l in 0..L {
            let wl = if WEIGHTED { w[base + l] } else { 1.0 };
            let v = gc[l] * a - b * wl;
            gc[l] = v;
            let m = v.abs();
            top[l] = if m > top[l] { m } else { top[l] };
        }
        base += L;
    }
    let mut m = 0.0f32;
    for i in full..g.len() {
        let wl = if WEIGHTED { w[i] } else { 1.0 };
        g[i] = g[i] * a - b * wl;
        m = m.max(g[i].abs());
    }
    top.iter().fold(m, |acc, &v| acc.max(v))
}

#[inline(always)]
fn stats_dispatch(x: &[f32], w: Option<&[f32]>, store: Option<&mut [f32]>) -> RowStats {
    match (w, store) {
        (None, None) => stats_impl::<false, false>(x, &[], &mut []),
        (None, Some(s)) => stats_impl::<false, true>(x, &[], s),
        (Some(w), None) => stats_impl::<true, false>(x, w, &mut []),
        (Some(w), Some(s)) => stats_impl::<true, true>(x, w, s),
    }
}

#[inline(always)]
fn affine_dispatch(g: &mut [f32], a: f32, b: f32, w: Option<&[f32]>) -> f32 {
    match w {
        None => affine_impl::<false>(g, a, b, &[]),
        Some(w) => affine_impl::<true>(g, a, b, w),
    }
}

simd_dispatch! {
    /// Max, Σexp(x − max), Σ(x − max) and Σw(x − max) of a row; writes exp(x − max) to `store`
    /// when given.
    ///
    /// # Panics
    /// If `w` or `store` is given and not as long as `x`.
    pub fn row_stats(x: &[f32], w: Option<&[f32]>, store: Option<&mut [f32]>) -> RowStats
        => stats_dispatch, on row_stats_on
}

simd_dispatch! {
    /// g ← a·g − b·w (or a·g − b when `w` is `None`) in place; returns max |g| after the update.
    ///
    /// # Panics
    /// If `w` is given and not as long as `g`.
    pub fn affine(g: &mut [f32], a: f32, b: f32, w: Option<&[f32]>) -> f32
        => affine_dispatch, on affine_on
}

impl RowStats {
    /// ln Σ exp(x − max), precise also when the max dominates the sum.
    pub fn log_sum(&self) -> f64 {
        ((self.n_max - 1.0) + self.sum_exp_below).ln_1p()
    }

    /// 1 − p_j for a class whose logit is `x_j` and `e_j` = exp(x_j − max), without
    /// cancellation when p_j is near 1.
    pub fn one_minus_p(&self, x_j: f32, e_j: f64) -> f64 {
        if x_j == self.max {
            ((self.n_max - 1.0) + self.sum_exp_below) / self.sum_exp
        } else {
            1.0 - e_j / self.sum_exp
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_agree_with_plain_f64() {
        for len in [1usize, 15, 16, 17, 100, 513, 1500] {
            let x: Vec<f32> = (0..len)
                .map(|i| ((i * 7919) % 1000) as f32 / 100.0 - 5.0)
                .collect();
            let w: Vec<f32> = (0..len).map(|i| (i % 3) as f32 * 0.5).collect();
            let mut store = vec![0.0; len];
            let s = row_stats(&x, Some(&w), Some(&mut store));
            let m = x.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(s.max, m);
            let se: f64 = x.iter().map(|&v| (f64::from(v) - f64::from(m)).exp()).sum();
            let ss: f64 = x.iter().map(|&v| f64::from(v) - f64::from(m)).sum();
            let sw: f64 = x
                .iter()
                .zip(&w)
                .map(|(&v, &wi)| f64::from(wi) * (f64::from(v) - f64::from(m)))
                .sum();
            assert!(
                (s.sum_exp - se).abs() < 1e-6 * se,
                "{len}: {} vs {se}",
                s.sum_exp
            );
            assert!((s.sum_shift - ss).abs() < 1e-5 * ss.abs().max(1.0));
            assert!((s.wsum_shift - sw).abs() < 1e-5 * sw.abs().max(1.0));
            for (i, &e) in store.iter().enumerate() {
                let want = f64::from(x[i] - m).exp();
                assert!((f64::from(e) - want).abs() <= 3e-7 * want);
            }
        }
    }

    #[test]
    fn affine_is_elementwise() {
        let mut g: Vec<f32> = (0..37).map(|i| i as f32).collect();
        let w: Vec<f32> = (0..37).map(|i| (i % 2) as f32).collect();
        let top = affine(&mut g, 2.0, 3.0, Some(&w));
        assert_eq!(top, 2.0 * 36.0);
        for (i, &v) in g.iter().enumerate() {
            assert_eq!(v, 2.0 * i as f32 - 3.0 * (i % 2) as f32);
        }
        affine(&mut g, 1.0, 1.0, None);
        assert_eq!(g[0], -1.0);
    }
}
