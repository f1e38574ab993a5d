//! Errors of the executors.

use crate::artifact::ArtifactError;

/// Why a device could not be opened or an artifact not loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// No adapter was found, or none matched the selector. The CLI maps this to exit code 3.
    #[error("no usable device: {0}")]
    NoDevice(String),
    /// The CUDA driver library (`libcuda.so`) is missing or too old. The CLI maps this to exit
    /// code 3.
    #[error("no CUDA driver ({0})")]
    NoDriver(String),
    /// The device lacks a feature or limit the artifact needs.
    #[error("device '{device}' cannot run this artifact: {message}")]
    Unsupported {
        /// The device name.
        device: String,
        /// What is missing (names the feature or limit).
        message: String,
    },
    /// A kernel failed to compile or its pipeline could not be created.
    #[error("kernel '{kernel}' failed to compile: {message}")]
    Shader {
        /// The kernel name.
        kernel: String,
        /// The compiler's message.
        message: String,
    },
    /// An input does not match the manifest.
    #[error("input '{name}': {message}")]
    Input {
        /// The input name.
        name: String,
        /// What is wrong (expected vs got).
        message: String,
    },
    /// Wrong number of inputs.
    #[error("the model takes {expected} inputs, got {got}")]
    InputCount {
        /// Inputs the manifest declares.
        expected: usize,
        /// Inputs given.
        got: usize,
    },
    /// A host tensor whose bytes do not match its shape.
    #[error("bad tensor: {0}")]
    BadTensor(String),
    /// The device reported an error while running (validation, out of memory, device lost).
    #[error("device error: {0}")]
    Device(String),
    /// The artifact is unusable.
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
}
