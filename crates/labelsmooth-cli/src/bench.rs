//! `labelsmooth bench`: timings of the loss kernels, printed as a table or JSON.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use labelsmooth::loss::{CrossEntropy, LinearCrossEntropy, unfused_linear_cross_entropy};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use rayon::prelude::*;
use serde::Serialize;

use crate::alloc;

/// Median of `reps` timed calls of `f` (after one warm-up call), in seconds.
pub fn median_seconds(reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// Parses `NxK,NxK,...`.
pub fn parse_shapes(s: &str) -> Result<Vec<(usize, usize)>> {
    s.split(',')
        .map(|part| {
            let (n, k) = part
                .trim()
                .split_once(['x', 'X'])
                .with_context(|| format!("shape `{part}` is not NxK"))?;
            let n: usize = n
                .parse()
                .with_context(|| format!("shape `{part}`: bad N"))?;
            let k: usize = k
                .parse()
                .with_context(|| format!("shape `{part}`: bad K"))?;
            if n == 0 || k == 0 {
                bail!("shape `{part}`: N and K must be at least 1");
            }
            Ok((n, k))
        })
        .collect()
}

fn normal_vec(len: usize, std: f32, seed: u64) -> Vec<f32> {
    let dist = Normal::new(0.0f32, std).expect("a positive standard deviation");
    // Filled in parallel blocks, each from its own seeded stream, so that it is deterministic.
    let mut v = vec![0.0f32; len];
    v.par_chunks_mut(1 << 20)
        .enumerate()
        .for_each(|(i, chunk)| {
            let mut rng =
                ChaCha8Rng::seed_from_u64(seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            for x in chunk {
                *x = dist.sample(&mut rng);
            }
        });
    v
}

/// Read + write bandwidth of a large parallel array copy, in GB/s (median of 7).
pub fn copy_bandwidth(bytes: usize) -> Result<f64> {
    let len = bytes / 4;
    let src = normal_vec(len, 1.0, 99);
    let mut dst = vec![1.0f32; len];
    let chunk = len.div_ceil(rayon::current_num_threads() * 8).max(1);
    let s = median_seconds(7, || {
        dst.par_chunks_mut(chunk)
            .zip(src.par_chunks(chunk))
            .for_each(|(d, s)| d.copy_from_slice(s));
        Ok(())
    })?;
    std::hint::black_box(&dst);
    Ok(2.0 * (len * 4) as f64 / s / 1e9)
}

/// One row of `bench loss`.
#[derive(Debug, Serialize)]
pub struct LossRow {
    /// Rows.
    pub n: usize,
    /// Classes.
    pub k: usize,
    /// Median forward + backward time.
    pub median_ms: f64,
    /// Logits read once + gradient written once, per second.
    pub gbps: f64,
    /// Copy bandwidth measured in the same run.
    pub copy_gbps: f64,
    /// `gbps / copy_gbps`.
    pub fraction_of_copy: f64,
}

/// Forward + backward of the smoothed cross-entropy (α = 0.1, mean) on logits ~ N(0, 3²).
pub fn loss(shapes: &[(usize, usize)], reps: usize, copy_bytes: usize) -> Result<Vec<LossRow>> {
    let copy_gbps = copy_bandwidth(copy_bytes)?;
    let mut rows = Vec::new();
    for &(n, k) in shapes {
        let logits = normal_vec(n * k, 3.0, (n * 31 + k) as u64);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let targets: Vec<i64> = (0..n).map(|_| rng.random_range(0..k as i64)).collect();
        let mut grad = vec![0.0f32; n * k];
        let ce = CrossEntropy::new(k).with_smoothing(0.1);
        let s = median_seconds(reps, || {
            ce.forward_backward(&logits, &targets, &mut grad)?;
            Ok(())
        })?;
        let gbps = 2.0 * (n * k * 4) as f64 / s / 1e9;
        rows.push(LossRow {
            n,
            k,
            median_ms: s * 1e3,
            gbps,
            copy_gbps,
            fraction_of_copy: gbps / copy_gbps,
        });
    }
    Ok(rows)
}

/// One row of `bench linear`.
#[derive(Debug, Serialize)]
pub struct LinearRow {
    /// `fused` or `unfused`.
    pub path: &'static str,
    /// Rows.
    pub n: usize,
    /// Hidden size.
    pub h: usize,
    /// Vocabulary.
    pub v: usize,
    /// Median forward + backward time.
    pub median_ms: f64,
    /// Peak bytes allocated during a call beyond what was allocated before it (MB).
    pub peak_extra_mb: f64,
}

/// Fused and unfused linear + smoothed cross-entropy, time and peak memory.
pub fn linear(
    n: usize,
    h: usize,
    v: usize,
    reps: usize,
    block_rows: Option<usize>,
) -> Result<Vec<LinearRow>> {
    let hidden = normal_vec(n * h, 1.0, 1);
    let weight = normal_vec(h * v, 1.0 / (h as f32).sqrt(), 2);
    let bias = normal_vec(v, 0.1, 3);
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let targets: Vec<i64> = (0..n).map(|_| rng.random_range(0..v as i64)).collect();
    let ce = CrossEntropy::new(v).with_smoothing(0.1);
    let mut fused = LinearCrossEntropy::new(ce.clone());
    if let Some(rows) = block_rows {
        fused = fused.with_block_rows(rows);
    }
    let mut out = Vec::new();
    for path in ["fused", "unfused"] {
        let run = || -> Result<()> {
            let r = if path == "fused" {
                fused.forward_backward(&hidden, h, &weight, Some(&bias), &targets)?
            } else {
                unfused_linear_cross_entropy(&ce, &hidden, h, &weight, Some(&bias), &targets)?
            };
            std::hint::black_box(r);
            Ok(())
        };
        // The first call also sets up the matrix-product and thread-pool workspaces: measure
        // the second.
        run()?;
        alloc::reset_peak();
        let before = alloc::live();
        run()?;
        let peak = alloc::peak() - before;
        let s = median_seconds(reps, run)?;
        out.push(LinearRow {
            path,
            n,
            h,
            v,
            median_ms: s * 1e3,
            peak_extra_mb: peak as f64 / 1e6,
        });
    }
    Ok(out)
}
