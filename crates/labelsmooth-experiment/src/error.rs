//! The one error type of the experiments.

use std::path::PathBuf;

/// What can stop an experiment.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A data file or data spec could not be read.
    #[error(transparent)]
    Data(#[from] labelsmooth_data::DataError),
    /// Training failed or was asked something invalid.
    #[error(transparent)]
    Train(#[from] labelsmooth_burn::train::TrainError),
    /// The core library rejected its input (splits, metrics, temperature).
    #[error(transparent)]
    Core(#[from] labelsmooth::Error),
    /// A setting is invalid (a regularizer name, a shard, a model for this data).
    #[error("{0}")]
    Invalid(String),
    /// A file or folder could not be read or written.
    #[error("{}: {message}: {error}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// What was being done.
        message: &'static str,
        /// What the system said (part of the message, so not repeated as a cause).
        error: std::io::Error,
    },
    /// A file holds something other than what was expected.
    #[error("{}: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Stored trials belong to another experiment, or some are missing.
    #[error("{0}")]
    Store(String),
}

impl Error {
    pub(crate) fn io(
        path: &std::path::Path,
        message: &'static str,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            message,
            error: source,
        }
    }
}

/// Result alias with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
