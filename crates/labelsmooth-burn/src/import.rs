//! PyTorch weights into [`MobileNetV2`]: a torchvision `state_dict` saved with `torch.save`
//! (`.pth`, `.pt`) or as safetensors, read by Burn's own `burn-store` readers.
//!
//! torchvision's keys map onto this crate's module paths one-to-one: `features.<i>.0.weight`
//! (a first or last convolution) → `features.<i>.conv.weight`, `features.<i>.1.*` → its batch
//! norm, `features.<i>.conv.<j>.0|1.*` → the convolution and batch norm of layer `j` of block
//! `i`, `features.<i>.conv.<j>.*` (the projection and its batch norm) unchanged, and
//! `classifier.1.*` → `classifier.*`. Linear weights are transposed and batch norm
//! `weight`/`bias` become `gamma`/`beta` by burn-store's PyTorch adapter; the int64
//! `num_batches_tracked` counters are not used.

use std::path::Path;

use burn::store::{
    ApplyError, ApplyResult, ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter, PytorchStore,
    SafetensorsStore,
};
use burn::tensor::Device;

use crate::mobilenet::{MobileNetV2, MobileNetV2Config};

/// Why weights could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be read as a state_dict.
    #[error("{path}: {message}")]
    Read {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The file holds another network, or this one at another width.
    #[error("{path}: {message}")]
    Mismatch {
        /// The file.
        path: String,
        /// The first key that does not fit, and how.
        message: String,
    },
}

/// torchvision key patterns and the module paths they become.
const REMAP: [(&str, &str); 5] = [
    (
        r"^features\.(\d+)\.conv\.(\d+)\.0\.weight$",
        "features.$1.conv.$2.conv.weight",
    ),
    (
        r"^features\.(\d+)\.conv\.(\d+)\.1\.(\w+)$",
        "features.$1.conv.$2.bn.$3",
    ),
    (r"^features\.(\d+)\.0\.weight$", "features.$1.conv.weight"),
    (r"^features\.(\d+)\.1\.(\w+)$", "features.$1.bn.$2"),
    (r"^classifier\.1\.(\w+)$", "classifier.$1"),
];

/// The torchvision key of a module path (the inverse of the mapping onto this crate's module
/// names), for messages.
///
/// ```
/// use labelsmooth_burn::import::torchvision_key;
/// assert_eq!(torchvision_key("features.3.conv.1.bn.gamma"), "features.3.conv.1.1.weight");
/// assert_eq!(torchvision_key("features.0.Stem.conv.weight"), "features.0.0.weight");
/// assert_eq!(torchvision_key("features.2.conv.3.running_var"), "features.2.conv.3.running_var");
/// assert_eq!(torchvision_key("classifier.weight"), "classifier.1.weight");
/// ```
pub fn torchvision_key(path: &str) -> String {
    // Enum variants (`Stem`, `Block`, `ConvBnAct`, ...) are not in PyTorch's keys.
    let parts: Vec<&str> = path
        .split('.')
        .filter(|p| !p.starts_with(|c: char| c.is_ascii_uppercase()))
        .collect();
    let rename = |p: &str| match p {
        "gamma" => "weight".to_string(),
        "beta" => "bias".to_string(),
        other => other.to_string(),
    };
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < parts.len() {
        match parts[i] {
            "conv" if parts.get(i + 1).is_some_and(|p| *p == "weight") => {
                out.push("0".into());
            }
            "bn" => out.push("1".into()),
            "classifier" => {
                out.push("classifier".into());
                out.push("1".into());
            }
            p if i + 1 == parts.len() => out.push(rename(p)),
            p => out.push(p.to_string()),
        }
        i += 1;
    }
    out.join(".")
}

/// Which reader a file needs, by its extension.
fn is_safetensors(path: &Path) -> Result<bool, ImportError> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("safetensors") => Ok(true),
        Some("pth" | "pt" | "bin") => Ok(false),
        _ => Err(ImportError::Read {
            path: path.display().to_string(),
            message: "expected a .pth, .pt or .safetensors file".into(),
        }),
    }
}

enum Store {
    Pytorch(PytorchStore),
    Safetensors(SafetensorsStore),
}

impl Store {
    fn open(path: &Path) -> Result<Store, ImportError> {
        let mut store = if is_safetensors(path)? {
            let mut s = SafetensorsStore::from_file(path)
                .with_from_adapter(PyTorchToBurnAdapter)
                .skip_enum_variants(true)
                .map_indices_contiguous(false)
                .validate(false)
                .allow_partial(true);
            for (from, to) in REMAP {
                s = s.with_key_remapping(from, to);
            }
            Store::Safetensors(s)
        } else {
            let mut s = PytorchStore::from_file(path)
                .map_indices_contiguous(false)
                .validate(false)
                .allow_partial(true);
            for (from, to) in REMAP {
                s = s.with_key_remapping(from, to);
            }
            Store::Pytorch(s)
        };
        // Read the file now, so that an unreadable one is one error before any model is built.
        let keys = match &mut store {
            Store::Pytorch(s) => s.keys().map_err(|e| e.to_string()),
            Store::Safetensors(s) => s.keys().map_err(|e| e.to_string()),
        }
        .map_err(|message| ImportError::Read {
            path: path.display().to_string(),
            message: format!("cannot read a state_dict: {}", first_line(&message)),
        })?;
        if keys.is_empty() {
            return Err(ImportError::Read {
                path: path.display().to_string(),
                message: "holds no tensors: not a state_dict".into(),
            });
        }
        Ok(store)
    }

    /// The shape of a tensor (by module path) as the file stores it.
    fn shape(&mut self, name: &str) -> Option<Vec<usize>> {
        let t = match self {
            Store::Pytorch(s) => s.get_tensor(name).ok().flatten(),
            Store::Safetensors(s) => s.get_tensor(name).ok().flatten(),
        }?;
        Some(t.shape.to_vec())
    }

    fn apply(&mut self, model: &mut MobileNetV2) -> Result<ApplyResult, String> {
        match self {
            Store::Pytorch(s) => model.load_from(s).map_err(|e| e.to_string()),
            Store::Safetensors(s) => model.load_from(s).map_err(|e| e.to_string()),
        }
    }
}

fn first_line(s: &str) -> &str {
    s.lines().find(|l| !l.trim().is_empty()).unwrap_or(s).trim()
}

/// Reads a torchvision MobileNetV2 state_dict of width `width` from `path`: the number of
/// classes comes from the classifier in the file. Every tensor of the network must be in the
/// file with its shape; the first one that is missing or of another shape is the error.
pub fn mobilenet_v2(path: &Path, width: f64, device: &Device) -> Result<MobileNetV2, ImportError> {
    let shown = path.display().to_string();
    let mismatch = |message: String| ImportError::Mismatch {
        path: shown.clone(),
        message,
    };
    let mut store = Store::open(path)?;
    let config = MobileNetV2Config::new(1).with_width(width);
    let features = config.feature_channels();
    let classes = match store.shape("classifier.weight").as_deref() {
        Some(&[classes, inputs]) if inputs == features => classes,
        Some(other) => {
            return Err(mismatch(format!(
                "`classifier.1.weight` has shape {other:?}; MobileNetV2 of width {width} has a classifier of shape [classes, {features}]: is the width right?"
            )));
        }
        None => {
            return Err(mismatch(
                "no `classifier.1.weight`: not a torchvision MobileNetV2 state_dict".into(),
            ));
        }
    };
    let mut model = MobileNetV2Config::new(classes)
        .with_width(width)
        .init(device);
    let result = store.apply(&mut model).map_err(|e| ImportError::Read {
        path: shown.clone(),
        message: first_line(&e).to_string(),
    })?;
    if let Some(e) = result.errors.first() {
        return Err(mismatch(match e {
            ApplyError::ShapeMismatch {
                path,
                expected,
                found,
            } => format!(
                "`{}` has shape {:?}; MobileNetV2 of width {width} expects {:?}: is the width right, is it this architecture?",
                torchvision_key(path),
                found.to_vec(),
                expected.to_vec()
            ),
            other => format!("{other}"),
        }));
    }
    if let Some((path, _)) = result.missing.first() {
        return Err(mismatch(format!(
            "no `{}` ({} of the network's tensors are missing): not a torchvision MobileNetV2 state_dict of width {width}",
            torchvision_key(path),
            result.missing.len()
        )));
    }
    if let Some(extra) = result
        .unused
        .iter()
        .find(|k| !k.ends_with("num_batches_tracked"))
    {
        return Err(mismatch(format!(
            "`{extra}` is not part of MobileNetV2: is it this architecture?"
        )));
    }
    Ok(model)
}
