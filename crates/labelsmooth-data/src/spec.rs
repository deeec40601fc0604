//! Data named by one string, as the `labelsmooth` command takes it: a bundled set (`digits`,
//! `mnist-5k`, `rt-polarity`) or `csv:PATH`, `text:PATH`, `images:DIR`, `idx:IMAGES,LABELS`,
//! `cifar:DIR`, `npy:X,Y`, `parquet:PATH`.

use std::path::Path;

use crate::table::TableOptions;
use crate::{DataError, Dataset, Result, bundled, images, table};

/// How user files are read (tables and image folders); bundled sets ignore it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadOptions {
    /// Delimiter, header, label and text columns of tables.
    pub table: TableOptions,
    /// Side in pixels that images read from folders are resized to.
    pub image_size: usize,
    /// Whether images read from folders keep their three colour channels (otherwise grey).
    pub rgb: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            table: TableOptions::default(),
            image_size: 28,
            rgb: false,
        }
    }
}

/// Loads the data named by `spec` (see the module documentation). A set with fewer than two
/// classes is an error: there is nothing to classify.
///
/// ```
/// use labelsmooth_data::spec::{LoadOptions, load};
/// let d = load("digits", &LoadOptions::default()).unwrap();
/// assert_eq!(d.n_classes(), 10);
/// assert!(load("excel:x.xlsx", &LoadOptions::default()).is_err());
/// ```
pub fn load(spec: &str, opts: &LoadOptions) -> Result<Dataset> {
    let d = match spec.split_once(':') {
        None => bundled::load(spec)?,
        Some(("csv", p)) => table::read_table(Path::new(p), &opts.table)?,
        Some(("parquet", p)) => table::read_parquet_table(Path::new(p), &opts.table)?,
        Some(("text", p)) => table::read_text_table(Path::new(p), &opts.table)?,
        Some(("images", p)) => images::read_image_folder(Path::new(p), opts.image_size, opts.rgb)?,
        Some(("idx", p)) => {
            let (a, b) = p
                .split_once(',')
                .ok_or_else(|| DataError::Unknown(format!("`{spec}`: idx: needs IMAGES,LABELS")))?;
            images::read_idx(Path::new(a), Path::new(b))?
        }
        Some(("cifar", p)) => images::read_cifar10(Path::new(p))?,
        Some(("npy", p)) => {
            let (x, y) = p
                .split_once(',')
                .ok_or_else(|| DataError::Unknown(format!("`{spec}`: npy: needs X.npy,Y.npy")))?;
            crate::npy::read_pair(Path::new(x), Path::new(y))?
        }
        Some((kind, _)) => {
            return Err(DataError::Unknown(format!(
                "unknown data kind `{kind}:` (csv, parquet, text, images, idx, cifar, npy)"
            )));
        }
    };
    if d.n_classes() < 2 {
        return Err(DataError::Unknown(format!(
            "{}: needs at least 2 classes, found {}",
            d.name,
            d.n_classes()
        )));
    }
    Ok(d)
}
