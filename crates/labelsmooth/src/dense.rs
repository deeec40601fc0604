//! Dense-array building blocks shared by the fused kernels of this crate and of the training
//! crate: a strided matrix product (on the `gemm` crate), vectorizable `exp`, sigmoid and tanh,
//! and [`vectorized`], which runs a closure compiled for the widest vector instructions of the
//! running CPU.

use crate::kernel::{self, Isa};

/// exp(d) for d ≤ 0 (or −inf), relative error below 2e-7; exactly 0 below −87.33.
///
/// Branch-free (Cephes' reduction and polynomial), so that loops calling it vectorize.
#[inline(always)]
pub fn exp_nonpos(d: f32) -> f32 {
    kernel::exp_nonpos(d)
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

/// Runs `f` inside a function compiled for AVX-512 or AVX2 + FMA when the CPU has them (the
/// choice made once for the whole crate; `LABELSMOOTH_NO_SIMD=1` forces the baseline), so that
/// loops in `f` over the inline functions of this module vectorize for that instruction set.
#[inline]
pub fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    match kernel::isa() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa()` chose the instruction set after checking that the CPU has it.
        Isa::Avx512 => unsafe { x86::run_avx512(f) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 => unsafe { x86::run_avx2(f) },
        _ => f(),
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
    pub(super) fn run_avx512<R>(f: impl FnOnce() -> R) -> R {
        f()
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn run_avx2<R>(f: impl FnOnce() -> R) -> R {
        f()
    }
}

/// Row and column strides of a matrix stored in a slice: element (i, j) is at
/// `i * rows + j * cols`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Strides {
    /// Distance between consecutive rows.
    pub rows: usize,
    /// Distance between consecutive columns.
    pub cols: usize,
}

impl Strides {
    /// A row-major matrix with `cols` columns (or rows `cols` apart).
    pub fn row_major(cols: usize) -> Strides {
        Strides { rows: cols, cols: 1 }
    }

    /// The transpose of a row-major matrix with `cols` columns.
    pub fn transposed(cols: usize) -> Strides {
        Strides { rows: 1, cols }
    }
}

/// One matrix of a product: its elements and their strides.
#[derive(Debug, Clone, Copy)]
pub struct Mat<'a> {
    /// The elements.
    pub data: &'a [f32],
    /// Where element (i, j) lies.
    pub strides: Strides,
}

impl<'a> Mat<'a> {
    /// A matrix view.
    pub fn new(data: &'a [f32], strides: Strides) -> Mat<'a> {
        Mat { data, strides }
    }
}

/// c = (c if `accumulate`, else 0) + alpha · a · b, where a is `[m, k]`, b is `[k, n]` and c is
/// `[m, n]` with the given strides; on the rayon pool when `parallel`, else on this thread.
///
/// # Panics
/// If a stride reaches outside its slice.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    (m, n, k): (usize, usize, usize),
    c: &mut [f32],
    c_strides: Strides,
    accumulate: bool,
    alpha: f32,
    a: Mat<'_>,
    b: Mat<'_>,
    parallel: bool,
) {
    let last = |rows: usize, cols: usize, s: Strides| {
        if rows == 0 || cols == 0 {
            0
        } else {
            (rows - 1) * s.rows + (cols - 1) * s.cols + 1
        }
    };
    assert!(c.len() >= last(m, n, c_strides), "matmul: c is too short");
    assert!(a.data.len() >= last(m, k, a.strides), "matmul: a is too short");
    assert!(b.data.len() >= last(k, n, b.strides), "matmul: b is too short");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    c[i * c_strides.rows + j * c_strides.cols] = 0.0;
                }
            }
        }
        return;
    }
    let parallelism = if parallel && rayon::current_num_threads() > 1 {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above keep every element the strides reach inside its slice; `c` is
    // borrowed mutably and does not alias `a` or `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            c_strides.cols as isize,
            c_strides.rows as isize,
            accumulate,
            a.data.as_ptr(),
            a.strides.cols as isize,
            a.strides.rows as isize,
            b.data.as_ptr(),
            b.strides.cols as isize,
            b.strides.rows as isize,
            1.0,
            alpha,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn matmul_matches_loops_for_every_stride() {
        let (m, n, k) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        for (transpose_a, transpose_b, parallel) in [
            (false, false, true),
            (true, false, false),
            (false, true, false),
            (true, true, true),
        ] {
            let sa = if transpose_a { Strides::transposed(m) } else { Strides::row_major(k) };
            let sb = if transpose_b { Strides::transposed(k) } else { Strides::row_major(n) };
            let mut c = vec![1.0f32; m * n];
            matmul(
                (m, n, k),
                &mut c,
                Strides::row_major(n),
                true,
                0.5,
                Mat::new(&a, sa),
                Mat::new(&b, sb),
                parallel,
            );
            for i in 0..m {
                for j in 0..n {
                    let want: f32 = 1.0
                        + 0.5
                            * (0..k)
                                .map(|l| {
                                    a[i * sa.rows + l * sa.cols] * b[l * sb.rows + j * sb.cols]
                                })
                                .sum::<f32>();
                    assert!((c[i * n + j] - want).abs() < 1e-5, "({i}, {j})");
                }
            }
        }
    }
}
