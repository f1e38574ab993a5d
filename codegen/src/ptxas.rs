//! NVIDIA's PTX assembler (`ptxas`) as a checker of printed PTX: [`find`] locates the binary,
//! [`assemble`] runs it on PTX files for one target.
//!
//! ptxas needs no GPU and no driver. `scripts/setup-ptxas.sh` installs it from the pinned
//! `nvidia-cuda-nvcc-cu12` pip wheel into the repo's `.venv`; [`find`] looks, in order, at
//! `$OPTC_PTXAS`, at `<root>/.venv/lib/python3*/site-packages/nvidia/cuda_nvcc/bin/ptxas`, and
//! on `$PATH`.

use crate::ptx::PtxTarget;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Why assembling failed.
#[derive(Debug, thiserror::Error)]
pub enum PtxasError {
    /// ptxas could not be started.
    #[error("cannot run {path}: {source}")]
    Spawn {
        /// The binary.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// ptxas rejected the PTX; the message is its report (file, line, error).
    #[error("ptxas -arch={arch} rejected {files}:\n{report}")]
    Rejected {
        /// The target.
        arch: &'static str,
        /// The input files, space-separated.
        files: String,
        /// ptxas's stderr and stdout.
        report: String,
    },
}

/// The path of the ptxas binary of the venv under `root`, if installed there.
pub fn venv_ptxas(root: &Path) -> Option<PathBuf> {
    let lib = root.join(".venv/lib");
    let mut pythons: Vec<PathBuf> = std::fs::read_dir(&lib)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .map(|e| e.path())
        .collect();
    pythons.sort();
    pythons
        .into_iter()
        .map(|p| p.join("site-packages/nvidia/cuda_nvcc/bin/ptxas"))
        .find(|p| p.is_file())
}

/// Finds ptxas: `$OPTC_PTXAS` (which must then exist), else the venv under `root`, else `$PATH`.
pub fn find(root: &Path) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("OPTC_PTXAS") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    if let Some(p) = venv_ptxas(root) {
        return Some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("ptxas"))
        .find(|p| p.is_file())
}

/// Assembles `files` (PTX modules, linked as one program: entry names must be distinct) for
/// `target` into `out` (a cubin). Returns ptxas's warnings (empty when it printed none).
pub fn assemble(
    ptxas: &Path,
    files: &[PathBuf],
    target: PtxTarget,
    out: &Path,
) -> Result<String, PtxasError> {
    let output = Command::new(ptxas)
        .arg(format!("-arch={}", target.name()))
        .arg("-o")
        .arg(out)
        .args(files)
        .output()
        .map_err(|source| PtxasError::Spawn {
            path: ptxas.to_path_buf(),
            source,
        })?;
    let mut report = String::from_utf8_lossy(&output.stderr).into_owned();
    report.push_str(&String::from_utf8_lossy(&output.stdout));
    if output.status.success() {
        Ok(report)
    } else {
        Err(PtxasError::Rejected {
            arch: target.name(),
            files: files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(" "),
            report,
        })
    }
}
