//! The Burn loss modules equal the core library (and so PyTorch) on the golden cases: values
//! and gradients through autodiff, on the fused path and on the tensor-operation path; built
//! with the `wgpu` feature, the tensor-operation path and the CubeCL kernel also on the GPU
//! (Mesa's lavapipe on machines without one). A linear output layer with the loss equals the
//! core's fused linear cross-entropy on every device (in row blocks on the GPU).

use labelsmooth::loss::{
    BinaryCrossEntropy as CoreBce, CrossEntropy, LinearCrossEntropy, Reduction,
    SoftCrossEntropy as CoreSoft,
};
use labelsmooth::targets::Convention;
use labelsmooth_burn::burn::tensor::{Device, Int, Tensor, TensorData};
#[cfg(feature = "wgpu")]
use labelsmooth_burn::loss::SmoothedCrossEntropy;
use labelsmooth_burn::loss::{
    BinaryCrossEntropyConfig, ConfidencePenaltyConfig, DistillationConfig,
    SmoothedCrossEntropyConfig, SoftCrossEntropyConfig,
};
use serde_json::Value;

fn cases(file: &str) -> Vec<serde_json::Map<String, Value>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/golden")
        .join(file);
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_object().unwrap().clone())
        .collect()
}

fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn leaf(values: Vec<f32>, shape: [usize; 2]) -> Tensor<2> {
    leaf_on(values, shape, &Device::flex())
}

fn leaf_on(values: Vec<f32>, shape: [usize; 2], device: &Device) -> Tensor<2> {
    Tensor::<2>::from_data(TensorData::new(values, shape), &device.clone().autodiff())
        .require_grad()
}

/// The devices the tensor-operation path is checked on: the CPU, and the GPU when built with it.
fn devices() -> Vec<Device> {
    #[allow(unused_mut)]
    let mut all = vec![Device::flex()];
    #[cfg(feature = "wgpu")]
    all.push(
        labelsmooth_burn::device::Backend::Wgpu
            .open()
            .unwrap_or_else(|e| panic!("{e}")),
    );
    all
}

/// The relative error a device's row sums may carry beyond the CPU's: Burn's CubeCL reduction
/// adds a row's terms into one float32 accumulator, whose error is bounded by (k − 1)·ε of the
/// sum (recursive summation), and terms below half an ulp of the running sum are lost.
fn summation_bound(device: &Device, k: usize) -> f32 {
    if *device == Device::flex() {
        0.0
    } else {
        (k.saturating_sub(1)) as f32 * f32::EPSILON
    }
}

/// The same for the GPU kernel: each of its 256 units sums a strided part of the row, and the
/// parts are added pairwise in 8 rounds.
fn kernel_summation_bound(k: usize) -> f32 {
    (k.div_ceil(256) + 8) as f32 * f32::EPSILON
}

/// A scalar loss and its gradient for the leaf `x` against the expected ones, within 2e-5 of
/// their largest magnitude.
fn check_scalar(what: &str, value: Tensor<1>, x: &Tensor<2>, want: &[f32], want_grad: &[f32]) {
    let got = value.clone().into_scalar::<f32>();
    close(&format!("{what} loss"), &[got], want, 2e-5);
    let grad = to_vec(x.grad(&value.backward()).unwrap());
    close(&format!("{what} grad"), &grad, want_grad, 2e-5);
}

fn to_vec(t: Tensor<2>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

fn close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}");
    let scale = want.iter().fold(0.0f32, |a, v| a.max(v.abs())).max(1e-6);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol * scale, "{what}[{i}]: {g} vs {w}");
    }
}

fn reduction(c: &serde_json::Map<String, Value>) -> Reduction {
    c["reduction"].as_str().unwrap().parse().unwrap()
}

#[test]
fn smoothed_cross_entropy_equals_the_core() {
    let mut checked = 0;
    for c in cases("cross_entropy_index.json") {
        let (n, k) = (
            c["n"].as_u64().unwrap() as usize,
            c["k"].as_u64().unwrap() as usize,
        );
        let logits = f32s(&c["logits"]);
        let targets: Vec<i64> = c["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        let alpha = c["alpha"].as_f64().unwrap() as f32;
        let weights = (!c["weight"].is_null()).then(|| f32s(&c["weight"]));
        let ignore = c["ignore_index"].as_i64();
        let mut core = CrossEntropy::new(k)
            .with_smoothing(alpha)
            .with_reduction(reduction(&c));
        if let Some(w) = &weights {
            core = core.with_weights(w.clone());
        }
        if let Some(i) = ignore {
            core = core.with_ignore_index(i);
        }
        let mut want_grad = vec![0.0; n * k];
        let want = core
            .forward_backward(&logits, &targets, &mut want_grad)
            .unwrap();
        // The CPU kernel, then tensor operations on every device, then the GPU kernel.
        let paths = std::iter::once((true, Device::flex()))
            .chain(devices().into_iter().map(|d| (false, d)))
            .chain(devices().into_iter().skip(1).map(|d| (true, d)));
        for (fused, device) in paths {
            let loss = SmoothedCrossEntropyConfig::new(k)
                .with_smoothing(alpha)
                .with_weights(weights.clone())
                .with_ignore_index(ignore)
                .with_reduction(reduction(&c))
                .with_fused(fused)
                .init(&device);
            let x = leaf_on(logits.clone(), [n, k], &device);
            let t = Tensor::<1, Int>::from_data(
                TensorData::new(targets.clone(), [n]),
                &device.clone().autodiff(),
            );
            let value = loss.forward(x.clone(), t);
            let got: Vec<f32> = value
                .clone()
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .unwrap();
            let grads = value.sum().backward();
            let g = to_vec(x.grad(&grads).unwrap());
            if fused && device == Device::flex() {
                // The same kernel: the same bits.
                assert_eq!(got, want.as_slice());
                assert_eq!(g, want_grad);
            } else {
                // Tensor operations in float32: log-softmax carries an absolute error of a few
                // ulps of the largest logit, which dominates losses near 0.
                let top = logits.iter().fold(0.0f32, |a, v| a.max(v.abs())).max(1.0);
                let floor = 8.0 * f32::EPSILON * top;
                let wmax = weights
                    .as_ref()
                    .map_or(1.0, |w| w.iter().fold(0.0f32, |a, v| a.max(*v)));
                // An error δ relative in Σexp moves log-softmax by δ and each probability by δ·p.
                let sums = if fused {
                    kernel_summation_bound(k)
                } else {
                    summation_bound(&device, k)
                } * wmax;
                for (a, b) in got.iter().zip(want.as_slice()) {
                    assert!(
                        (a - b).abs() <= 2e-5 * b.abs() + floor + sums,
                        "loss {a} vs {b} on {device:?}"
                    );
                }
                // p − q in float32 cancels to a few ulps of the target coefficients.
                let scale = want_grad.iter().fold(0.0f32, |a, v| a.max(v.abs()));
                for (a, b) in g.iter().zip(&want_grad) {
                    assert!(
                        (a - b).abs() <= 2e-5 * scale + 8.0 * f32::EPSILON * wmax + sums,
                        "grad {a} vs {b} on {device:?}"
                    );
                }
            }
        }
        checked += 1;
    }
    assert_eq!(checked, 148);
}

#[test]
fn exclude_true_soft_and_binary_equal_the_core() {
    for c in cases("cross_entropy_exclude_true.json") {
        let (n, k) = (
            c["n"].as_u64().unwrap() as usize,
            c["k"].as_u64().unwrap() as usize,
        );
        let logits = f32s(&c["logits"]);
        let targets: Vec<i64> = c["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        let alpha = c["alpha"].as_f64().unwrap() as f32;
        // Each device with tensor operations and with its kernel (the core's on the CPU).
        for (device, fused) in devices()
            .into_iter()
            .flat_map(|d| [(d.clone(), false), (d, true)])
        {
            let loss = SmoothedCrossEntropyConfig::new(k)
                .with_smoothing(alpha)
                .with_convention(Convention::ExcludeTrue)
                .with_fused(fused)
                .init(&device);
            let x = leaf_on(logits.clone(), [n, k], &device);
            let t = Tensor::<1, Int>::from_data(
                TensorData::new(targets.clone(), [n]),
                &device.clone().autodiff(),
            );
            let value = loss.forward(x.clone(), t);
            let got = value.clone().into_scalar::<f32>();
            let g = to_vec(x.grad(&value.backward()).unwrap());
            close("loss", &[got], &f32s(&c["loss"]), 2e-5);
            close("grad", &g, &f32s(&c["grad"]), 2e-5);
        }
    }
    for c in cases("cross_entropy_probs.json") {
        if c["reduction"] != "mean" {
            continue;
        }
        let (n, k) = (
            c["n"].as_u64().unwrap() as usize,
            c["k"].as_u64().unwrap() as usize,
        );
        let alpha = c["alpha"].as_f64().unwrap() as f32;
        let weights = (!c["weight"].is_null()).then(|| f32s(&c["weight"]));
        let probs = f32s(&c["target_probs"]);
        let mut core = CoreSoft::new(k).with_smoothing(alpha);
        if let Some(w) = &weights {
            core = core.with_weights(w.clone());
        }
        let mut want_grad = vec![0.0; n * k];
        let want = core
            .forward_backward(&f32s(&c["logits"]), &probs, &mut want_grad)
            .unwrap();
        for device in devices() {
            let loss = SoftCrossEntropyConfig::new()
                .with_smoothing(alpha)
                .with_weights(weights.clone())
                .init(&device);
            let x = leaf_on(f32s(&c["logits"]), [n, k], &device);
            let p = Tensor::<2>::from_data(
                TensorData::new(probs.clone(), [n, k]),
                &device.clone().autodiff(),
            );
            check_scalar(
                "soft",
                loss.forward(x.clone(), p),
                &x,
                want.as_slice(),
                &want_grad,
            );
        }
    }
    for c in cases("binary_cross_entropy.json") {
        if c["reduction"] != "mean" {
            continue;
        }
        let (n, l) = (
            c["n"].as_u64().unwrap() as usize,
            c["labels"].as_u64().unwrap() as usize,
        );
        let alpha = c["alpha"].as_f64().unwrap() as f32;
        let y = f32s(&c["targets"]);
        let mut want_grad = vec![0.0; n * l];
        let want = CoreBce::new(l)
            .with_smoothing(alpha)
            .forward_backward(&f32s(&c["logits"]), &y, &mut want_grad)
            .unwrap();
        for device in devices() {
            let loss = BinaryCrossEntropyConfig::new().with_smoothing(alpha).init();
            let x = leaf_on(f32s(&c["logits"]), [n, l], &device);
            let t = Tensor::<2>::from_data(
                TensorData::new(y.clone(), [n, l]),
                &device.clone().autodiff(),
            );
            check_scalar(
                "bce",
                loss.forward(x.clone(), t),
                &x,
                want.as_slice(),
                &want_grad,
            );
        }
    }
}

#[test]
fn distillation_equals_the_core_on_both_paths() {
    let (n, k) = (6, 5);
    let student: Vec<f32> = (0..n * k)
        .map(|i| ((i * 7) % 11) as f32 * 0.4 - 2.0)
        .collect();
    let teacher: Vec<f32> = (0..n * k)
        .map(|i| ((i * 5) % 13) as f32 * 0.6 - 3.0)
        .collect();
    let ids: Vec<i64> = (0..n as i64).map(|i| (i * 2) % k as i64).collect();
    let device = Device::flex().autodiff();
    for (tau, lambda, alpha) in [(1.0f32, 0.5f32, 0.0f32), (4.0, 0.9, 0.1), (2.0, 0.0, 0.2)] {
        let core = labelsmooth::loss::Distillation::new(k)
            .with_temperature(tau)
            .with_weight(lambda)
            .with_smoothing(alpha);
        let mut want_grad = vec![0.0; n * k];
        let want = core
            .forward_backward(&student, &teacher, &ids, &mut want_grad)
            .unwrap();
        for fused in [true, false] {
            let loss = DistillationConfig::new(k)
                .with_temperature(tau)
                .with_weight(lambda)
                .with_smoothing(alpha)
                .with_fused(fused)
                .try_init(&device)
                .unwrap();
            let x = leaf(student.clone(), [n, k]);
            let t = Tensor::<2>::from_data(TensorData::new(teacher.clone(), [n, k]), &device);
            let y = Tensor::<1, Int>::from_data(TensorData::new(ids.clone(), [n]), &device);
            let value = loss.try_forward(x.clone(), t, y).unwrap();
            let what = format!("distillation τ {tau} λ {lambda} α {alpha} fused {fused}");
            close(
                &what,
                &[value.clone().into_scalar::<f32>()],
                want.as_slice(),
                2e-5,
            );
            close(
                &format!("{what} grad"),
                &to_vec(x.grad(&value.backward()).unwrap()),
                &want_grad,
                2e-5,
            );
        }
    }
    assert!(
        DistillationConfig::new(3)
            .with_temperature(-1.0)
            .try_init(&device)
            .is_err()
    );
}

#[test]
fn confidence_penalty_equals_the_core() {
    let logits: Vec<f32> = (0..40).map(|i| ((i * 7) % 11) as f32 * 0.5 - 2.0).collect();
    for threshold in [None, Some(1.5f32)] {
        let mut core = labelsmooth::loss::ConfidencePenalty::new(0.3);
        if let Some(t) = threshold {
            core = core.with_threshold(t);
        }
        let mut want_grad = vec![0.0; 40];
        let want = core.forward_backward(&logits, 8, &mut want_grad).unwrap();
        let pen = ConfidencePenaltyConfig::new(0.3)
            .with_threshold(threshold)
            .init();
        let x = leaf(logits.clone(), [5, 8]);
        let value = pen.forward(x.clone());
        let got = value.clone().into_scalar::<f32>();
        close("penalty", &[got], want.as_slice(), 2e-5);
        close(
            "penalty grad",
            &to_vec(x.grad(&value.backward()).unwrap()),
            &want_grad,
            2e-5,
        );
    }
}

#[test]
fn invalid_configuration_and_input_are_errors() {
    assert!(
        SmoothedCrossEntropyConfig::new(3)
            .with_smoothing(1.5)
            .try_init(&Device::flex())
            .is_err()
    );
    assert!(
        SmoothedCrossEntropyConfig::new(1)
            .with_convention(Convention::ExcludeTrue)
            .try_init(&Device::flex())
            .is_err()
    );
    let loss = SmoothedCrossEntropyConfig::new(3).init(&Device::flex());
    for fused in [true, false] {
        let loss = SmoothedCrossEntropyConfig::new(3)
            .with_fused(fused)
            .init(&Device::flex());
        let x = Tensor::<2>::from_floats([[1.0, 2.0, 3.0]], &Device::flex());
        let t = Tensor::<1, Int>::from_ints([3], &Device::flex());
        let e = loss.try_forward(x, t).unwrap_err();
        assert!(e.to_string().contains("class id 3 is out of range"), "{e}");
    }
    let x = Tensor::<2>::from_floats([[f32::NAN, 2.0, 3.0]], &Device::flex());
    let t = Tensor::<1, Int>::from_ints([0], &Device::flex());
    assert!(loss.try_forward(x, t).is_err());
}

#[test]
fn every_loss_config_has_try_init_that_refuses_invalid_settings() {
    let d = Device::flex();
    let e = SoftCrossEntropyConfig::new()
        .with_smoothing(-0.1)
        .try_init(&d)
        .unwrap_err();
    assert!(e.to_string().contains("-0.1"), "{e}");
    assert!(
        SoftCrossEntropyConfig::new()
            .with_weights(Some(vec![1.0, f32::NAN]))
            .try_init(&d)
            .is_err()
    );
    assert!(
        SoftCrossEntropyConfig::new()
            .with_smoothing(0.2)
            .try_init(&d)
            .is_ok()
    );
    assert!(
        BinaryCrossEntropyConfig::new()
            .with_smoothing(f32::NAN)
            .try_init()
            .is_err()
    );
    assert!(
        BinaryCrossEntropyConfig::new()
            .with_smoothing(1.0)
            .try_init()
            .is_ok()
    );
    assert!(ConfidencePenaltyConfig::new(-1.0).try_init().is_err());
    assert!(
        ConfidencePenaltyConfig::new(f32::INFINITY)
            .try_init()
            .is_err()
    );
    assert!(
        ConfidencePenaltyConfig::new(0.1)
            .with_threshold(Some(f32::NAN))
            .try_init()
            .is_err()
    );
    assert!(ConfidencePenaltyConfig::new(0.1).try_init().is_ok());
    // The module keeps the core loss it was built from.
    let loss = SmoothedCrossEntropyConfig::new(4)
        .with_smoothing(0.2)
        .with_convention(Convention::ExcludeTrue)
        .with_ignore_index(Some(-100))
        .with_reduction(Reduction::Sum)
        .init(&d);
    let core = loss.core();
    assert_eq!(core.smoothing(), 0.2);
    assert_eq!(core.convention(), Convention::ExcludeTrue);
    assert_eq!(core.ignore_index(), Some(-100));
    assert_eq!(core.reduction(), Reduction::Sum);
    assert_eq!(core.classes(), 4);
}

/// Hidden states, weight `[h, v]`, bias and targets (two of them ignored) for the linear loss.
fn linear_case(n: usize, h: usize, v: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<i64>) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let mut draw = |len: usize, scale: f32| -> Vec<f32> {
        (0..len)
            .map(|_| scale * (rng.random::<f32>() * 2.0 - 1.0))
            .collect()
    };
    let (hidden, weight, bias) = (draw(n * h, 2.0), draw(h * v, 0.5), draw(v, 0.5));
    let targets = (0..n)
        .map(|i| {
            if i % 17 == 3 {
                -100
            } else {
                ((i * 7919) % v) as i64
            }
        })
        .collect();
    (hidden, weight, bias, targets)
}

fn linear_loss(v: usize, weights: Vec<f32>, reduction: Reduction) -> CrossEntropy {
    CrossEntropy::new(v)
        .with_smoothing(0.1)
        .with_weights(weights)
        .with_ignore_index(-100)
        .with_reduction(reduction)
}

/// The linear output layer + loss on `device` (its fused path where it has one, blocks of 8
/// rows), against the core's fused linear cross-entropy: values and the three gradients.
fn check_linear_on(device: &Device) {
    let (n, h, v) = (37, 16, 300);
    let (hidden, weight, bias, targets) = linear_case(n, h, v);
    let weights: Vec<f32> = (0..v).map(|j| 0.5 + (j % 5) as f32 * 0.25).collect();
    for reduction in [Reduction::Mean, Reduction::Sum] {
        let core =
            LinearCrossEntropy::new(linear_loss(v, weights.clone(), reduction)).with_block_rows(8);
        let (want, want_grads) = core
            .forward_backward(&hidden, h, &weight, Some(&bias), &targets)
            .unwrap();
        let loss = SmoothedCrossEntropyConfig::new(v)
            .with_smoothing(0.1)
            .with_weights(Some(weights.clone()))
            .with_ignore_index(Some(-100))
            .with_reduction(reduction)
            .init(device);
        let x = leaf_on(hidden.clone(), [n, h], device);
        let w = leaf_on(weight.clone(), [h, v], device);
        let b = Tensor::<1>::from_data(
            TensorData::new(bias.clone(), [v]),
            &device.clone().autodiff(),
        )
        .require_grad();
        let t = Tensor::<1, Int>::from_data(
            TensorData::new(targets.clone(), [n]),
            &device.clone().autodiff(),
        );
        let value = loss
            .try_forward_linear(x.clone(), w.clone(), b.clone(), t, 8)
            .unwrap();
        let got = value.clone().into_scalar::<f32>();
        let grads = value.backward();
        close("linear loss", &[got], want.as_slice(), 1e-5);
        close(
            "d hidden",
            &to_vec(x.grad(&grads).unwrap()),
            &want_grads.hidden,
            1e-4,
        );
        close(
            "d weight",
            &to_vec(w.grad(&grads).unwrap()),
            &want_grads.weight,
            1e-4,
        );
        let db: Vec<f32> = b
            .grad(&grads)
            .unwrap()
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap();
        close("d bias", &db, want_grads.bias.as_ref().unwrap(), 1e-4);
    }
}

#[test]
fn a_linear_output_layer_with_the_loss_equals_the_cores_fused_linear_loss() {
    for device in devices() {
        check_linear_on(&device);
    }
}

#[test]
fn a_linear_layer_of_the_wrong_shape_is_an_error() {
    let device = Device::flex();
    let loss = SmoothedCrossEntropyConfig::new(5).init(&device);
    let hidden = Tensor::<2>::zeros([3, 4], &device);
    let targets = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1, 2], [3]), &device);
    let cases = [
        ([5, 5], 5, "weight rows"),
        ([4, 6], 5, "weight columns"),
        ([4, 5], 4, "bias"),
    ];
    for (shape, bias_len, what) in cases {
        let e = loss
            .try_forward_linear(
                hidden.clone(),
                Tensor::<2>::zeros(shape, &device),
                Tensor::<1>::zeros([bias_len], &device),
                targets.clone(),
                8,
            )
            .unwrap_err();
        assert!(e.to_string().contains(what), "{e}");
    }
}

#[cfg(feature = "wgpu")]
/// Logits `[n, k]` ~ a spread of values, and class ids, for the edge cases below.
fn spread_case(n: usize, k: usize) -> (Vec<f32>, Vec<i64>) {
    let logits = (0..n * k)
        .map(|i| ((i * 2654435761) % 1000) as f32 / 100.0 - 5.0)
        .collect();
    let targets = (0..n).map(|i| ((i * 31) % k) as i64).collect();
    (logits, targets)
}

#[cfg(feature = "wgpu")]
/// Loss and gradient of `Σ_i w_i·loss_i` (a non-uniform upstream gradient) with reduction none.
fn weighted_rows(
    loss: &SmoothedCrossEntropy,
    x: Tensor<2>,
    t: Tensor<1, Int>,
) -> (Vec<f32>, Vec<f32>) {
    let [n, _] = x.dims();
    let upstream: Vec<f32> = (0..n).map(|i| 1.0 + (i % 3) as f32).collect();
    let rows = loss.forward(x.clone(), t);
    let device = rows.device();
    let got: Vec<f32> = rows
        .clone()
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap();
    let grads = (rows * Tensor::<1>::from_floats(upstream.as_slice(), &device))
        .sum()
        .backward();
    // A leaf's gradient; none for a view of one (the transposed case).
    (got, x.grad(&grads).map(to_vec).unwrap_or_default())
}

#[cfg(feature = "wgpu")]
#[test]
fn the_gpu_kernel_on_many_rows_untracked_transposed_and_masked_logits() {
    for device in devices().into_iter().skip(1) {
        let ad = device.clone().autodiff();
        let config = |k: usize, fused: bool, alpha: f32| {
            SmoothedCrossEntropyConfig::new(k)
                .with_smoothing(alpha)
                .with_reduction(Reduction::None)
                .with_fused(fused)
                .init(&device)
        };
        // More rows than one dimension of work groups holds, with a non-uniform upstream
        // gradient: the kernel against tensor operations on the same device.
        let (n, k) = (70_000, 3);
        let (logits, targets) = spread_case(n, k);
        let t = Tensor::<1, Int>::from_data(TensorData::new(targets.clone(), [n]), &ad);
        let (kv, kg) = weighted_rows(
            &config(k, true, 0.1),
            leaf_on(logits.clone(), [n, k], &device),
            t.clone(),
        );
        let (ov, og) = weighted_rows(
            &config(k, false, 0.1),
            leaf_on(logits.clone(), [n, k], &device),
            t.clone(),
        );
        close("rows", &kv, &ov, 1e-5);
        close("row gradients", &kg, &og, 1e-5);
        // Untracked logits (evaluation) take the kernel without its gradient: the same values.
        let plain = Tensor::<2>::from_data(TensorData::new(logits.clone(), [n, k]), &device);
        let tp = Tensor::<1, Int>::from_data(TensorData::new(targets.clone(), [n]), &device);
        let untracked = config(k, true, 0.1).forward(plain, tp);
        let uv: Vec<f32> = untracked
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(uv, kv);
        // Transposed (non-contiguous) logits.
        let (m, c) = (40, 300);
        let (logits, targets) = spread_case(m, c);
        let t = Tensor::<1, Int>::from_data(TensorData::new(targets, [m]), &ad);
        let x = leaf_on(logits.clone(), [c, m], &device);
        let (tv, _) = weighted_rows(&config(c, true, 0.1), x.clone().transpose(), t.clone());
        let (rv, _) = weighted_rows(&config(c, false, 0.1), x.transpose(), t);
        close("transposed rows", &tv, &rv, 1e-5);
        // Masked classes (−∞ logits) without smoothing: finite losses, zero gradient there.
        let mut masked = logits.clone();
        for r in 0..m {
            masked[r * c + (r + 1) % c] = f32::NEG_INFINITY;
        }
        // The first logit of a row, whose target is another class.
        masked[c] = f32::NEG_INFINITY;
        let (_, targets) = spread_case(m, c);
        let t = Tensor::<1, Int>::from_data(TensorData::new(targets, [m]), &ad);
        let (mv, mg) = weighted_rows(
            &config(c, true, 0.0),
            leaf_on(masked.clone(), [m, c], &device),
            t.clone(),
        );
        let (ov, _) = weighted_rows(
            &config(c, false, 0.0),
            leaf_on(masked.clone(), [m, c], &device),
            t,
        );
        close("masked rows", &mv, &ov, 1e-5);
        assert!(mg.iter().all(|g| g.is_finite()));
        for r in 0..m {
            assert_eq!(mg[r * c + (r + 1) % c], 0.0, "row {r}");
        }
    }
}

#[test]
fn logits_and_targets_of_the_wrong_shape_are_errors_on_every_path() {
    for device in devices() {
        for fused in [true, false] {
            let loss = SmoothedCrossEntropyConfig::new(3)
                .with_fused(fused)
                .init(&device);
            let x = Tensor::<2>::zeros([2, 4], &device);
            let t = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1], [2]), &device);
            let e = loss.try_forward(x, t).unwrap_err();
            assert!(e.to_string().contains("logits columns"), "{e}");
            let x = Tensor::<2>::zeros([2, 3], &device);
            let t = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1, 2], [3]), &device);
            let e = loss.try_forward(x, t).unwrap_err();
            assert!(e.to_string().contains("targets"), "{e}");
        }
    }
}
