//! Model front ends. Only ONNX for now.

pub mod onnx;
