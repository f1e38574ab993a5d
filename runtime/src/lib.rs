//! optc runtime: loads an artifact (one file: manifest, kernel sources, weights) and runs it on a
//! device. It depends on no compiler crate (no egg, petgraph, protobuf, passes or codegen), so a
//! runtime team can embed it in a small binary.
//!
//! ```
//! use optc_runtime::{Artifact, HostTensor, Manifest, MemoryStats, Requirements, Target};
//!
//! // A (trivial) artifact with no kernels, written to bytes and read back.
//! let manifest = Manifest {
//!     producer: "example".into(),
//!     model: "empty".into(),
//!     target: Target::Wgsl,
//!     requirements: Requirements::default(),
//!     inputs: vec![],
//!     outputs: vec![],
//!     kernels: vec![],
//!     launches: vec![],
//!     arena_bytes: 0,
//!     weights_bytes: 0,
//!     memory: MemoryStats::default(),
//! };
//! let artifact = Artifact::new(manifest, vec![], Vec::new());
//! let bytes = artifact.to_bytes();
//! let loaded = Artifact::from_bytes(&bytes)?;
//! assert_eq!(loaded, artifact);
//! loaded.check_target(Target::Wgsl)?;
//! assert!(loaded.check_target(Target::Sm89).is_err());
//!
//! let x = HostTensor::from_f32(&[2], &[1.0, 2.0]);
//! assert_eq!(x.to_f32(), Some(vec![1.0, 2.0]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Running it needs a device: [`wgpu_exec`] (the default `wgpu` feature) runs `wgsl` artifacts,
//! [`cuda_exec`] (the `cuda` feature; the driver is loaded at run time) runs `sm_XX` ones.
//!
//! ```no_run
//! # #[cfg(feature = "cuda")] {
//! use optc_runtime::cuda_exec::{CudaDevice, CudaSession};
//!
//! let artifact = optc_runtime::Artifact::load("model_sm90.optc")?;
//! // No libcuda.so: Err(RuntimeError::NoDriver); no device: Err(RuntimeError::NoDevice).
//! let device = CudaDevice::open(None)?; // or Some("1"), Some("H100"); else $OPTC_CUDA_DEVICE
//! let mut session = CudaSession::new(&device, &artifact)?; // JIT-compiles every PTX module
//! println!("JIT {:?}", session.jit_time());
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! With the default `wgpu` feature:
//!
//! ```no_run
//! # #[cfg(feature = "wgpu")] {
//! use optc_runtime::{Artifact, Device, HostTensor, Session};
//!
//! let artifact = Artifact::load("model.optc")?;
//! let device = Device::open(None)?; // or Some("0"), Some("llvmpipe"); else $OPTC_DEVICE
//! let mut session = Session::new(&device, &artifact)?;
//! let inputs: Vec<HostTensor> = artifact
//!     .manifest
//!     .inputs
//!     .iter()
//!     .map(|i| HostTensor::zeros(i.dtype, &i.shape))
//!     .collect();
//! let outputs = session.run(&inputs)?;
//! println!("{:?}", outputs[0].to_f32());
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

pub mod artifact;
#[cfg(feature = "cuda")]
pub mod cuda_exec;
pub mod error;
pub mod manifest;
pub mod tensor;
pub mod timing;
#[cfg(feature = "wgpu")]
pub mod wgpu_exec;

pub use artifact::{Artifact, ArtifactError, Weights};
pub use error::RuntimeError;
pub use manifest::{
    DeviceType, HostType, KernelInfo, Launch, Location, Manifest, MemoryStats, Region,
    Requirements, Target, TensorInfo,
};
pub use tensor::HostTensor;
pub use timing::{LaunchProfile, Profile, RunTiming};
#[cfg(feature = "wgpu")]
pub use wgpu_exec::{Device, DeviceInfo, Session};
