//! A trainer for the model families: Adam, mini-batches, seeded and deterministic, per-epoch
//! metrics (loss, accuracy, NLL, ECE) returned as data, early stopping on validation NLL,
//! progress reported to a [`TrainObserver`], checkpoints.

use std::path::Path;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use labelsmooth::calibration::{
    Binning, Norm, brier_score, calibration_error, negative_log_likelihood,
};
use labelsmooth::targets::Convention;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::loss::{ConfidencePenaltyConfig, DistillationConfig, SmoothedCrossEntropyConfig};
use crate::mobilenet::{MobileNetV2, MobileNetV2Config};
use crate::models::{ConvNet, ConvNetConfig, Mlp, MlpConfig, TextClassifier, TextClassifierConfig};
use crate::optim::FusedAdamConfig;

/// Which model to build, with its configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ModelSpec {
    /// [`Mlp`].
    Mlp(MlpConfig),
    /// [`ConvNet`].
    ConvNet(ConvNetConfig),
    /// [`MobileNetV2`].
    MobileNet(MobileNetV2Config),
    /// [`TextClassifier`].
    Text(TextClassifierConfig),
}

impl ModelSpec {
    /// The family's name: `mlp`, `cnn`, `mobilenet-v2`, `lstm`.
    pub fn name(&self) -> &'static str {
        match self {
            ModelSpec::Mlp(_) => "mlp",
            ModelSpec::ConvNet(_) => "cnn",
            ModelSpec::MobileNet(_) => "mobilenet-v2",
            ModelSpec::Text(_) => "lstm",
        }
    }

    /// Number of classes (outputs) of the model.
    pub fn classes(&self) -> usize {
        match self {
            ModelSpec::Mlp(c) => c.classes,
            ModelSpec::ConvNet(c) => c.classes,
            ModelSpec::MobileNet(c) => c.classes,
            ModelSpec::Text(c) => c.classes,
        }
    }

    /// About how many weights the model has (within a small factor, from its configuration
    /// alone): what a saved configuration is checked against before a model is built for it.
    /// `None` when the configuration is not a size (a width that is not finite).
    pub fn weight_count(&self) -> Option<u128> {
        let dense = |a: u128, b: u128| (a + 1).saturating_mul(b);
        Some(match self {
            ModelSpec::Mlp(c) => {
                let mut dims = vec![c.input as u128];
                dims.extend(c.hidden.iter().map(|&h| h as u128));
                dims.push(c.classes as u128);
                dims.windows(2)
                    .fold(0u128, |t, w| t.saturating_add(dense(w[0], w[1])))
            }
            ModelSpec::ConvNet(c) => {
                let [f0, f1] = c.filters.map(|f| f as u128);
                let cells = (c.size as u128 / 4).pow(2);
                dense(c.channels as u128 * 9, f0)
                    .saturating_add(dense(f0 * 9, f1))
                    .saturating_add(dense(cells.saturating_mul(f1), c.hidden as u128))
                    .saturating_add(dense(c.hidden as u128, c.classes as u128))
            }
            ModelSpec::Text(c) => {
                let (e, h) = (c.embedding as u128, c.hidden as u128);
                (c.vocab as u128)
                    .saturating_mul(e)
                    .saturating_add(dense(e + h, 4 * h))
                    .saturating_add(dense(h, c.dense as u128))
                    .saturating_add(dense(c.dense as u128, c.classes as u128))
            }
            ModelSpec::MobileNet(c) => {
                if !(c.width.is_finite() && c.width > 0.0 && c.width < 1e6) {
                    return None;
                }
                // About 2.2 million weights in the backbone at width 1, growing with its square.
                let backbone = (2.3e6 * c.width.max(1.0 / 64.0).powi(2)) as u128;
                backbone.saturating_add(dense(c.feature_channels() as u128, c.classes as u128))
            }
        })
    }

    /// Builds the model on `device` with weights drawn from `seed`.
    pub fn init(&self, device: &Device, seed: u64) -> Classifier {
        device.seed(seed);
        match self {
            ModelSpec::Mlp(c) => Classifier::Mlp(c.init(device)),
            ModelSpec::ConvNet(c) => Classifier::ConvNet(c.init(device)),
            ModelSpec::MobileNet(c) => Classifier::MobileNet(c.init(device)),
            ModelSpec::Text(c) => Classifier::Text(c.init(device)),
        }
    }
}

/// Model inputs as plain arrays.
#[derive(Debug, Clone, PartialEq)]
pub enum Inputs {
    /// Dense features, `[n, shape...]` row-major (`shape` per sample: `[d]` or `[c, h, w]`).
    Dense {
        /// Values.
        values: Vec<f32>,
        /// Shape of one sample.
        shape: Vec<usize>,
    },
    /// Token ids `[n, steps]`.
    Tokens {
        /// Ids.
        ids: Vec<u32>,
        /// Steps per sequence.
        steps: usize,
    },
}

impl Inputs {
    /// Number of samples.
    pub fn len(&self) -> usize {
        match self {
            Inputs::Dense { values, shape } => {
                values.len() / shape.iter().product::<usize>().max(1)
            }
            Inputs::Tokens { ids, steps } => ids.len() / (*steps).max(1),
        }
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The samples at `rows`.
    pub fn select(&self, rows: &[usize]) -> Inputs {
        match self {
            Inputs::Dense { values, shape } => {
                let d: usize = shape.iter().product();
                let mut out = Vec::with_capacity(rows.len() * d);
                rows.iter()
                    .for_each(|&r| out.extend_from_slice(&values[r * d..(r + 1) * d]));
                Inputs::Dense {
                    values: out,
                    shape: shape.clone(),
                }
            }
            Inputs::Tokens { ids, steps } => {
                let mut out = Vec::with_capacity(rows.len() * steps);
                rows.iter()
                    .for_each(|&r| out.extend_from_slice(&ids[r * steps..(r + 1) * steps]));
                Inputs::Tokens {
                    ids: out,
                    steps: *steps,
                }
            }
        }
    }
}

/// One of the model families, as one module type the trainer works with.
// A model is built once per training run and moved, never stored in bulk: the size of the
// largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Classifier {
    /// Fully connected network on flat features.
    Mlp(Mlp),
    /// Small CNN on images.
    ConvNet(ConvNet),
    /// MobileNetV2 (torchvision's) on RGB images.
    MobileNet(MobileNetV2),
    /// Embedding + LSTM on token ids.
    Text(TextClassifier),
}

/// A batch on a device, in the form its model takes.
pub enum Batch {
    /// Flat features `[n, d]`.
    Flat(Tensor<2>),
    /// Images `[n, c, h, w]`.
    Images(Tensor<4>),
    /// Pooled backbone features `[n, channels]` of images, for the classifier of a model whose
    /// backbone is frozen.
    Pooled(Tensor<2>),
    /// Token ids `[n, steps]`.
    Tokens(Tensor<2, Int>),
}

impl Classifier {
    /// Logits `[n, classes]`.
    pub fn forward(&self, batch: Batch) -> Tensor<2> {
        match (self, batch) {
            (Classifier::Mlp(m), Batch::Flat(x)) => m.forward(x),
            (Classifier::Mlp(m), Batch::Images(x)) => m.forward(x.flatten(1, 3)),
            (Classifier::ConvNet(m), Batch::Images(x)) => m.forward(x),
            (Classifier::MobileNet(m), Batch::Images(x)) => m.forward(x),
            (Classifier::MobileNet(m), Batch::Pooled(x)) => m.head(x),
            (Classifier::Text(m), Batch::Tokens(x)) => m.forward(x),
            _ => panic!("the model does not take this kind of input"),
        }
    }

    /// Penultimate-layer activations `[n, features]`.
    pub fn features(&self, batch: Batch) -> Tensor<2> {
        match (self, batch) {
            (Classifier::Mlp(m), Batch::Flat(x)) => m.features(x),
            (Classifier::Mlp(m), Batch::Images(x)) => m.features(x.flatten(1, 3)),
            (Classifier::ConvNet(m), Batch::Images(x)) => m.features(x),
            (Classifier::MobileNet(m), Batch::Images(x)) => m.features(x),
            (Classifier::MobileNet(_), Batch::Pooled(x)) => x,
            (Classifier::Text(m), Batch::Tokens(x)) => m.features(x),
            _ => panic!("the model does not take this kind of input"),
        }
    }

    /// The model with its convolutional backbone frozen (only the classifier trains; batch norm
    /// uses its running statistics) or unfrozen. Only MobileNetV2 has a backbone to freeze.
    pub fn with_frozen_backbone(self, frozen: bool) -> Result<Classifier, TrainError> {
        match self {
            Classifier::MobileNet(m) => Ok(Classifier::MobileNet(m.with_frozen_backbone(frozen))),
            _ => Err(TrainError::Invalid(
                "only mobilenet-v2 has a backbone to freeze".into(),
            )),
        }
    }

    /// Whether this model takes `inputs` (flat or image features, or token ids).
    pub fn accepts(&self, inputs: &Inputs) -> bool {
        match (self, inputs) {
            (Classifier::Mlp(_), Inputs::Dense { .. }) => true,
            (Classifier::ConvNet(_) | Classifier::MobileNet(_), Inputs::Dense { shape, .. }) => {
                shape.len() == 3
            }
            (Classifier::Text(_), Inputs::Tokens { .. }) => true,
            _ => false,
        }
    }
}

/// The batch of `rows` of `inputs` on `device`, shaped for `model`.
pub fn batch_of(model: &Classifier, inputs: &Inputs, rows: &[usize], device: &Device) -> Batch {
    let n = rows.len();
    match inputs.select(rows) {
        Inputs::Dense { values, shape } => {
            let d: usize = shape.iter().product();
            match (model, shape.as_slice()) {
                (Classifier::ConvNet(_) | Classifier::MobileNet(_), &[c, h, w]) => Batch::Images(
                    Tensor::from_data(TensorData::new(values, [n, c, h, w]), device),
                ),
                _ => Batch::Flat(Tensor::from_data(TensorData::new(values, [n, d]), device)),
            }
        }
        Inputs::Tokens { ids, steps } => {
            let ids: Vec<i64> = ids.into_iter().map(i64::from).collect();
            Batch::Tokens(Tensor::from_data(TensorData::new(ids, [n, steps]), device))
        }
    }
}

/// How L2 regularization is applied.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum L2 {
    /// λ·Σw² over every weight matrix and kernel (not biases) added to the loss, as Keras'
    /// `kernel_regularizer=l2(λ)`.
    Penalty(f32),
    /// Adam's weight decay with coefficient λ (the gradient gains λ·w).
    WeightDecay(f32),
}

/// Training settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Passes over the training data.
    pub epochs: usize,
    /// At least this many optimizer steps: on data so small that `epochs` passes make fewer
    /// steps, more epochs are run (`max(epochs, ⌈min_steps / steps per epoch⌉)`). 0: exactly
    /// `epochs`.
    #[serde(default)]
    pub min_steps: usize,
    /// Samples per step.
    pub batch_size: usize,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// Adam's β1 and β2.
    pub betas: (f32, f32),
    /// Seed of initialization, dropout and shuffling.
    pub seed: u64,
    /// Label smoothing factor α.
    pub smoothing: f32,
    /// Smoothing convention.
    pub convention: Convention,
    /// Confidence penalty β, added to the loss when set.
    pub confidence_penalty: Option<f32>,
    /// L2 regularization.
    pub l2: Option<L2>,
    /// Stop when validation NLL has not improved for this many epochs, and keep the best model.
    pub early_stopping: Option<usize>,
    /// Bins of the expected calibration error in the metrics.
    pub ece_bins: usize,
    /// Epochs (from the first) during which a MobileNetV2 backbone is frozen: only the
    /// classifier trains, batch norm uses its running statistics. `None`: nothing is frozen.
    #[serde(default)]
    pub frozen_epochs: Option<usize>,
    /// Learning rate once the backbone is unfrozen (default: `learning_rate`).
    #[serde(default)]
    pub fine_tune_learning_rate: Option<f64>,
    /// Random horizontal flips and shifts (up to an eighth of the side, edges repeated) of
    /// training images.
    #[serde(default)]
    pub augment: bool,
    /// One weight per class in the loss (PyTorch's `weight`: each sample's loss is scaled by its
    /// class's weight, the mean divides by the sum of the weights).
    #[serde(default)]
    pub class_weights: Option<Vec<f32>>,
}

impl TrainConfig {
    /// The epochs run on `rows` training rows: `epochs`, or more when that makes fewer than
    /// `min_steps` steps.
    pub fn epochs_for(&self, rows: usize) -> usize {
        let steps_per_epoch = rows.div_ceil(self.batch_size.max(1)).max(1);
        self.epochs.max(self.min_steps.div_ceil(steps_per_epoch))
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 10,
            min_steps: 0,
            batch_size: 64,
            learning_rate: 1e-3,
            betas: (0.9, 0.999),
            seed: 0,
            smoothing: 0.0,
            convention: Convention::Uniform,
            confidence_penalty: None,
            l2: None,
            early_stopping: None,
            ece_bins: 15,
            frozen_epochs: None,
            fine_tune_learning_rate: None,
            augment: false,
            class_weights: None,
        }
    }
}

/// Metrics of one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches (the objective, regularizers included).
    pub train_loss: f64,
    /// Wall time of the epoch's training steps (validation excluded), in seconds.
    pub seconds: f64,
    /// Validation metrics, when validation data was given.
    pub valid: Option<Evaluation>,
}

/// Metrics of a model on labelled data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Accuracy.
    pub accuracy: f64,
    /// Mean negative log-likelihood.
    pub nll: f64,
    /// Expected calibration error (equal-width bins).
    pub ece: f64,
    /// Multi-class Brier score.
    pub brier: f64,
    /// Mean top-label confidence: above the accuracy, the model is over-confident; below it,
    /// under-confident.
    #[serde(default)]
    pub confidence: f64,
}

/// What training returns.
#[derive(Debug)]
pub struct Trained {
    /// The trained model (the best epoch's with early stopping).
    pub model: Classifier,
    /// One entry per epoch run.
    pub history: Vec<EpochMetrics>,
}

/// Errors of training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A setting or input is invalid.
    #[error("{0}")]
    Invalid(String),
    /// The loss rejected its input.
    #[error(transparent)]
    Loss(#[from] labelsmooth::Error),
    /// Saving or loading failed.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// What happened.
        message: String,
    },
}

/// Sums λ·Σw² over parameters with two or more dimensions.
struct SquaredWeights {
    total: Option<Tensor<1>>,
}

impl ModuleVisitor for SquaredWeights {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if D >= 2 {
            let s = param.val().powi_scalar(2).sum().reshape([1]);
            self.total = Some(match self.total.take() {
                Some(t) => t + s,
                None => s,
            });
        }
    }
}

fn check(
    cfg: &TrainConfig,
    train: &Inputs,
    labels: &[usize],
    classes: usize,
) -> Result<(), TrainError> {
    let bad = |m: String| Err(TrainError::Invalid(m));
    if cfg.epochs == 0 || cfg.batch_size == 0 {
        return bad("epochs and batch size must be at least 1".into());
    }
    if !(cfg.learning_rate > 0.0 && cfg.learning_rate.is_finite()) {
        return bad(format!(
            "learning rate {} must be finite and > 0",
            cfg.learning_rate
        ));
    }
    if train.is_empty() {
        return bad("the training data is empty".into());
    }
    if train.len() != labels.len() {
        return bad(format!(
            "{} samples but {} labels",
            train.len(),
            labels.len()
        ));
    }
    if let Some((row, &y)) = labels.iter().enumerate().find(|(_, y)| **y >= classes) {
        return bad(format!(
            "row {row}: class id {y} is out of range for {classes} classes"
        ));
    }
    if cfg.early_stopping.is_some_and(|p| p == 0) {
        return bad("early-stopping patience must be at least 1".into());
    }
    if cfg
        .fine_tune_learning_rate
        .is_some_and(|lr| !(lr > 0.0 && lr.is_finite()))
    {
        return bad("the fine-tuning learning rate must be finite and > 0".into());
    }
    if let Some(w) = &cfg.class_weights
        && w.len() != classes
    {
        return bad(format!("{} class weights for {classes} classes", w.len()));
    }
    if cfg.augment && !matches!(train, Inputs::Dense { shape, .. } if shape.len() == 3) {
        return bad("augmentation (flips and shifts) needs images".into());
    }
    Ok(())
}

/// What a training run tells while it goes: a progress bar or a log listens here. Every method
/// has an empty default; `()` listens to nothing.
pub trait TrainObserver {
    /// Training starts and will take at most `steps` optimizer steps.
    fn started(&mut self, steps: u64) {
        let _ = steps;
    }
    /// One optimizer step is done.
    fn step(&mut self) {}
    /// An epoch is done, with its metrics.
    fn epoch(&mut self, metrics: &EpochMetrics) {
        let _ = metrics;
    }
    /// Training is over (also after early stopping).
    fn finished(&mut self) {}
}

impl TrainObserver for () {}

/// Builds the model of `spec` from `cfg.seed` and trains it on `(train, train_labels)` over
/// `classes` classes, evaluating on `valid` after each epoch when given. Runs on `device`
/// (autodiff is added for training). The same seed and thread count give the same bits;
/// trainings in one process run one at a time to keep that true.
pub fn train(
    spec: &ModelSpec,
    train: (&Inputs, &[usize]),
    valid: Option<(&Inputs, &[usize])>,
    classes: usize,
    cfg: &TrainConfig,
    device: &Device,
) -> Result<Trained, TrainError> {
    train_observed(spec, train, valid, classes, cfg, device, &mut ())
}

/// [`train`], telling `observer` about each step and epoch.
pub fn train_observed(
    spec: &ModelSpec,
    train: (&Inputs, &[usize]),
    valid: Option<(&Inputs, &[usize])>,
    classes: usize,
    cfg: &TrainConfig,
    device: &Device,
    observer: &mut dyn TrainObserver,
) -> Result<Trained, TrainError> {
    train_from(None, spec, train, valid, classes, cfg, device, observer)
}

/// [`train_observed`] starting from the weights of `initial` (fine-tuning) instead of a fresh
/// initialization of `spec`, when given.
#[allow(clippy::too_many_arguments)]
pub fn train_from(
    initial: Option<Classifier>,
    spec: &ModelSpec,
    train: (&Inputs, &[usize]),
    valid: Option<(&Inputs, &[usize])>,
    classes: usize,
    cfg: &TrainConfig,
    device: &Device,
    observer: &mut dyn TrainObserver,
) -> Result<Trained, TrainError> {
    fit(
        initial, spec, train, None, valid, classes, cfg, device, observer,
    )
}

/// A teacher's outputs for knowledge distillation: its logits `[n, classes]` on the training
/// rows (in their order), the temperature τ and the weight λ of its term.
#[derive(Debug, Clone, Copy)]
pub struct Teacher<'a> {
    /// Row-major logits, one row per training row.
    pub logits: &'a [f32],
    /// Temperature τ (finite, > 0).
    pub temperature: f32,
    /// Weight λ of the teacher's term in [0, 1].
    pub weight: f32,
}

/// [`train_observed`] for a student that learns from `teacher` as well as from the labels: the
/// loss is [`labelsmooth::loss::Distillation`] with `cfg.smoothing` on the label term
/// (Hinton et al. 2015). The confidence penalty and L2 of `cfg` are added as in [`train`].
#[allow(clippy::too_many_arguments)]
pub fn train_distilled(
    spec: &ModelSpec,
    train: (&Inputs, &[usize]),
    teacher: Teacher<'_>,
    valid: Option<(&Inputs, &[usize])>,
    classes: usize,
    cfg: &TrainConfig,
    device: &Device,
    observer: &mut dyn TrainObserver,
) -> Result<Trained, TrainError> {
    if cfg.class_weights.is_some() {
        return Err(TrainError::Invalid(
            "a distilled student takes no class weights".into(),
        ));
    }
    if teacher.logits.len() != train.1.len() * classes {
        return Err(TrainError::Invalid(format!(
            "{} teacher logits for {} training rows of {classes} classes",
            teacher.logits.len(),
            train.1.len()
        )));
    }
    fit(
        None,
        spec,
        train,
        Some(teacher),
        valid,
        classes,
        cfg,
        device,
        observer,
    )
}

#[allow(clippy::too_many_arguments)]
fn fit(
    initial: Option<Classifier>,
    spec: &ModelSpec,
    train: (&Inputs, &[usize]),
    teacher: Option<Teacher<'_>>,
    valid: Option<(&Inputs, &[usize])>,
    classes: usize,
    cfg: &TrainConfig,
    device: &Device,
    observer: &mut dyn TrainObserver,
) -> Result<Trained, TrainError> {
    check(cfg, train.0, train.1, classes)?;
    // Burn's CPU backend seeds one random generator for the whole process: two trainings at once
    // would draw from it in an unpredictable order. One at a time keeps runs reproducible.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let device = device.clone().autodiff();
    let mut model = match initial {
        Some(m) => {
            device.seed(cfg.seed);
            m.to_device(&device).train()
        }
        None => spec.init(&device, cfg.seed).train(),
    };
    let frozen_epochs = cfg.frozen_epochs.unwrap_or(0);
    if frozen_epochs > 0 {
        model = model.with_frozen_backbone(true)?;
    }
    if !model.accepts(train.0) {
        return Err(TrainError::Invalid(
            "the model does not take this kind of input".into(),
        ));
    }
    let loss = SmoothedCrossEntropyConfig::new(classes)
        .with_smoothing(cfg.smoothing)
        .with_convention(cfg.convention)
        .with_weights(cfg.class_weights.clone())
        .try_init(&device)?;
    let distill = teacher
        .map(|t| {
            DistillationConfig::new(classes)
                .with_temperature(t.temperature)
                .with_weight(t.weight)
                .with_smoothing(cfg.smoothing)
                .with_convention(cfg.convention)
                .try_init(&device)
        })
        .transpose()?;
    let penalty = cfg
        .confidence_penalty
        .map(|b| ConfidencePenaltyConfig::new(b).try_init())
        .transpose()?;
    let mut optim = FusedAdamConfig {
        beta_1: cfg.betas.0,
        beta_2: cfg.betas.1,
        epsilon: 1e-8,
        weight_decay: match cfg.l2 {
            Some(L2::WeightDecay(l)) => Some(l),
            _ => None,
        },
    }
    .init();
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let n = train.1.len();
    let steps_per_epoch = n.div_ceil(cfg.batch_size);
    let epochs = cfg.epochs_for(n);
    observer.started((epochs * steps_per_epoch) as u64);
    let mut history = Vec::new();
    let mut best: Option<(f64, Classifier)> = None;
    let mut since_best = 0;
    let mut order: Vec<usize> = (0..n).collect();
    let mut augment_rng = ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_add(0x5eed_a0a0));
    let mut pooled: Option<Inputs> = None;
    let mut learning_rate = cfg.learning_rate;
    for epoch in 1..=epochs {
        if frozen_epochs > 0 && epoch == frozen_epochs + 1 {
            model = model.with_frozen_backbone(false)?;
            learning_rate = cfg.fine_tune_learning_rate.unwrap_or(cfg.learning_rate);
        }
        order.shuffle(&mut rng);
        let started = std::time::Instant::now();
        // While the backbone is frozen and the images are not augmented, its features are the
        // same every epoch: they are computed once (timed in the first epoch) and only the
        // classifier runs on them.
        let frozen_now = epoch <= frozen_epochs;
        if frozen_now
            && !cfg.augment
            && pooled.is_none()
            && matches!(model, Classifier::MobileNet(_))
        {
            let (values, width) = map_batches(&model, train.0, |m, b| m.features(b));
            pooled = Some(Inputs::Dense {
                values,
                shape: vec![width],
            });
        }
        if !frozen_now {
            pooled = None;
        }
        let mut total = 0.0;
        for rows in order.chunks(cfg.batch_size) {
            let batch = if let Some(Inputs::Dense { values, shape }) = &pooled {
                let w = shape[0];
                let mut x = Vec::with_capacity(rows.len() * w);
                rows.iter()
                    .for_each(|&r| x.extend_from_slice(&values[r * w..(r + 1) * w]));
                Batch::Pooled(Tensor::from_data(
                    TensorData::new(x, [rows.len(), w]),
                    &device,
                ))
            } else if cfg.augment {
                let mut x = train.0.select(rows);
                augment(&mut x, &mut augment_rng);
                let all: Vec<usize> = (0..rows.len()).collect();
                batch_of(&model, &x, &all, &device)
            } else {
                batch_of(&model, train.0, rows, &device)
            };
            let ids: Vec<i64> = rows.iter().map(|&r| train.1[r] as i64).collect();
            let targets = Tensor::<1, Int>::from_data(TensorData::new(ids, [rows.len()]), &device);
            let logits = model.forward(batch);
            let mut objective = match (&distill, teacher) {
                (Some(d), Some(t)) => {
                    let mut soft = Vec::with_capacity(rows.len() * classes);
                    rows.iter().for_each(|&r| {
                        soft.extend_from_slice(&t.logits[r * classes..(r + 1) * classes])
                    });
                    let soft = Tensor::<2>::from_data(
                        TensorData::new(soft, [rows.len(), classes]),
                        &device,
                    );
                    d.try_forward(logits.clone(), soft, targets)?
                }
                _ => loss.try_forward(logits.clone(), targets)?,
            };
            if let Some(p) = &penalty {
                objective = objective + p.forward(logits);
            }
            if let Some(L2::Penalty(l)) = cfg.l2 {
                let mut sq = SquaredWeights { total: None };
                model.visit(&mut sq);
                if let Some(s) = sq.total {
                    objective = objective + s.mul_scalar(l);
                }
            }
            total += f64::from(objective.clone().into_scalar::<f32>());
            let grads = GradientsParams::from_grads(objective.backward(), &model);
            model = optim.step(learning_rate, model, grads);
            observer.step();
        }
        let seconds = started.elapsed().as_secs_f64();
        let valid_metrics = match valid {
            Some((x, y)) => Some(evaluate(&model, x, y, classes, cfg.ece_bins)?),
            None => None,
        };
        let nll = valid_metrics.as_ref().map(|v| v.nll);
        history.push(EpochMetrics {
            epoch,
            train_loss: total / steps_per_epoch as f64,
            seconds,
            valid: valid_metrics,
        });
        if let Some(m) = history.last() {
            observer.epoch(m);
        }
        if let (Some(patience), Some(nll)) = (cfg.early_stopping, nll) {
            if best.as_ref().is_none_or(|(b, _)| nll < *b) {
                best = Some((nll, model.clone()));
                since_best = 0;
            } else {
                since_best += 1;
                if since_best >= patience {
                    break;
                }
            }
        }
    }
    observer.finished();
    let model = match best {
        Some((_, m)) => m,
        None => model,
    };
    Ok(Trained {
        model: model.valid(),
        history,
    })
}

/// Flips each image horizontally with probability ½ and shifts it by up to an eighth of its
/// side in each direction, repeating the edge pixels.
fn augment(inputs: &mut Inputs, rng: &mut ChaCha8Rng) {
    use rand::Rng;
    let Inputs::Dense { values, shape } = inputs else {
        return;
    };
    let &[c, h, w] = shape.as_slice() else {
        return;
    };
    let max_shift = (h.min(w) / 8).max(1) as i32;
    let mut source = vec![0f32; c * h * w];
    for image in values.chunks_exact_mut(c * h * w) {
        source.copy_from_slice(image);
        let flip = rng.random_bool(0.5);
        let dy = rng.random_range(-max_shift..=max_shift);
        let dx = rng.random_range(-max_shift..=max_shift);
        for ch in 0..c {
            for y in 0..h {
                let sy = (y as i32 + dy).clamp(0, h as i32 - 1) as usize;
                for x in 0..w {
                    let fx = if flip { w - 1 - x } else { x };
                    let sx = (fx as i32 + dx).clamp(0, w as i32 - 1) as usize;
                    image[(ch * h + y) * w + x] = source[(ch * h + sy) * w + sx];
                }
            }
        }
    }
}

/// Runs `f` over `inputs` in batches of 256 without autodiff and concatenates the row-major
/// outputs; returns them with the number of columns.
fn map_batches(
    model: &Classifier,
    inputs: &Inputs,
    f: impl Fn(&Classifier, Batch) -> Tensor<2>,
) -> (Vec<f32>, usize) {
    let model = model.valid();
    let device = model
        .devices()
        .first()
        .cloned()
        .unwrap_or_else(Device::flex);
    let all: Vec<usize> = (0..inputs.len()).collect();
    let mut out = Vec::new();
    let mut cols = 0;
    // MobileNetV2's activations are large (close to 1 MB per 96×96 image after the first
    // expansion): in batches of 32 a layer's output stays under the size above which the
    // allocator maps fresh pages for every buffer, and the whole pass runs about twice as fast.
    let rows_per_batch = if matches!(model, Classifier::MobileNet(_)) {
        32
    } else {
        256
    };
    for rows in all.chunks(rows_per_batch) {
        let y = f(&model, batch_of(&model, inputs, rows, &device));
        cols = y.dims()[1];
        let data = y.into_data().convert::<f32>();
        out.extend(data.try_to_vec::<f32>().expect("float outputs"));
    }
    (out, cols)
}

/// Logits `[n, classes]` (row-major) of `inputs`, in batches, without autodiff.
pub fn predict_logits(model: &Classifier, inputs: &Inputs) -> Vec<f32> {
    map_batches(model, inputs, |m, b| m.forward(b)).0
}

/// Class probabilities `[n, classes]` (row-major) of `inputs`, in batches, without autodiff.
pub fn predict_proba(model: &Classifier, inputs: &Inputs) -> Vec<f32> {
    map_batches(model, inputs, |m, b| softmax(m.forward(b), 1)).0
}

/// Penultimate-layer activations `[n, d]` of `inputs` and their width `d`.
pub fn predict_features(model: &Classifier, inputs: &Inputs) -> (Vec<f32>, usize) {
    map_batches(model, inputs, |m, b| m.features(b))
}

impl Classifier {
    /// The output layer's weight as one template row per class, `[classes, d]`, and `d`.
    pub fn class_templates(&self) -> (Vec<f32>, usize) {
        let layer = match self {
            Classifier::Mlp(m) => &m.output,
            Classifier::ConvNet(m) => m.output_layer(),
            Classifier::MobileNet(m) => &m.classifier,
            Classifier::Text(m) => m.output_layer(),
        };
        // Burn stores a linear weight as [inputs, outputs]: templates are its columns.
        let w = layer.weight.val();
        let [d, k] = w.dims();
        let t = w.transpose().into_data().convert::<f32>();
        let _ = k;
        (t.try_to_vec::<f32>().expect("float weights"), d)
    }
}

/// Accuracy, NLL, ECE and Brier score of `model` on labelled data.
pub fn evaluate(
    model: &Classifier,
    inputs: &Inputs,
    labels: &[usize],
    classes: usize,
    ece_bins: usize,
) -> Result<Evaluation, TrainError> {
    let probs = predict_proba(model, inputs);
    Ok(evaluation_of(&probs, labels, classes, ece_bins)?)
}

/// Accuracy, NLL, ECE and Brier score of predicted probabilities.
pub fn evaluation_of(
    probs: &[f32],
    labels: &[usize],
    classes: usize,
    ece_bins: usize,
) -> labelsmooth::Result<Evaluation> {
    Ok(Evaluation {
        accuracy: labelsmooth::calibration::accuracy(probs, labels, classes)?,
        nll: negative_log_likelihood(probs, labels, classes)?,
        ece: calibration_error(probs, labels, classes, ece_bins, Norm::L1, Binning::Uniform)?,
        brier: brier_score(probs, labels, classes)?,
        confidence: mean_confidence(probs, classes),
    })
}

/// Mean over rows of the largest probability.
fn mean_confidence(probs: &[f32], classes: usize) -> f64 {
    let rows = probs.chunks_exact(classes.max(1));
    let n = rows.len().max(1) as f64;
    rows.map(|r| f64::from(r.iter().cloned().fold(0.0f32, f32::max)))
        .sum::<f64>()
        / n
}

/// Saves the model's parameters to `path` (a burnpack file).
pub fn save_checkpoint(model: &Classifier, path: &Path) -> Result<(), TrainError> {
    model.clone().save_file(path).map_err(|e| TrainError::Io {
        path: path.display().to_string(),
        message: format!("cannot save the checkpoint: {e:?}"),
    })
}

/// Loads parameters saved by [`save_checkpoint`] into `model` (built from the same configuration).
pub fn load_checkpoint(model: Classifier, path: &Path) -> Result<Classifier, TrainError> {
    let record = burn::store::ModuleRecord::load(path).map_err(|e| TrainError::Io {
        path: path.display().to_string(),
        message: format!("cannot read the checkpoint: {e:?}"),
    })?;
    model.try_load_record(record).map_err(|e| TrainError::Io {
        path: path.display().to_string(),
        message: format!("the checkpoint does not fit this model: {e:?}"),
    })
}
