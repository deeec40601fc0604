//! On a GPU through wgpu (on machines without one, Mesa's lavapipe runs the same shaders on the
//! CPU): the device computes, and training steps of the MLP follow the same steps on the CPU.
//! The losses on the device against the golden cases are in `losses.rs`. Built with
//! `cargo test -p labelsmooth-burn --features wgpu --test wgpu --test losses`.

#![cfg(feature = "wgpu")]

use labelsmooth_burn::burn::tensor::{Device, Tensor, TensorData};
use labelsmooth_burn::device::Backend;
use labelsmooth_burn::models::MlpConfig;
use labelsmooth_burn::train::{Inputs, ModelSpec, TrainConfig, predict_logits, train_from};
use labelsmooth_data::{Features, bundled};

fn gpu() -> Device {
    Backend::Wgpu.open().unwrap_or_else(|e| panic!("{e}"))
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

#[test]
fn the_device_is_a_gpu_backend_and_computes() {
    let device = gpu();
    assert_ne!(device, Device::flex());
    let x = Tensor::<2>::from_data(
        TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [2, 2]),
        &device,
    );
    let y = to_vec(x.clone().matmul(x).exp().sum());
    let want = (7.0f32).exp() + (10.0f32).exp() + (15.0f32).exp() + (22.0f32).exp();
    assert!((y[0] - want).abs() <= 1e-5 * want, "{} vs {want}", y[0]);
}

#[test]
fn mlp_training_steps_on_the_gpu_follow_the_cpu() {
    let d = bundled::load("digits").unwrap();
    let Features::Dense { values, shape } = d.features else {
        panic!("digits are dense")
    };
    let x = Inputs::Dense { values, shape };
    let rows: Vec<usize> = (0..512).collect();
    let (x, y) = (
        x.select(&rows),
        rows.iter().map(|&r| d.labels[r]).collect::<Vec<_>>(),
    );
    let spec = ModelSpec::Mlp(MlpConfig::new(64, vec![64], 10));
    let cfg = TrainConfig {
        epochs: 2,
        smoothing: 0.1,
        learning_rate: 1e-3,
        seed: 5,
        ..Default::default()
    };
    // The same initial weights on both devices: drawn on the CPU, moved to the GPU.
    let initial = spec.init(&Device::flex(), 5);
    let before = predict_logits(&initial, &x);
    let on = |device: &Device| {
        let out = train_from(
            Some(initial.clone()),
            &spec,
            (&x, &y),
            None,
            10,
            &cfg,
            device,
            &mut (),
        )
        .unwrap();
        (predict_logits(&out.model, &x), out.history)
    };
    let (cpu, cpu_history) = on(&Device::flex());
    let (gpu, gpu_history) = on(&gpu());
    // Sixteen Adam steps moved the logits far more than the devices differ.
    let moved = cpu
        .iter()
        .zip(&before)
        .fold(0.0f32, |a, (c, b)| a.max((c - b).abs()));
    let apart = cpu
        .iter()
        .zip(&gpu)
        .fold(0.0f32, |a, (c, g)| a.max((c - g).abs()));
    let scale = cpu.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    assert!(
        moved >= 100.0 * apart,
        "training moved the logits by {moved}, the devices differ by {apart}"
    );
    assert!(
        apart <= 1e-3 * scale,
        "CPU and GPU logits differ by {apart} (scale {scale})"
    );
    for (c, g) in cpu_history.iter().zip(&gpu_history) {
        assert!(
            (c.train_loss - g.train_loss).abs() <= 1e-4 * c.train_loss.abs(),
            "epoch loss {} on the CPU, {} on the GPU",
            c.train_loss,
            g.train_loss
        );
    }
}
