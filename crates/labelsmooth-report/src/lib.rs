//! The calibration of a set of predictions and the report of it: metrics, figures and one HTML
//! page, written the same way by the `labelsmooth` command and the Python package.
//!
//! - [`calibrate`]: [`calibrate::Predictions`] (logits or probabilities with their true
//!   classes), [`calibrate::calibrate`] (accuracy, NLL, Brier, ECE / MCE / RMS, the reliability
//!   bins, per-class scores, the confusion matrix and, when asked, temperature scaling) and
//!   [`calibrate::Calibration::write_report`].
//! - [`plots`]: every figure, as PNG and SVG.
//! - [`html`]: the self-contained HTML page.
//!
//! ```no_run
//! use labelsmooth::calibration::Binning;
//! use labelsmooth_report::calibrate::{Predictions, calibrate};
//!
//! # fn main() -> anyhow::Result<()> {
//! // Two rows of logits over three classes and their true classes.
//! let set = Predictions::from_logits(&[2.0, 0.5, -1.0, 0.1, 0.3, 1.2], 3, vec![0, 2])?;
//! let c = calibrate(&set, None, 15, Binning::Uniform)?;
//! println!("ECE {:.4}", c.before.ece);
//! c.write_report("the example", "figures".as_ref(), "report.html".as_ref())?;
//! # Ok(())
//! # }
//! ```

pub mod calibrate;
pub mod html;
pub mod plots;

use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename, so that
/// `path` is either its old self or whole, never half written.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .inspect_err(|_| {
            std::fs::remove_file(&tmp).ok();
        })
}
