//! optc code generators: print the kernel IR of `optc-kernels` ([`optc_kernels::Kernel`]) as
//! target source text.
//!
//! One IR feeds every printer; each printer is a separate module that refuses (with
//! [`CodegenError::Unsupported`]) the IR features its target lacks instead of silently
//! changing their meaning:
//!
//! - [`wgsl`]: WGSL for WebGPU/wgpu (and lavapipe in CI). [`wgsl::emit_wgsl`] prints a kernel,
//!   [`wgsl::validate_wgsl`] runs naga's WGSL front end and validator over the text, exactly as
//!   wgpu would before creating a pipeline.
//! - [`ptx`]: PTX text for the CUDA driver (sm_80, sm_86, sm_89, sm_90, sm_90a).
//!   [`ptx::emit_ptx`] prints a kernel; [`ptxas`] finds NVIDIA's PTX assembler and assembles
//!   printed modules with it (tests and CI use it to prove the text is valid PTX).
//!
//! Every printer first runs [`check::check`], a type and scope checker for the IR, so a
//! malformed kernel is reported in IR terms (naming the kernel and the problem) rather than as
//! a confusing error from a downstream compiler. Printing is deterministic: the same kernel
//! always prints to the same bytes (the printers iterate only over `Vec`s, never hash maps), so
//! generated code can be snapshot-tested and cached by content.

#![warn(missing_docs)]

pub mod check;
pub mod ptx;
pub mod ptxas;
pub mod wgsl;

pub use check::check;
pub use ptx::{PtxError, PtxTarget, emit_ptx};
pub use wgsl::{emit_wgsl, validate_wgsl};

/// Why a kernel could not be printed (or the printed text was rejected).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CodegenError {
    /// The kernel is not well formed (ill-typed, undeclared local, store to a read-only
    /// buffer, ...); found by [`check::check`].
    #[error("kernel {kernel}: {msg}")]
    Invalid {
        /// The kernel's name.
        kernel: String,
        /// What is wrong.
        msg: String,
    },
    /// The kernel uses a feature the target language cannot express.
    #[error("kernel {kernel}: {what}")]
    Unsupported {
        /// The kernel's name.
        kernel: String,
        /// The feature.
        what: String,
    },
    /// naga rejected generated WGSL; the message is naga's report, quoting the source line.
    #[error("WGSL rejected by naga:\n{0}")]
    Naga(String),
}

impl From<optc_kernels::TypeError> for CodegenError {
    fn from(e: optc_kernels::TypeError) -> Self {
        CodegenError::Invalid {
            kernel: e.kernel,
            msg: e.msg,
        }
    }
}
