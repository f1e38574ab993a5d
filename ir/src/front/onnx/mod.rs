//! TEMPORARY stub of the ONNX importer API (replaced by the importer branch).
#![allow(missing_docs, unused_variables)]

use crate::graph::Graph;
use crate::tensor::Tensor;
use std::path::{Path, PathBuf};

pub struct Model {
    pub graph: Graph,
    pub ir_version: i64,
    pub opset: i64,
    pub producer: String,
    pub path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("stub")]
    Stub,
    #[error("unsupported")]
    Unsupported { items: Vec<String> },
}

pub fn load_model(path: &Path) -> Result<Model, ImportError> {
    Err(ImportError::Stub)
}
pub fn load_model_bytes(bytes: &[u8], dir: Option<&Path>) -> Result<Model, ImportError> {
    Err(ImportError::Stub)
}
pub fn load_tensor_pb(path: &Path) -> Result<(String, Tensor), ImportError> {
    Err(ImportError::Stub)
}
pub fn tensor_to_pb_bytes(name: &str, t: &Tensor) -> Vec<u8> {
    vec![]
}
