//! Flags shared by the commands, as typed values.

use clap::{Args, ValueEnum};
use labelsmooth::targets::Convention;
use labelsmooth_burn::device::Backend;
use labelsmooth_data::spec::LoadOptions;
use labelsmooth_data::table::{Column, Header, Missing, TableOptions};
use labelsmooth_experiment::{ClassWeight, ModelKind, TrialSpec};

/// A device this binary was built for (`cpu`, `wgpu`, `cuda`); whether it finds an adapter is
/// known when it is opened.
pub(crate) fn parse_device(s: &str) -> Result<Backend, String> {
    let b: Backend = s.parse()?;
    if b.is_built() {
        Ok(b)
    } else {
        Err(b.open().err().map_or_else(String::new, |e| e.to_string()))
    }
}

/// Sets the number of threads of the global pool (every core when `None`).
pub(crate) fn set_threads(threads: Option<std::num::NonZeroUsize>) -> anyhow::Result<()> {
    if let Some(t) = threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t.get())
            .build_global()?;
    }
    Ok(())
}

/// A smoothing factor α in [0, 1].
pub(crate) fn parse_alpha(s: &str) -> Result<f32, String> {
    let a: f32 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    if !(0.0..=1.0).contains(&a) {
        return Err(format!("smoothing factor {a} is outside [0, 1]"));
    }
    Ok(a)
}

/// A held-out fraction in [0, 1): 0 holds nothing out.
pub(crate) fn parse_valid_fraction(s: &str) -> Result<f64, String> {
    let f: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    if !(0.0..1.0).contains(&f) {
        return Err(format!("held-out fraction {f} is outside [0, 1)"));
    }
    Ok(f)
}

pub(crate) fn parse_missing(s: &str) -> Result<Missing, String> {
    s.parse()
        .map_err(|e: labelsmooth_data::DataError| e.to_string())
}

pub(crate) fn parse_header(s: &str) -> Result<Header, String> {
    s.parse()
        .map_err(|e: labelsmooth_data::DataError| e.to_string())
}

fn parse_column(s: &str) -> Result<Column, String> {
    s.parse()
        .map_err(|e: labelsmooth_data::DataError| e.to_string())
}

pub(crate) fn parse_delimiter(s: &str) -> Result<u8, String> {
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii() => Ok(c as u8),
        _ if s == "\\t" || s == "tab" => Ok(b'\t'),
        _ => Err(format!("delimiter `{s}` is not a single-byte character")),
    }
}

/// `--class-weight`: `balanced`, or a file of `class,weight` lines (the last comma or tab
/// separates, so class names may hold commas; a name in double quotes is read as CSV quotes it).
pub(crate) fn parse_class_weight(s: &str) -> Result<ClassWeight, String> {
    if s == "balanced" {
        return Ok(ClassWeight::Balanced);
    }
    let text = std::fs::read_to_string(s).map_err(|e| format!("{s}: {e}"))?;
    let mut pairs = Vec::new();
    for (i, line) in text.trim_start_matches('\u{feff}').lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let parsed = line.rsplit_once([',', '\t']).and_then(|(name, w)| {
            let name = name.trim();
            // A CSV-quoted name: "New York, NY" or "Paris ""FR""".
            let name = match name.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
                Some(inner) => inner.replace("\"\"", "\""),
                None => name.to_string(),
            };
            w.trim().parse::<f32>().ok().map(|w| (name, w))
        });
        match parsed {
            Some(p) => pairs.push(p),
            None => {
                return Err(format!("{s}:{}: `{line}` is not `class,weight`", i + 1));
            }
        }
    }
    if pairs.is_empty() {
        return Err(format!("{s}: no `class,weight` lines"));
    }
    Ok(ClassWeight::Given(pairs))
}

/// Model families, as flags name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ModelArg {
    /// Fully connected network (hidden layers of --hidden, default one of 128).
    Mlp,
    /// Small CNN on square images.
    Cnn,
    /// Embedding + LSTM on text.
    Lstm,
    /// MobileNetV2 as torchvision builds it, on RGB images (--width; --init to fine-tune).
    #[value(name = "mobilenet-v2")]
    MobilenetV2,
}

impl From<ModelArg> for ModelKind {
    fn from(m: ModelArg) -> ModelKind {
        match m {
            ModelArg::Mlp => ModelKind::Mlp,
            ModelArg::Cnn => ModelKind::Cnn,
            ModelArg::Lstm => ModelKind::Lstm,
            ModelArg::MobilenetV2 => ModelKind::MobileNetV2,
        }
    }
}

/// What `--freeze` holds still.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum FreezeArg {
    /// Every layer but the classifier (batch norm on its running statistics).
    Backbone,
}

/// Smoothing conventions of class-id targets, as flags name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ConventionArg {
    /// 1 − α + α/K on the true class, α/K elsewhere (PyTorch, Keras).
    Uniform,
    /// 1 − α on the true class, α/(K − 1) elsewhere (fairseq).
    ExcludeTrue,
}

impl From<ConventionArg> for Convention {
    fn from(c: ConventionArg) -> Convention {
        match c {
            ConventionArg::Uniform => Convention::Uniform,
            ConventionArg::ExcludeTrue => Convention::ExcludeTrue,
        }
    }
}

/// Data and model options shared by the commands that train.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Data: a bundled set (digits, mnist-5k, rt-polarity) or csv:PATH, text:PATH, images:DIR,
    /// idx:IMAGES,LABELS, cifar:DIR, npy:X.npy,Y.npy, parquet:PATH.
    #[arg(long)]
    pub(crate) data: String,
    /// Model family.
    #[arg(long, value_enum)]
    pub(crate) model: ModelArg,
    /// Smoothing convention: uniform (PyTorch, Keras) or exclude-true (fairseq).
    #[arg(long, value_enum, default_value = "uniform")]
    pub(crate) convention: ConventionArg,
    /// Epochs (default: mlp 30, or as many as make 600 steps on small tables; cnn 8, lstm 4,
    /// mobilenet-v2 10).
    #[arg(long)]
    pub(crate) epochs: Option<usize>,
    /// Learning rate of Adam (default: 1e-3, lstm 3e-3).
    #[arg(long)]
    pub(crate) learning_rate: Option<f64>,
    /// Batch size (default: 64, mobilenet-v2 32).
    #[arg(long)]
    pub(crate) batch_size: Option<usize>,
    /// Dropout probability in the model (default: 0, mobilenet-v2 0.2 before its classifier).
    #[arg(long)]
    pub(crate) dropout: Option<f64>,
    /// Width multiplier of mobilenet-v2 (torchvision's width_mult).
    #[arg(long, default_value_t = 1.0)]
    pub(crate) width: f64,
    /// Start from these weights (mobilenet-v2): a model folder (train --out, import) or a
    /// torchvision state_dict (.pth, .safetensors); the classifier is replaced for the data's
    /// classes.
    #[arg(long)]
    pub(crate) init: Option<String>,
    /// Train only the classifier at first; batch norm keeps its running statistics.
    #[arg(long, value_enum)]
    pub(crate) freeze: Option<FreezeArg>,
    /// With --freeze: unfreeze everything after this many epochs and train the whole network.
    #[arg(long, requires = "freeze")]
    pub(crate) unfreeze_after: Option<usize>,
    /// Learning rate once unfrozen (default: --learning-rate).
    #[arg(long, requires = "unfreeze_after")]
    pub(crate) fine_tune_lr: Option<f64>,
    /// Random horizontal flips and shifts of training images.
    #[arg(long)]
    pub(crate) augment: bool,
    /// Class weights of the loss: `balanced` (n / (K·n_c) on the training rows, as
    /// scikit-learn) or a file of `class,weight` lines.
    #[arg(long, value_parser = parse_class_weight)]
    pub(crate) class_weight: Option<ClassWeight>,
    /// Hidden layer sizes of the MLP, input side first (default: 128; the other models have
    /// fixed sizes).
    #[arg(long, value_delimiter = ',')]
    pub(crate) hidden: Option<Vec<usize>>,
    /// Threads for training and the kernels (default: every core). Results are reproducible at
    /// a fixed thread count.
    #[arg(long)]
    pub(crate) threads: Option<std::num::NonZeroUsize>,
    /// Where to train: cpu (with the fused CPU layers), or wgpu (a GPU, or Mesa's lavapipe on
    /// the CPU; in binaries built with `--features wgpu`).
    #[arg(long, default_value = "cpu", value_parser = parse_device)]
    pub(crate) device: Backend,
    /// Stop when the NLL on an inner validation split (a stratified 10% of the training rows,
    /// not the held-out rows) has not improved for this many epochs, and keep the model of the
    /// best epoch.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) early_stopping: Option<u64>,
    /// Seed of splits, initialization and shuffling.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Label column of a table (name or 0-based index; default the last).
    #[arg(long, value_parser = parse_column)]
    label_column: Option<Column>,
    /// Text column of a text table (name or index).
    #[arg(long, value_parser = parse_column)]
    text_column: Option<Column>,
    /// Field delimiter (default: detected among , ; tab).
    #[arg(long, value_parser = parse_delimiter)]
    delimiter: Option<u8>,
    /// Whether the table has a header: yes, no, auto.
    #[arg(long, value_parser = parse_header, default_value = "auto")]
    header: Header,
    /// Missing values in a table's feature columns (empty, NA, NaN, null, ?): impute (with each
    /// column's median on the training rows, saved with the model) or error.
    #[arg(long, value_parser = parse_missing, default_value = "impute")]
    missing: Missing,
    /// Side of images read from folders (default: 28, mobilenet-v2 96).
    #[arg(long)]
    image_size: Option<usize>,
    /// Vocabulary size for text.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) vocab: usize,
    /// Tokens per text (longer texts are cut).
    #[arg(long, default_value_t = 40)]
    pub(crate) max_len: usize,
    /// Print the results as one JSON object on stdout.
    #[arg(long)]
    pub(crate) json: bool,
}

impl Common {
    /// How the data files are read.
    pub(crate) fn load_options(&self) -> LoadOptions {
        LoadOptions {
            table: TableOptions {
                delimiter: self.delimiter,
                header: self.header,
                label_column: self.label_column.clone(),
                text_column: self.text_column.clone(),
                missing: self.missing,
            },
            image_size: self.image_size.unwrap_or(match self.model {
                ModelArg::MobilenetV2 => 96,
                _ => 28,
            }),
            rgb: self.model == ModelArg::MobilenetV2,
        }
    }

    /// The data these flags name; what the reader chose on its own is said on stderr.
    pub(crate) fn load(&self) -> anyhow::Result<labelsmooth_data::Dataset> {
        let d = labelsmooth_data::spec::load(&self.data, &self.load_options())?;
        for note in &d.notes {
            eprintln!("{note}");
        }
        Ok(d)
    }

    /// The trial these flags describe, with smoothing factor `smoothing`.
    pub(crate) fn trial(&self, smoothing: f32) -> TrialSpec {
        let mut spec = TrialSpec::new(self.model.into(), self.seed).with_smoothing(smoothing);
        if let Some(e) = self.epochs {
            spec = spec.with_epochs(e);
        }
        if let Some(lr) = self.learning_rate {
            spec.train.learning_rate = lr;
        }
        if let Some(b) = self.batch_size {
            spec.train.batch_size = b;
        }
        spec.train.convention = self.convention.into();
        spec.train.early_stopping = self.early_stopping.map(|p| p as usize);
        if let Some(p) = self.dropout {
            spec.dropout = p;
        }
        spec.width = self.width;
        spec.init = self.init.clone();
        if self.freeze.is_some() {
            spec.train.frozen_epochs = Some(self.unfreeze_after.unwrap_or(spec.train.epochs));
        }
        spec.train.fine_tune_learning_rate = self.fine_tune_lr;
        spec.train.augment = self.augment;
        spec.class_weight = self.class_weight.clone();
        if let Some(h) = &self.hidden {
            spec.hidden = h.clone();
        }
        spec.vocab = self.vocab;
        spec.max_len = self.max_len;
        spec.device = self.device;
        spec
    }

    /// The model's name for messages.
    pub(crate) fn model_name(&self) -> &'static str {
        ModelKind::from(self.model).name()
    }
}
