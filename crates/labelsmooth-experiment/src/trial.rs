//! One trial: prepare a split's inputs (with preprocessing fitted on its training rows only),
//! train, and measure on the held-out rows.

use labelsmooth::calibration::softmax;
use labelsmooth::split::stratified_split;
use labelsmooth_burn::burn::tensor::Device;
use labelsmooth_burn::device::Backend;
use labelsmooth_burn::import::mobilenet_v2;
use labelsmooth_burn::mobilenet::MobileNetV2Config;
use labelsmooth_burn::models::{ConvNetConfig, MlpConfig, TextClassifierConfig};
use labelsmooth_burn::train::{
    Classifier, Evaluation, Inputs, ModelSpec, TrainConfig, TrainObserver, Trained, evaluation_of,
    predict_logits, train_from,
};
use labelsmooth_data::text::Tokenizer;
use labelsmooth_data::{Dataset, Features, Standardizer};

use crate::model::{IMAGENET_MEAN, IMAGENET_STD, InputSchema, SavedModel};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Which model family a trial trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Fully connected network (hidden layers of [`TrialSpec::hidden`]), on flat features.
    Mlp,
    /// Small CNN (two convolution blocks) on square images.
    Cnn,
    /// Embedding + LSTM on text.
    Lstm,
    /// MobileNetV2 as torchvision builds it, on RGB images (width [`TrialSpec::width`]).
    #[serde(rename = "mobilenet-v2")]
    MobileNetV2,
}

impl ModelKind {
    /// Every kind, in the order the documentation lists them.
    pub const ALL: [ModelKind; 4] = [
        ModelKind::Mlp,
        ModelKind::Cnn,
        ModelKind::Lstm,
        ModelKind::MobileNetV2,
    ];

    /// The lowercase name (`mlp`, `cnn`, `lstm`, `mobilenet-v2`).
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Mlp => "mlp",
            ModelKind::Cnn => "cnn",
            ModelKind::Lstm => "lstm",
            ModelKind::MobileNetV2 => "mobilenet-v2",
        }
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ModelKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        ModelKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "unknown model `{s}` (mlp, cnn, lstm, mobilenet-v2)"
                ))
            })
    }
}

/// Everything that defines a trial besides its data and rows: the model and its training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialSpec {
    /// Model family.
    pub model: ModelKind,
    /// Training settings.
    pub train: TrainConfig,
    /// Dropout of the model.
    pub dropout: f64,
    /// Hidden layer sizes of the MLP, input side first.
    pub hidden: Vec<usize>,
    /// Vocabulary size for text.
    pub vocab: usize,
    /// Tokens per text.
    pub max_len: usize,
    /// Width multiplier of MobileNetV2.
    #[serde(default = "one")]
    pub width: f64,
    /// Weights to start from (fine-tuning): a model folder, or a torchvision MobileNetV2
    /// state_dict (`.pth`, `.safetensors`). The classifier is replaced for the data's classes.
    #[serde(default)]
    pub init: Option<String>,
    /// Class weights of the loss, resolved against the training rows of each trial.
    #[serde(default)]
    pub class_weight: Option<ClassWeight>,
    /// The device the trial trains on (absent from stored specs: the CPU).
    #[serde(default, skip_serializing_if = "Backend::is_cpu")]
    pub device: Backend,
}

/// How the classes are weighted in the loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClassWeight {
    /// n / (K · n_c) from the training rows, as scikit-learn's `class_weight="balanced"`
    /// (0 for a class without training rows).
    Balanced,
    /// A weight per class name.
    Given(Vec<(String, f32)>),
}

impl ClassWeight {
    /// One weight per class of `class_names`, from the labels of the training rows.
    pub fn resolve(&self, class_names: &[String], train_labels: &[usize]) -> Result<Vec<f32>> {
        let k = class_names.len();
        match self {
            ClassWeight::Balanced => {
                let mut counts = vec![0usize; k];
                train_labels.iter().for_each(|&y| counts[y] += 1);
                let n = train_labels.len() as f64;
                Ok(counts
                    .iter()
                    .map(|&c| {
                        if c == 0 {
                            0.0
                        } else {
                            (n / (k as f64 * c as f64)) as f32
                        }
                    })
                    .collect())
            }
            ClassWeight::Given(pairs) => {
                let mut w = vec![None; k];
                for (name, v) in pairs {
                    let Some(i) = class_names.iter().position(|c| c == name) else {
                        return Err(Error::Invalid(format!(
                            "class weight for `{name}`, which is not a class ({})",
                            class_names.join(", ")
                        )));
                    };
                    if !(v.is_finite() && *v >= 0.0) {
                        return Err(Error::Invalid(format!(
                            "class weight {v} for `{name}` must be finite and ≥ 0"
                        )));
                    }
                    w[i] = Some(*v);
                }
                let missing: Vec<&str> = class_names
                    .iter()
                    .zip(&w)
                    .filter(|(_, v)| v.is_none())
                    .map(|(c, _)| c.as_str())
                    .collect();
                if !missing.is_empty() {
                    return Err(Error::Invalid(format!(
                        "no class weight for {}",
                        missing.join(", ")
                    )));
                }
                Ok(w.into_iter().map(|v| v.unwrap_or(0.0)).collect())
            }
        }
    }
}

fn one() -> f64 {
    1.0
}

/// Optimizer steps the MLP makes at least when the epochs are not given: 30 epochs of a
/// 150-row table are 60 steps, too few for Adam at 1e-3 to fit it.
pub const MLP_MIN_STEPS: usize = 600;

impl TrialSpec {
    /// The settings used when nothing else is said: Adam with batch 64; 30 epochs at learning
    /// rate 1e-3 for the MLP (one hidden layer of 128), and on small tables as many more as make
    /// 600 steps, 8 at 1e-3 for the CNN, 4 at 3e-3 for the
    /// LSTM, 10 at 1e-3 with batch 32 and dropout 0.2 (torchvision's) for MobileNetV2; no
    /// smoothing, no dropout elsewhere; 10 000 words of 40 tokens per text.
    pub fn new(model: ModelKind, seed: u64) -> TrialSpec {
        let (epochs, learning_rate) = match model {
            ModelKind::Mlp => (30, 1e-3),
            ModelKind::Cnn => (8, 1e-3),
            ModelKind::Lstm => (4, 3e-3),
            ModelKind::MobileNetV2 => (10, 1e-3),
        };
        let mobilenet = model == ModelKind::MobileNetV2;
        TrialSpec {
            model,
            train: TrainConfig {
                epochs,
                min_steps: if model == ModelKind::Mlp {
                    MLP_MIN_STEPS
                } else {
                    0
                },
                learning_rate,
                seed,
                batch_size: if mobilenet { 32 } else { 64 },
                ..Default::default()
            },
            dropout: if mobilenet { 0.2 } else { 0.0 },
            hidden: vec![128],
            vocab: 10_000,
            max_len: 40,
            width: 1.0,
            init: None,
            class_weight: None,
            device: Backend::Cpu,
        }
    }

    /// The device the trial trains on, opened ([`Backend::open`]).
    pub fn open_device(&self) -> Result<Device> {
        self.device
            .open()
            .map_err(|e| Error::Invalid(e.to_string()))
    }

    /// The same trial with exactly `epochs` passes over the training rows (no step minimum).
    pub fn with_epochs(mut self, epochs: usize) -> TrialSpec {
        self.train.epochs = epochs;
        self.train.min_steps = 0;
        self
    }

    /// The same trial with smoothing factor `alpha`.
    pub fn with_smoothing(mut self, alpha: f32) -> TrialSpec {
        self.train.smoothing = alpha;
        self
    }
}

/// A split made ready for training: the model to build, the input preprocessing fitted on the
/// training rows, and the transformed inputs.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The model for this data.
    pub model: ModelSpec,
    /// The preprocessing fitted on the training rows (feature standardization of tables, the
    /// vocabulary of texts), as saved with the model.
    pub input: InputSchema,
    /// The training rows' inputs.
    pub train: Inputs,
    /// The inputs of each other set of rows, in the order given.
    pub others: Vec<Inputs>,
}

/// The model that takes `d`, the inputs of its training rows, and the inputs of each set of
/// `other_rows`, all transformed with what was fitted once on the training rows only (feature
/// standardization of tables, the vocabulary of texts).
pub fn prepare(
    d: &Dataset,
    train_rows: &[usize],
    other_rows: &[&[usize]],
    spec: &TrialSpec,
) -> Result<Prepared> {
    let k = d.n_classes();
    let train_part = d.subset(train_rows);
    let (model, input) = match (&d.features, spec.model) {
        (Features::Dense { shape, .. }, ModelKind::MobileNetV2) => match shape.as_slice() {
            &[3, height, width] => {
                if !(spec.width > 0.0 && spec.width.is_finite()) {
                    return Err(Error::Invalid(format!(
                        "width {} must be finite and > 0",
                        spec.width
                    )));
                }
                (
                    ModelSpec::MobileNet(
                        MobileNetV2Config::new(k)
                            .with_width(spec.width)
                            .with_dropout(spec.dropout),
                    ),
                    InputSchema::Images {
                        channels: 3,
                        height,
                        width,
                        mean: IMAGENET_MEAN.to_vec(),
                        std: IMAGENET_STD.to_vec(),
                    },
                )
            }
            other => {
                return Err(Error::Invalid(format!(
                    "{}: mobilenet-v2 needs RGB images [3, h, w], not samples of shape {other:?}",
                    d.name
                )));
            }
        },
        (Features::Dense { shape, .. }, ModelKind::Mlp | ModelKind::Cnn) => {
            let dim: usize = shape.iter().product();
            let input = match shape.as_slice() {
                &[features] => {
                    let Features::Dense { values, .. } = &train_part.features else {
                        unreachable!("a subset keeps the kind of features")
                    };
                    InputSchema::Table {
                        layout: d.layout.clone(),
                        features,
                        standardizer: Standardizer::fit(values, features),
                    }
                }
                &[channels, height, width] => InputSchema::images(channels, height, width),
                other => {
                    return Err(Error::Invalid(format!(
                        "{}: samples of shape {other:?} are neither table rows nor images",
                        d.name
                    )));
                }
            };
            let model = match spec.model {
                ModelKind::Mlp => {
                    if spec.hidden.contains(&0) {
                        return Err(Error::Invalid(format!(
                            "hidden layer sizes {:?}: each must be at least 1",
                            spec.hidden
                        )));
                    }
                    ModelSpec::Mlp(
                        MlpConfig::new(dim, spec.hidden.clone(), k).with_dropout(spec.dropout),
                    )
                }
                _ => match shape.as_slice() {
                    &[c, h, w] if h == w && h % 4 == 0 => {
                        ModelSpec::ConvNet(ConvNetConfig::new(c, h, k).with_dropout(spec.dropout))
                    }
                    other => {
                        return Err(Error::Invalid(format!(
                            "the CNN needs square images with a side divisible by 4, not {other:?}"
                        )));
                    }
                },
            };
            (model, input)
        }
        (Features::Text(_), ModelKind::Lstm) => {
            let Features::Text(train_texts) = &train_part.features else {
                unreachable!("a subset keeps the kind of features")
            };
            let tok = Tokenizer::fit(train_texts, spec.vocab, spec.max_len);
            let model = ModelSpec::Text(
                TextClassifierConfig::new(tok.vocab_size(), k).with_dropout(spec.dropout),
            );
            (
                model,
                InputSchema::Text {
                    layout: d.layout.clone(),
                    tokenizer: tok,
                },
            )
        }
        (Features::Text(_), _) => {
            return Err(Error::Invalid(format!(
                "{}: text data needs the lstm model",
                d.name
            )));
        }
        (Features::Dense { .. }, ModelKind::Lstm) => {
            return Err(Error::Invalid(format!(
                "{}: the lstm model needs text data (text:PATH or rt-polarity)",
                d.name
            )));
        }
    };
    let train = input.transform(&train_part.features)?;
    let others = other_rows
        .iter()
        .map(|rows| input.transform(&d.subset(rows).features))
        .collect::<Result<Vec<_>>>()?;
    Ok(Prepared {
        model,
        input,
        train,
        others,
    })
}

/// The outcome of one trial.
#[derive(Debug)]
pub struct TrialResult {
    /// The trained model and its history.
    pub trained: Trained,
    /// The model's configuration.
    pub model: ModelSpec,
    /// The input preprocessing fitted on the training rows.
    pub input: InputSchema,
    /// Held-out metrics.
    pub eval: Evaluation,
    /// Held-out logits `[n, classes]`.
    pub logits: Vec<f32>,
    /// Held-out probabilities `[n, classes]` (the softmax of `logits`).
    pub probs: Vec<f32>,
    /// Held-out confusion matrix `[classes, classes]`, rows the true classes.
    pub confusion: Vec<usize>,
    /// Seconds spent preparing, training and measuring.
    pub seconds: f64,
}

/// Share of the training rows held out to decide early stopping.
pub const EARLY_STOPPING_FRACTION: f64 = 0.1;

/// Trains `spec` on `train_rows` of `d` and measures it on `valid_rows`, on the CPU.
///
/// The per-epoch validation metrics are on `valid_rows`, except with early stopping: then a
/// stratified [`EARLY_STOPPING_FRACTION`] of `train_rows` (seeded by the training seed) is set
/// aside to choose the epoch, the model trains on the rest, and `valid_rows` stay unseen until the
/// final measurement.
pub fn run_trial(
    d: &Dataset,
    train_rows: &[usize],
    valid_rows: &[usize],
    spec: &TrialSpec,
    observer: &mut dyn TrainObserver,
) -> Result<TrialResult> {
    let started = std::time::Instant::now();
    let (initial, spec) = initial_model(spec, d.n_classes())?;
    let spec = &spec;
    let early = spec.train.early_stopping.is_some();
    let (fit_rows, watch_rows): (Vec<usize>, Vec<usize>) = if early {
        let labels: Vec<usize> = train_rows.iter().map(|&r| d.labels[r]).collect();
        let inner = stratified_split(&labels, EARLY_STOPPING_FRACTION, spec.train.seed)?;
        (
            inner.train.iter().map(|&i| train_rows[i]).collect(),
            inner.valid.iter().map(|&i| train_rows[i]).collect(),
        )
    } else {
        (train_rows.to_vec(), Vec::new())
    };
    let eval_sets: Vec<&[usize]> = if early {
        vec![&watch_rows, valid_rows]
    } else {
        vec![valid_rows]
    };
    let Prepared {
        model,
        input,
        train: xt,
        others: mut sets,
    } = prepare(d, &fit_rows, &eval_sets, spec)?;
    let xv = sets
        .pop()
        .expect("prepare returns one input set per row set");
    let xw = sets.pop();
    let label_of = |rows: &[usize]| -> Vec<usize> { rows.iter().map(|&r| d.labels[r]).collect() };
    let (yt, yv, yw) = (
        label_of(&fit_rows),
        label_of(valid_rows),
        label_of(&watch_rows),
    );
    let watch = match &xw {
        Some(x) => (x, yw.as_slice()),
        None => (&xv, yv.as_slice()),
    };
    let k = d.n_classes();
    let mut spec = spec.clone();
    if let Some(cw) = &spec.class_weight {
        spec.train.class_weights = Some(cw.resolve(&d.class_names, &yt)?);
    }
    let spec = &spec;
    let trained = train_from(
        initial,
        &model,
        (&xt, &yt),
        Some(watch),
        k,
        &spec.train,
        &spec.open_device()?,
        observer,
    )?;
    let logits = predict_logits(&trained.model, &xv);
    let probs = softmax(&logits, k)?;
    let eval = evaluation_of(&probs, &yv, k, spec.train.ece_bins)?;
    let confusion = labelsmooth::calibration::confusion_matrix(&probs, &yv, k)?;
    Ok(TrialResult {
        trained,
        model,
        input,
        eval,
        logits,
        probs,
        confusion,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The weights a trial starts from (`spec.init`) with a new classifier for `classes` classes,
/// and the spec with the width those weights have.
fn initial_model(spec: &TrialSpec, classes: usize) -> Result<(Option<Classifier>, TrialSpec)> {
    let Some(init) = &spec.init else {
        return Ok((None, spec.clone()));
    };
    if spec.model != ModelKind::MobileNetV2 {
        return Err(Error::Invalid(format!(
            "starting from weights (--init) needs mobilenet-v2, not {}",
            spec.model
        )));
    }
    let path = std::path::Path::new(init);
    let device = Device::flex();
    let mut spec = spec.clone();
    let net = if path.is_dir() {
        let saved = SavedModel::load(path)?;
        match (saved.model, &saved.card.model) {
            (Classifier::MobileNet(m), ModelSpec::MobileNet(c)) => {
                spec.width = c.width;
                m
            }
            _ => {
                return Err(Error::Invalid(format!(
                    "{init}: the model folder holds a {}, not a mobilenet-v2",
                    saved.card.model.name()
                )));
            }
        }
    } else {
        mobilenet_v2(path, spec.width, &device).map_err(|e| Error::Invalid(e.to_string()))?
    };
    Ok((
        Some(Classifier::MobileNet(net.with_classes(classes, &device))),
        spec,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balanced_weights_are_scikit_learns_and_given_ones_are_checked() {
        let names: Vec<String> = ["ham", "spam", "eggs"].map(String::from).to_vec();
        // 6 ham, 2 spam, 0 eggs: n / (K · n_c) = 8 / (3 · 6), 8 / (3 · 2), and 0.
        let labels = [0, 0, 0, 0, 0, 0, 1, 1];
        let w = ClassWeight::Balanced.resolve(&names, &labels).unwrap();
        assert_eq!(w, vec![8.0 / 18.0, 8.0 / 6.0, 0.0]);
        let given = |pairs: &[(&str, f32)]| {
            ClassWeight::Given(pairs.iter().map(|(n, v)| (n.to_string(), *v)).collect())
        };
        let w = given(&[("spam", 3.0), ("eggs", 0.5), ("ham", 1.0)])
            .resolve(&names, &labels)
            .unwrap();
        assert_eq!(w, vec![1.0, 3.0, 0.5]);
        let e = given(&[("ham", 1.0), ("spam", 2.0)])
            .resolve(&names, &labels)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no class weight for eggs"), "{e}");
        let e = given(&[("bacon", 1.0)])
            .resolve(&names, &labels)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`bacon`, which is not a class"), "{e}");
        let e = given(&[("ham", -1.0), ("spam", 1.0), ("eggs", 1.0)])
            .resolve(&names, &labels)
            .unwrap_err()
            .to_string();
        assert!(e.contains("must be finite and ≥ 0"), "{e}");
    }
}
