//! optc runtime: loads an artifact (one file: manifest, kernel sources, weights) and runs it on a
//! device. It depends on no compiler crate (no egg, petgraph, protobuf, passes or codegen), so a
//! runtime team can embed it in a small binary.

#![warn(missing_docs)]

pub mod manifest;

pub use manifest::{
    DeviceType, HostType, KernelInfo, Launch, Location, Manifest, MemoryStats, Region,
    Requirements, Target, TensorInfo,
};
