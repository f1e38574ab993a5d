//! Fused epilogues: the elementwise program of an anchored [`Fused`] op, applied by the anchor's
//! template at each output store, so that the anchor's result never goes through memory.
//!
//! An [`Epilogue`] holds the program, the extra operands (program inputs `k ≥ 1`: fused inputs
//! `anchor_inputs + k - 1`, broadcast numpy-style to the output without enlarging it) and the
//! dtype of every program value. A template binds it once per kernel ([`Epilogue::bind`], after
//! its own input buffers, before the output), then at every store calls [`Bound::apply`] with
//! the anchor's value (after the template's own bias / alpha / beta: program input 0) and the
//! output element's flat index, or [`Bound::apply_lanes`] for a vector store of consecutive
//! elements, and stores the result (converted with [`super::common::to_storage`] to the fused
//! output dtype). After the kernel is built, [`Bound::finish`] reports any error.
//!
//! Extra operands are addressed from the flat output index with one division and remainder per
//! run of non-broadcast dims ([`super::common::broadcast_flat_offset`]): a same-shape residual
//! reads at the flat index, a per-channel `[C, 1, 1]` scale at `(flat / plane) % C`. An operand
//! that is the same for all lanes of a vector store (a per-channel operand along a plane that
//! is a multiple of 4) is loaded once. Known scalar constants become literals and bind nothing.
//!
//! Precision: values stay in registers at compute precision (f32 for f16 and bf16), so an f16
//! intermediate the unfused graph would have rounded when storing it is not rounded here; only
//! the result is rounded to the output dtype.

use super::common::{self, broadcast_flat_offset, broadcasts_to, lane_invariant};
use super::elementwise::{eval_program, program_dtypes, scalar_literal, zero_of};
use super::{Arg, LowerCtx, LowerError, TensorDesc, compute_scalar, storage_scalar};
use crate::builder::{KernelBuilder, f, i};
use crate::ir::{Access, Expr, Scalar, Type};
use optc_ir::dtype::DType;
use optc_ir::ops::{Fused, Program};
use std::cell::RefCell;

/// Most bindings one kernel may declare (WebGPU's portable minimum of storage buffers).
pub const MAX_BINDINGS: usize = 8;

/// An extra operand of an epilogue (program input `k ≥ 1`).
#[derive(Clone, Debug, PartialEq)]
pub struct Extra {
    /// The fused op's input it binds.
    pub arg: Arg,
    /// Its dtype.
    pub dtype: DType,
    /// Its shape (broadcast to the output's).
    pub shape: Vec<usize>,
    /// Its single element as a literal when it is a known scalar (binds no buffer).
    pub literal: Option<Expr>,
    /// Whether a step reads it (unread operands bind nothing).
    pub used: bool,
}

/// The elementwise program of an anchored fused op, as the anchor's templates apply it.
#[derive(Clone, Debug, PartialEq)]
pub struct Epilogue {
    /// The program; input 0 is the anchor's value.
    pub program: Program,
    /// Program inputs `1..`.
    pub extras: Vec<Extra>,
    /// The fused op's output: the anchor's shape, the program result's dtype.
    pub out: TensorDesc,
    /// The dtype of every program value (inputs, then one per step).
    pub dtypes: Vec<DType>,
}

impl Epilogue {
    /// The epilogue of fused op `f` (`ctx` is the fused op's context) on an anchor whose output
    /// has dtype `acc` and the fused output's shape. Checks the program against the operands'
    /// dtypes and shapes, and that every step has a kernel form (by building it once into a
    /// scratch kernel): a template that accepts the epilogue cannot fail to apply it.
    pub fn new(ctx: &LowerCtx<'_>, f: &Fused, acc: DType) -> Result<Epilogue, LowerError> {
        let out = ctx.output(0)?.clone();
        let n_extra = f
            .program
            .inputs
            .checked_sub(1)
            .ok_or_else(|| ctx.invalid("an anchored program has no input for the anchor"))?;
        if ctx.inputs.len() != f.anchor_inputs + n_extra {
            return Err(ctx.invalid(format!(
                "{} inputs, but the anchor takes {} and the program {} more",
                ctx.inputs.len(),
                f.anchor_inputs,
                n_extra
            )));
        }
        let reads = |v: usize| f.program.steps.iter().any(|s| s.args.contains(&Some(v)));
        let mut extras = Vec::with_capacity(n_extra);
        for k in 0..n_extra {
            let idx = f.anchor_inputs + k;
            let d = ctx.input(idx)?;
            if !broadcasts_to(&d.shape, &out.shape) {
                return Err(ctx.invalid(format!(
                    "epilogue operand {idx} of shape {:?} does not broadcast to the output {:?}",
                    d.shape, out.shape
                )));
            }
            extras.push(Extra {
                arg: Arg::Input(idx),
                dtype: d.dtype,
                shape: d.shape.clone(),
                literal: scalar_literal(ctx, idx),
                used: reads(k + 1),
            });
        }
        if compute_scalar(acc).is_none() {
            return Err(ctx.unsupported(format!("with an anchor output of {}", acc.name())));
        }
        let mut ins = vec![acc];
        ins.extend(extras.iter().map(|e| e.dtype));
        let dtypes = program_dtypes(&f.program, &ins)?;
        if dtypes.last() != Some(&out.dtype) {
            return Err(ctx.invalid(format!(
                "the program gives {}, the output is {}",
                dtypes.last().map_or("nothing", |d| d.name()),
                out.dtype.name()
            )));
        }
        let mut scratch = KernelBuilder::new("check", [1, 1, 1]);
        let zeros = ins.iter().map(|&d| zero_of(d)).collect();
        eval_program(&mut scratch, &f.program, &dtypes, zeros)?;
        Ok(Epilogue {
            program: f.program.clone(),
            extras,
            out,
            dtypes,
        })
    }

    /// Number of buffers the epilogue binds.
    pub fn buffers(&self) -> usize {
        self.extras
            .iter()
            .filter(|e| e.used && e.literal.is_none())
            .count()
    }

    /// An `Unsupported` error when a kernel with `fixed` bindings of its own plus the
    /// epilogue's would exceed [`MAX_BINDINGS`].
    pub fn check_bindings(&self, ctx: &LowerCtx<'_>, fixed: usize) -> Result<(), LowerError> {
        let n = fixed + self.buffers();
        if n > MAX_BINDINGS {
            return Err(ctx.unsupported(format!(
                "with a fused epilogue needing {n} bindings (at most {MAX_BINDINGS})"
            )));
        }
        Ok(())
    }

    /// Declares the epilogue's buffers in `b` (appending their arguments to `args`).
    pub fn bind(&self, b: &mut KernelBuilder, args: &mut Vec<Arg>) -> Bound<'_> {
        let bufs = self
            .extras
            .iter()
            .enumerate()
            .map(|(k, e)| {
                if !e.used || e.literal.is_some() {
                    return None;
                }
                let s = storage_scalar(e.dtype).unwrap_or(Scalar::F32);
                args.push(e.arg);
                Some(b.buffer(format!("ep{}", k + 1), Type::scalar(s), Access::Read))
            })
            .collect();
        Bound {
            ep: self,
            bufs,
            err: RefCell::new(None),
        }
    }
}

/// An epilogue bound in one kernel.
pub struct Bound<'e> {
    ep: &'e Epilogue,
    bufs: Vec<Option<u32>>,
    err: RefCell<Option<LowerError>>,
}

impl Bound<'_> {
    /// The epilogue applied to `acc`, the anchor's value (in the compute scalar of the anchor's
    /// dtype) of the output element at flat index `flat` (i32): the result in the compute
    /// scalar of the output dtype.
    pub fn apply(&self, b: &mut KernelBuilder, acc: Expr, flat: &Expr) -> Expr {
        self.apply_lanes(b, vec![acc], flat).pop().unwrap_or(f(0.0))
    }

    /// The epilogue applied to the `w = accs.len()` consecutive output elements `flat0 ..
    /// flat0 + w`, where `flat0` is a multiple of `w` (a vector store's lanes). Operands that
    /// are the same for all lanes are loaded once.
    pub fn apply_lanes(&self, b: &mut KernelBuilder, accs: Vec<Expr>, flat0: &Expr) -> Vec<Expr> {
        let ep = self.ep;
        let w = accs.len();
        let acc_s = compute_scalar(ep.dtypes[0]).unwrap_or(Scalar::F32);
        let mut lanes: Vec<Vec<Expr>> = accs
            .into_iter()
            .map(|a| vec![b.let_(Type::scalar(acc_s), a)])
            .collect();
        let flats: Vec<Expr> = (0..w)
            .map(|l| {
                if l == 0 {
                    flat0.clone()
                } else {
                    flat0.clone() + i(l as i32)
                }
            })
            .collect();
        for (k, e) in ep.extras.iter().enumerate() {
            let vals: Vec<Expr> = match (&e.literal, self.bufs[k]) {
                (Some(lit), _) => vec![lit.clone(); w],
                (None, Some(buf)) => {
                    let cs = Type::scalar(compute_scalar(e.dtype).unwrap_or(Scalar::F32));
                    let load = |b: &mut KernelBuilder, flat: &Expr| {
                        let off = broadcast_flat_offset(flat, &ep.out.shape, &e.shape);
                        b.let_(cs, common::load(buf, off, e.dtype))
                    };
                    if w == 1 || lane_invariant(&ep.out.shape, &e.shape, w) {
                        vec![load(b, flat0); w]
                    } else {
                        flats.iter().map(|fl| load(b, fl)).collect()
                    }
                }
                (None, None) => vec![zero_of(e.dtype); w],
            };
            for (lane, v) in lanes.iter_mut().zip(vals) {
                lane.push(v);
            }
        }
        lanes
            .into_iter()
            .map(|ins| match eval_program(b, &ep.program, &ep.dtypes, ins) {
                Ok(v) => v,
                Err(e) => {
                    self.err.borrow_mut().get_or_insert(e);
                    zero_of(ep.out.dtype)
                }
            })
            .collect()
    }

    /// The first error met while applying the epilogue, if any.
    pub fn finish(self) -> Result<(), LowerError> {
        match self.err.into_inner() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// The launch of a kernel built with epilogue `ep` bound (if any): the epilogue reports its
/// errors first, then the kernel is finished.
pub(crate) fn finish_launch(
    b: KernelBuilder,
    args: Vec<Arg>,
    ep: Option<Bound<'_>>,
    grid: [u32; 3],
) -> Result<super::KernelLaunch, LowerError> {
    if let Some(e) = ep {
        e.finish()?;
    }
    Ok(super::KernelLaunch {
        kernel: b.finish(),
        args,
        grid,
    })
}
