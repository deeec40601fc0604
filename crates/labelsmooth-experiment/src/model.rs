//! Model folders: a trained model with everything needed to use it on new data.
//!
//! A folder holds `model.json` (a [`ModelCard`]: format version, the model's configuration,
//! class names, the input schema with its fitted preprocessing, how it was trained, on which
//! data, its metrics and a fitted temperature) and the weights as a Burn record named by their
//! SHA-256 (`weights-<hash>.bpk`). Saving writes the new weights under their own name, then
//! replaces `model.json` atomically, then removes weights no card names: a crash at any point
//! leaves a folder whose card and weights belong together.

use std::path::Path;

use labelsmooth::calibration::{apply_temperature, softmax};
use labelsmooth_burn::burn::tensor::Device;
use labelsmooth_burn::train::{
    Classifier, Evaluation, Inputs, ModelSpec, load_checkpoint, predict_logits, save_checkpoint,
};
use labelsmooth_data::input::Samples;
use labelsmooth_data::spec::LoadOptions;
use labelsmooth_data::text::Tokenizer;
use labelsmooth_data::{Dataset, Features, Fingerprint, Standardizer, TableLayout};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::io::write_json;
use crate::trial::{TrialResult, TrialSpec};

/// The version of `model.json` this library writes; it reads this one and older ones.
pub const FORMAT: u32 = 1;

/// The name of the card in a model folder.
pub const CARD: &str = "model.json";

/// ImageNet channel means (RGB), as torchvision normalizes.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (RGB), as torchvision normalizes.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// What a model takes and how raw data becomes its input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum InputSchema {
    /// Rows of numeric features, standardized with the training rows' means and standard
    /// deviations.
    Table {
        /// The columns of the training table (their names, when it had a header), so that new
        /// tables are read by name.
        layout: Option<TableLayout>,
        /// Features per row.
        features: usize,
        /// Means and standard deviations of the training rows.
        standardizer: Standardizer,
    },
    /// Images `[channels, height, width]`: decoded, resized (bilinear) to `height × width`,
    /// scaled to [0, 1], then `(x − mean[c]) / std[c]` per channel.
    Images {
        /// 1 (grey) or 3 (RGB).
        channels: usize,
        /// Height in pixels.
        height: usize,
        /// Width in pixels.
        width: usize,
        /// Channel means subtracted after scaling to [0, 1].
        mean: Vec<f32>,
        /// Channel standard deviations divided by.
        std: Vec<f32>,
    },
    /// Texts, cut into words and encoded with the training vocabulary.
    Text {
        /// The columns of the training table, so that the text column is found by name.
        layout: Option<TableLayout>,
        /// The vocabulary and sequence length.
        tokenizer: Tokenizer,
    },
}

impl InputSchema {
    /// Images scaled to [0, 1] and not normalized further.
    pub fn images(channels: usize, height: usize, width: usize) -> InputSchema {
        InputSchema::Images {
            channels,
            height,
            width,
            mean: vec![0.0; channels],
            std: vec![1.0; channels],
        }
    }

    /// What the model takes, in words.
    pub fn describe(&self) -> String {
        match self {
            InputSchema::Table { features, .. } => format!("table rows of {features} features"),
            InputSchema::Images {
                channels,
                height,
                width,
                ..
            } => format!("images of {channels}×{height}×{width}"),
            InputSchema::Text { .. } => "texts".into(),
        }
    }

    /// The model inputs of raw `features` (as the readers give them).
    pub fn transform(&self, features: &Features) -> Result<Inputs> {
        self.transform_as(features, false, false)
    }

    /// [`InputSchema::transform`]; with `preprocessed`, images are taken as already normalized
    /// (an `.npy` array of model inputs), and with `any_size` as well, of any height and width
    /// (for fully convolutional models).
    pub fn transform_as(
        &self,
        features: &Features,
        preprocessed: bool,
        any_size: bool,
    ) -> Result<Inputs> {
        let wrong = |what: &str| {
            Error::Invalid(format!(
                "the model takes {}, but the data holds {what}",
                self.describe()
            ))
        };
        match (self, features) {
            (
                InputSchema::Table {
                    features: d,
                    standardizer,
                    ..
                },
                Features::Dense { values, shape },
            ) => {
                if shape.iter().product::<usize>() != *d {
                    return Err(wrong(&format!("samples of shape {shape:?}")));
                }
                let mut values = values.clone();
                standardizer.apply(&mut values);
                Ok(Inputs::Dense {
                    values,
                    shape: vec![*d],
                })
            }
            (
                InputSchema::Images {
                    channels,
                    height,
                    width,
                    mean,
                    std,
                },
                Features::Dense { values, shape },
            ) => {
                let fits = match shape.as_slice() {
                    [c, _, _] if preprocessed && any_size => c == channels,
                    other => other == [*channels, *height, *width],
                };
                if !fits {
                    return Err(wrong(&format!("samples of shape {shape:?}")));
                }
                let mut values = values.clone();
                let identity = mean.iter().all(|&m| m == 0.0) && std.iter().all(|&s| s == 1.0);
                if !preprocessed && !identity {
                    let plane = height * width;
                    for image in values.chunks_exact_mut(channels * plane) {
                        for (c, ch) in image.chunks_exact_mut(plane).enumerate() {
                            ch.iter_mut().for_each(|v| *v = (*v - mean[c]) / std[c]);
                        }
                    }
                }
                Ok(Inputs::Dense {
                    values,
                    shape: shape.clone(),
                })
            }
            (InputSchema::Text { tokenizer, .. }, Features::Text(texts)) => Ok(Inputs::Tokens {
                ids: tokenizer.encode_all(texts),
                steps: tokenizer.max_len,
            }),
            (InputSchema::Text { .. }, Features::Dense { shape, .. }) => {
                Err(wrong(&format!("numbers of shape {shape:?}")))
            }
            (_, Features::Text(_)) => Err(wrong("texts")),
        }
    }
}

/// How a saved model was trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Training {
    /// The data as named on the command line.
    pub data: String,
    /// The fingerprint of the whole data set read (all rows, before any split).
    pub fingerprint: Fingerprint,
    /// Rows trained on.
    pub rows: usize,
    /// Model, smoothing, convention, regularizers, seed and the other settings.
    pub spec: TrialSpec,
}

/// Held-out metrics saved with a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedMetrics {
    /// Where they were measured (for example "held-out 20%").
    pub on: String,
    /// Samples measured.
    pub n: usize,
    /// Accuracy, NLL, ECE, Brier.
    #[serde(flatten)]
    pub eval: Evaluation,
}

/// `model.json`: everything needed to use a model, nothing needed from the command line that
/// made it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelCard {
    /// Format version ([`FORMAT`]).
    pub format: u32,
    /// The labelsmooth version that wrote it.
    pub labelsmooth: String,
    /// The model family and its whole configuration.
    pub model: ModelSpec,
    /// Class names, in the order of the model's outputs.
    pub classes: Vec<String>,
    /// What the model takes and the fitted preprocessing.
    pub input: InputSchema,
    /// How it was trained (absent for imported weights).
    pub training: Option<Training>,
    /// Where the weights came from when they were imported (a file path).
    pub imported_from: Option<String>,
    /// Metrics measured when it was made.
    pub metrics: Option<SavedMetrics>,
    /// A temperature fitted for calibration: predictions divide the logits by it.
    pub temperature: Option<f64>,
    /// The weights file in the folder.
    pub weights: String,
}

/// A model with its card, ready to predict.
#[derive(Debug)]
pub struct SavedModel {
    /// The card.
    pub card: ModelCard,
    /// The network, in inference mode.
    pub model: Classifier,
}

impl ModelCard {
    /// The card in the bytes of a `model.json` (`path` names it in errors): a format this
    /// version reads, a complete card, a weights file name without folders, and one class name
    /// per output.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<ModelCard> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| Error::Format {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        match value.get("format").and_then(serde_json::Value::as_u64) {
            Some(f) if f > u64::from(FORMAT) => {
                return Err(Error::Format {
                    path: path.to_path_buf(),
                    message: format!(
                        "model format {f} is newer than this labelsmooth ({}) reads (format {FORMAT}): update labelsmooth",
                        env!("CARGO_PKG_VERSION")
                    ),
                });
            }
            Some(_) => {}
            None => {
                return Err(Error::Format {
                    path: path.to_path_buf(),
                    message: "not a labelsmooth model card (no format version)".into(),
                });
            }
        }
        let card: ModelCard = serde_json::from_value(value).map_err(|e| Error::Format {
            path: path.to_path_buf(),
            message: format!("not a valid model card: {e}"),
        })?;
        if card.weights.contains(['/', '\\']) || card.weights.is_empty() || card.weights == ".." {
            return Err(Error::Format {
                path: path.to_path_buf(),
                message: format!("weights `{}` is not a file name", card.weights),
            });
        }
        if card.classes.len() != card.model.classes() {
            return Err(Error::Format {
                path: path.to_path_buf(),
                message: format!(
                    "{} class names for a model of {} outputs",
                    card.classes.len(),
                    card.model.classes()
                ),
            });
        }
        Ok(card)
    }
}

impl SavedModel {
    /// A card for `model` (the weights name is filled in when saving).
    pub fn new(
        model: Classifier,
        spec: ModelSpec,
        classes: Vec<String>,
        input: InputSchema,
    ) -> SavedModel {
        SavedModel {
            card: ModelCard {
                format: FORMAT,
                labelsmooth: env!("CARGO_PKG_VERSION").into(),
                model: spec,
                classes,
                input,
                training: None,
                imported_from: None,
                metrics: None,
                temperature: None,
                weights: String::new(),
            },
            model,
        }
    }

    /// The model of a trial on `d` (named `data` on the command line), with its held-out
    /// metrics measured on `on`.
    pub fn from_trial(
        r: &TrialResult,
        d: &Dataset,
        data: &str,
        spec: &TrialSpec,
        train_rows: usize,
        on: &str,
    ) -> SavedModel {
        let mut m = SavedModel::new(
            r.trained.model.clone(),
            r.model.clone(),
            d.class_names.clone(),
            r.input.clone(),
        );
        m.card.training = Some(Training {
            data: data.to_string(),
            fingerprint: d.fingerprint(),
            rows: train_rows,
            spec: spec.clone(),
        });
        m.card.metrics = Some(SavedMetrics {
            on: on.to_string(),
            n: r.probs.len() / d.n_classes().max(1),
            eval: r.eval.clone(),
        });
        m
    }

    /// Writes the folder `dir` (created if needed): the weights under a new name, then the card
    /// atomically, then removes the weights of an earlier save.
    pub fn save(&mut self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(dir, "cannot create the model folder", e))?;
        let tmp = dir.join(format!(".weights-{}.bpk.tmp", std::process::id()));
        save_checkpoint(&self.model, &tmp)?;
        let bytes = std::fs::read(&tmp).map_err(|e| Error::io(&tmp, "cannot read back", e))?;
        let name = format!("weights-{}.bpk", &sha256_hex(&bytes)[..16]);
        std::fs::rename(&tmp, dir.join(&name)).map_err(|e| {
            std::fs::remove_file(&tmp).ok();
            Error::io(&dir.join(&name), "cannot write", e)
        })?;
        self.card.weights = name;
        write_json(&dir.join(CARD), &self.card)?;
        self.remove_stale_weights(dir);
        Ok(())
    }

    /// Writes only the card (after a change of temperature or metrics), atomically.
    pub fn save_card(&self, dir: &Path) -> Result<()> {
        write_json(&dir.join(CARD), &self.card)
    }

    fn remove_stale_weights(&self, dir: &Path) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("weights-") && name.ends_with(".bpk") && name != self.card.weights {
                std::fs::remove_file(e.path()).ok();
            }
        }
    }

    /// Reads the model folder `dir`.
    pub fn load(dir: &Path) -> Result<SavedModel> {
        let card_path = dir.join(CARD);
        if !card_path.is_file() {
            return Err(Error::Format {
                path: dir.to_path_buf(),
                message: format!("not a model folder: no {CARD}"),
            });
        }
        let bytes =
            std::fs::read(&card_path).map_err(|e| Error::io(&card_path, "cannot read", e))?;
        let card = ModelCard::parse(&card_path, &bytes)?;
        let weights = dir.join(&card.weights);
        let Ok(meta) = std::fs::metadata(&weights).map(|m| (m.is_file(), m.len())) else {
            return Err(Error::Format {
                path: weights,
                message: "the weights file named in model.json is missing".into(),
            });
        };
        if !meta.0 {
            return Err(Error::Format {
                path: weights,
                message: "the weights file named in model.json is missing".into(),
            });
        }
        // The weights must hold the model the card describes (4 bytes a weight), so that a
        // card cannot make a huge model be built for a small file.
        let count = card.model.weight_count().unwrap_or(u128::MAX);
        if count.saturating_mul(4) > u128::from(meta.1).saturating_mul(4) + (1 << 20) {
            return Err(Error::Format {
                path: card_path,
                message: format!(
                    "describes a {} of about {count} weights, but its weights file holds {} bytes",
                    card.model.name(),
                    meta.1
                ),
            });
        }
        let device = Device::flex();
        let model = load_checkpoint(card.model.init(&device, 0), &weights)?;
        Ok(SavedModel { card, model })
    }

    /// The class names.
    pub fn classes(&self) -> &[String] {
        &self.card.classes
    }

    /// Reads the data named by `spec` the way this model's training data was read: a bundled
    /// set, `csv:PATH` or `text:PATH` (columns by name), `lines:PATH` (one text per line),
    /// `images:DIR` (flat or class folders, resized to the model's size), `npy:PATH` (samples
    /// along the first axis; images in it are taken as already normalized, and of any size for
    /// MobileNetV2), `idx:` and `cifar:` as for training.
    pub fn read(&self, spec: &str, opts: &LoadOptions) -> Result<(Samples, Inputs)> {
        use labelsmooth_data::input;
        let (kind, path) = spec.split_once(':').unwrap_or(("", spec));
        let path = Path::new(path);
        let no_layout = |what: &str| {
            Error::Invalid(format!(
                "the model takes {}; `{spec}` is {what}",
                self.card.input.describe()
            ))
        };
        let samples = match (kind, &self.card.input) {
            (
                "csv" | "text",
                InputSchema::Table { layout, .. } | InputSchema::Text { layout, .. },
            ) => {
                match layout {
                    Some(l) => input::table(path, l, &opts.table)?,
                    None => {
                        // Trained on a bundled set: read the file as a labelled table.
                        dataset_samples(labelsmooth_data::spec::load(spec, opts)?)
                    }
                }
            }
            (
                "parquet",
                InputSchema::Table {
                    layout: Some(l), ..
                },
            ) => input::parquet_table(path, l, &opts.table)?,
            ("parquet", InputSchema::Table { layout: None, .. }) => {
                dataset_samples(labelsmooth_data::spec::load(spec, opts)?)
            }
            ("parquet", _) => return Err(no_layout("a Parquet table")),
            ("csv" | "text" | "lines", InputSchema::Images { .. }) => {
                return Err(no_layout("a table or text file"));
            }
            ("lines", InputSchema::Text { .. }) => input::lines(path)?,
            ("lines", _) => return Err(no_layout("a text file")),
            (
                "images",
                InputSchema::Images {
                    channels,
                    height,
                    width,
                    ..
                },
            ) => {
                if height != width {
                    return Err(Error::Invalid(format!(
                        "the model takes {height}×{width} images; folders are resized to squares"
                    )));
                }
                input::images(path, *height, *channels == 3)?
            }
            ("images", _) => return Err(no_layout("an image folder")),
            ("npy", schema) => {
                let x_and_y = spec[4..]
                    .split_once(',')
                    .filter(|_| !path.exists())
                    .map(|(x, y)| (Path::new(x), Path::new(y)));
                let mut s = input::array(x_and_y.map_or(path, |(x, _)| x))?;
                if let Some((x, y)) = x_and_y {
                    let ys = labelsmooth_data::npy::read(y)?;
                    let labels = labelsmooth_data::npy::integer_labels(y, &ys, s.ids.len(), x)?;
                    s.labels = Some(labels.iter().map(i64::to_string).collect());
                }
                let any_size = matches!(self.card.model, ModelSpec::MobileNet(_));
                let x = schema.transform_as(&s.features, true, any_size)?;
                return Ok((s, x));
            }
            _ => dataset_samples(labelsmooth_data::spec::load(spec, opts)?),
        };
        let x = self.card.input.transform(&samples.features)?;
        Ok((samples, x))
    }

    /// Logits `[n, classes]` of prepared inputs.
    pub fn logits(&self, inputs: &Inputs) -> Result<Vec<f32>> {
        if !self.model.accepts(inputs) {
            return Err(Error::Invalid(format!(
                "the model takes {}",
                self.card.input.describe()
            )));
        }
        Ok(predict_logits(&self.model, inputs))
    }

    /// Probabilities `[n, classes]` of logits: the softmax of `logits / T` with the saved
    /// temperature, or of the logits themselves when `raw` or when none is saved.
    pub fn probabilities(&self, logits: &[f32], raw: bool) -> Result<Vec<f32>> {
        let k = self.card.classes.len();
        Ok(match (self.card.temperature, raw) {
            (Some(t), false) => softmax(&apply_temperature(logits, t)?, k)?,
            _ => softmax(logits, k)?,
        })
    }

    /// Class ids of label names as the data writes them; a name the model does not know is an
    /// error naming it and the sample.
    pub fn class_ids(&self, samples: &Samples) -> Result<Option<Vec<usize>>> {
        let Some(labels) = &samples.labels else {
            return Ok(None);
        };
        let index: std::collections::HashMap<&str, usize> = self
            .card
            .classes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_str(), i))
            .collect();
        labels
            .iter()
            .zip(&samples.ids)
            .map(|(l, id)| {
                index.get(l.as_str()).copied().ok_or_else(|| {
                    Error::Invalid(format!(
                        "sample {id}: label `{l}` is not one of the model's classes ({})",
                        self.card.classes.join(", ")
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }
}

/// A labelled data set as samples: its ids and its labels by name.
fn dataset_samples(d: labelsmooth_data::Dataset) -> Samples {
    Samples {
        ids: (0..d.len()).map(|i| d.id(i)).collect(),
        labels: Some(d.labels.iter().map(|&l| d.class_names[l].clone()).collect()),
        features: d.features,
        notes: d.notes,
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
