//! The fused CPU operations (LSTM over a sequence; convolution + ReLU + max-pool; dense layer
//! with or without ReLU) equal the same
//! functions written with Burn's tensor operations, whose gradients come from Burn's autodiff:
//! values and the gradients of every input, on sizes that exercise the vector tails, uneven
//! splits of the batch over threads, and one-step sequences.

use labelsmooth_burn::burn::tensor::activation::{relu, sigmoid};
use labelsmooth_burn::burn::tensor::module::{conv2d, max_pool2d};
use labelsmooth_burn::burn::tensor::ops::{ConvOptions, MaxPoolOptions};
use labelsmooth_burn::burn::tensor::{Device, Tensor, TensorData};
use labelsmooth_burn::fused::{
    conv_relu_pool, dense, depthwise_conv, lstm_last_hidden, pointwise_conv, relu6,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random(rng: &mut ChaCha8Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-scale..scale)).collect()
}

fn leaf<const D: usize>(values: &[f32], shape: [usize; D]) -> Tensor<D> {
    Tensor::<D>::from_data(
        TensorData::new(values.to_vec(), shape),
        &Device::flex().autodiff(),
    )
    .require_grad()
}

fn plain<const D: usize>(values: &[f32], shape: [usize; D]) -> Tensor<D> {
    Tensor::<D>::from_data(TensorData::new(values.to_vec(), shape), &Device::flex())
}

fn values<const D: usize>(t: &Tensor<D>) -> Vec<f32> {
    t.to_data().try_to_vec::<f32>().unwrap()
}

/// Largest |a − b| relative to the largest |b| (at least 1e-3, so near-zero arrays compare
/// absolutely).
fn assert_close(what: &str, a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = b.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
    let worst = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(
        worst <= tol * scale,
        "{what}: error {worst} at scale {scale}"
    );
}

fn lstm_reference(x: Tensor<3>, w_ih: Tensor<2>, w_hh: Tensor<2>, bias: Tensor<1>) -> Tensor<2> {
    let [b, t, d] = x.dims();
    let h = w_hh.dims()[0];
    let device = x.device();
    let z_in =
        (x.reshape([b * t, d]).matmul(w_ih) + bias.reshape([1, 4 * h])).reshape([b, t, 4 * h]);
    let mut state_h = Tensor::<2>::zeros([b, h], &device);
    let mut state_c = Tensor::<2>::zeros([b, h], &device);
    for step in 0..t {
        let z = z_in.clone().narrow(1, step, 1).reshape([b, 4 * h]) + state_h.matmul(w_hh.clone());
        let i = sigmoid(z.clone().narrow(1, 0, h));
        let f = sigmoid(z.clone().narrow(1, h, h));
        let g = z.clone().narrow(1, 2 * h, h).tanh();
        let o = sigmoid(z.narrow(1, 3 * h, h));
        state_c = f * state_c + i * g;
        state_h = o * state_c.clone().tanh();
    }
    state_h
}

#[test]
fn lstm_equals_tensor_operations_values_and_gradients() {
    for (seed, (batch, steps, input, hidden)) in
        [(3, 7, 5, 16), (5, 1, 3, 5), (4, 12, 16, 37), (1, 30, 2, 64)]
            .into_iter()
            .enumerate()
    {
        let mut rng = ChaCha8Rng::seed_from_u64(seed as u64);
        let x = random(&mut rng, batch * steps * input, 1.5);
        let w_ih = random(&mut rng, input * 4 * hidden, 0.6);
        let w_hh = random(&mut rng, hidden * 4 * hidden, 0.6);
        let bias = random(&mut rng, 4 * hidden, 0.5);
        let r = random(&mut rng, batch * hidden, 1.0);
        let run = |fused: bool| {
            let tx = leaf(&x, [batch, steps, input]);
            let tih = leaf(&w_ih, [input, 4 * hidden]);
            let thh = leaf(&w_hh, [hidden, 4 * hidden]);
            let tb = leaf(&bias, [4 * hidden]);
            let h = if fused {
                lstm_last_hidden(tx.clone(), tih.clone(), thh.clone(), tb.clone())
            } else {
                lstm_reference(tx.clone(), tih.clone(), thh.clone(), tb.clone())
            };
            let weights =
                Tensor::<2>::from_data(TensorData::new(r.clone(), [batch, hidden]), &h.device());
            let grads = (h.clone() * weights).sum().backward();
            (
                values(&h),
                values(&tx.grad(&grads).unwrap()),
                values(&tih.grad(&grads).unwrap()),
                values(&thh.grad(&grads).unwrap()),
                values(&tb.grad(&grads).unwrap()),
            )
        };
        let fused = run(true);
        let reference = run(false);
        let case = format!("lstm b{batch} t{steps} i{input} h{hidden}");
        assert_close(&format!("{case} h"), &fused.0, &reference.0, 2e-5);
        assert_close(&format!("{case} dx"), &fused.1, &reference.1, 5e-5);
        assert_close(&format!("{case} dW_ih"), &fused.2, &reference.2, 5e-5);
        assert_close(&format!("{case} dW_hh"), &fused.3, &reference.3, 5e-5);
        assert_close(&format!("{case} db"), &fused.4, &reference.4, 5e-5);

        // Without autodiff (inference) the same values.
        let h = lstm_last_hidden(
            plain(&x, [batch, steps, input]),
            plain(&w_ih, [input, 4 * hidden]),
            plain(&w_hh, [hidden, 4 * hidden]),
            plain(&bias, [4 * hidden]),
        );
        assert_eq!(values(&h), fused.0, "{case}: inference path");
    }
}

fn conv_reference(x: Tensor<4>, weight: Tensor<4>, bias: Tensor<1>) -> Tensor<4> {
    let k = weight.dims()[2];
    let y = conv2d(
        x,
        weight,
        Some(bias),
        ConvOptions::new([1, 1], [k / 2, k / 2], [1, 1], 1),
    );
    max_pool2d(relu(y), MaxPoolOptions::new([2, 2]).with_stride([2, 2]))
}

#[test]
fn conv_block_equals_tensor_operations_values_and_gradients() {
    for (seed, (batch, channels, height, width, filters, kernel)) in [
        (3, 2, 6, 8, 5, 3),
        (5, 1, 28, 28, 16, 3),
        (2, 16, 14, 14, 32, 3),
        (3, 3, 4, 6, 7, 1),
        (2, 2, 10, 8, 3, 5),
    ]
    .into_iter()
    .enumerate()
    {
        let mut rng = ChaCha8Rng::seed_from_u64(100 + seed as u64);
        let x = random(&mut rng, batch * channels * height * width, 1.0);
        let w = random(&mut rng, filters * channels * kernel * kernel, 0.5);
        let b = random(&mut rng, filters, 0.2);
        let out = [batch, filters, height / 2, width / 2];
        let r = random(&mut rng, out.iter().product(), 1.0);
        let run = |fused: bool| {
            let tx = leaf(&x, [batch, channels, height, width]);
            let tw = leaf(&w, [filters, channels, kernel, kernel]);
            let tb = leaf(&b, [filters]);
            let y = if fused {
                conv_relu_pool(tx.clone(), tw.clone(), tb.clone())
            } else {
                conv_reference(tx.clone(), tw.clone(), tb.clone())
            };
            assert_eq!(y.dims(), out);
            let weights = Tensor::<4>::from_data(TensorData::new(r.clone(), out), &y.device());
            let grads = (y.clone() * weights).sum().backward();
            (
                values(&y),
                values(&tx.grad(&grads).unwrap()),
                values(&tw.grad(&grads).unwrap()),
                values(&tb.grad(&grads).unwrap()),
            )
        };
        let fused = run(true);
        let reference = run(false);
        let case = format!("conv b{batch} c{channels} {height}x{width} f{filters} k{kernel}");
        assert!(
            fused.0.contains(&0.0) && fused.0.iter().any(|&v| v > 0.0),
            "{case}: ReLU both ways"
        );
        assert_close(&format!("{case} y"), &fused.0, &reference.0, 1e-5);
        assert_close(&format!("{case} dx"), &fused.1, &reference.1, 2e-5);
        assert_close(&format!("{case} dW"), &fused.2, &reference.2, 2e-5);
        assert_close(&format!("{case} db"), &fused.3, &reference.3, 2e-5);

        let y = conv_relu_pool(
            plain(&x, [batch, channels, height, width]),
            plain(&w, [filters, channels, kernel, kernel]),
            plain(&b, [filters]),
        );
        assert_eq!(values(&y), fused.0, "{case}: inference path");
    }
}

#[test]
fn untracked_images_get_no_gradient_but_weights_do() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let device = Device::flex().autodiff();
    let x = Tensor::<4>::from_data(
        TensorData::new(random(&mut rng, 2 * 8 * 8, 1.0), [2, 1, 8, 8]),
        &device,
    );
    let w = leaf(&random(&mut rng, 4 * 9, 0.5), [4, 1, 3, 3]);
    let b = leaf(&random(&mut rng, 4, 0.1), [4]);
    let grads = conv_relu_pool(x.clone(), w.clone(), b.clone())
        .sum()
        .backward();
    assert!(x.grad(&grads).is_none());
    let gw = values(&w.grad(&grads).unwrap());
    assert!(gw.iter().any(|&v| v != 0.0));
}

#[test]
fn dense_layer_equals_tensor_operations_values_and_gradients() {
    // The last two are large enough to split their rows over the threads.
    for (seed, (rows, inputs, outputs, with_relu)) in [
        (64, 64, 128, true),
        (64, 128, 10, false),
        (3, 5, 17, true),
        (1, 1, 1, false),
        (64, 1568, 128, true),
        (300, 40, 200, false),
    ]
    .into_iter()
    .enumerate()
    {
        let mut rng = ChaCha8Rng::seed_from_u64(200 + seed as u64);
        let x = random(&mut rng, rows * inputs, 1.0);
        let w = random(&mut rng, inputs * outputs, 0.3);
        let b = random(&mut rng, outputs, 0.1);
        let r = random(&mut rng, rows * outputs, 1.0);
        let run = |fused: bool| {
            let tx = leaf(&x, [rows, inputs]);
            let tw = leaf(&w, [inputs, outputs]);
            let tb = leaf(&b, [outputs]);
            let y = if fused {
                dense(tx.clone(), tw.clone(), tb.clone(), with_relu)
            } else {
                let z = tx.clone().matmul(tw.clone()) + tb.clone().reshape([1, outputs]);
                if with_relu { relu(z) } else { z }
            };
            let weights =
                Tensor::<2>::from_data(TensorData::new(r.clone(), [rows, outputs]), &y.device());
            let grads = (y.clone() * weights).sum().backward();
            (
                values(&y),
                values(&tx.grad(&grads).unwrap()),
                values(&tw.grad(&grads).unwrap()),
                values(&tb.grad(&grads).unwrap()),
            )
        };
        let fused = run(true);
        let reference = run(false);
        let case = format!("dense {rows}x{inputs}->{outputs} relu {with_relu}");
        if with_relu && rows * outputs > 10 {
            assert!(fused.0.contains(&0.0), "{case}: ReLU cuts");
        }
        assert_close(&format!("{case} y"), &fused.0, &reference.0, 1e-5);
        assert_close(&format!("{case} dx"), &fused.1, &reference.1, 1e-5);
        assert_close(&format!("{case} dW"), &fused.2, &reference.2, 1e-5);
        assert_close(&format!("{case} db"), &fused.3, &reference.3, 1e-5);
        let y = dense(
            plain(&x, [rows, inputs]),
            plain(&w, [inputs, outputs]),
            plain(&b, [outputs]),
            with_relu,
        );
        assert_eq!(values(&y), fused.0, "{case}: inference path");
    }
}

/// Ten Adam steps on an MLP with fixed gradients of a changing loss: the fused update gives the
/// same parameters as Burn's `Adam` (same arithmetic in the same order), with and without weight
/// decay.
#[test]
fn fused_adam_steps_equal_burn_adam() {
    use labelsmooth_burn::burn::module::Module;
    use labelsmooth_burn::burn::optim::decay::WeightDecayConfig;
    use labelsmooth_burn::burn::optim::{AdamConfig, GradientsParams};
    use labelsmooth_burn::models::MlpConfig;
    use labelsmooth_burn::optim::FusedAdamConfig;

    for weight_decay in [None, Some(0.01f32)] {
        let device = Device::flex().autodiff();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let model = MlpConfig::new(6, vec![8], 3).init(&device);
        let x = Tensor::<2>::from_data(
            TensorData::new(random(&mut rng, 5 * 6, 1.0), [5, 6]),
            &device,
        );
        let mut burn_adam = AdamConfig::new().with_epsilon(1e-8);
        if let Some(p) = weight_decay {
            burn_adam = burn_adam.with_weight_decay(Some(WeightDecayConfig::new(p)));
        }
        let mut reference = burn_adam.init();
        let mut fused = FusedAdamConfig {
            weight_decay,
            ..Default::default()
        }
        .init();
        let start: Vec<f32> = model
            .valid()
            .forward(x.clone().inner())
            .to_data()
            .try_to_vec()
            .unwrap();
        let (mut a, mut b) = (model.clone(), model);
        for step in 0..10 {
            let lr = 1e-2 * (1.0 + step as f64);
            let loss =
                |m: &labelsmooth_burn::models::Mlp| m.forward(x.clone()).powf_scalar(2.0).sum();
            let ga = GradientsParams::from_grads(loss(&a).backward(), &a);
            a = reference.step(lr, a, ga);
            let gb = GradientsParams::from_grads(loss(&b).backward(), &b);
            b = fused.step(lr, b, gb);
        }
        let pa: Vec<f32> = a
            .valid()
            .forward(x.clone().inner())
            .to_data()
            .try_to_vec()
            .unwrap();
        let pb: Vec<f32> = b
            .valid()
            .forward(x.clone().inner())
            .to_data()
            .try_to_vec()
            .unwrap();
        assert_eq!(pa, pb, "weight decay {weight_decay:?}");
        let moved = pa
            .iter()
            .zip(&start)
            .map(|(p, s)| (p - s).abs())
            .fold(0.0, f32::max);
        assert!(moved > 0.05, "the steps moved the outputs by {moved} only");
    }
}

/// Burn's own convolution without bias, padding (k − 1) / 2.
fn conv_plain(x: Tensor<4>, w: Tensor<4>, stride: usize, groups: usize) -> Tensor<4> {
    let k = w.dims()[2];
    let p = (k - 1) / 2;
    conv2d(
        x,
        w,
        None,
        ConvOptions::new([stride, stride], [p, p], [1, 1], groups),
    )
}

#[test]
fn mobilenet_convolutions_and_relu6_equal_burns_with_their_gradients() {
    // (batch, channels in, channels out, height, width, stride): pointwise when the kernel is
    // 1 × 1, depthwise (channels out = channels in) when 3 × 3; odd sides and stride 2.
    for (seed, (batch, cin, cout, height, width, stride, kernel)) in [
        (3, 8, 5, 7, 9, 1, 1),
        (1, 24, 16, 12, 12, 1, 1),
        (2, 6, 6, 9, 7, 1, 3),
        (3, 5, 5, 8, 8, 2, 3),
        (2, 4, 4, 5, 3, 2, 3),
    ]
    .into_iter()
    .enumerate()
    {
        let mut rng = ChaCha8Rng::seed_from_u64(200 + seed as u64);
        let groups = if kernel == 3 { cin } else { 1 };
        let x = random(&mut rng, batch * cin * height * width, 8.0);
        let w = random(&mut rng, cout * (cin / groups) * kernel * kernel, 1.0);
        let run = |fused: bool| {
            let tx = leaf(&x, [batch, cin, height, width]);
            let tw = leaf(&w, [cout, cin / groups, kernel, kernel]);
            let y = if fused && kernel == 1 {
                pointwise_conv(tx.clone(), tw.clone())
            } else if fused {
                depthwise_conv(tx.clone(), tw.clone(), stride)
            } else {
                conv_plain(tx.clone(), tw.clone(), stride, groups)
            };
            let y = if fused { relu6(y) } else { y.clamp(0.0, 6.0) };
            let out = y.dims();
            let mut r = ChaCha8Rng::seed_from_u64(9);
            let weights = Tensor::<4>::from_data(
                TensorData::new(random(&mut r, out.iter().product(), 1.0), out),
                &y.device(),
            );
            let grads = (y.clone() * weights).sum().backward();
            (
                values(&y),
                values(&tx.grad(&grads).unwrap()),
                values(&tw.grad(&grads).unwrap()),
            )
        };
        let fused = run(true);
        let reference = run(false);
        let case = format!("b{batch} {cin}->{cout} {height}x{width} s{stride} k{kernel}");
        assert!(
            fused.0.contains(&0.0) && fused.0.contains(&6.0),
            "{case}: ReLU6 clips at both ends"
        );
        assert_close(&format!("{case} y"), &fused.0, &reference.0, 1e-5);
        assert_close(&format!("{case} dx"), &fused.1, &reference.1, 2e-5);
        assert_close(&format!("{case} dW"), &fused.2, &reference.2, 2e-5);
    }
}

#[test]
fn batch_norm_on_batch_statistics_equals_burns_with_its_gradients() {
    use labelsmooth_burn::burn::nn::BatchNormConfig;
    use labelsmooth_burn::fused::{batch_norm_act, channel_statistics};
    for (seed, (batch, channels, height, width)) in [(4, 3, 5, 7), (2, 16, 8, 8), (3, 5, 1, 1)]
        .into_iter()
        .enumerate()
    {
        let mut rng = ChaCha8Rng::seed_from_u64(300 + seed as u64);
        let x = random(&mut rng, batch * channels * height * width, 5.0);
        let gamma = random(&mut rng, channels, 2.0);
        let beta = random(&mut rng, channels, 3.0);
        let shape = [batch, channels, height, width];
        for act in [false, true] {
            let run = |fused: bool| {
                let device = Device::flex().autodiff();
                let tx = leaf(&x, shape);
                let mut bn = BatchNormConfig::new(channels).init(&device);
                bn.gamma = bn.gamma.map(|_| leaf(&gamma, [channels]));
                bn.beta = bn.beta.map(|_| leaf(&beta, [channels]));
                let y = if fused {
                    let stats = channel_statistics(tx.clone());
                    batch_norm_act(
                        tx.clone(),
                        bn.gamma.val(),
                        bn.beta.val(),
                        stats,
                        bn.epsilon,
                        act,
                    )
                } else {
                    let y = bn.forward(tx.clone());
                    if act { y.clamp(0.0, 6.0) } else { y }
                };
                let mut r = ChaCha8Rng::seed_from_u64(11);
                let weights = Tensor::<4>::from_data(
                    TensorData::new(random(&mut r, y.dims().iter().product(), 1.0), shape),
                    &device,
                );
                let grads = (y.clone() * weights).sum().backward();
                (
                    values(&y),
                    values(&tx.grad(&grads).unwrap()),
                    values(&bn.gamma.val().grad(&grads).unwrap()),
                    values(&bn.beta.val().grad(&grads).unwrap()),
                )
            };
            let fused = run(true);
            let reference = run(false);
            let case = format!("b{batch} c{channels} {height}x{width} relu6 {act}");
            assert_close(&format!("{case} y"), &fused.0, &reference.0, 1e-5);
            assert_close(&format!("{case} dx"), &fused.1, &reference.1, 1e-4);
            assert_close(&format!("{case} dγ"), &fused.2, &reference.2, 1e-4);
            assert_close(&format!("{case} dβ"), &fused.3, &reference.3, 1e-4);
        }
    }
}

#[test]
fn inference_convolution_with_batch_norm_equals_burns_eval_batch_norm() {
    use labelsmooth_burn::burn::module::RunningState;
    use labelsmooth_burn::burn::nn::BatchNormConfig;
    use labelsmooth_burn::fused::conv_norm_act;
    // (batch, channels in, channels out, height, width, stride, kernel), as above.
    for (seed, (batch, cin, cout, height, width, stride, kernel)) in [
        (3, 8, 5, 7, 9, 1, 1),
        (2, 6, 6, 9, 7, 1, 3),
        (3, 5, 5, 8, 8, 2, 3),
        (2, 4, 4, 5, 3, 2, 3),
    ]
    .into_iter()
    .enumerate()
    {
        let mut rng = ChaCha8Rng::seed_from_u64(400 + seed as u64);
        let groups = if kernel == 3 { cin } else { 1 };
        let x = plain(
            &random(&mut rng, batch * cin * height * width, 4.0),
            [batch, cin, height, width],
        );
        let w = plain(
            &random(&mut rng, cout * (cin / groups) * kernel * kernel, 1.0),
            [cout, cin / groups, kernel, kernel],
        );
        let mut bn = BatchNormConfig::new(cout).init(&Device::flex());
        bn.gamma = bn
            .gamma
            .map(|_| plain(&random(&mut rng, cout, 2.0), [cout]));
        bn.beta = bn.beta.map(|_| plain(&random(&mut rng, cout, 3.0), [cout]));
        let mean = random(&mut rng, cout, 1.0);
        let var: Vec<f32> = random(&mut rng, cout, 1.0)
            .iter()
            .map(|v| v.abs() + 0.1)
            .collect();
        bn.running_mean = RunningState::new(plain(&mean, [cout]));
        bn.running_var = RunningState::new(plain(&var, [cout]));
        for act in [false, true] {
            let fused = conv_norm_act(
                x.clone(),
                w.clone(),
                stride,
                bn.gamma.val(),
                bn.beta.val(),
                (bn.running_mean.value(), bn.running_var.value()),
                bn.epsilon,
                act,
            );
            // Burn's batch norm on a tensor without autodiff uses its running statistics.
            let reference = bn.forward(conv_plain(x.clone(), w.clone(), stride, groups));
            let reference = if act {
                reference.clamp(0.0, 6.0)
            } else {
                reference
            };
            let case = format!("b{batch} {cin}->{cout} {height}x{width} s{stride} k{kernel}");
            let y = values(&fused);
            if act {
                assert!(
                    y.contains(&0.0) && y.contains(&6.0),
                    "{case}: ReLU6 clips at both ends"
                );
            }
            assert_close(
                &format!("{case} relu6 {act}"),
                &y,
                &values(&reference),
                1e-5,
            );
        }
    }
}
