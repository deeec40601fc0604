//! Vectorizable elementary functions in float32: `exp` on non-positive arguments, the logistic
//! sigmoid and `tanh`. All are branch-free so that the loops of the kernels that call them
//! vectorize.

/// exp(d) for d ≤ 0 (or −inf), relative error below 2e-7; exactly 0 below −87.33.
///
/// Cephes' `expf` reduction and polynomial, written branch-free so that loops calling it
/// vectorize.
#[inline(always)]
pub fn exp_nonpos(d: f32) -> f32 {
    const LOWEST: f32 = -87.336_54;
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 · 2^23: adding it rounds to the nearest integer, held in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let x = if d > LOWEST { d } else { LOWEST };
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    let e = (t.to_bits() as i32).wrapping_sub(0x4B40_0000);
    let scale = f32::from_bits((e.wrapping_add(127) << 23) as u32);
    if d >= LOWEST { y * scale } else { 0.0 }
}

/// The logistic function 1 / (1 + e^−x), with a relative error below 4e-7 on both tails.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    let e = exp_nonpos(-x.abs());
    let s = 1.0 / (1.0 + e);
    if x >= 0.0 { s } else { e * s }
}

/// tanh(x), with an absolute error below 3e-7 (a short series near 0 keeps small values
/// relatively accurate).
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let a = x.abs();
    let e = exp_nonpos(-2.0 * a);
    let t = (1.0 - e) / (1.0 + e);
    let a2 = a * a;
    // tanh a = a − a³/3 + 2a⁵/15 − 17a⁷/315 for |a| < 1/16 (next term below 2e-11·a).
    let series = a * (1.0 + a2 * (-1.0 / 3.0 + a2 * (2.0 / 15.0 - a2 * (17.0 / 315.0))));
    let r = if a < 0.0625 { series } else { t };
    r.copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_f64_within_two_ulp_scale() {
        let mut worst = 0.0f64;
        let mut d = 0.0f32;
        while d > -87.3 {
            let got = f64::from(exp_nonpos(d));
            let want = f64::from(d).exp();
            let rel = ((got - want) / want).abs();
            worst = worst.max(rel);
            d -= 0.000_37;
        }
        assert!(worst < 2.5e-7, "worst relative error {worst}");
        assert_eq!(exp_nonpos(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_nonpos(-100.0), 0.0);
        assert_eq!(exp_nonpos(0.0), 1.0);
    }

    #[test]
    fn sigmoid_and_tanh_match_f64() {
        let mut worst_s = 0.0f64;
        let mut worst_t = 0.0f64;
        for i in -40_000..=40_000 {
            let x = i as f32 * 1e-3;
            let s = 1.0 / (1.0 + (-(x as f64)).exp());
            worst_s = worst_s.max(((sigmoid(x) as f64) - s).abs() / s);
            let t = (x as f64).tanh();
            worst_t = worst_t.max(((tanh(x) as f64) - t).abs());
            if x.abs() < 0.0625 && x != 0.0 {
                assert!(((tanh(x) as f64) - t).abs() / t.abs() < 1e-6, "tanh({x})");
            }
        }
        assert!(worst_s < 4e-7, "sigmoid relative error {worst_s}");
        assert!(worst_t < 3e-7, "tanh absolute error {worst_t}");
        assert_eq!(sigmoid(-200.0), 0.0);
        assert_eq!(sigmoid(200.0), 1.0);
        assert_eq!(tanh(-50.0), -1.0);
    }
}
