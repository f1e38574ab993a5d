//! Running compiled models from the driver: conversions between IR tensors and the runtime's
//! host tensors, building artifacts from compiler output, and opening the wgpu executor.

use crate::compile::{self, Compiled, Options};
use crate::error::{Error, Result};
use optc_ir::{DType, Graph, Tensor};
use optc_runtime::manifest::HostType;
use optc_runtime::{Artifact, HostTensor};

pub use crate::compile::host_type;

/// The IR dtype of a runtime host type.
pub fn ir_dtype(ht: HostType) -> DType {
    match ht {
        HostType::F32 => DType::F32,
        HostType::F16 => DType::F16,
        HostType::Bf16 => DType::BF16,
        HostType::F64 => DType::F64,
        HostType::I8 => DType::I8,
        HostType::U8 => DType::U8,
        HostType::I16 => DType::I16,
        HostType::U16 => DType::U16,
        HostType::I32 => DType::I32,
        HostType::U32 => DType::U32,
        HostType::I64 => DType::I64,
        HostType::U64 => DType::U64,
        HostType::Bool => DType::Bool,
        HostType::F8e4m3fn => DType::F8E4M3FN,
        HostType::F8e4m3fnuz => DType::F8E4M3FNUZ,
        HostType::F8e5m2 => DType::F8E5M2,
        HostType::F8e5m2fnuz => DType::F8E5M2FNUZ,
        HostType::F8e8m0 => DType::F8E8M0,
        HostType::F4e2m1 => DType::F4E2M1,
        HostType::I4 => DType::I4,
        HostType::U4 => DType::U4,
        HostType::I2 => DType::I2,
        HostType::U2 => DType::U2,
    }
}

/// An IR tensor as a host tensor.
pub fn to_host(t: &Tensor) -> Result<HostTensor> {
    Ok(HostTensor {
        dtype: host_type(t.dtype()),
        shape: t.shape().iter().map(|&d| d as u64).collect(),
        data: t.bytes().to_vec(),
    })
}

/// A host tensor as an IR tensor.
pub fn from_host(h: &HostTensor) -> Result<Tensor> {
    let shape: Vec<usize> = h.shape.iter().map(|&d| d as usize).collect();
    let dtype = ir_dtype(h.dtype);
    if dtype.is_lowp() {
        // Host tensors hold one code per byte; `from_le_bytes` reads ONNX's packed layout.
        return Tensor::from_codes(dtype, shape, h.data.clone())
            .map_err(|e| Error::BadInput(format!("device output: {e}")));
    }
    Tensor::from_le_bytes(dtype, shape, &h.data)
        .map_err(|e| Error::BadInput(format!("device output: {e}")))
}

impl Compiled {
    /// The artifact holding this compilation.
    pub fn to_artifact(&self) -> Artifact {
        Artifact::new(
            self.manifest.clone(),
            self.sources.clone(),
            self.weights.clone(),
        )
    }
}

/// Compiles `g` and wraps the result in an artifact.
pub fn compile_artifact(g: &Graph, name: &str, opts: &Options) -> Result<(Artifact, Compiled)> {
    let c = compile::compile(g, name, opts)?;
    Ok((c.to_artifact(), c))
}

/// The host tensors for an artifact's inputs, picked by name from `inputs` (one per graph input
/// of `g`, in graph order); graph inputs that the compiler fixed or that shadow constants are
/// left out.
pub fn manifest_inputs(
    g: &Graph,
    manifest: &optc_runtime::Manifest,
    inputs: &[Tensor],
) -> Result<Vec<HostTensor>> {
    manifest
        .inputs
        .iter()
        .map(|info| {
            let k = g
                .inputs()
                .iter()
                .position(|&v| g.value(v).name == info.name)
                .ok_or_else(|| {
                    Error::BadInput(format!("the model has no input '{}'", info.name))
                })?;
            let t = inputs.get(k).ok_or_else(|| {
                Error::BadInput(format!("no value given for input '{}'", info.name))
            })?;
            to_host(t)
        })
        .collect()
}
