//! Fused kernels ([`Op::Fused`]): one kernel launch per fusion, so that intermediates never go
//! through memory.
//!
//! - Without an anchor, the program is one elementwise kernel
//!   ([`super::elementwise::lower_program`]): every program input loaded once (known scalars
//!   inlined as literals), the steps evaluated in order in registers, the result stored.
//! - With an anchor, the anchor's own template runs with an [`Epilogue`] applied at each of its
//!   stores. Anchors with an epilogue: Conv (implicit GEMM, pointwise 1×1, depthwise,
//!   grouped), ConvTranspose, Gemm, MatMul (float: the GEMM core; integer: the dot kernel) and
//!   Einsum (the forms it lowers). ConvInteger, QLinearConv, MatMulInteger and QLinearMatMul
//!   refuse one; any other anchor is unsupported.
//!
//! [`supports_fused`] / [`check_fused`] say exactly whether [`lower_fused`] (hence
//! [`super::lower`]) accepts a fused op, running the same checks without building the GEMM
//! kernels; the optimizer calls it to decide a fusion's legality.
//!
//! Precision: intermediates stay in registers at compute precision (f32 for f16/bf16 values),
//! where the unfused graph would round each f16 intermediate when storing it.

use super::elementwise;
use super::epilogue::Epilogue;
use super::{LowerCtx, LowerError, Lowered, BuildMode, TensorDesc, check_storage, conv, gemm};
use optc_ir::infer::{InferInput, infer};
use optc_ir::ops::{Fused, Op};
use optc_ir::tensor::Tensor;
use optc_ir::types::TensorType;

/// Lowers a fused op (see the module docs) to one kernel launch (none for an empty output).
pub fn lower_fused(ctx: &LowerCtx<'_>) -> Result<Lowered, LowerError> {
    lower_mode(ctx, BuildMode::Build)
}

/// `Ok` exactly when [`super::lower`] lowers this fused op (`ctx.op` must be [`Op::Fused`]);
/// otherwise the error `lower` would give. Runs the same analysis as the lowering but builds
/// no GEMM kernel, so it costs a small fraction of lowering.
pub fn check_fused(ctx: &LowerCtx<'_>) -> Result<(), LowerError> {
    check_storage(ctx)?;
    lower_mode(ctx, BuildMode::Check).map(|_| ())
}

/// Whether the WGSL target lowers fused op `f` with these input descriptors (`None` for absent
/// optional anchor inputs), compile-time input contents (`values[k]` for input `k`; pass `&[]`
/// when none are known: known scalar constants only ever save bindings, so the answer without
/// them is never `true` where the answer with them is `false`) and output descriptor — exactly
/// [`check_fused`] on the corresponding [`LowerCtx`].
pub fn supports_fused(
    f: &Fused,
    inputs: &[Option<TensorDesc>],
    values: &[Option<&Tensor>],
    output: &TensorDesc,
) -> bool {
    let op = Op::Fused(Box::new(f.clone()));
    let outputs = [Some(output.clone())];
    let ctx = LowerCtx {
        op: &op,
        name: "check",
        inputs,
        values,
        outputs: &outputs,
    };
    check_fused(&ctx).is_ok()
}

/// The output type of `anchor` on these inputs, by the IR's inference.
fn anchor_output(
    ctx: &LowerCtx<'_>,
    anchor: &Op,
    inputs: &[Option<TensorDesc>],
    values: &[Option<&Tensor>],
) -> Result<TensorDesc, LowerError> {
    let tys: Vec<Option<TensorType>> = inputs
        .iter()
        .map(|d| d.as_ref().map(|d| TensorType::fixed(d.dtype, &d.shape)))
        .collect();
    let ins: Vec<Option<InferInput<'_>>> = tys
        .iter()
        .enumerate()
        .map(|(k, t)| {
            t.as_ref().map(|ty| InferInput {
                ty,
                value: values.get(k).copied().flatten(),
            })
        })
        .collect();
    let t = infer(anchor, &ins, 1)
        .map_err(|e| ctx.invalid(format!("anchor {}: {e}", anchor.name())))?
        .into_iter()
        .next()
        .ok_or_else(|| ctx.invalid(format!("anchor {} has no output", anchor.name())))?;
    let shape = t
        .shape
        .as_static()
        .ok_or_else(|| ctx.invalid(format!("anchor {} has a dynamic shape", anchor.name())))?;
    Ok(TensorDesc::new(t.dtype, shape))
}

fn lower_mode(ctx: &LowerCtx<'_>, mode: BuildMode) -> Result<Lowered, LowerError> {
    let Op::Fused(f) = ctx.op else {
        return Err(ctx.invalid("not a fused op"));
    };
    let Some(anchor) = &f.anchor else {
        return elementwise::lower_program(ctx, f);
    };
    let na = f.anchor_inputs;
    if na > ctx.inputs.len() {
        return Err(ctx.invalid(format!(
            "the anchor takes {na} inputs, the op has {}",
            ctx.inputs.len()
        )));
    }
    let a_inputs = &ctx.inputs[..na];
    let a_values = &ctx.values[..na.min(ctx.values.len())];
    let acc = anchor_output(ctx, anchor, a_inputs, a_values)?;
    let out = ctx.output(0)?;
    if acc.shape != out.shape {
        return Err(ctx.invalid(format!(
            "the anchor's output {:?} is not the fused output {:?}",
            acc.shape, out.shape
        )));
    }
    let outputs = [Some(acc.clone())];
    let actx = LowerCtx {
        op: anchor,
        name: ctx.name,
        inputs: a_inputs,
        values: a_values,
        outputs: &outputs,
    };
    check_storage(&actx)?;
    if !matches!(
        anchor,
        Op::Conv(_) | Op::ConvTranspose { .. } | Op::Gemm { .. } | Op::MatMul | Op::Einsum { .. }
    ) {
        return Err(match anchor {
            Op::ConvInteger(_) | Op::QLinearConv(_) | Op::MatMulInteger | Op::QLinearMatMul => {
                actx.unsupported("with a fused epilogue")
            }
            _ => actx.unsupported("as the anchor of a fused kernel"),
        });
    }
    let ep = Some(Epilogue::new(ctx, f, acc.dtype)?);
    match anchor {
        Op::MatMul => gemm::lower_matmul_with(&actx, ep, mode),
        Op::Gemm { .. } => gemm::lower_gemm_with(&actx, ep, mode),
        Op::Einsum { .. } => gemm::lower_einsum_with(&actx, ep, mode),
        _ => conv::lower_with(&actx, ep, mode),
    }
}
