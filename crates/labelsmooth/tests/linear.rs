//! Fused linear + cross-entropy against the unfused path and against the definition in f64.

use labelsmooth::loss::{
    CrossEntropy, LinearCrossEntropy, Reduction, unfused_linear_cross_entropy,
};
use labelsmooth::targets::Convention;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

struct Case {
    n: usize,
    h: usize,
    v: usize,
    hidden: Vec<f32>,
    weight: Vec<f32>,
    bias: Vec<f32>,
    targets: Vec<i64>,
}

fn case(n: usize, h: usize, v: usize, seed: u64) -> Case {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut r = |s: f32| (rng.random::<f32>() * 2.0 - 1.0) * s;
    let hidden = (0..n * h).map(|_| r(2.0)).collect();
    let weight = (0..h * v).map(|_| r(1.0)).collect();
    let bias = (0..v).map(|_| r(0.5)).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed + 1);
    let targets = (0..n)
        .map(|i| {
            if i % 5 == 3 {
                -100
            } else {
                rng.random_range(0..v as i64)
            }
        })
        .collect();
    Case {
        n,
        h,
        v,
        hidden,
        weight,
        bias,
        targets,
    }
}

/// Loss and gradients from the definition, in f64: logits = x·W + b, then
/// Σ_j c_j (lse − z_j) with c from the uniform convention and class weights.
fn reference(
    c: &Case,
    alpha: f64,
    w: &[f64],
    reduction: Reduction,
) -> (f64, Vec<f64>, Vec<f64>, Vec<f64>) {
    let (n, h, v) = (c.n, c.h, c.v);
    let mut total = 0.0;
    let mut denom = 0.0;
    let mut gz = vec![0.0; n * v];
    for i in 0..n {
        let t = c.targets[i];
        if t < 0 {
            continue;
        }
        let t = t as usize;
        denom += w[t];
        let z: Vec<f64> = (0..v)
            .map(|j| {
                f64::from(c.bias[j])
                    + (0..h)
                        .map(|d| f64::from(c.hidden[i * h + d]) * f64::from(c.weight[d * v + j]))
                        .sum::<f64>()
            })
            .collect();
        let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + z.iter().map(|x| (x - m).exp()).sum::<f64>().ln();
        let coef: Vec<f64> = (0..v)
            .map(|j| w[j] * (alpha / v as f64 + if j == t { 1.0 - alpha } else { 0.0 }))
            .collect();
        let big_c: f64 = coef.iter().sum();
        for j in 0..v {
            total += coef[j] * (lse - z[j]);
            gz[i * v + j] = (z[j] - lse).exp() * big_c - coef[j];
        }
    }
    let scale = if reduction == Reduction::Mean {
        1.0 / denom
    } else {
        1.0
    };
    let mut gx = vec![0.0; n * h];
    let mut gw = vec![0.0; h * v];
    let mut gb = vec![0.0; v];
    for i in 0..n {
        for j in 0..v {
            let g = gz[i * v + j] * scale;
            gb[j] += g;
            for d in 0..h {
                gx[i * h + d] += g * f64::from(c.weight[d * v + j]);
                gw[d * v + j] += g * f64::from(c.hidden[i * h + d]);
            }
        }
    }
    (total * scale, gx, gw, gb)
}

fn close(got: &[f32], want: &[f64], what: &str) {
    let scale = want.iter().fold(0.0f64, |a, v| a.max(v.abs())).max(1e-12);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (f64::from(g) - w).abs() <= 1e-5 * scale,
            "{what}[{i}] = {g}, want {w}"
        );
    }
}

#[test]
fn fused_equals_definition_for_every_block_size() {
    let c = case(11, 7, 23, 5);
    let weights: Vec<f32> = (0..c.v).map(|j| 0.5 + (j % 4) as f32 * 0.5).collect();
    let w64: Vec<f64> = weights.iter().map(|&x| f64::from(x)).collect();
    for reduction in [Reduction::Mean, Reduction::Sum] {
        let ce = CrossEntropy::new(c.v)
            .with_smoothing(0.2)
            .with_weights(weights.clone())
            .with_ignore_index(-100)
            .with_reduction(reduction);
        let (want, gx, gw, gb) = reference(&c, 0.2, &w64, reduction);
        for rows in [1, 3, 4, 11, 100] {
            let fused = LinearCrossEntropy::new(ce.clone()).with_block_rows(rows);
            let (loss, g) = fused
                .forward_backward(&c.hidden, c.h, &c.weight, Some(&c.bias), &c.targets)
                .unwrap();
            let l = f64::from(loss.scalar().unwrap());
            assert!(
                (l - want).abs() <= 1e-5 * want.abs(),
                "rows {rows}: {l} vs {want}"
            );
            close(&g.hidden, &gx, "hidden");
            close(&g.weight, &gw, "weight");
            close(g.bias.as_ref().unwrap(), &gb, "bias");
            let only = fused
                .forward(&c.hidden, c.h, &c.weight, Some(&c.bias), &c.targets)
                .unwrap();
            assert_eq!(only, loss);
        }
    }
}

#[test]
fn a_weight_stored_v_by_h_gives_the_same_results_in_its_layout() {
    let c = case(37, 9, 51, 3);
    let transpose = |m: &[f32], rows: usize, cols: usize| -> Vec<f32> {
        let mut t = vec![0.0; m.len()];
        for r in 0..rows {
            for k in 0..cols {
                t[k * rows + r] = m[r * cols + k];
            }
        }
        t
    };
    let wt = transpose(&c.weight, c.h, c.v);
    let ce = CrossEntropy::new(c.v)
        .with_smoothing(0.1)
        .with_ignore_index(-100);
    let w64 = vec![1.0; c.v];
    let (want, gx, gw, gb) = reference(&c, 0.1, &w64, Reduction::Mean);
    for rows in [1, 8, 37] {
        let (loss, g) = LinearCrossEntropy::new(ce.clone())
            .with_block_rows(rows)
            .with_weight_v_by_h()
            .forward_backward(&c.hidden, c.h, &wt, Some(&c.bias), &c.targets)
            .unwrap();
        let l = f64::from(loss.scalar().unwrap());
        assert!((l - want).abs() <= 1e-5 * want.abs(), "{l} vs {want}");
        close(&g.hidden, &gx, "hidden");
        close(&transpose(&g.weight, c.v, c.h), &gw, "weight");
        close(g.bias.as_ref().unwrap(), &gb, "bias");
    }
}

#[test]
fn fused_equals_unfused_on_random_data() {
    let c = case(300, 16, 700, 9);
    for conv in [Convention::Uniform, Convention::ExcludeTrue] {
        let ce = CrossEntropy::new(c.v)
            .with_smoothing(0.1)
            .with_convention(conv)
            .with_ignore_index(-100);
        let (l1, g1) = LinearCrossEntropy::new(ce.clone())
            .with_block_rows(64)
            .forward_backward(&c.hidden, c.h, &c.weight, None, &c.targets)
            .unwrap();
        let (l2, g2) =
            unfused_linear_cross_entropy(&ce, &c.hidden, c.h, &c.weight, None, &c.targets).unwrap();
        let (a, b) = (l1.scalar().unwrap(), l2.scalar().unwrap());
        assert!((a - b).abs() <= 1e-5 * b.abs(), "{a} vs {b}");
        assert!(g1.bias.is_none());
        let to64 = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
        close(&g1.hidden, &to64(&g2.hidden), "hidden");
        close(&g1.weight, &to64(&g2.weight), "weight");
    }
}

#[test]
fn per_row_losses_and_errors() {
    let c = case(6, 3, 5, 1);
    let ce = CrossEntropy::new(c.v)
        .with_ignore_index(-100)
        .with_reduction(Reduction::None);
    let fused = LinearCrossEntropy::new(ce).with_block_rows(4);
    let loss = fused
        .forward(&c.hidden, c.h, &c.weight, None, &c.targets)
        .unwrap();
    assert_eq!(loss.as_slice().len(), 6);
    assert_eq!(loss.as_slice()[3], 0.0);
    assert!(
        fused
            .forward(&c.hidden, c.h, &c.weight[1..], None, &c.targets)
            .is_err()
    );
    assert!(
        fused
            .forward(&c.hidden, c.h, &c.weight, Some(&c.bias[1..]), &c.targets)
            .is_err()
    );
    assert!(
        fused
            .forward(&c.hidden, c.h, &c.weight, None, &c.targets[1..])
            .is_err()
    );
    assert!(
        fused
            .forward(&c.hidden, 0, &c.weight, None, &c.targets)
            .is_err()
    );
    let mut bad = c.hidden.clone();
    bad[4] = f32::NAN;
    let e = fused
        .forward(&bad, c.h, &c.weight, None, &c.targets)
        .unwrap_err();
    assert!(e.to_string().contains("row 1, column 1"), "{e}");
    let mut t = c.targets.clone();
    t[0] = 5;
    assert!(fused.forward(&c.hidden, c.h, &c.weight, None, &t).is_err());
}
