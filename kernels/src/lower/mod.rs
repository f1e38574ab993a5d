//! Lowering of graph operators to kernels: the templates.
//!
//! [`lower`] takes one operator with static input and output types (and the contents of inputs
//! known at compile time, such as axes or pads) and returns the kernels that compute it, each with
//! its arguments ([`Arg`]) and launch grid, plus any scratch tensors the kernels need. Ops that
//! only reinterpret a buffer (Reshape, Squeeze, Identity, …) lower to an alias instead.
//!
//! Device storage: floats are f32 (f16 stays f16; bf16 is declared f32 — widened on WGSL, and
//! 16 bits on PTX where [`lower`] marks the buffers [`crate::ir::Buffer::bf16`]), signed integers are
//! i32 (i8/i16 sign-extended; i64 narrowed, which the compiler only allows where the values are
//! indices or shapes, and the runtime range-checks inputs), unsigned integers are u32 and bools
//! are u32 0/1. Kernels compute floats in f32, signed integers in i32, unsigned in u32.
//!
//! Every template module documents its tuning space; the defaults here are heuristics.
//!
//! Fused kernels ([`Op::Fused`], chosen by the optimizer) lower in [`fused`]: an elementwise
//! program becomes one elementwise kernel, and a program on an anchor (Conv, ConvTranspose,
//! Gemm, MatMul, Einsum) becomes the anchor's kernel with an [`epilogue::Epilogue`] applied at
//! its stores. Fused attention ([`Op::FusedAttention`]) lowers in [`attention`] (one kernel,
//! online softmax). [`fused::supports_fused_op`] tells the optimizer exactly which fusions
//! lower.

pub mod attention;
pub mod common;
pub mod conv;
pub mod elementwise;
pub mod epilogue;
pub mod fused;
pub mod gather;
pub mod gemm;
pub mod lowp;
pub mod mma;
pub mod movement;
pub mod norm;
pub mod pool;
pub mod reduce;
pub mod resize;
#[cfg(test)]
pub(crate) mod sim;
pub mod softmax;

use crate::ir::{Kernel, Scalar};
use optc_ir::dtype::DType;
use optc_ir::ops::Op;
use optc_ir::tensor::Tensor;

/// A tensor as a kernel sees it: its graph dtype and static shape.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorDesc {
    /// Graph dtype.
    pub dtype: DType,
    /// Static shape.
    pub shape: Vec<usize>,
}

impl TensorDesc {
    /// A descriptor.
    pub fn new(dtype: DType, shape: Vec<usize>) -> TensorDesc {
        TensorDesc { dtype, shape }
    }
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// What a kernel binding refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arg {
    /// Input `i` of the op.
    Input(usize),
    /// Output `i` of the op.
    Output(usize),
    /// Scratch tensor `i` of the lowering.
    Temp(usize),
}

/// One kernel launch of a lowered op.
#[derive(Clone, Debug)]
pub struct KernelLaunch {
    /// The kernel.
    pub kernel: Kernel,
    /// What each binding refers to (binding `i` is `args[i]`).
    pub args: Vec<Arg>,
    /// Workgroups along x, y, z.
    pub grid: [u32; 3],
}

/// The result of lowering one op.
#[derive(Clone, Debug, Default)]
pub struct Lowered {
    /// `(output, input)`: the output is the input's buffer, reinterpreted (no kernel).
    pub aliases: Vec<(usize, usize)>,
    /// Scratch tensors, live only during this op's launches.
    pub temps: Vec<TensorDesc>,
    /// The launches, in order.
    pub launches: Vec<KernelLaunch>,
}

/// Why an op cannot be lowered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LowerError {
    /// The target cannot compute this op (or this form of it).
    #[error("unsupported on {target}: {op} {what}")]
    Unsupported {
        /// Target name.
        target: &'static str,
        /// Op type.
        op: &'static str,
        /// What is missing (`needs int64`, `with a runtime axes input`…).
        what: String,
    },
    /// The op's inputs contradict its definition (a compiler or model bug).
    #[error("{op}: {msg}")]
    Invalid {
        /// Op type.
        op: &'static str,
        /// What is wrong.
        msg: String,
    },
}

impl LowerError {
    /// The error naming `target` as the target it is unsupported on. Templates are
    /// target-neutral and [`LowerCtx::unsupported`] names `wgsl`; the compile driver, which
    /// knows the real target, renames it.
    pub fn for_target(self, target: &'static str) -> LowerError {
        match self {
            LowerError::Unsupported { op, what, .. } => {
                LowerError::Unsupported { target, op, what }
            }
            e => e,
        }
    }
}

/// Everything a template needs to know about one node.
pub struct LowerCtx<'a> {
    /// The op.
    pub op: &'a Op,
    /// A kernel-name stem unique within the model (e.g. `n12_conv`).
    pub name: &'a str,
    /// Input descriptors (`None` for absent optional inputs).
    pub inputs: &'a [Option<TensorDesc>],
    /// Input contents known at compile time (constants and folded values).
    pub values: &'a [Option<&'a Tensor>],
    /// Output descriptors (`None` for unused optional outputs).
    pub outputs: &'a [Option<TensorDesc>],
    /// What the target offers beyond the portable kernel IR (default: nothing).
    pub features: Features,
}

/// Target capabilities templates may use; the portable path (every field `false`) is what
/// every target runs, and what the optimizer's fusion legality ([`fused::supports_fused_op`])
/// checks: a template that uses a feature falls back to the portable path where it cannot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Features {
    /// Warp-level matrix multiply-accumulate (PTX `mma.sync`): GEMMs of f16 operands run on
    /// tensor cores ([`mma`]).
    pub tensor_cores: bool,
    /// With `tensor_cores`: GEMMs of f32 operands may run on tf32 tensor cores (operands
    /// rounded to 10 mantissa bits).
    pub allow_tf32: bool,
    /// The device is a GPU whose per-thread register file (255 × 32 bit on NVIDIA) cannot hold
    /// tiles of hundreds of floats: templates that size register tiles for a CPU-backed device
    /// (lavapipe spills them cheaply to the stack) keep them small. Set for the sm targets; a
    /// WGSL artifact's device is unknown at compile time and gets CI's (lavapipe) tiles.
    pub small_register_file: bool,
    /// bf16 tensors are stored as 16 bits (PTX): templates still declare them f32 (as
    /// [`storage_scalar`] says), and [`lower`] marks those buffers [`crate::ir::Buffer::bf16`],
    /// so the printer widens loads and rounds stores; the tensor-core pipeline copies them raw.
    pub bf16_storage: bool,
}

impl<'a> LowerCtx<'a> {
    /// Input `i`, which must be present.
    pub fn input(&self, i: usize) -> Result<&'a TensorDesc, LowerError> {
        self.inputs
            .get(i)
            .and_then(|d| d.as_ref())
            .ok_or_else(|| self.invalid(format!("input {i} is missing")))
    }
    /// Input `i` if present.
    pub fn opt_input(&self, i: usize) -> Option<&'a TensorDesc> {
        self.inputs.get(i).and_then(|d| d.as_ref())
    }
    /// Output `i`, which must be used.
    pub fn output(&self, i: usize) -> Result<&'a TensorDesc, LowerError> {
        self.outputs
            .get(i)
            .and_then(|d| d.as_ref())
            .ok_or_else(|| self.invalid(format!("output {i} is missing")))
    }
    /// The compile-time contents of input `i`, if known.
    pub fn value(&self, i: usize) -> Option<&'a Tensor> {
        self.values.get(i).copied().flatten()
    }
    /// The compile-time contents of input `i` as integers; an error naming `what` when the
    /// input is only known at run time.
    pub fn const_ints(&self, i: usize, what: &str) -> Result<Vec<i64>, LowerError> {
        match self.value(i) {
            Some(t) => Ok(t.to_i64_vec()),
            None => Err(self.unsupported(format!("with a runtime {what} input"))),
        }
    }
    /// An `Unsupported` error for this op, naming `wgsl` as the target (the compile driver
    /// renames it with [`LowerError::for_target`]).
    pub fn unsupported(&self, what: impl Into<String>) -> LowerError {
        LowerError::Unsupported {
            target: "wgsl",
            op: self.op.name(),
            what: what.into(),
        }
    }
    /// An `Invalid` error for this op.
    pub fn invalid(&self, msg: impl Into<String>) -> LowerError {
        LowerError::Invalid {
            op: self.op.name(),
            msg: msg.into(),
        }
    }
    /// A kernel name `<stem>_<suffix>`.
    pub fn kname(&self, suffix: &str) -> String {
        if suffix.is_empty() {
            self.name.to_string()
        } else {
            format!("{}_{suffix}", self.name)
        }
    }
}

/// The scalar a tensor of `dtype` is stored as on the device, or `None` when the target cannot
/// hold it (f64, u64 and the low-precision storage types).
pub fn storage_scalar(dtype: DType) -> Option<Scalar> {
    Some(match dtype {
        DType::F32 | DType::BF16 => Scalar::F32,
        DType::F16 => Scalar::F16,
        DType::I8 | DType::I16 | DType::I32 | DType::I64 => Scalar::I32,
        DType::U8 | DType::U16 | DType::U32 | DType::Bool => Scalar::U32,
        // Storage-only low-precision dtypes: one code per u32 (see [`lowp`]).
        d if d.is_lowp() => Scalar::U32,
        _ => return None,
    })
}

/// The scalar kernels compute a `dtype` value in.
pub fn compute_scalar(dtype: DType) -> Option<Scalar> {
    Some(match dtype {
        DType::F32 | DType::BF16 | DType::F16 => Scalar::F32,
        DType::I8 | DType::I16 | DType::I32 | DType::I64 => Scalar::I32,
        DType::U8 | DType::U16 | DType::U32 => Scalar::U32,
        DType::Bool => Scalar::Bool,
        DType::I4 | DType::I2 => Scalar::I32,
        DType::U4 | DType::U2 => Scalar::U32,
        // The float8 formats, FLOAT8E8M0 and FLOAT4E2M1: exact in f32.
        d if d.is_lowp() => Scalar::F32,
        _ => return None,
    })
}

/// Whether a lowering builds its kernels or only checks that building them would succeed
/// (for [`fused::check_fused`]: the expensive GEMM kernel is then not built).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BuildMode {
    /// Build the kernels.
    Build,
    /// Only check.
    Check,
}

/// Refuses ops with an input or output dtype the device cannot store.
fn check_storage(ctx: &LowerCtx<'_>) -> Result<(), LowerError> {
    for d in ctx.inputs.iter().chain(ctx.outputs.iter()).flatten() {
        if storage_scalar(d.dtype).is_none() {
            return Err(ctx.unsupported(format!("needs {}", d.dtype.name())));
        }
    }
    Ok(())
}

/// Lowers one op.
pub fn lower(ctx: &LowerCtx<'_>) -> Result<Lowered, LowerError> {
    let mut l = lower_op(ctx)?;
    if ctx.features.bf16_storage {
        mark_bf16_buffers(ctx, &mut l);
    }
    Ok(l)
}

/// Marks the f32-declared buffers bound to bf16 tensors as 16-bit storage.
fn mark_bf16_buffers(ctx: &LowerCtx<'_>, l: &mut Lowered) {
    let dtype = |a: &Arg| -> Option<DType> {
        match *a {
            Arg::Input(i) => ctx.inputs.get(i)?.as_ref().map(|d| d.dtype),
            Arg::Output(i) => ctx.outputs.get(i)?.as_ref().map(|d| d.dtype),
            Arg::Temp(i) => l.temps.get(i).map(|d| d.dtype),
        }
    };
    let marks: Vec<Vec<bool>> = l
        .launches
        .iter()
        .map(|k| {
            k.args
                .iter()
                .map(|a| dtype(a) == Some(DType::BF16))
                .collect()
        })
        .collect();
    for (k, m) in l.launches.iter_mut().zip(marks) {
        for (b, bf16) in k.kernel.buffers.iter_mut().zip(m) {
            b.bf16 = bf16 && b.elem.scalar == Scalar::F32;
        }
    }
}

fn lower_op(ctx: &LowerCtx<'_>) -> Result<Lowered, LowerError> {
    check_storage(ctx)?;
    match ctx.op {
        Op::Identity | Op::Reshape { .. } | Op::Flatten { .. } | Op::Squeeze | Op::Unsqueeze => {
            Ok(Lowered {
                aliases: vec![(0, 0)],
                ..Lowered::default()
            })
        }
        Op::Unary(_)
        | Op::Activation(_)
        | Op::Binary(_)
        | Op::Variadic(_)
        | Op::Clip
        | Op::Where
        | Op::Cast { .. }
        | Op::CastExt { .. }
        | Op::Bitwise(_)
        | Op::Dropout
        | Op::Swish { .. }
        | Op::Shrink { .. }
        | Op::QuantizeLinear { .. }
        | Op::DequantizeLinear { .. } => elementwise::lower(ctx),
        // gemm / conv family (kernels/src/lower/gemm.rs, conv.rs)
        Op::MatMul => gemm::lower_matmul(ctx),
        Op::Gemm { .. } => gemm::lower_gemm(ctx),
        Op::MatMulInteger | Op::QLinearMatMul => gemm::lower_quant_matmul(ctx),
        Op::Conv(_) | Op::ConvInteger(_) | Op::QLinearConv(_) | Op::ConvTranspose { .. } => {
            conv::lower(ctx)
        }
        Op::Einsum { .. } => gemm::lower_einsum(ctx),
        // Data movement (movement.rs, gather.rs, resize.rs).
        Op::Transpose { .. }
        | Op::Slice
        | Op::Expand
        | Op::Tile
        | Op::DepthToSpace { .. }
        | Op::SpaceToDepth { .. }
        | Op::Concat { .. }
        | Op::Split { .. }
        | Op::Pad { .. }
        | Op::Trilu { .. }
        | Op::ReverseSequence { .. }
        | Op::CenterCropPad { .. }
        | Op::Compress { .. }
        | Op::ConstantOfShape { .. }
        | Op::EyeLike { .. }
        | Op::Range => movement::lower(ctx),
        Op::Gather { .. }
        | Op::GatherElements { .. }
        | Op::GatherNd { .. }
        | Op::ScatterElements { .. }
        | Op::ScatterNd { .. }
        | Op::OneHot { .. } => gather::lower(ctx),
        Op::Resize(_) => resize::lower(ctx),
        // reduce2: row reductions (reduce.rs), softmax.rs, norm.rs, pool.rs
        Op::Reduce { .. }
        | Op::ArgMax { .. }
        | Op::ArgMin { .. }
        | Op::CumSum { .. }
        | Op::CumProd { .. }
        | Op::TopK { .. } => reduce::lower(ctx),
        Op::Softmax { .. } | Op::LogSoftmax { .. } | Op::Hardmax { .. } => softmax::lower(ctx),
        Op::Norm { .. }
        | Op::LpNormalization { .. }
        | Op::MeanVarianceNormalization { .. }
        | Op::Lrn { .. } => norm::lower(ctx),
        Op::MaxPool { .. }
        | Op::AveragePool { .. }
        | Op::LpPool { .. }
        | Op::GlobalAveragePool
        | Op::GlobalMaxPool => pool::lower(ctx),
        Op::Fused(_) => fused::lower_fused(ctx),
        Op::FusedAttention(_) => attention::lower_attention(ctx),
        _ => Err(ctx.unsupported("has no kernel template yet")),
    }
}
