//! One face for both executors: a device opened for a target (wgpu for `wgsl`, CUDA for
//! `sm_XX`) and a loaded session on it, so that `run`, `verify` and `bench` share one code path.
//! Without the `cuda` feature, or without a CUDA driver or GPU, opening a CUDA device is exit
//! code 3 with a message naming what is missing and what could not run.

use crate::{EXIT_CHECK, EXIT_DEVICE, EXIT_INPUT, Exit};
use anyhow::Result;
#[cfg(feature = "cuda")]
use optc_runtime::cuda_exec::{CudaDevice, CudaSession};
use optc_runtime::wgpu_exec::{Device, Session};
use optc_runtime::{Artifact, HostTensor, Profile, RunTiming, RuntimeError, Target};

/// The exit code of a runtime error: 3 when the device or driver is missing or cannot run the
/// artifact, 2 for a bad artifact or input, 1 otherwise (a kernel or the device failed).
pub fn exit_code(e: &RuntimeError) -> u8 {
    match e {
        RuntimeError::NoDevice(_)
        | RuntimeError::NoDriver(_)
        | RuntimeError::Unsupported { .. } => EXIT_DEVICE,
        RuntimeError::Artifact(_)
        | RuntimeError::Input { .. }
        | RuntimeError::InputCount { .. }
        | RuntimeError::BadTensor(_) => EXIT_INPUT,
        _ => EXIT_CHECK,
    }
}

fn exit(e: RuntimeError) -> anyhow::Error {
    Exit(exit_code(&e), e.to_string()).into()
}

/// An opened device.
pub enum Dev {
    /// A wgpu adapter.
    Wgpu(Device),
    /// A CUDA device.
    #[cfg(feature = "cuda")]
    Cuda(CudaDevice),
}

/// A loaded artifact on a [`Dev`].
pub enum Sess {
    /// On wgpu.
    Wgpu(Session),
    /// On CUDA.
    #[cfg(feature = "cuda")]
    Cuda(CudaSession),
}

/// Opens a CUDA device for running `what` (`sm_89 artifact x.optc`, `model.onnx`); exit code 3
/// when there is no driver, no GPU, or no CUDA support in this build.
pub fn open_cuda(selector: Option<&str>, what: &str) -> Result<Dev> {
    #[cfg(feature = "cuda")]
    {
        CudaDevice::open(selector).map(Dev::Cuda).map_err(|e| {
            Exit(
                exit_code(&e),
                format!(
                    "{e}: cannot run {what} (the CUDA executor needs an NVIDIA GPU and driver)"
                ),
            )
            .into()
        })
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = selector;
        Err(Exit(
            EXIT_DEVICE,
            format!(
                "no CUDA executor in this build of optc (built without the `cuda` feature): \
                 cannot run {what}"
            ),
        )
        .into())
    }
}

/// Opens a wgpu adapter; exit code 3 when there is none.
pub fn open_wgpu(selector: Option<&str>) -> Result<Dev> {
    Device::open(selector).map(Dev::Wgpu).map_err(exit)
}

impl Dev {
    /// Opens the device that runs `target`.
    pub fn open(target: Target, selector: Option<&str>, what: &str) -> Result<Dev> {
        if target.is_cuda() {
            open_cuda(selector, what)
        } else {
            open_wgpu(selector)
        }
    }

    /// The device name.
    pub fn name(&self) -> String {
        match self {
            Dev::Wgpu(d) => d.info().name.clone(),
            #[cfg(feature = "cuda")]
            Dev::Cuda(d) => d.info().name.clone(),
        }
    }

    /// `wgpu` or `cuda`.
    pub fn backend(&self) -> &'static str {
        match self {
            Dev::Wgpu(_) => "wgpu",
            #[cfg(feature = "cuda")]
            Dev::Cuda(_) => "cuda",
        }
    }

    /// JSON facts about the device (compute capability and driver on CUDA).
    pub fn facts(&self) -> serde_json::Value {
        match self {
            Dev::Wgpu(d) => serde_json::json!({"name": d.info().name, "backend": d.info().backend}),
            #[cfg(feature = "cuda")]
            Dev::Cuda(d) => {
                let i = d.info();
                serde_json::json!({"name": i.name, "backend": "cuda", "sm": i.sm(), "driver": i.driver(),
                                   "multiprocessors": i.multiprocessors, "memory_bytes": i.total_memory})
            }
        }
    }

    /// The target models are compiled for to run here: `wgsl` on wgpu, the newest PTX target the
    /// CUDA device runs.
    pub fn target(&self) -> Result<Target> {
        match self {
            Dev::Wgpu(_) => Ok(Target::Wgsl),
            #[cfg(feature = "cuda")]
            Dev::Cuda(d) => d.target().map_err(exit),
        }
    }

    /// Loads `artifact` (compiles or JIT-compiles its kernels, uploads weights). `cuda_graph`
    /// turns on CUDA-graph replay (refused on wgpu).
    pub fn session(&self, artifact: &Artifact, cuda_graph: bool) -> Result<Sess> {
        match self {
            Dev::Wgpu(d) => {
                if cuda_graph {
                    return Err(Exit(
                        EXIT_INPUT,
                        "--cuda-graph needs a CUDA (sm_XX) target".to_string(),
                    )
                    .into());
                }
                Session::new(d, artifact).map(Sess::Wgpu).map_err(exit)
            }
            #[cfg(feature = "cuda")]
            Dev::Cuda(d) => {
                let mut s = CudaSession::new(d, artifact).map_err(exit)?;
                s.set_cuda_graph(cuda_graph);
                Ok(Sess::Cuda(s))
            }
        }
    }
}

impl Sess {
    /// Runs once.
    pub fn run(&mut self, inputs: &[HostTensor]) -> Result<Vec<HostTensor>, RuntimeError> {
        match self {
            Sess::Wgpu(s) => s.run(inputs),
            #[cfg(feature = "cuda")]
            Sess::Cuda(s) => s.run(inputs),
        }
    }

    /// Runs once, timed by phase.
    pub fn run_timed(
        &mut self,
        inputs: &[HostTensor],
    ) -> Result<(Vec<HostTensor>, RunTiming), RuntimeError> {
        match self {
            Sess::Wgpu(s) => s.run_timed(inputs),
            #[cfg(feature = "cuda")]
            Sess::Cuda(s) => s.run_timed(inputs),
        }
    }

    /// Per-launch device times over `runs` runs.
    pub fn profile(&mut self, inputs: &[HostTensor], runs: usize) -> Result<Profile, RuntimeError> {
        match self {
            Sess::Wgpu(s) => s.profile(inputs, runs),
            #[cfg(feature = "cuda")]
            Sess::Cuda(s) => s.profile(inputs, runs),
        }
    }

    /// The PTX JIT's wall time and the driver's own figure, ms (CUDA only).
    pub fn jit_ms(&self) -> Option<(f64, f64)> {
        match self {
            Sess::Wgpu(_) => None,
            #[cfg(feature = "cuda")]
            Sess::Cuda(s) => Some((s.jit_time().as_secs_f64() * 1e3, s.jit_driver_ms())),
        }
    }

    /// True when runs replay a CUDA graph.
    pub fn cuda_graph(&self) -> bool {
        match self {
            Sess::Wgpu(_) => false,
            #[cfg(feature = "cuda")]
            Sess::Cuda(s) => s.cuda_graph(),
        }
    }
}
