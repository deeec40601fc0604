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
use labelsmooth_burn::device::Backend;

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
    /// `cpu` or a GPU backend.
    pub device: String,
    /// `kernel` (the core's on the CPU, the CubeCL one on a GPU) or `tensor-ops` (Burn's
    /// operations, on a GPU).
    pub path: &'static str,
    /// The adapter's name, on a GPU.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adapter: Option<String>,
    /// Rows.
    pub n: usize,
    /// Classes.
    pub k: usize,
    /// Median forward + backward time.
    pub median_ms: f64,
    /// Logits read once + gradient written once, per second.
    pub gbps: f64,
    /// Copy bandwidth measured in the same run (on a GPU by CubeCL's memory probe, where it
    /// has a figure).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copy_gbps: Option<f64>,
    /// `gbps / copy_gbps`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fraction_of_copy: Option<f64>,
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
            device: "cpu".into(),
            path: "kernel",
            adapter: None,
            n,
            k,
            median_ms: s * 1e3,
            gbps,
            copy_gbps: Some(copy_gbps),
            fraction_of_copy: Some(gbps / copy_gbps),
        });
    }
    Ok(rows)
}

/// [`loss`] on a GPU backend through `SmoothedCrossEntropy`, with its CubeCL kernel and with
/// Burn's tensor operations: the same logits and targets, forward + backward to the logits'
/// gradient, the device synchronized before each timing ends.
pub fn loss_on_device(
    shapes: &[(usize, usize)],
    reps: usize,
    backend: Backend,
) -> Result<Vec<LossRow>> {
    use labelsmooth_burn::burn::tensor::{Int, Tensor, TensorData};
    use labelsmooth_burn::loss::SmoothedCrossEntropyConfig;
    let device = backend.open()?;
    let copy_gbps = labelsmooth_burn::device::copy_gbps(&device);
    let adapter = labelsmooth_burn::device::adapter_name(&device);
    let ad = device.autodiff();
    let sync = || {
        ad.sync()
            .map_err(|e| anyhow::anyhow!("the device failed: {e:?}"))
    };
    let mut rows = Vec::new();
    for &(n, k) in shapes {
        let values = normal_vec(n * k, 3.0, (n * 31 + k) as u64);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let targets: Vec<i64> = (0..n).map(|_| rng.random_range(0..k as i64)).collect();
        let logits = Tensor::<2>::from_data(TensorData::new(values, [n, k]), &ad).require_grad();
        let targets = Tensor::<1, Int>::from_data(TensorData::new(targets, [n]), &ad);
        for (fused, path) in [(true, "kernel"), (false, "tensor-ops")] {
            let ce = SmoothedCrossEntropyConfig::new(k)
                .with_smoothing(0.1)
                .with_fused(fused)
                .init(&ad);
            sync()?;
            let s = median_seconds(reps, || {
                let grads = ce.forward(logits.clone(), targets.clone()).backward();
                let g = logits.grad(&grads).context("the logits have no gradient")?;
                std::hint::black_box(g);
                sync()
            })?;
            let gbps = 2.0 * (n * k * 4) as f64 / s / 1e9;
            rows.push(LossRow {
                device: backend.to_string(),
                path,
                adapter: adapter.clone(),
                n,
                k,
                median_ms: s * 1e3,
                gbps,
                copy_gbps,
                fraction_of_copy: copy_gbps.map(|c| gbps / c),
            });
        }
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

/// Linear + smoothed cross-entropy on a GPU backend through Burn: `fused` forms the logits in
/// blocks of rows with the CubeCL kernel ([`SmoothedCrossEntropy::try_forward_linear`]),
/// `unfused` forms the whole logits and runs the same kernel on them; time, and the growth of the
/// device's memory pools during a call.
///
/// [`SmoothedCrossEntropy::try_forward_linear`]: labelsmooth_burn::loss::SmoothedCrossEntropy::try_forward_linear
pub fn linear_on_device(
    (n, h, v): (usize, usize, usize),
    reps: usize,
    block_rows: Option<usize>,
    backend: Backend,
) -> Result<Vec<LinearRow>> {
    use labelsmooth_burn::burn::tensor::{Int, Tensor, TensorData};
    use labelsmooth_burn::device::reserved_bytes;
    use labelsmooth_burn::loss::SmoothedCrossEntropyConfig;
    let device = backend.open()?;
    let ad = device.clone().autodiff();
    let sync = || {
        ad.sync()
            .map_err(|e| anyhow::anyhow!("the device failed: {e:?}"))
    };
    let leaf = |values: Vec<f32>, shape: [usize; 2]| {
        Tensor::<2>::from_data(TensorData::new(values, shape), &ad).require_grad()
    };
    let hidden = leaf(normal_vec(n * h, 1.0, 1), [n, h]);
    let weight = leaf(normal_vec(h * v, 1.0 / (h as f32).sqrt(), 2), [h, v]);
    let bias =
        Tensor::<1>::from_data(TensorData::new(normal_vec(v, 0.1, 3), [v]), &ad).require_grad();
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let targets: Vec<i64> = (0..n).map(|_| rng.random_range(0..v as i64)).collect();
    let targets = Tensor::<1, Int>::from_data(TensorData::new(targets, [n]), &ad);
    let ce = SmoothedCrossEntropyConfig::new(v)
        .with_smoothing(0.1)
        .init(&ad);
    // About 4 M logits per block, as the core's default.
    let block = block_rows.unwrap_or_else(|| ((4 << 20) / v).max(16));
    let mut out = Vec::new();
    for path in ["fused", "unfused"] {
        let run = || -> Result<()> {
            let loss = if path == "fused" {
                ce.try_forward_linear(
                    hidden.clone(),
                    weight.clone(),
                    bias.clone(),
                    targets.clone(),
                    block,
                )?
            } else {
                let logits = hidden.clone().matmul(weight.clone()) + bias.clone().reshape([1, v]);
                ce.try_forward(logits, targets.clone())?
            };
            let grads = loss.backward();
            let g = weight.grad(&grads).context("the weight has no gradient")?;
            std::hint::black_box(g);
            sync()
        };
        run()?;
        let before = reserved_bytes(&device).unwrap_or(0);
        run()?;
        let after = device
            .memory_pool_usage()
            .map_or(before, |u| u.bytes_reserved);
        let s = median_seconds(reps, run)?;
        out.push(LinearRow {
            path,
            n,
            h,
            v,
            median_ms: s * 1e3,
            peak_extra_mb: after.saturating_sub(before) as f64 / 1e6,
        });
    }
    Ok(out)
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
        let peak = (alloc::peak() - before).max(0) as usize;
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

/// One row of `bench train`.
#[derive(Debug, Serialize)]
pub struct TrainRow {
    /// `mlp`, `cnn`, `lstm`, `mobilenet-v2` or `mobilenet-v2-frozen`.
    pub model: String,
    /// `cpu` or the GPU backend.
    pub device: String,
    /// Training samples per second: samples of an epoch over the median epoch time.
    pub samples_per_s: f64,
    /// Median epoch time.
    pub median_epoch_ms: f64,
    /// The first (warm-up) epoch's time: for `mobilenet-v2-frozen` the one that runs the
    /// backbone over every image; later epochs train the classifier on its cached features.
    pub first_epoch_ms: f64,
    /// Training samples per second of the first epoch.
    pub first_epoch_samples_per_s: f64,
    /// Epochs timed (after one warm-up epoch).
    pub epochs: usize,
}

/// Epoch throughput of the reference benchmark's nets (same shapes as `torch_anchor.py`):
/// random data, Adam, label smoothing 0.1; batch 64, and for MobileNetV2 (width 1, 96×96 RGB,
/// 10 classes) batch 32, the whole network (`mobilenet-v2`) or only its classifier on a frozen
/// backbone (`mobilenet-v2-frozen`).
pub fn train(models: &[String], epochs: usize, backend: Backend) -> Result<Vec<TrainRow>> {
    let device = &backend.open()?;
    use labelsmooth_burn::mobilenet::MobileNetV2Config;
    use labelsmooth_burn::models::{ConvNetConfig, MlpConfig, TextClassifierConfig};
    use labelsmooth_burn::train::{Inputs, ModelSpec, TrainConfig};
    let mut rows = Vec::new();
    for model in models {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let (spec, inputs, n, k) = match model.as_str() {
            "mlp" => {
                let n = 2000;
                let x = normal_vec(n * 64, 1.0, 11);
                (
                    ModelSpec::Mlp(MlpConfig::new(64, vec![128], 10)),
                    Inputs::Dense {
                        values: x,
                        shape: vec![64],
                    },
                    n,
                    10,
                )
            }
            "cnn" => {
                let n = 4096;
                let x = normal_vec(n * 28 * 28, 1.0, 12);
                (
                    ModelSpec::ConvNet(ConvNetConfig::new(1, 28, 10)),
                    Inputs::Dense {
                        values: x,
                        shape: vec![1, 28, 28],
                    },
                    n,
                    10,
                )
            }
            "lstm" => {
                let n = 2048;
                let ids: Vec<u32> = (0..n * 100)
                    .map(|_| rng.random_range(0..10_000u32))
                    .collect();
                (
                    ModelSpec::Text(TextClassifierConfig::new(10_000, 2)),
                    Inputs::Tokens { ids, steps: 100 },
                    n,
                    2,
                )
            }
            "mobilenet-v2" | "mobilenet-v2-frozen" => {
                let n = 128;
                let x = normal_vec(n * 3 * 96 * 96, 1.0, 13);
                (
                    ModelSpec::MobileNet(MobileNetV2Config::new(10)),
                    Inputs::Dense {
                        values: x,
                        shape: vec![3, 96, 96],
                    },
                    n,
                    10,
                )
            }
            other => {
                bail!("unknown model `{other}` (mlp, cnn, lstm, mobilenet-v2, mobilenet-v2-frozen)")
            }
        };
        let labels: Vec<usize> = (0..n).map(|_| rng.random_range(0..k)).collect();
        let mobilenet = model.starts_with("mobilenet");
        let cfg = TrainConfig {
            epochs: epochs + 1,
            smoothing: 0.1,
            batch_size: if mobilenet { 32 } else { 64 },
            frozen_epochs: (model == "mobilenet-v2-frozen").then_some(epochs + 1),
            ..Default::default()
        };
        let out = labelsmooth_burn::train::train(&spec, (&inputs, &labels), None, k, &cfg, device)?;
        let first = out.history[0].seconds;
        let mut times: Vec<f64> = out.history.iter().skip(1).map(|h| h.seconds).collect();
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        rows.push(TrainRow {
            model: model.clone(),
            device: backend.to_string(),
            samples_per_s: n as f64 / median,
            median_epoch_ms: median * 1e3,
            first_epoch_ms: first * 1e3,
            first_epoch_samples_per_s: n as f64 / first,
            epochs,
        });
    }
    Ok(rows)
}

/// One row of `bench step`.
#[derive(Debug, Serialize)]
pub struct StepRow {
    /// `fused` (the core kernel) or `tensor-ops` (Burn operations).
    pub loss_path: &'static str,
    /// Median time of one training step (forward, loss, backward, Adam update).
    pub median_ms: f64,
}

/// A training step of a linear output layer `[batch, hidden] → [batch, vocab]` with the smoothed
/// cross-entropy computed by the fused kernel and by Burn tensor operations.
pub fn step(batch: usize, hidden: usize, vocab: usize, reps: usize) -> Result<Vec<StepRow>> {
    use labelsmooth_burn::burn::module::Module;
    use labelsmooth_burn::burn::nn::LinearConfig;
    use labelsmooth_burn::burn::optim::{AdamConfig, GradientsParams};
    use labelsmooth_burn::burn::tensor::{Device, Int, Tensor, TensorData};
    use labelsmooth_burn::loss::SmoothedCrossEntropyConfig;
    let device = Device::flex().autodiff();
    let x = Tensor::<2>::from_data(
        TensorData::new(normal_vec(batch * hidden, 1.0, 5), [batch, hidden]),
        &device,
    );
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let ids: Vec<i64> = (0..batch)
        .map(|_| rng.random_range(0..vocab as i64))
        .collect();
    let targets = Tensor::<1, Int>::from_data(TensorData::new(ids, [batch]), &device);
    let mut out = Vec::new();
    for (name, fused) in [("fused", true), ("tensor-ops", false)] {
        device.seed(1);
        let mut layer = LinearConfig::new(hidden, vocab).init(&device).train();
        let loss = SmoothedCrossEntropyConfig::new(vocab)
            .with_smoothing(0.1)
            .with_fused(fused)
            .init(&device);
        let mut optim = AdamConfig::new().init();
        let s = median_seconds(reps, || {
            let l = loss.forward(layer.forward(x.clone()), targets.clone());
            let grads = GradientsParams::from_grads(l.backward(), &layer);
            layer = optim.step(1e-3, layer.clone(), grads);
            Ok(())
        })?;
        out.push(StepRow {
            loss_path: name,
            median_ms: s * 1e3,
        });
    }
    Ok(out)
}
