//! The crate's error type: one enum, grouped by area, with messages that tell the user what to
//! change. Library code returns [`Result`]; the binary turns an error into one line and exit code 1.

use std::path::PathBuf;

/// Every error the chaoscast library reports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration or recipe field has a value that cannot be used.
    #[error("invalid {field}: {reason}")]
    InvalidConfig {
        /// The field, as the user names it (`dt`, `samples`, `param F`, ...).
        field: String,
        /// What is wrong and what would be accepted.
        reason: String,
    },
    /// A system name that chaoscast does not know.
    #[error("unknown system '{name}'; known systems: {known}")]
    UnknownSystem {
        /// The name as given.
        name: String,
        /// The known names, comma-separated.
        known: String,
    },
    /// A parameter name that the system does not have.
    #[error("system '{system}' has no parameter '{name}'; its parameters are: {known}")]
    UnknownParameter {
        /// The system's name.
        system: String,
        /// The parameter as given.
        name: String,
        /// The system's parameters, comma-separated.
        known: String,
    },
    /// Two shapes that must agree do not.
    #[error("shape mismatch in {what}: expected {expected}, got {got}")]
    ShapeMismatch {
        /// What was being compared.
        what: String,
        /// The expected shape or size.
        expected: String,
        /// The shape or size found.
        got: String,
    },
    /// A state, loss or value became NaN or infinite.
    #[error("{what} became non-finite at {at}")]
    NonFinite {
        /// What blew up (the integrated state, the training loss, ...).
        what: String,
        /// Where: a time, an epoch and step.
        at: String,
    },
    /// An input (a dataset, a forecast history) holds NaN or an infinite value.
    #[error("{what} holds a non-finite value (NaN or infinite) at {at}")]
    NonFiniteInput {
        /// What was read.
        what: String,
        /// Where: a row and a column.
        at: String,
    },
    /// The ODE integrator failed.
    #[error("integration failed: {0}")]
    Integration(String),
    /// An output file exists and overwriting was not allowed.
    #[error("{} already exists; pass --force to overwrite it", path.display())]
    OutputExists {
        /// The existing file.
        path: PathBuf,
    },
    /// Reading or writing a file failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done ("read", "write", "create", ...).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A run asked to resume has nothing left to train: it has run all its epochs, stopped early,
    /// or is an ESN (fitted in one pass).
    #[error("the run has nothing left to train: {0}")]
    NothingToResume(String),
    /// Training stopped at an epoch's end because a stop was asked for (a signal); the epoch's
    /// checkpoint is saved.
    #[error(
        "interrupted after epoch {epoch} (SIGTERM or SIGUSR1); its checkpoint is saved, and `train --resume` or the same `compare` continues from it"
    )]
    Interrupted {
        /// The last epoch run and checkpointed.
        epoch: usize,
    },
    /// A forecast could not be made from the rows given (see
    /// [`ForecastError`]).
    #[error(transparent)]
    Forecast(#[from] ForecastError),
    /// A data file or recipe could not be parsed, or lacks what chaoscast needs.
    #[error("cannot use {}: {reason}", path.display())]
    Storage {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl Error {
    /// Shorthand for [`Error::InvalidConfig`].
    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidConfig {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::Storage`].
    pub fn storage(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        Self::Storage {
            path: path.into(),
            reason: reason.to_string(),
        }
    }

    /// Shorthand for [`Error::Io`].
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// Checks that a config field is a finite number above zero.
pub(crate) fn ensure_positive(field: &str, value: f64) -> Result<()> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(Error::config(
            field,
            format!("must be a positive number, got {value}"),
        ))
    }
}

/// Checks that a config field is a finite number, zero or above.
pub(crate) fn ensure_non_negative(field: &str, value: f64) -> Result<()> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(Error::config(
            field,
            format!("must be zero or positive, got {value}"),
        ))
    }
}

/// Checks that every named count is at least 1; returns the first that is not.
pub(crate) fn ensure_counts(fields: &[(&str, usize)]) -> Result<()> {
    match fields.iter().find(|(_, value)| *value == 0) {
        Some((field, _)) => Err(Error::config(*field, "must be at least 1")),
        None => Ok(()),
    }
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// Why a forecast could not be made from the rows given.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ForecastError {
    /// Fewer rows than the model reads.
    #[error(
        "the forecast history has {got} rows; the model reads the last {needed} (its lookback)"
    )]
    HistoryTooShort {
        /// The lookback L.
        needed: usize,
        /// The rows given.
        got: usize,
    },
    /// A row of another width than the model's variables.
    #[error(
        "row {row} of the forecast history has {got} values; the model reads {expected} ({names})"
    )]
    WrongColumns {
        /// The row, 1-based within the history.
        row: usize,
        /// The model's variables.
        expected: usize,
        /// The values in that row.
        got: usize,
        /// The variables' names, comma-separated, in row order.
        names: String,
    },
    /// NaN or an infinite value among the rows the model reads.
    #[error(
        "the forecast history holds a non-finite value (NaN or infinite) at row {row} ({column})"
    )]
    NonFinite {
        /// The row, 1-based within the history.
        row: usize,
        /// The variable's name.
        column: String,
    },
    /// The backend could not hand the forecast back.
    #[error("the model's forecast could not be read back: {0}")]
    Backend(String),
}
