//! Errors of the data readers: each names the file and, where there is one, the line.

use std::path::{Path, PathBuf};

/// A data file that cannot be read as asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The file or folder could not be opened or read.
    #[error("{path}: {error}")]
    Io {
        /// The path.
        path: PathBuf,
        /// What the system said (part of the message, so not repeated as a cause).
        error: std::io::Error,
    },
    /// The content is malformed at a line (1-based; 0 when no line applies).
    #[error("{}{}: {message}", path.display(), if *line > 0 { format!(":{line}") } else { String::new() })]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line (record for binary files), 0 for the whole file.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A name that is not known (bundled set, column).
    #[error("{0}")]
    Unknown(String),
}

impl DataError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> DataError {
        DataError::Io {
            path: path.to_path_buf(),
            error: source,
        }
    }

    pub(crate) fn at(path: &Path, line: usize, message: impl Into<String>) -> DataError {
        DataError::Malformed {
            path: path.to_path_buf(),
            line,
            message: message.into(),
        }
    }
}

/// Result alias with [`DataError`].
pub type Result<T, E = DataError> = std::result::Result<T, E>;
