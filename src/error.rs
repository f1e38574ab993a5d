//! The driver's error type and the CLI exit code each error maps to.

use std::path::PathBuf;

/// Errors of the compiler driver.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model could not be imported (malformed, invalid or unsupported).
    #[error("{}: {source}", path.display())]
    Import {
        /// The model file.
        path: PathBuf,
        /// Why.
        #[source]
        source: optc_ir::front::onnx::ImportError,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A tensor file could not be decoded or has an unsupported dtype.
    #[error("{}: {msg}", path.display())]
    TensorFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// User-supplied inputs do not fit the model.
    #[error("{0}")]
    BadInput(String),
    /// Evaluation failed (an op rejected its inputs at run time).
    #[error(transparent)]
    Eval(#[from] optc_ir::EvalError),
    /// Compilation failed.
    #[error(transparent)]
    Compile(#[from] crate::compile::CompileError),
    /// Loading or running an artifact failed.
    #[error(transparent)]
    Runtime(#[from] optc_runtime::RuntimeError),
    /// An artifact file is corrupt, truncated, newer or for another target.
    #[error(transparent)]
    Artifact(#[from] optc_runtime::ArtifactError),
    /// An external artifact executor (a [`crate::conformance::ArtifactRunner`]) failed.
    #[error("executor: {0}")]
    Executor(String),
    /// The imported graph broke an IR invariant: an optc bug.
    #[error("internal error: the graph fails verification: {0}")]
    Verifier(String),
}

impl Error {
    /// The CLI exit code: 2 for bad or unsupported input, 1 for optc bugs.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Verifier(_) | Error::Executor(_) => 1,
            Error::Compile(crate::compile::CompileError::Internal(_)) => 1,
            Error::Runtime(optc_runtime::RuntimeError::NoDevice(_)) => 3,
            Error::Runtime(optc_runtime::RuntimeError::NoDriver(_)) => 3,
            Error::Runtime(optc_runtime::RuntimeError::Unsupported { .. }) => 3,
            Error::Runtime(optc_runtime::RuntimeError::Artifact(_)) => 2,
            Error::Runtime(optc_runtime::RuntimeError::Input { .. })
            | Error::Runtime(optc_runtime::RuntimeError::InputCount { .. })
            | Error::Runtime(optc_runtime::RuntimeError::BadTensor(_)) => 2,
            Error::Runtime(_) => 1,
            _ => 2,
        }
    }
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
