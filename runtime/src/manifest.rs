//! The artifact manifest: everything the executor needs to run a compiled model — its inputs and
//! outputs, the kernels and their launches in order, and where every tensor lives in device
//! memory. The compiler fills it in; the runtime reads it. It is serialised as JSON inside the
//! artifact so that `optc inspect` and humans can read it too.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A compilation target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// WebGPU Shading Language, run through wgpu.
    Wgsl,
    /// PTX for compute capability 8.0.
    Sm80,
    /// PTX for compute capability 8.6.
    Sm86,
    /// PTX for compute capability 8.9.
    Sm89,
    /// PTX for compute capability 9.0.
    Sm90,
    /// PTX for compute capability 9.0a (wgmma, TMA).
    Sm90a,
}

impl Target {
    /// Every target, in the order the CLI lists them.
    pub const ALL: [Target; 6] = [
        Target::Wgsl,
        Target::Sm80,
        Target::Sm86,
        Target::Sm89,
        Target::Sm90,
        Target::Sm90a,
    ];

    /// The name the CLI and artifacts use (`wgsl`, `sm_89`, …).
    pub fn name(self) -> &'static str {
        match self {
            Target::Wgsl => "wgsl",
            Target::Sm80 => "sm_80",
            Target::Sm86 => "sm_86",
            Target::Sm89 => "sm_89",
            Target::Sm90 => "sm_90",
            Target::Sm90a => "sm_90a",
        }
    }

    /// True for the CUDA (PTX) targets.
    pub fn is_cuda(self) -> bool {
        self != Target::Wgsl
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Target, String> {
        Target::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Target::ALL.iter().map(|t| t.name()).collect();
                format!(
                    "unknown target '{s}' (expected one of {})",
                    names.join(", ")
                )
            })
    }
}

/// Element type of a tensor as the host sees it (the ONNX dtype of a graph input or output).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum HostType {
    F32,
    F16,
    Bf16,
    F64,
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    Bool,
    /// The storage-only low-precision types ([`HostType::is_code`]).
    F8e4m3fn,
    F8e4m3fnuz,
    F8e5m2,
    F8e5m2fnuz,
    F8e8m0,
    F4e2m1,
    I4,
    U4,
    I2,
    U2,
}

impl HostType {
    /// Bytes per element on the host (bool and the code types: one byte).
    pub fn size(self) -> usize {
        match self {
            HostType::I8 | HostType::U8 | HostType::Bool => 1,
            t if t.is_code() => 1,
            HostType::F16 | HostType::Bf16 | HostType::I16 | HostType::U16 => 2,
            HostType::F32 | HostType::I32 | HostType::U32 => 4,
            HostType::F64 | HostType::I64 | HostType::U64 => 8,
            _ => 1,
        }
    }
}

/// Element type of a tensor in device memory. Host types that a target cannot hold are stored
/// widened or narrowed: i8/u8/i16/u16/bool as i32/u32, i64 as i32 (the compiler only does this
/// where the values provably fit, and the runtime checks inputs), the code types
/// ([`HostType::is_code`]) as u32 codes; f64 is refused by the compiler. bf16 is stored as 16
/// bits on PTX targets (`Bf16`) and widened to f32 on WGSL, which has no bf16.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum DeviceType {
    F32,
    F16,
    Bf16,
    I32,
    U32,
}

impl DeviceType {
    /// Bytes per element on the device.
    pub fn size(self) -> usize {
        match self {
            DeviceType::F16 | DeviceType::Bf16 => 2,
            _ => 4,
        }
    }
}

/// A device memory region.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Region {
    /// The activation arena: inputs, outputs and intermediates, planned by lifetimes.
    Arena,
    /// The read-only weights section of the artifact, uploaded once at load.
    Weights,
}

/// A byte range in a region. Offsets are multiples of 256 (the binding-offset alignment every
/// device accepts).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Location {
    /// Which region.
    pub region: Region,
    /// Byte offset in the region.
    pub offset: u64,
    /// Length in bytes.
    pub bytes: u64,
}

/// A graph input or output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorInfo {
    /// The ONNX value name.
    pub name: String,
    /// Host element type.
    pub dtype: HostType,
    /// Static shape.
    pub shape: Vec<u64>,
    /// Element type in device memory.
    pub device: DeviceType,
    /// Where the tensor lives.
    pub location: Location,
}

impl TensorInfo {
    /// Number of elements.
    pub fn numel(&self) -> u64 {
        self.shape.iter().product()
    }
}

/// One compiled kernel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KernelInfo {
    /// Kernel (and entry point) name.
    pub name: String,
    /// Index of its source text in the artifact's sources section.
    pub source: u32,
    /// Workgroup (block) size.
    pub workgroup: [u32; 3],
}

/// One kernel launch, in execution order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Launch {
    /// Index into [`Manifest::kernels`].
    pub kernel: u32,
    /// Buffer bindings, in binding order (binding i of the kernel is `bindings[i]`).
    pub bindings: Vec<Location>,
    /// Number of workgroups along x, y, z.
    pub grid: [u32; 3],
    /// What the launch computes, for profiles: the graph node name(s) and op type(s).
    pub label: String,
}

/// What a device must offer to run the artifact.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Requirements {
    /// Some kernel uses f16 arithmetic or storage.
    pub f16: bool,
    /// Some kernel uses subgroup operations.
    pub subgroups: bool,
    /// Most storage buffers bound by one kernel.
    pub max_storage_buffers: u32,
    /// Most workgroup memory used by one kernel, bytes.
    pub max_workgroup_bytes: u32,
    /// Largest workgroup (threads).
    pub max_workgroup_threads: u32,
    /// Largest single buffer binding, bytes.
    pub max_binding_bytes: u64,
}

/// Memory statistics the compiler records for `optc inspect`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryStats {
    /// Sum of the sizes of all intermediate tensors (what no planning would allocate).
    pub intermediates_bytes: u64,
    /// The liveness lower bound: the largest total size of simultaneously live tensors.
    pub live_peak_bytes: u64,
}

/// The manifest of an artifact.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The compiler that wrote it (`optc 0.1.0`).
    pub producer: String,
    /// The model it was compiled from (file stem).
    pub model: String,
    /// The target it was compiled for.
    pub target: Target,
    /// What the device must support.
    pub requirements: Requirements,
    /// Graph inputs, in graph order.
    pub inputs: Vec<TensorInfo>,
    /// Graph outputs, in graph order.
    pub outputs: Vec<TensorInfo>,
    /// The kernels.
    pub kernels: Vec<KernelInfo>,
    /// The launches, in order.
    pub launches: Vec<Launch>,
    /// Size of the activation arena, bytes.
    pub arena_bytes: u64,
    /// Size of the weights section, bytes.
    pub weights_bytes: u64,
    /// Memory statistics.
    pub memory: MemoryStats,
}

impl HostType {
    /// True for the floating-point types.
    pub fn is_float(self) -> bool {
        matches!(
            self,
            HostType::F32 | HostType::F16 | HostType::Bf16 | HostType::F64
        )
    }

    /// True for the storage-only low-precision types (the float8 formats, FLOAT8E8M0,
    /// FLOAT4E2M1, INT4, UINT4, INT2, UINT2). Their host bytes are one *code* per element (the
    /// format's bit pattern in the low bits; ONNX packs 4-bit and 2-bit codes two or four to a
    /// byte, optc does not) and the device holds the codes widened to u32; kernels decode
    /// them. The runtime moves codes and never interprets them.
    pub fn is_code(self) -> bool {
        matches!(
            self,
            HostType::F8e4m3fn
                | HostType::F8e4m3fnuz
                | HostType::F8e5m2
                | HostType::F8e5m2fnuz
                | HostType::F8e8m0
                | HostType::F4e2m1
                | HostType::I4
                | HostType::U4
                | HostType::I2
                | HostType::U2
        )
    }

    /// The name ONNX users know (`f32`, `i64`, `bool`, …).
    pub fn name(self) -> &'static str {
        match self {
            HostType::F32 => "f32",
            HostType::F16 => "f16",
            HostType::Bf16 => "bf16",
            HostType::F64 => "f64",
            HostType::I8 => "i8",
            HostType::U8 => "u8",
            HostType::I16 => "i16",
            HostType::U16 => "u16",
            HostType::I32 => "i32",
            HostType::U32 => "u32",
            HostType::I64 => "i64",
            HostType::U64 => "u64",
            HostType::Bool => "bool",
            HostType::F8e4m3fn => "f8e4m3fn",
            HostType::F8e4m3fnuz => "f8e4m3fnuz",
            HostType::F8e5m2 => "f8e5m2",
            HostType::F8e5m2fnuz => "f8e5m2fnuz",
            HostType::F8e8m0 => "f8e8m0",
            HostType::F4e2m1 => "f4e2m1",
            HostType::I4 => "i4",
            HostType::U4 => "u4",
            HostType::I2 => "i2",
            HostType::U2 => "u2",
        }
    }

    /// Whether a tensor of this host type may be stored as `device` (floats as floats, integers
    /// and bools as integers).
    pub fn storable_as(self, device: DeviceType) -> bool {
        if self.is_code() {
            return device == DeviceType::U32;
        }
        self.is_float() == device.is_float()
    }
}

impl fmt::Display for HostType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl DeviceType {
    /// True for f32, f16 and bf16.
    pub fn is_float(self) -> bool {
        matches!(self, DeviceType::F32 | DeviceType::F16 | DeviceType::Bf16)
    }

    /// The WGSL-style name (`f32`, `f16`, `i32`, `u32`).
    pub fn name(self) -> &'static str {
        match self {
            DeviceType::F32 => "f32",
            DeviceType::F16 => "f16",
            DeviceType::Bf16 => "bf16",
            DeviceType::I32 => "i32",
            DeviceType::U32 => "u32",
        }
    }
}

impl fmt::Display for DeviceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Location {
    /// One past the last byte, or `None` on overflow.
    pub fn end(&self) -> Option<u64> {
        self.offset.checked_add(self.bytes)
    }
}

impl TensorInfo {
    /// Bytes the tensor occupies on the device (`numel × device size`), or `None` on overflow.
    pub fn device_bytes(&self) -> Option<u64> {
        self.shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))?
            .checked_mul(self.device.size() as u64)
    }
}

/// The alignment of every [`Location::offset`] (the binding-offset alignment every device
/// accepts).
pub const LOCATION_ALIGN: u64 = 256;

impl Manifest {
    /// Size of a region in bytes.
    pub fn region_bytes(&self, region: Region) -> u64 {
        match region {
            Region::Arena => self.arena_bytes,
            Region::Weights => self.weights_bytes,
        }
    }

    /// Checks that the manifest is consistent with itself and with an artifact holding
    /// `source_count` kernel sources and a weights section of `weights_len` bytes: kernel and
    /// source indices in range, every location aligned and inside its region, tensor sizes equal
    /// to `numel × device size`, inputs in the arena, one binding count per kernel. The message
    /// names the first offending item.
    pub fn check(&self, source_count: usize, weights_len: u64) -> Result<(), String> {
        if self.weights_bytes != weights_len {
            return Err(format!(
                "weights_bytes is {} but the weights section holds {weights_len} bytes",
                self.weights_bytes
            ));
        }
        let check_location = |what: &dyn Fn() -> String, loc: &Location| -> Result<(), String> {
            let size = self.region_bytes(loc.region);
            let region = match loc.region {
                Region::Arena => "arena",
                Region::Weights => "weights",
            };
            if loc.offset % LOCATION_ALIGN != 0 {
                return Err(format!(
                    "{}: offset {} is not a multiple of {LOCATION_ALIGN}",
                    what(),
                    loc.offset
                ));
            }
            match loc.end() {
                Some(end) if end <= size => Ok(()),
                _ => Err(format!(
                    "{}: bytes {}..{} lie outside the {region} region ({size} bytes)",
                    what(),
                    loc.offset,
                    loc.offset as u128 + loc.bytes as u128
                )),
            }
        };
        for (kind, list) in [("input", &self.inputs), ("output", &self.outputs)] {
            for t in list.iter() {
                let what = || format!("{kind} '{}'", t.name);
                check_location(&what, &t.location)?;
                if !t.dtype.storable_as(t.device) {
                    return Err(format!(
                        "{}: host type {} cannot be stored as {}",
                        what(),
                        t.dtype,
                        t.device
                    ));
                }
                if t.device_bytes() != Some(t.location.bytes) {
                    return Err(format!(
                        "{}: shape {:?} of {} needs {} bytes, the location has {}",
                        what(),
                        t.shape,
                        t.device,
                        t.device_bytes()
                            .map_or_else(|| "too many".to_string(), |b| b.to_string()),
                        t.location.bytes
                    ));
                }
                if kind == "input" && t.location.region != Region::Arena {
                    return Err(format!("{}: inputs must live in the arena", what()));
                }
            }
        }
        for (i, k) in self.kernels.iter().enumerate() {
            if k.source as usize >= source_count {
                return Err(format!(
                    "kernel {i} '{}' uses source {} but the artifact has {source_count} sources",
                    k.name, k.source
                ));
            }
        }
        let mut binding_counts: Vec<Option<usize>> = vec![None; self.kernels.len()];
        for (i, l) in self.launches.iter().enumerate() {
            let Some(count) = binding_counts.get_mut(l.kernel as usize) else {
                return Err(format!(
                    "launch {i} ({}) uses kernel {} but the artifact has {} kernels",
                    l.label,
                    l.kernel,
                    self.kernels.len()
                ));
            };
            match count {
                Some(n) if *n != l.bindings.len() => {
                    return Err(format!(
                        "launch {i} ({}) binds {} buffers but another launch of the same kernel binds {n}",
                        l.label,
                        l.bindings.len()
                    ));
                }
                _ => *count = Some(l.bindings.len()),
            }
            for (b, loc) in l.bindings.iter().enumerate() {
                let what = || format!("launch {i} ({}) binding {b}", l.label);
                check_location(&what, loc)?;
                if loc.bytes == 0 || loc.bytes % 4 != 0 {
                    return Err(format!(
                        "{}: size {} is not a positive multiple of 4",
                        what(),
                        loc.bytes
                    ));
                }
            }
        }
        Ok(())
    }
}
