//! Softmax, LogSoftmax and Hardmax, in their opset-13 per-axis form and the legacy (opset < 13)
//! form that coerces the input to 2-D `[prod(dims[..axis]), prod(dims[axis..])]`.
//!
//! Softmax and LogSoftmax subtract the line maximum before exponentiating, compute `exp` in f32
//! for f32/f16/bf16 inputs (f64 for f64) and accumulate the line sum in f64. Hardmax puts a 1 at
//! the first maximum of each line (at the first NaN, if the line has one).

use super::{eval_max_inputs, for_each_block, infer_max_inputs, is_nan, split_at_axis};
use crate::dtype::{DType, Elem};
use crate::infer::{InferError, InferInput, input, require_float};
use crate::interp::EvalError;
use crate::ops::Op;
use crate::opset::util::req;
use crate::tensor::Tensor;
use crate::types::TensorType;
use half::{bf16, f16};
use std::ops::Sub;

/// Which normalisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// `exp(x - max) / sum(exp(x - max))`.
    Softmax,
    /// `x - max - log(sum(exp(x - max)))`.
    LogSoftmax,
    /// One-hot of the first maximum.
    Hardmax,
}

/// The normalised axis: `[-r, r-1]` in the per-axis form, `[-r, r]` in the legacy form (where
/// `axis == r` coerces to `[numel, 1]`).
fn resolve_axis(axis: i64, legacy: bool, rank: usize) -> Result<usize, String> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    let hi = if legacy { r } else { (r - 1).max(0) };
    if a < 0 || a > hi {
        return Err(format!("axis {axis} is out of range for rank {rank}"));
    }
    Ok(a as usize)
}

/// Output type: the input's (float only).
pub(super) fn infer(
    op: &Op,
    axis: i64,
    legacy: bool,
    inputs: &[Option<InferInput<'_>>],
) -> Result<Vec<TensorType>, InferError> {
    infer_max_inputs(op, inputs, 1)?;
    let x = input(op, inputs, 0)?;
    require_float(op, x.ty.dtype)?;
    if let Some(r) = x.ty.shape.rank() {
        resolve_axis(axis, legacy, r)
            .map_err(|e| InferError::Attribute(format!("{}: {e}", op.name())))?;
    }
    Ok(vec![x.ty.clone()])
}

/// Evaluates Softmax, LogSoftmax or Hardmax.
pub(super) fn eval(
    op: &Op,
    kind: Kind,
    axis: i64,
    legacy: bool,
    inputs: &[Option<Tensor>],
) -> Result<Vec<Tensor>, EvalError> {
    eval_max_inputs(op, inputs, 1)?;
    let x = req(op, inputs, 0)?;
    let shape = x.shape().to_vec();
    let a = resolve_axis(axis, legacy, shape.len())
        .map_err(|e| EvalError::Invalid(format!("{}: {e}", op.name())))?;
    let (n, inner) = if legacy {
        (shape[a..].iter().product(), 1)
    } else {
        let (_, n, inner) = split_at_axis(&shape, a);
        (n, inner)
    };
    let geo = Lines { n, inner };
    let not_float = || {
        EvalError::Invalid(format!(
            "{} needs a float input, got {}",
            op.name(),
            x.dtype()
        ))
    };
    let out = match (kind, x.dtype()) {
        (Kind::Hardmax, d) => crate::dispatch_float!(
            d, T => Tensor::from_vec(shape, hardmax(x.view::<T>(), geo))?,
            else return Err(not_float())
        ),
        (_, DType::F32) => Tensor::from_vec(shape, normalize(kind, x.view::<f32>(), geo))?,
        (_, DType::F64) => Tensor::from_vec(shape, normalize(kind, x.view::<f64>(), geo))?,
        (_, DType::F16) => {
            let v: Vec<f32> = x.view::<f16>().iter().map(|h| h.to_f32()).collect();
            let y = normalize(kind, &v, geo);
            Tensor::from_vec(shape, y.into_iter().map(f16::from_f32).collect::<Vec<_>>())?
        }
        (_, DType::BF16) => {
            let v: Vec<f32> = x.view::<bf16>().iter().map(|h| h.to_f32()).collect();
            let y = normalize(kind, &v, geo);
            Tensor::from_vec(shape, y.into_iter().map(bf16::from_f32).collect::<Vec<_>>())?
        }
        _ => return Err(not_float()),
    };
    Ok(vec![out])
}

/// The line geometry: lines of `n` elements at stride `inner` in blocks of `n * inner`.
#[derive(Clone, Copy, Debug)]
struct Lines {
    n: usize,
    inner: usize,
}

/// The float type Softmax computes in (f32 or f64).
trait Real: Elem + Sub<Output = Self> {
    /// Negative infinity.
    const NEG_INF: Self;
    /// `e^self`.
    fn exp(self) -> Self;
}

impl Real for f32 {
    const NEG_INF: f32 = f32::NEG_INFINITY;
    fn exp(self) -> f32 {
        f32::exp(self)
    }
}

impl Real for f64 {
    const NEG_INF: f64 = f64::NEG_INFINITY;
    fn exp(self) -> f64 {
        f64::exp(self)
    }
}

/// NaN-propagating maximum.
fn nan_max<F: PartialOrd + Copy>(m: F, v: F) -> F {
    if v > m || is_nan(v) { v } else { m }
}

/// Softmax or LogSoftmax of every line.
fn normalize<F: Real>(kind: Kind, x: &[F], g: Lines) -> Vec<F> {
    let mut y = vec![F::zero(); x.len()];
    let block = g.n * g.inner;
    let log = kind == Kind::LogSoftmax;
    for_each_block(x, &mut y, block, block, |xb, yb| {
        if g.inner == 1 {
            normalize_line(log, xb, yb);
        } else {
            normalize_block(log, xb, yb, g.n, g.inner);
        }
    });
    y
}

/// Normalises one contiguous line.
fn normalize_line<F: Real>(log: bool, x: &[F], y: &mut [F]) {
    let m = x.iter().fold(F::NEG_INF, |m, &v| nan_max(m, v));
    let mut s = 0f64;
    for (o, &v) in y.iter_mut().zip(x) {
        let d = v - m;
        let e = d.exp();
        s += e.to_f64();
        *o = if log { d } else { e };
    }
    if log {
        let l = s.ln();
        for o in y.iter_mut() {
            *o = F::round_from_f64(o.to_f64() - l);
        }
    } else {
        for o in y.iter_mut() {
            *o = F::round_from_f64(o.to_f64() / s);
        }
    }
}

/// Normalises the `inner` strided lines of one `[n, inner]` block, vectorised over `inner`.
fn normalize_block<F: Real>(log: bool, x: &[F], y: &mut [F], n: usize, inner: usize) {
    let mut m = vec![F::NEG_INF; inner];
    for row in x.chunks_exact(inner) {
        for (mi, &v) in m.iter_mut().zip(row) {
            *mi = nan_max(*mi, v);
        }
    }
    let mut s = vec![0f64; inner];
    for (xr, yr) in x.chunks_exact(inner).zip(y.chunks_exact_mut(inner)) {
        for i in 0..inner {
            let d = xr[i] - m[i];
            let e = d.exp();
            s[i] += e.to_f64();
            yr[i] = if log { d } else { e };
        }
    }
    debug_assert_eq!(y.len(), n * inner);
    for yr in y.chunks_exact_mut(inner) {
        for i in 0..inner {
            yr[i] = if log {
                F::round_from_f64(yr[i].to_f64() - s[i].ln())
            } else {
                F::round_from_f64(yr[i].to_f64() / s[i])
            };
        }
    }
}

/// Hardmax of every line: 1 at the first maximum (or first NaN), 0 elsewhere.
fn hardmax<T: Elem>(x: &[T], g: Lines) -> Vec<T> {
    let mut y = vec![T::zero(); x.len()];
    let block = g.n * g.inner;
    let one = T::round_from_f64(1.0);
    for_each_block(x, &mut y, block, block, |xb, yb| {
        for i in 0..g.inner {
            let j = super::index::arg_best(xb, i, g.inner, g.n, true, false);
            yb[j * g.inner + i] = one;
        }
    });
    y
}

#[cfg(test)]
#[allow(clippy::cloned_ref_to_slice_refs)] // `&[x.clone()]` reads better in tests.
mod tests {
    use super::super::test_util::{close, infer, run, run1, t};
    use super::*;
    use crate::types::{Dim, Shape};

    fn sm(axis: i64, legacy: bool) -> Op {
        Op::Softmax { axis, legacy }
    }

    #[test]
    fn softmax_last_axis() {
        let x = t(&[2, 3], vec![1f32, 2.0, 3.0, 0.0, 0.0, 0.0]);
        let y = run1(&sm(-1, false), &[x]);
        // e^-2, e^-1, 1 over their sum 1.503214724
        close(
            &y,
            &[2, 3],
            &[
                0.090030573,
                0.244728471,
                0.665240956,
                1.0 / 3.0,
                1.0 / 3.0,
                1.0 / 3.0,
            ],
            1e-7,
        );
    }

    #[test]
    fn softmax_middle_axis_is_strided() {
        // [1, 2, 2]: softmax over axis 1 pairs (0, 1) and (10, 10).
        let x = t(&[1, 2, 2], vec![0f64, 10.0, 1.0, 10.0]);
        let y = run1(&sm(1, false), &[x]);
        close(
            &y,
            &[1, 2, 2],
            &[0.2689414213699951, 0.5, 0.7310585786300049, 0.5],
            1e-15,
        );
    }

    #[test]
    fn softmax_is_stable_for_large_inputs() {
        let x = t(&[3], vec![1000f32, 1000.0, -f32::INFINITY]);
        let y = run1(&sm(0, false), &[x.clone()]);
        close(&y, &[3], &[0.5, 0.5, 0.0], 0.0);
        let y = run1(
            &Op::LogSoftmax {
                axis: 0,
                legacy: false,
            },
            &[x],
        );
        close(
            &y,
            &[3],
            &[
                -std::f64::consts::LN_2,
                -std::f64::consts::LN_2,
                f64::NEG_INFINITY,
            ],
            1e-7,
        );
    }

    #[test]
    fn legacy_coerces_to_2d() {
        // [2, 1, 2] with axis 1: two lines of 2 elements each (dims 1 and 2 flattened).
        let x = t(&[2, 1, 2], vec![0f32, 0.0, 0.0, 2.0f32.ln()]);
        let y = run1(&sm(1, true), &[x.clone()]);
        close(&y, &[2, 1, 2], &[0.5, 0.5, 1.0 / 3.0, 2.0 / 3.0], 1e-7);
        // axis 0 in legacy form: one line over all four elements.
        let y = run1(&sm(0, true), &[x.clone()]);
        close(&y, &[2, 1, 2], &[0.2, 0.2, 0.2, 0.4], 1e-7);
        // The per-axis form over axis 0 differs: pairs (0,0) and (0, ln2).
        let y = run1(&sm(0, false), &[x]);
        close(&y, &[2, 1, 2], &[0.5, 1.0 / 3.0, 0.5, 2.0 / 3.0], 1e-7);
    }

    #[test]
    fn log_softmax_f16_and_bf16() {
        let x = t(&[2], vec![f16::from_f32(0.0), f16::from_f32(0.0)]);
        let y = run1(
            &Op::LogSoftmax {
                axis: -1,
                legacy: false,
            },
            &[x],
        );
        assert_eq!(y.dtype(), DType::F16);
        close(&y, &[2], &[-0.693359375, -0.693359375], 0.0);
        let x = t(&[2], vec![bf16::from_f32(1.0), bf16::from_f32(1.0)]);
        let y = run1(&sm(0, false), &[x]);
        assert_eq!(y.dtype(), DType::BF16);
        close(&y, &[2], &[0.5, 0.5], 0.0);
    }

    #[test]
    fn hardmax_first_max_and_axes() {
        let h = |axis| Op::Hardmax {
            axis,
            legacy: false,
        };
        let x = t(&[2, 3], vec![3f32, 1.0, 3.0, 0.0, 5.0, 5.0]);
        let y = run1(&h(1), &[x.clone()]);
        close(&y, &[2, 3], &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0], 0.0);
        let y = run1(&h(0), &[x.clone()]);
        close(&y, &[2, 3], &[1.0, 0.0, 0.0, 0.0, 1.0, 1.0], 0.0);
        // Legacy axis 0: one line over all six; first max is 5 at flat index 4.
        let y = run1(
            &Op::Hardmax {
                axis: 0,
                legacy: true,
            },
            &[x],
        );
        close(&y, &[2, 3], &[0.0, 0.0, 0.0, 0.0, 1.0, 0.0], 0.0);
        let x = t(&[3], vec![1f64, f64::NAN, 2.0]);
        let y = run1(&h(0), &[x]);
        close(&y, &[3], &[0.0, 1.0, 0.0], 0.0);
    }

    #[test]
    fn large_inputs_match_the_sequential_path() {
        // [1, 3, 197, 197] is processed in parallel; rows must each sum to 1.
        let n = 197;
        let v: Vec<f32> = (0..3 * n * n)
            .map(|i| ((i * 37) % 101) as f32 * 0.05)
            .collect();
        let x = t(&[1, 3, n, n], v.clone());
        let y = run1(&sm(-1, false), &[x]);
        let yv = y.view::<f32>();
        for r in 0..3 * n {
            let s: f64 = yv[r * n..(r + 1) * n].iter().map(|&v| v as f64).sum();
            assert!((s - 1.0).abs() < 1e-5, "row {r} sums to {s}");
        }
        let line = t(&[n], v[5 * n..6 * n].to_vec());
        let one = run1(&sm(0, false), &[line]);
        assert_eq!(one.view::<f32>(), &yv[5 * n..6 * n]);
        // Strided over axis 1 with outer 1: columns sum to 1.
        let x = t(&[1, 3, n, n], v);
        let y = run1(&sm(1, false), &[x]);
        let yv = y.view::<f32>();
        for i in 0..n * n {
            let s: f64 = (0..3).map(|c| yv[c * n * n + i] as f64).sum();
            assert!((s - 1.0).abs() < 1e-6);
        }
    }

    #[test]
    fn errors() {
        let x = t(&[2, 3], vec![0i32; 6]);
        assert!(run(&sm(1, false), &[x.clone()]).is_err());
        assert!(
            run(
                &Op::Hardmax {
                    axis: 1,
                    legacy: false
                },
                &[x]
            )
            .is_err()
        );
        let x = t(&[2, 3], vec![0f32; 6]);
        assert!(run(&sm(2, false), &[x.clone()]).is_err());
        assert!(run(&sm(-3, false), &[x.clone()]).is_err());
        // Legacy accepts axis == rank (coerced to [6, 1]).
        let y = run1(&sm(2, true), &[x.clone()]);
        close(&y, &[2, 3], &[1.0; 6], 0.0);
        assert!(run(&sm(3, true), &[x.clone()]).is_err());
        assert!(run(&sm(0, false), &[x.clone(), x]).is_err());
        assert!(super::super::eval(&sm(0, false), &[None], 1).is_err());
    }

    #[test]
    fn inference() {
        let ty = TensorType {
            dtype: DType::F32,
            shape: Shape::Ranked(vec![Dim::Sym("b".into()), Dim::Static(4)]),
        };
        assert_eq!(
            infer(&sm(-1, false), &[(ty.clone(), None)]).unwrap(),
            vec![ty.clone()]
        );
        assert!(matches!(
            infer(&sm(2, false), &[(ty.clone(), None)]),
            Err(InferError::Attribute(_))
        ));
        let u = TensorType::unranked(DType::F16);
        assert_eq!(infer(&sm(5, false), &[(u.clone(), None)]).unwrap(), vec![u]);
        assert!(matches!(
            infer(
                &sm(0, false),
                &[(TensorType::fixed(DType::I64, &[2]), None)]
            ),
            Err(InferError::Dtype(_))
        ));
    }
}
