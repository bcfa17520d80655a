//! Errors as values: each names the file (or option) at fault and the problem, in one line.
//! May import: nothing of this crate.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An input file that cannot be used: missing, unreadable, not an image, empty.
    #[error("{}: {problem}", path.display())]
    Input { path: PathBuf, problem: String },

    /// An output that cannot be written.
    #[error("{}: {problem}", path.display())]
    Output { path: PathBuf, problem: String },

    /// The network's weights file is missing or malformed.
    #[error("weights {}: {problem}", path.display())]
    Weights { path: PathBuf, problem: String },

    /// A setting that makes no sense (bad layer name, negative weight, …).
    #[error("{0}")]
    Settings(String),

    /// The optimisation produced NaN or infinity.
    #[error("optimisation diverged: {0}")]
    Diverged(String),

    /// The user asked to stop (Ctrl-C); the text says what was kept and how to resume.
    #[error("interrupted{0}")]
    Interrupted(String),

    #[error("tensor computation failed: {0}")]
    Tensor(#[from] candle_core::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn input(path: impl Into<PathBuf>, problem: impl std::fmt::Display) -> Self {
        Error::Input { path: path.into(), problem: problem.to_string() }
    }

    pub fn output(path: impl Into<PathBuf>, problem: impl std::fmt::Display) -> Self {
        Error::Output { path: path.into(), problem: problem.to_string() }
    }
}
