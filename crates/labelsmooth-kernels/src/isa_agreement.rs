//! Every dispatched kernel, run by each instruction set's copy on the same inputs: the AVX-512
//! and AVX2 copies must give the same bits, and so must the baseline, except for the small
//! matrix product, whose vector copies fuse multiply and add (see `small_matmul_copies_agree`).
//! A set this CPU lacks is skipped, with a line on stderr.

use crate::Isa;
use crate::adam::{AdamScalars, adam_update_on};
use crate::lstm::{cell_backward_on, cell_forward_on};
use crate::matmul::{Strides, small_matmul_on};
use crate::softmax_row::{RowStats, affine_on, row_stats_on};

/// Deterministic values in [−scale, scale).
fn values(len: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// Runs `run` with every set, returning the results of those this CPU has.
fn on_every_set<R>(kernel: &str, mut run: impl FnMut(Isa) -> Option<R>) -> Vec<(Isa, R)> {
    let mut out = Vec::new();
    for isa in Isa::ALL {
        match run(isa) {
            Some(r) => out.push((isa, r)),
            None => eprintln!(
                "{kernel}: this CPU lacks {}, its copy is not checked",
                isa.name()
            ),
        }
    }
    assert!(
        out.iter().any(|(isa, _)| *isa == Isa::Baseline),
        "{kernel}: the baseline always runs"
    );
    out
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Asserts that every copy gave the same bits as the first.
fn all_equal<R: PartialEq + std::fmt::Debug>(kernel: &str, results: &[(Isa, R)]) {
    let (first_isa, first) = &results[0];
    for (isa, r) in &results[1..] {
        assert_eq!(
            r,
            first,
            "{kernel}: {} and {} differ",
            isa.name(),
            first_isa.name()
        );
    }
}

fn stats_bits(s: &RowStats) -> [u64; 6] {
    [
        u64::from(s.max.to_bits()),
        s.sum_exp.to_bits(),
        s.n_max.to_bits(),
        s.sum_exp_below.to_bits(),
        s.sum_shift.to_bits(),
        s.wsum_shift.to_bits(),
    ]
}

#[test]
fn row_stats_copies_agree() {
    // Lengths around the 16 lanes and the 512-element blocks; ties at the max and −inf.
    for len in [1usize, 5, 16, 17, 100, 512, 1037] {
        let mut x = values(len, len as u64, 8.0);
        x[len / 2] = f32::NEG_INFINITY;
        if len > 3 {
            x[1] = 9.0;
            x[len - 1] = 9.0;
        }
        let w: Vec<f32> = values(len, 7 + len as u64, 1.0)
            .into_iter()
            .map(|v| if v < 0.0 { 0.0 } else { v })
            .collect();
        for weighted in [false, true] {
            let results = on_every_set("row_stats", |isa| {
                let mut store = vec![0.0f32; len];
                let w = weighted.then_some(&w[..]);
                let plain = row_stats_on(isa, &x, w, None)?;
                let stored = row_stats_on(isa, &x, w, Some(&mut store))?;
                assert_eq!(stats_bits(&plain), stats_bits(&stored));
                Some((stats_bits(&stored), bits(&store)))
            });
            all_equal(
                &format!("row_stats (len {len}, weighted {weighted})"),
                &results,
            );
        }
    }
}

#[test]
fn affine_copies_agree() {
    for len in [1usize, 16, 37, 1000] {
        let g = values(len, 3 + len as u64, 2.0);
        let w = values(len, 5 + len as u64, 1.0);
        for weighted in [false, true] {
            let results = on_every_set("affine", |isa| {
                let mut g = g.clone();
                let top = affine_on(isa, &mut g, 0.7, 0.3, weighted.then_some(&w[..]))?;
                Some((top.to_bits(), bits(&g)))
            });
            all_equal(
                &format!("affine (len {len}, weighted {weighted})"),
                &results,
            );
        }
    }
}

#[test]
fn small_matmul_copies_agree() {
    // n = 90 takes a 64-column panel, a 16-column panel and a 10-column tail; m = 7 four rows
    // at a time and three alone.
    let (m, n, k) = (7usize, 90usize, 33usize);
    let (lda, ldb, ldc) = (k + 3, n + 2, n + 5);
    let a = values(m * lda, 11, 1.5);
    let b = values(k * ldb, 13, 1.5);
    let c0 = values(m * ldc, 17, 1.0);
    let mut a_t = vec![0.0f32; k * m];
    for i in 0..m {
        for l in 0..k {
            a_t[l * m + i] = a[i * lda + l];
        }
    }
    for (name, a, sa) in [
        ("row-major a", &a, Strides::row_major(lda)),
        ("transposed a", &a_t, Strides::transposed(m)),
    ] {
        let results = on_every_set("small_matmul", |isa| {
            let mut c = c0.clone();
            small_matmul_on(isa, (m, n, k), a, sa, &b, ldb, &mut c, ldc)?;
            Some(c)
        });
        let fused: Vec<_> = results
            .iter()
            .filter(|(isa, _)| *isa != Isa::Baseline)
            .map(|(isa, c)| (*isa, bits(c)))
            .collect();
        if !fused.is_empty() {
            all_equal(&format!("small_matmul ({name})"), &fused);
        }
        // The baseline rounds each product before adding it; with fused multiply-add, each
        // result and the exact sum differ by at most (k + 1)·ε·(|c0| + Σ|a||b|), so two results
        // by twice that.
        let baseline = &results.last().expect("baseline").1;
        for (isa, c) in &results {
            for i in 0..m {
                for j in 0..ldc {
                    let at = i * ldc + j;
                    let scale = if j < n {
                        c0[at].abs()
                            + (0..k)
                                .map(|l| (a[i * sa.rows + l * sa.cols] * b[l * ldb + j]).abs())
                                .sum::<f32>()
                    } else {
                        0.0
                    };
                    let tol = 2.0 * (k + 1) as f32 * f32::EPSILON * scale;
                    assert!(
                        (c[at] - baseline[at]).abs() <= tol,
                        "small_matmul ({name}): {} and baseline differ at ({i}, {j}): {} vs {}",
                        isa.name(),
                        c[at],
                        baseline[at]
                    );
                }
            }
        }
    }
}

#[test]
fn lstm_cell_copies_agree() {
    // h = 37: two 16-lane steps and a tail of 5; both steps of a two-step sequence, the last
    // one writing h_last.
    let (nb, t_len, h) = (3usize, 2usize, 37usize);
    let rows = nb * t_len;
    let gates = values(rows * 4 * h, 19, 3.0);
    let c = values(nb * h, 23, 1.0);
    for t in 0..t_len {
        let results = on_every_set("cell_forward", |isa| {
            let (mut gates, mut c) = (gates.clone(), c.clone());
            let mut c_prev = vec![0.0f32; rows * h];
            let mut tanh_c = vec![0.0f32; rows * h];
            let mut h_prev = vec![0.0f32; rows * h];
            let mut h_last = vec![0.0f32; nb * h];
            cell_forward_on(
                isa,
                (nb, t, t_len, h),
                &mut gates,
                &mut c,
                &mut c_prev,
                &mut tanh_c,
                &mut h_prev,
                &mut h_last,
            )?;
            Some([gates, c, c_prev, tanh_c, h_prev, h_last].map(|v| bits(&v)))
        });
        all_equal(&format!("cell_forward (step {t})"), &results);
    }
    let acts: Vec<f32> = values(rows * 4 * h, 29, 1.0)
        .into_iter()
        .map(f32::abs)
        .collect();
    let c_prev = values(rows * h, 31, 1.0);
    let tanh_c = values(rows * h, 37, 0.9);
    let dh = values(nb * h, 41, 1.0);
    let dc = values(nb * h, 43, 1.0);
    for t in 0..t_len {
        let results = on_every_set("cell_backward", |isa| {
            let mut dc = dc.clone();
            let mut dz = vec![0.0f32; rows * 4 * h];
            cell_backward_on(
                isa,
                (nb, t, t_len, h),
                &acts,
                &c_prev,
                &tanh_c,
                &dh,
                &mut dc,
                &mut dz,
            )?;
            Some([dc, dz].map(|v| bits(&v)))
        });
        all_equal(&format!("cell_backward (step {t})"), &results);
    }
}

#[test]
fn adam_update_copies_agree() {
    let n = 53;
    let w = values(n, 47, 1.0);
    let g = values(n, 53, 0.1);
    let m = values(n, 59, 0.01);
    let v: Vec<f32> = values(n, 61, 0.001).into_iter().map(f32::abs).collect();
    for (first, decay) in [(true, false), (false, false), (false, true)] {
        let k = AdamScalars {
            beta_1: 0.9,
            beta_2: 0.999,
            f1: 1.0 - 0.9,
            f2: 1.0 - 0.999,
            combined: 1.7,
            eps: 1e-8,
            lr: 1e-3,
            penalty: 1e-4,
            decay,
            first,
        };
        let results = on_every_set("adam_update", |isa| {
            let (mut w, mut m, mut v) = (w.clone(), m.clone(), v.clone());
            adam_update_on(isa, &k, &mut w, &g, &mut m, &mut v)?;
            Some([w, m, v].map(|x| bits(&x)))
        });
        all_equal(
            &format!("adam_update (first {first}, decay {decay})"),
            &results,
        );
    }
}

#[test]
fn mobile_kernel_copies_agree() {
    use crate::activation::{relu6_backward_chunk_on, relu6_chunk_on};
    use crate::mobile::{
        affine_in_place_on, axpy_on, deviation_sum_on, dot_on, norm_plane, norm_plane_dx_on,
        norm_plane_on, norm_plane_sums_on,
    };
    // Lengths around the sixteen lanes, values beyond ReLU6's corners.
    for len in [1usize, 9, 16, 17, 36, 100, 2305] {
        let x = values(len, 40 + len as u64, 8.0);
        let g = values(len, 50 + len as u64, 1.0);
        let y: Vec<f32> = x.iter().map(|v| v.clamp(0.0, 6.0)).collect();
        let case = |k: &str| format!("{k} (len {len})");
        all_equal(
            &case("axpy"),
            &on_every_set("axpy", |isa| {
                let mut d = g.clone();
                axpy_on(isa, &mut d, &x, 0.37)?;
                Some(bits(&d))
            }),
        );
        all_equal(
            &case("dot"),
            &on_every_set("dot", |isa| dot_on(isa, &x, &g).map(f32::to_bits)),
        );
        for square in [false, true] {
            all_equal(
                &case("deviation_sum"),
                &on_every_set("deviation_sum", |isa| {
                    deviation_sum_on(isa, &x, 0.25, square).map(f64::to_bits)
                }),
            );
        }
        for relu6 in [false, true] {
            all_equal(
                &case("norm_plane"),
                &on_every_set("norm_plane", |isa| {
                    let mut o = vec![0.0; len];
                    norm_plane_on(isa, &mut o, &x, 1.3, -0.4, relu6)?;
                    Some(bits(&o))
                }),
            );
            let in_place = on_every_set("affine_in_place", |isa| {
                let mut o = x.clone();
                affine_in_place_on(isa, &mut o, 1.3, -0.4, relu6)?;
                Some(bits(&o))
            });
            all_equal(&case("affine_in_place"), &in_place);
            // In place or not, the same arithmetic.
            let mut o = vec![0.0; len];
            norm_plane(&mut o, &x, 1.3, -0.4, relu6);
            assert_eq!(
                in_place[0].1,
                bits(&o),
                "affine_in_place vs norm_plane (len {len})"
            );
            let yy = relu6.then_some(y.as_slice());
            all_equal(
                &case("norm_plane_sums"),
                &on_every_set("norm_plane_sums", |isa| {
                    norm_plane_sums_on(isa, &g, &x, yy, 0.3)
                        .map(|(a, b)| (a.to_bits(), b.to_bits()))
                }),
            );
            all_equal(
                &case("norm_plane_dx"),
                &on_every_set("norm_plane_dx", |isa| {
                    let mut o = vec![0.0; len];
                    norm_plane_dx_on(isa, &mut o, &g, &x, yy, [0.9, -0.1, 0.02, 0.3])?;
                    Some(bits(&o))
                }),
            );
        }
        all_equal(
            &case("relu6"),
            &on_every_set("relu6", |isa| {
                let mut o = vec![0.0; len];
                relu6_chunk_on(isa, &mut o, &x)?;
                Some(bits(&o))
            }),
        );
        all_equal(
            &case("relu6_backward"),
            &on_every_set("relu6_backward", |isa| {
                let mut o = vec![0.0; len];
                relu6_backward_chunk_on(isa, &mut o, &y, &g)?;
                Some(bits(&o))
            }),
        );
    }
}
