//! Loading a data spec, preparing model inputs for a split, and running trials.

use std::path::Path;

use anyhow::{Context, Result, bail};
use labelsmooth_burn::burn::tensor::Device;
use labelsmooth_burn::models::{ConvNetConfig, MlpConfig, TextClassifierConfig};
use labelsmooth_burn::train::{
    Evaluation, Inputs, ModelSpec, TrainConfig, Trained, evaluation_of, predict_proba, train,
};
use labelsmooth_data::table::{Column, Header, TableOptions};
use labelsmooth_data::text::Tokenizer;
use labelsmooth_data::{Dataset, Features, Standardizer, bundled, images, table};
use serde::Serialize;

/// Options that describe user data files.
#[derive(Debug, Clone, Default)]
pub struct DataOptions {
    /// Label column.
    pub label_column: Option<String>,
    /// Text column.
    pub text_column: Option<String>,
    /// Delimiter.
    pub delimiter: Option<char>,
    /// Header yes/no/auto.
    pub header: Option<String>,
    /// Image side.
    pub image_size: usize,
}

/// Loads `spec`: a bundled name, or `csv:PATH`, `images:DIR`, `idx:IMAGES,LABELS`, `cifar:DIR`,
/// `text:PATH`.
pub fn load(spec: &str, opts: &DataOptions) -> Result<Dataset> {
    let table_opts = || -> Result<TableOptions> {
        Ok(TableOptions {
            delimiter: match opts.delimiter {
                Some(c) if c.is_ascii() => Some(c as u8),
                Some(c) => bail!("delimiter `{c}` is not a single-byte character"),
                None => None,
            },
            header: match &opts.header {
                Some(h) => h.parse::<Header>()?,
                None => Header::Auto,
            },
            label_column: opts
                .label_column
                .as_deref()
                .map(|c| c.parse::<Column>())
                .transpose()?,
            text_column: opts
                .text_column
                .as_deref()
                .map(|c| c.parse::<Column>())
                .transpose()?,
        })
    };
    let d = match spec.split_once(':') {
        None => bundled::load(spec)?,
        Some(("csv", p)) => table::read_table(Path::new(p), &table_opts()?)?,
        Some(("text", p)) => table::read_text_table(Path::new(p), &table_opts()?)?,
        Some(("images", p)) => images::read_image_folder(Path::new(p), opts.image_size, false)?,
        Some(("idx", p)) => {
            let (a, b) = p.split_once(',').context("idx: needs IMAGES,LABELS")?;
            images::read_idx(Path::new(a), Path::new(b))?
        }
        Some(("cifar", p)) => images::read_cifar10(Path::new(p))?,
        Some((kind, _)) => bail!("unknown data kind `{kind}:` (csv, text, images, idx, cifar)"),
    };
    if d.n_classes() < 2 {
        bail!(
            "{}: needs at least 2 classes, found {}",
            d.name,
            d.n_classes()
        );
    }
    Ok(d)
}

/// Which model family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Fully connected network.
    Mlp,
    /// Small CNN.
    Cnn,
    /// Embedding + LSTM.
    Lstm,
}

/// Hyper-parameters of one trial.
#[derive(Debug, Clone, Serialize)]
pub struct TrialSpec {
    /// Model family.
    pub model: ModelKind,
    /// Training settings.
    pub train: TrainConfig,
    /// Dropout of the model.
    pub dropout: f64,
    /// Vocabulary size for text.
    pub vocab: usize,
    /// Tokens per text.
    pub max_len: usize,
}

/// Inputs of a split, transformed with what was fitted on its training rows only.
pub fn prepare(
    d: &Dataset,
    train_rows: &[usize],
    valid_rows: &[usize],
    spec: &TrialSpec,
) -> Result<(ModelSpec, Inputs, Inputs)> {
    let k = d.n_classes();
    match (&d.features, spec.model) {
        (Features::Dense { values, shape }, ModelKind::Mlp | ModelKind::Cnn) => {
            let dim: usize = shape.iter().product();
            let pick = |rows: &[usize]| {
                let mut v = Vec::with_capacity(rows.len() * dim);
                rows.iter()
                    .for_each(|&r| v.extend_from_slice(&values[r * dim..(r + 1) * dim]));
                v
            };
            let (mut xt, mut xv) = (pick(train_rows), pick(valid_rows));
            if shape.len() == 1 {
                // Tables: standardize with the training rows' statistics.
                let s = Standardizer::fit(&xt, dim);
                s.apply(&mut xt);
                s.apply(&mut xv);
            }
            let model = match spec.model {
                ModelKind::Mlp => {
                    ModelSpec::Mlp(MlpConfig::new(dim, vec![128], k).with_dropout(spec.dropout))
                }
                _ => match shape.as_slice() {
                    &[c, h, w] if h == w && h % 4 == 0 => {
                        ModelSpec::ConvNet(ConvNetConfig::new(c, h, k).with_dropout(spec.dropout))
                    }
                    other => bail!(
                        "the CNN needs square images with a side divisible by 4, not {other:?}"
                    ),
                },
            };
            Ok((
                model,
                Inputs::Dense {
                    values: xt,
                    shape: shape.clone(),
                },
                Inputs::Dense {
                    values: xv,
                    shape: shape.clone(),
                },
            ))
        }
        (Features::Text(texts), ModelKind::Lstm) => {
            let train_texts: Vec<&str> = train_rows.iter().map(|&r| texts[r].as_str()).collect();
            let valid_texts: Vec<&str> = valid_rows.iter().map(|&r| texts[r].as_str()).collect();
            let tok = Tokenizer::fit(&train_texts, spec.vocab, spec.max_len);
            let model = ModelSpec::Text(
                TextClassifierConfig::new(tok.vocab_size(), k).with_dropout(spec.dropout),
            );
            Ok((
                model,
                Inputs::Tokens {
                    ids: tok.encode_all(&train_texts),
                    steps: spec.max_len,
                },
                Inputs::Tokens {
                    ids: tok.encode_all(&valid_texts),
                    steps: spec.max_len,
                },
            ))
        }
        (Features::Text(_), _) => bail!("text data needs --model lstm"),
        (Features::Dense { .. }, ModelKind::Lstm) => {
            bail!("--model lstm needs text data (text:PATH or rt-polarity)")
        }
    }
}

/// The outcome of one trial.
pub struct TrialResult {
    /// The trained model and its history.
    pub trained: Trained,
    /// Held-out metrics.
    pub eval: Evaluation,
    /// Held-out probabilities.
    pub probs: Vec<f32>,
    /// Seconds spent.
    pub seconds: f64,
}

/// Trains on `train_rows` and evaluates on `valid_rows`.
pub fn run_trial(
    d: &Dataset,
    train_rows: &[usize],
    valid_rows: &[usize],
    spec: &TrialSpec,
) -> Result<TrialResult> {
    let started = std::time::Instant::now();
    let (model, xt, xv) = prepare(d, train_rows, valid_rows, spec)?;
    let yt: Vec<usize> = train_rows.iter().map(|&r| d.labels[r]).collect();
    let yv: Vec<usize> = valid_rows.iter().map(|&r| d.labels[r]).collect();
    let k = d.n_classes();
    let device = Device::flex();
    let trained = train(
        &model,
        (&xt, &yt),
        Some((&xv, &yv)),
        k,
        &spec.train,
        &device,
    )?;
    let probs = predict_proba(&trained.model, &xv);
    let eval = evaluation_of(&probs, &yv, k, spec.train.ece_bins)?;
    Ok(TrialResult {
        trained,
        eval,
        probs,
        seconds: started.elapsed().as_secs_f64(),
    })
}
