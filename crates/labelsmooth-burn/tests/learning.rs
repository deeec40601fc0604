//! Each model learns a small real task; training is deterministic; checkpoints round-trip.

use labelsmooth::split::stratified_split;
use labelsmooth_burn::burn::tensor::Device;
use labelsmooth_burn::mobilenet::MobileNetV2Config;
use labelsmooth_burn::models::{ConvNetConfig, MlpConfig, TextClassifierConfig};
use labelsmooth_burn::train::{
    Inputs, L2, ModelSpec, TrainConfig, evaluate, load_checkpoint, predict_proba, save_checkpoint,
    train,
};
use labelsmooth_data::text::Tokenizer;
use labelsmooth_data::{Features, bundled};

fn digits() -> (Inputs, Vec<usize>) {
    let d = bundled::load("digits").unwrap();
    let Features::Dense { values, shape } = d.features else {
        panic!()
    };
    (Inputs::Dense { values, shape }, d.labels)
}

fn split(labels: &[usize], frac: f64) -> (Vec<usize>, Vec<usize>) {
    let s = stratified_split(labels, frac, 1).unwrap();
    (s.train, s.valid)
}

fn pick(labels: &[usize], rows: &[usize]) -> Vec<usize> {
    rows.iter().map(|&r| labels[r]).collect()
}

#[test]
fn mlp_learns_digits_with_smoothing_and_regularizers() {
    let (x, y) = digits();
    let (tr, va) = split(&y, 0.25);
    let device = Device::flex();
    let (xt, yt, xv, yv) = (x.select(&tr), pick(&y, &tr), x.select(&va), pick(&y, &va));
    for (l2, dropout, penalty) in [
        (None, 0.0, None),
        (Some(L2::Penalty(1e-4)), 0.2, Some(0.1)),
        (Some(L2::WeightDecay(1e-4)), 0.0, None),
    ] {
        let model = ModelSpec::Mlp(MlpConfig::new(64, vec![64], 10).with_dropout(dropout));
        let cfg = TrainConfig {
            epochs: 8,
            smoothing: 0.1,
            l2,
            confidence_penalty: penalty,
            seed: 3,
            ..Default::default()
        };
        let out = train(&model, (&xt, &yt), Some((&xv, &yv)), 10, &cfg, &device).unwrap();
        assert_eq!(out.history.len(), 8);
        let last = out.history.last().unwrap().valid.clone().unwrap();
        assert!(
            last.accuracy > 0.9,
            "{l2:?} {dropout}: accuracy {}",
            last.accuracy
        );
        assert!(out.history[0].train_loss > out.history[7].train_loss);
        let again = evaluate(&out.model, &xv, &yv, 10, 15).unwrap();
        assert_eq!(again, last);
    }
}

#[test]
fn cnns_learn_digit_images() {
    let (x, y) = digits();
    let (tr, va) = split(&y, 0.25);
    let device = Device::flex();
    let (xt, yt, xv, yv) = (x.select(&tr), pick(&y, &tr), x.select(&va), pick(&y, &va));
    let cfg = TrainConfig {
        epochs: 4,
        smoothing: 0.1,
        seed: 5,
        ..Default::default()
    };
    let cnn = ModelSpec::ConvNet(ConvNetConfig::new(1, 8, 10));
    let out = train(&cnn, (&xt, &yt), Some((&xv, &yv)), 10, &cfg, &device).unwrap();
    let acc = out.history.last().unwrap().valid.as_ref().unwrap().accuracy;
    assert!(acc > 0.85, "cnn accuracy {acc}");
    // MobileNetV2 takes RGB: the grey digits repeated on three channels, 16 × 16.
    let rgb = |x: &Inputs| {
        let Inputs::Dense { values, .. } = x else {
            panic!()
        };
        let mut out = Vec::with_capacity(values.len() * 12);
        for image in values.chunks_exact(64) {
            for _ in 0..3 {
                for r in 0..16 {
                    for c in 0..16 {
                        out.push(image[(r / 2) * 8 + c / 2]);
                    }
                }
            }
        }
        Inputs::Dense {
            values: out,
            shape: vec![3, 16, 16],
        }
    };
    let mobile = ModelSpec::MobileNet(MobileNetV2Config::new(10).with_width(0.35));
    let cfg = TrainConfig {
        epochs: 8,
        learning_rate: 3e-3,
        batch_size: 32,
        ..cfg
    };
    let out = train(
        &mobile,
        (&rgb(&xt), &yt),
        Some((&rgb(&xv), &yv)),
        10,
        &cfg,
        &device,
    )
    .unwrap();
    let acc = out.history.last().unwrap().valid.as_ref().unwrap().accuracy;
    assert!(acc > 0.6, "mobilenet accuracy {acc}");
}

#[test]
fn text_classifier_learns_review_polarity() {
    let d = bundled::load("rt-polarity").unwrap();
    let Features::Text(texts) = &d.features else {
        panic!()
    };
    let rows: Vec<usize> = (0..d.len()).step_by(3).collect();
    let y = pick(&d.labels, &rows);
    let (tr, va) = split(&y, 0.2);
    let train_texts: Vec<&str> = tr.iter().map(|&i| texts[rows[i]].as_str()).collect();
    let valid_texts: Vec<&str> = va.iter().map(|&i| texts[rows[i]].as_str()).collect();
    let tok = Tokenizer::fit(&train_texts, 4000, 40);
    let xt = Inputs::Tokens {
        ids: tok.encode_all(&train_texts),
        steps: 40,
    };
    let xv = Inputs::Tokens {
        ids: tok.encode_all(&valid_texts),
        steps: 40,
    };
    let device = Device::flex();
    let model = ModelSpec::Text(TextClassifierConfig::new(tok.vocab_size(), 2));
    let cfg = TrainConfig {
        epochs: 4,
        smoothing: 0.1,
        learning_rate: 3e-3,
        seed: 2,
        ..Default::default()
    };
    let out = train(
        &model,
        (&xt, &pick(&y, &tr)),
        Some((&xv, &pick(&y, &va))),
        2,
        &cfg,
        &device,
    )
    .unwrap();
    let acc = out
        .history
        .iter()
        .map(|h| h.valid.as_ref().unwrap().accuracy)
        .fold(0.0, f64::max);
    assert!(acc > 0.6, "text accuracy {acc}");
}

#[test]
fn same_seed_same_bits_and_checkpoints_round_trip() {
    let (x, y) = digits();
    let rows: Vec<usize> = (0..600).collect();
    let (xs, ys) = (x.select(&rows), pick(&y, &rows));
    let device = Device::flex();
    let run = |seed| {
        let model = ModelSpec::Mlp(MlpConfig::new(64, vec![32], 10).with_dropout(0.1));
        let cfg = TrainConfig {
            epochs: 2,
            seed,
            smoothing: 0.1,
            ..Default::default()
        };
        train(&model, (&xs, &ys), None, 10, &cfg, &device).unwrap()
    };
    let (a, b, c) = (run(9), run(9), run(10));
    let pa = predict_proba(&a.model, &xs);
    assert_eq!(
        pa,
        predict_proba(&b.model, &xs),
        "same seed, same thread count: same bits"
    );
    assert_eq!(a.history[1].train_loss, b.history[1].train_loss);
    assert_ne!(pa, predict_proba(&c.model, &xs));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mlp.bpk");
    save_checkpoint(&a.model, &path).unwrap();
    let fresh = ModelSpec::Mlp(MlpConfig::new(64, vec![32], 10)).init(&device, 77);
    let loaded = load_checkpoint(fresh, &path).unwrap();
    assert_eq!(predict_proba(&loaded, &xs), pa);
    let wrong = ModelSpec::Mlp(MlpConfig::new(64, vec![16], 10)).init(&device, 1);
    assert!(load_checkpoint(wrong, &path).is_err());
    let again = ModelSpec::Mlp(MlpConfig::new(64, vec![32], 10)).init(&device, 1);
    assert!(load_checkpoint(again, &dir.path().join("none.bpk")).is_err());
}

/// Counts what training tells.
#[derive(Default)]
struct Counter {
    planned: u64,
    steps: u64,
    epochs: Vec<usize>,
    finished: usize,
}

impl labelsmooth_burn::train::TrainObserver for Counter {
    fn started(&mut self, steps: u64) {
        self.planned = steps;
    }
    fn step(&mut self) {
        self.steps += 1;
    }
    fn epoch(&mut self, m: &labelsmooth_burn::train::EpochMetrics) {
        self.epochs.push(m.epoch);
    }
    fn finished(&mut self) {
        self.finished += 1;
    }
}

#[test]
fn early_stopping_keeps_the_best_epoch_and_stops_after_the_patience() {
    // 120 training digits, a wide layer and a high learning rate: the held-out NLL reaches its
    // minimum within a few epochs and then rises as the model memorizes.
    let (x, y) = digits();
    let tr: Vec<usize> = (0..120).collect();
    let va: Vec<usize> = (120..720).collect();
    let (xt, yt, xv, yv) = (x.select(&tr), pick(&y, &tr), x.select(&va), pick(&y, &va));
    let device = Device::flex();
    let model = ModelSpec::Mlp(MlpConfig::new(64, vec![256], 10));
    let patience = 3;
    let cfg = TrainConfig {
        epochs: 80,
        batch_size: 16,
        learning_rate: 1e-2,
        early_stopping: Some(patience),
        seed: 5,
        ..Default::default()
    };
    let mut counter = Counter::default();
    let out = labelsmooth_burn::train::train_observed(
        &model,
        (&xt, &yt),
        Some((&xv, &yv)),
        10,
        &cfg,
        &device,
        &mut counter,
    )
    .unwrap();
    let nll: Vec<f64> = out
        .history
        .iter()
        .map(|e| e.valid.as_ref().unwrap().nll)
        .collect();
    assert!(nll.len() < 80, "no early stop: {nll:?}");
    let best = (0..nll.len())
        .min_by(|&a, &b| nll[a].total_cmp(&nll[b]))
        .unwrap();
    assert_eq!(
        best + 1 + patience,
        nll.len(),
        "stopped {patience} epochs after the best"
    );
    let kept = evaluate(&out.model, &xv, &yv, 10, 15).unwrap();
    assert_eq!(
        &kept,
        out.history[best].valid.as_ref().unwrap(),
        "the best epoch's model is kept"
    );
    // The observer heard every step and epoch, and the end once.
    assert_eq!(counter.planned, 80 * 120u64.div_ceil(16));
    assert_eq!(counter.steps, nll.len() as u64 * 120u64.div_ceil(16));
    assert_eq!(counter.epochs, (1..=nll.len()).collect::<Vec<_>>());
    assert_eq!(counter.finished, 1);
    // Without early stopping every epoch runs.
    let all = train(
        &model,
        (&xt, &yt),
        Some((&xv, &yv)),
        10,
        &TrainConfig {
            epochs: nll.len() + 2,
            early_stopping: None,
            ..cfg
        },
        &device,
    )
    .unwrap();
    assert_eq!(all.history.len(), nll.len() + 2);
}

#[test]
fn a_student_follows_its_teacher_row_by_row() {
    // The teacher's logits say "the next class" (y + 1 mod 10) for every digit: a student that
    // learns from the teacher alone (λ = 1) predicts that class, one that learns from the labels
    // alone (λ = 0) predicts the label. Teacher rows out of step with the training rows (they are
    // shuffled into batches) would teach noise instead.
    use labelsmooth_burn::train::{Teacher, predict_logits, train_distilled};
    let (x, y) = digits();
    let (tr, _) = split(&y, 0.25);
    let (xt, yt) = (x.select(&tr), pick(&y, &tr));
    let k = 10;
    let mut teacher = vec![0f32; yt.len() * k];
    for (i, &c) in yt.iter().enumerate() {
        teacher[i * k + (c + 1) % k] = 6.0;
    }
    let model = ModelSpec::Mlp(MlpConfig::new(64, vec![64], k));
    let cfg = TrainConfig {
        epochs: 15,
        seed: 5,
        ..Default::default()
    };
    let agreement = |weight: f32| -> (f64, f64) {
        let out = train_distilled(
            &model,
            (&xt, &yt),
            Teacher {
                logits: &teacher,
                temperature: 2.0,
                weight,
            },
            None,
            k,
            &cfg,
            &Device::flex(),
            &mut (),
        )
        .unwrap();
        let logits = predict_logits(&out.model, &xt);
        let top: Vec<usize> = logits
            .chunks(k)
            .map(|r| (0..k).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap())
            .collect();
        let share = |f: &dyn Fn(usize) -> usize| {
            top.iter().zip(&yt).filter(|&(&p, &c)| p == f(c)).count() as f64 / yt.len() as f64
        };
        (share(&|c| (c + 1) % k), share(&|c| c))
    };
    let (follows, labels) = agreement(1.0);
    assert!(
        follows > 0.9 && labels < 0.05,
        "λ = 1: teacher {follows}, labels {labels}"
    );
    let (follows, labels) = agreement(0.0);
    assert!(
        labels > 0.9 && follows < 0.05,
        "λ = 0: teacher {follows}, labels {labels}"
    );
    // Teacher logits for another number of rows are refused.
    let e = train_distilled(
        &model,
        (&xt, &yt),
        Teacher {
            logits: &teacher[k..],
            temperature: 2.0,
            weight: 0.5,
        },
        None,
        k,
        &cfg,
        &Device::flex(),
        &mut (),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("teacher logits for"), "{e}");
}
