//! The `Reduce*` ops: Sum, Mean, Max, Min, Prod, L1, L2, SumSquare, LogSum and LogSumExp over
//! the axes given by the optional input 1.
//!
//! Without axes (absent or empty) every axis is reduced, unless `noop_with_empty_axes` is set:
//! then nothing is reduced but the elementwise part still applies (ReduceSumSquare squares,
//! ReduceL1 takes absolute values...), as the spec says. Empty sets follow the spec: sums are 0,
//! products 1, Max is -inf (the minimum value for integers), Min +inf (the maximum),
//! LogSum and LogSumExp are -inf, Mean is NaN (0 for integers).
//!
//! Floats accumulate in f64 and round once at the end. Integers are exact: Sum, Prod, SumSquare
//! and L1 wrap like the integer type, Max and Min compare natively, Mean divides the exact sum
//! (truncating toward zero); L2, LogSum and LogSumExp go through f64 and truncate. Bool inputs
//! are accepted by ReduceMax (any) and ReduceMin (all).

use super::{eval_max_inputs, infer_max_inputs, is_nan, map_outputs};
use crate::dtype::{DType, Elem};
use crate::infer::{InferError, InferInput, input, opt_input};
use crate::interp::EvalError;
use crate::ops::{Op, ReduceOp};
use crate::opset::util::{opt, req, strides};
use crate::tensor::{Tensor, checked_numel};
use crate::types::{Dim, Shape, TensorType};

/// Checks that `rop` accepts `d`.
fn check_dtype(op: &Op, rop: ReduceOp, d: DType) -> Result<(), String> {
    let ok = d.is_float()
        || d.is_int()
        || (d == DType::Bool && matches!(rop, ReduceOp::Max | ReduceOp::Min));
    if ok {
        Ok(())
    } else {
        Err(format!("{} does not accept {d} inputs", op.name()))
    }
}

/// The reduced-axis mask of `axes` (each in `[-rank, rank-1]`, no repeats).
fn axes_mask(op: &Op, axes: &[i64], rank: usize) -> Result<Vec<bool>, String> {
    let mut mask = vec![false; rank];
    let r = rank as i64;
    for &a in axes {
        let n = if a < 0 { a + r } else { a };
        if n < 0 || n >= r {
            return Err(format!(
                "{}: axis {a} is out of range for rank {rank}",
                op.name()
            ));
        }
        if std::mem::replace(&mut mask[n as usize], true) {
            return Err(format!("{}: axis {a} is repeated", op.name()));
        }
    }
    Ok(mask)
}

/// What inference knows about the axes input.
enum Axes {
    /// Absent or empty.
    Empty,
    /// Known contents (non-empty).
    Known(Vec<i64>),
    /// Unknown contents of a known (non-zero) length.
    Count(usize),
    /// Nothing known.
    Unknown,
}

/// Output type: the input dtype; reduced dims become 1 (`keepdims`) or disappear.
pub(super) fn infer(
    op: &Op,
    rop: ReduceOp,
    keepdims: bool,
    noop: bool,
    inputs: &[Option<InferInput<'_>>],
) -> Result<Vec<TensorType>, InferError> {
    infer_max_inputs(op, inputs, 2)?;
    let x = input(op, inputs, 0)?;
    check_dtype(op, rop, x.ty.dtype).map_err(InferError::Dtype)?;
    let axes = match opt_input(inputs, 1) {
        None => Axes::Empty,
        Some(a) => {
            if !a.ty.dtype.is_int() {
                return Err(InferError::Dtype(format!(
                    "{} axes must be int64, got {}",
                    op.name(),
                    a.ty.dtype
                )));
            }
            if a.ty.shape.rank().is_some_and(|r| r > 1) {
                return Err(InferError::Shape(format!(
                    "{} axes must be 1-D, got {}",
                    op.name(),
                    a.ty.shape
                )));
            }
            match (a.value, a.ty.shape.as_static()) {
                (Some(t), _) if t.numel() == 0 => Axes::Empty,
                (Some(t), _) => Axes::Known(t.to_i64_vec()),
                (None, Some(s)) if s.iter().product::<usize>() == 0 => Axes::Empty,
                (None, Some(s)) => Axes::Count(s.iter().product()),
                (None, None) => Axes::Unknown,
            }
        }
    };
    // Dims that are 1 stay 1 whether or not they are reduced.
    let maybe_one = |d: &[Dim]| {
        Shape::Ranked(
            d.iter()
                .map(|x| match x {
                    Dim::Static(1) => Dim::Static(1),
                    _ => Dim::Unknown,
                })
                .collect(),
        )
    };
    let shape = match (axes, x.ty.shape.dims()) {
        (Axes::Empty, _) if noop => x.ty.shape.clone(),
        (Axes::Empty, None) if keepdims => Shape::Unranked,
        (Axes::Empty, None) => Shape::Ranked(vec![]),
        (Axes::Empty, Some(d)) if keepdims => Shape::Ranked(vec![Dim::Static(1); d.len()]),
        (Axes::Empty, Some(_)) => Shape::Ranked(vec![]),
        (_, None) => Shape::Unranked,
        (Axes::Known(v), Some(d)) => {
            let mask = axes_mask(op, &v, d.len()).map_err(InferError::Attribute)?;
            Shape::Ranked(
                d.iter()
                    .zip(&mask)
                    .filter_map(|(dim, &m)| match (m, keepdims) {
                        (false, _) => Some(dim.clone()),
                        (true, true) => Some(Dim::Static(1)),
                        (true, false) => None,
                    })
                    .collect(),
            )
        }
        (Axes::Count(_) | Axes::Unknown, Some(d)) if keepdims => maybe_one(d),
        (Axes::Count(k), Some(d)) => {
            let r = d.len().checked_sub(k).ok_or_else(|| {
                InferError::Shape(format!(
                    "{} reduces {k} axes of a rank-{} input",
                    op.name(),
                    d.len()
                ))
            })?;
            Shape::unknown_dims(r)
        }
        (Axes::Unknown, Some(_)) => Shape::Unranked,
    };
    Ok(vec![TensorType {
        dtype: x.ty.dtype,
        shape,
    }])
}

/// Evaluates a reduction.
pub(super) fn eval(
    op: &Op,
    rop: ReduceOp,
    keepdims: bool,
    noop: bool,
    inputs: &[Option<Tensor>],
) -> Result<Vec<Tensor>, EvalError> {
    eval_max_inputs(op, inputs, 2)?;
    let x = req(op, inputs, 0)?;
    check_dtype(op, rop, x.dtype()).map_err(EvalError::Invalid)?;
    let axes = match opt(inputs, 1) {
        None => Vec::new(),
        Some(a) => {
            if !a.dtype().is_int() || a.rank() > 1 {
                return Err(EvalError::Invalid(format!(
                    "{} axes must be a 1-D int64 tensor, got {}{:?}",
                    op.name(),
                    a.dtype(),
                    a.shape()
                )));
            }
            a.to_i64_vec()
        }
    };
    let rank = x.rank();
    let mask = if axes.is_empty() {
        vec![!noop; rank]
    } else {
        axes_mask(op, &axes, rank).map_err(EvalError::Invalid)?
    };
    let shape: Vec<usize> = x
        .shape()
        .iter()
        .zip(&mask)
        .filter_map(|(&d, &m)| match (m, keepdims) {
            (false, _) => Some(d),
            (true, true) => Some(1),
            (true, false) => None,
        })
        .collect();
    if checked_numel(&shape)? == 0 {
        return Ok(vec![Tensor::zeros(x.dtype(), shape)?]);
    }
    let plan = Plan::new(x.shape(), &mask);
    let out = crate::dispatch!(x.dtype(), T => {
        let v = x.view::<T>();
        let data: Vec<T> = if T::DTYPE.is_float() {
            plan.map(v, &FloatFold(rop))
        } else if T::DTYPE == DType::Bool {
            plan.map(v, &BoolFold(rop))
        } else {
            plan.map(v, &IntFold(rop))
        };
        Tensor::from_vec(shape, data)?
    });
    Ok(vec![out])
}

/// Where each output's elements are: the offset of its first element (`bases`) and the
/// offsets of its elements relative to that (`roffs`, shared by every output).
struct Plan {
    bases: Vec<usize>,
    roffs: Vec<usize>,
    /// `roffs == 0..roffs.len()`: the reduced elements of one output are contiguous.
    contiguous: bool,
}

impl Plan {
    /// The plan of reducing `shape` over the axes where `mask` is true.
    fn new(shape: &[usize], mask: &[bool]) -> Plan {
        let st = strides(shape);
        let pick = |want: bool| -> (Vec<usize>, Vec<usize>) {
            shape
                .iter()
                .zip(&st)
                .zip(mask)
                .filter(|&(_, &m)| m == want)
                .map(|((&d, &s), _)| (d, s))
                .unzip()
        };
        let (kd, ks) = pick(false);
        let (rd, rs) = pick(true);
        let roffs = offsets(&rd, &rs);
        let contiguous = roffs.iter().enumerate().all(|(j, &o)| o == j);
        Plan {
            bases: offsets(&kd, &ks),
            roffs,
            contiguous,
        }
    }

    /// One output per base, folding its reduced elements with `f`.
    fn map<T: Elem>(&self, v: &[T], f: &(impl Fold<T> + Sync)) -> Vec<T> {
        let n = self.roffs.len();
        map_outputs(self.bases.len(), n, |o| {
            let b = self.bases[o];
            if n == 0 {
                // An empty set; `b` may lie past the end of an empty input.
                f.fold(v[..0].iter().copied(), 0)
            } else if self.contiguous {
                f.fold(v[b..b + n].iter().copied(), n)
            } else {
                f.fold(self.roffs.iter().map(|&r| v[b + r]), n)
            }
        })
    }
}

/// Row-major offsets of every index of `dims` under `strides`.
fn offsets(dims: &[usize], strides: &[usize]) -> Vec<usize> {
    let n: usize = dims.iter().product();
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0usize; dims.len()];
    let mut cur = 0usize;
    for _ in 0..n {
        out.push(cur);
        for d in (0..dims.len()).rev() {
            idx[d] += 1;
            cur += strides[d];
            if idx[d] < dims[d] {
                break;
            }
            cur -= strides[d] * idx[d];
            idx[d] = 0;
        }
    }
    out
}

/// Reduces the `n` elements of one output to a value.
trait Fold<T> {
    /// The reduction of `it` (which yields `n` elements).
    fn fold<I: Iterator<Item = T> + Clone>(&self, it: I, n: usize) -> T;
}

/// Float reductions, through f64.
struct FloatFold(ReduceOp);

/// Integer reductions, exact.
struct IntFold(ReduceOp);

/// Bool reductions (Max = any, Min = all).
struct BoolFold(ReduceOp);

impl<T: Elem> Fold<T> for FloatFold {
    fn fold<I: Iterator<Item = T> + Clone>(&self, it: I, n: usize) -> T {
        T::round_from_f64(fold_f64(self.0, it.map(Elem::to_f64), n))
    }
}

impl<T: Elem> Fold<T> for BoolFold {
    fn fold<I: Iterator<Item = T> + Clone>(&self, mut it: I, _n: usize) -> T {
        let r = match self.0 {
            ReduceOp::Min => it.all(|b| b.to_i64() != 0),
            _ => it.any(|b| b.to_i64() != 0),
        };
        T::from_i64(r as i64)
    }
}

impl<T: Elem> Fold<T> for IntFold {
    fn fold<I: Iterator<Item = T> + Clone>(&self, it: I, n: usize) -> T {
        let signed = T::DTYPE.is_signed_int();
        // Sign-extended for signed types, bit-preserving for u64: wrapping i64 arithmetic is
        // then exact modulo the type's width.
        let sum_by =
            |f: &dyn Fn(i64) -> i64| it.clone().fold(0i64, |a, x| a.wrapping_add(f(x.to_i64())));
        match self.0 {
            ReduceOp::Sum => T::from_i64(sum_by(&|x| x)),
            ReduceOp::SumSquare => T::from_i64(sum_by(&|x| x.wrapping_mul(x))),
            ReduceOp::L1 => T::from_i64(sum_by(&|x| if signed { x.wrapping_abs() } else { x })),
            ReduceOp::Prod => T::from_i64(it.fold(1i64, |a, x| a.wrapping_mul(x.to_i64()))),
            ReduceOp::Max => it
                .reduce(|m, x| if x > m { x } else { m })
                .unwrap_or_else(|| T::round_from_f64(f64::NEG_INFINITY)),
            ReduceOp::Min => it
                .reduce(|m, x| if x < m { x } else { m })
                .unwrap_or_else(|| T::round_from_f64(f64::INFINITY)),
            ReduceOp::Mean => {
                if n == 0 {
                    return T::zero();
                }
                let s: i128 = it
                    .map(|x| {
                        let w = x.to_i64();
                        if signed { w as i128 } else { w as u64 as i128 }
                    })
                    .sum();
                T::from_i64((s / n as i128) as i64)
            }
            ReduceOp::L2 | ReduceOp::LogSum | ReduceOp::LogSumExp => {
                T::round_from_f64(fold_f64(self.0, it.map(Elem::to_f64), n))
            }
        }
    }
}

/// NaN-propagating maximum.
fn nan_max(m: f64, v: f64) -> f64 {
    if v > m || is_nan(v) { v } else { m }
}

/// NaN-propagating minimum.
fn nan_min(m: f64, v: f64) -> f64 {
    if v < m || is_nan(v) { v } else { m }
}

/// A float reduction of `n` values in f64.
fn fold_f64<I: Iterator<Item = f64> + Clone>(rop: ReduceOp, it: I, n: usize) -> f64 {
    // Explicit folds from +0.0 (`Iterator::sum` of nothing is -0.0).
    let sum = |it: I| it.fold(0.0, |a, x| a + x);
    match rop {
        ReduceOp::Sum => sum(it),
        ReduceOp::Mean => sum(it) / n as f64,
        ReduceOp::Max => it.fold(f64::NEG_INFINITY, nan_max),
        ReduceOp::Min => it.fold(f64::INFINITY, nan_min),
        ReduceOp::Prod => it.fold(1.0, |a, x| a * x),
        ReduceOp::L1 => it.fold(0.0, |a, x| a + x.abs()),
        ReduceOp::L2 => it.fold(0.0, |a, x| a + x * x).sqrt(),
        ReduceOp::SumSquare => it.fold(0.0, |a, x| a + x * x),
        ReduceOp::LogSum => sum(it).ln(),
        ReduceOp::LogSumExp => {
            let m = it.clone().fold(f64::NEG_INFINITY, nan_max);
            if m.is_finite() {
                m + it.fold(0.0, |a, x| a + (x - m).exp()).ln()
            } else {
                // NaN, +inf (the sum is +inf) or -inf (all terms are 0).
                m
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::cloned_ref_to_slice_refs)] // `&[x.clone()]` reads better in tests.
mod tests {
    use super::super::test_util::{close, infer, run, run1, t};
    use super::*;
    use crate::dtype::Bool8;

    fn red(op: ReduceOp, keepdims: bool, noop: bool) -> Op {
        Op::Reduce {
            op,
            keepdims,
            noop_with_empty_axes: noop,
        }
    }

    fn axes(v: &[i64]) -> Tensor {
        t(&[v.len()], v.to_vec())
    }

    /// [[1, 2, 3], [4, 5, 6]]
    fn x23() -> Tensor {
        t(&[2, 3], vec![1f32, 2.0, 3.0, 4.0, 5.0, 6.0])
    }

    #[test]
    fn every_float_op_over_the_last_axis() {
        let cases: [(ReduceOp, [f64; 2]); 10] = [
            (ReduceOp::Sum, [6.0, 15.0]),
            (ReduceOp::Mean, [2.0, 5.0]),
            (ReduceOp::Max, [3.0, 6.0]),
            (ReduceOp::Min, [1.0, 4.0]),
            (ReduceOp::Prod, [6.0, 120.0]),
            (ReduceOp::L1, [6.0, 15.0]),
            (ReduceOp::L2, [14f64.sqrt(), 77f64.sqrt()]),
            (ReduceOp::SumSquare, [14.0, 77.0]),
            (ReduceOp::LogSum, [6f64.ln(), 15f64.ln()]),
            (
                ReduceOp::LogSumExp,
                [
                    (1f64.exp() + 2f64.exp() + 3f64.exp()).ln(),
                    (4f64.exp() + 5f64.exp() + 6f64.exp()).ln(),
                ],
            ),
        ];
        for (rop, want) in cases {
            let y = run1(&red(rop, true, false), &[x23(), axes(&[-1])]);
            close(&y, &[2, 1], &want, 2e-6);
            let y = run1(&red(rop, false, false), &[x23(), axes(&[1])]);
            close(&y, &[2], &want, 2e-6);
        }
    }

    #[test]
    fn leading_middle_and_all_axes() {
        let y = run1(&red(ReduceOp::Sum, false, false), &[x23(), axes(&[0])]);
        close(&y, &[3], &[5.0, 7.0, 9.0], 0.0);
        let x = t(&[2, 2, 2], (0..8).map(|v| v as f64).collect());
        let y = run1(&red(ReduceOp::Max, true, false), &[x.clone(), axes(&[1])]);
        close(&y, &[2, 1, 2], &[2.0, 3.0, 6.0, 7.0], 0.0);
        let y = run1(
            &red(ReduceOp::Sum, false, false),
            &[x.clone(), axes(&[0, 2])],
        );
        close(&y, &[2], &[10.0, 18.0], 0.0);
        // No axes input, or an empty one: reduce everything.
        let y = run1(&red(ReduceOp::Mean, true, false), &[x.clone()]);
        close(&y, &[1, 1, 1], &[3.5], 0.0);
        let y = run1(&red(ReduceOp::Mean, false, false), &[x.clone(), axes(&[])]);
        close(&y, &[], &[3.5], 0.0);
        // A rank-0 input reduces to itself.
        let y = run1(
            &red(ReduceOp::SumSquare, true, false),
            &[Tensor::scalar(3f32)],
        );
        close(&y, &[], &[9.0], 0.0);
    }

    #[test]
    fn noop_with_empty_axes_keeps_the_elementwise_part() {
        let x = t(&[3], vec![-2f32, 0.5, 3.0]);
        let y = run1(&red(ReduceOp::Sum, true, true), &[x.clone(), axes(&[])]);
        assert_eq!(y, x);
        let y = run1(&red(ReduceOp::SumSquare, false, true), &[x.clone()]);
        close(&y, &[3], &[4.0, 0.25, 9.0], 0.0);
        let y = run1(&red(ReduceOp::L1, true, true), &[x.clone()]);
        close(&y, &[3], &[2.0, 0.5, 3.0], 0.0);
        let y = run1(&red(ReduceOp::LogSumExp, true, true), &[x.clone()]);
        close(&y, &[3], &[-2.0, 0.5, 3.0], 0.0);
        // With axes the flag changes nothing.
        let y = run1(&red(ReduceOp::Sum, false, true), &[x, axes(&[0])]);
        close(&y, &[], &[1.5], 0.0);
    }

    #[test]
    fn empty_sets() {
        let x = t(&[2, 0, 4], Vec::<f32>::new());
        let inf = f64::INFINITY;
        let cases = [
            (ReduceOp::Sum, 0.0),
            (ReduceOp::Mean, f64::NAN),
            (ReduceOp::Max, -inf),
            (ReduceOp::Min, inf),
            (ReduceOp::Prod, 1.0),
            (ReduceOp::L1, 0.0),
            (ReduceOp::L2, 0.0),
            (ReduceOp::SumSquare, 0.0),
            (ReduceOp::LogSum, -inf),
            (ReduceOp::LogSumExp, -inf),
        ];
        for (rop, want) in cases {
            let y = run1(&red(rop, true, false), &[x.clone(), axes(&[1])]);
            close(&y, &[2, 1, 4], &[want; 8], 0.0);
        }
        // Sum of nothing is +0.0, bit for bit.
        let y = run1(&red(ReduceOp::Sum, false, false), &[x.clone(), axes(&[1])]);
        assert!(y.view::<f32>().iter().all(|v| v.to_bits() == 0));
        // Reducing a non-empty axis of an empty tensor gives an empty result.
        let y = run1(&red(ReduceOp::Sum, true, false), &[x, axes(&[2])]);
        assert_eq!(y.shape(), &[2, 0, 1]);
        let xi = t(&[0], Vec::<i32>::new());
        let y = run1(&red(ReduceOp::Max, false, false), &[xi.clone()]);
        assert_eq!(y.view::<i32>(), &[i32::MIN]);
        let y = run1(
            &red(ReduceOp::Min, false, false),
            &[t(&[0], Vec::<u64>::new())],
        );
        assert_eq!(y.view::<u64>(), &[u64::MAX]);
        let y = run1(&red(ReduceOp::Prod, false, false), &[xi]);
        assert_eq!(y.view::<i32>(), &[1]);
    }

    #[test]
    fn integers_are_exact() {
        let x = t(&[4], vec![i32::MAX, 1, 2, -3]);
        let y = run1(&red(ReduceOp::Sum, false, false), &[x.clone()]);
        assert_eq!(y.view::<i32>(), &[i32::MAX.wrapping_add(0)]);
        let y = run1(&red(ReduceOp::Max, false, false), &[x.clone()]);
        assert_eq!(y.view::<i32>(), &[i32::MAX]);
        let y = run1(&red(ReduceOp::Min, false, false), &[x.clone()]);
        assert_eq!(y.view::<i32>(), &[-3]);
        let y = run1(&red(ReduceOp::L1, false, false), &[x]);
        assert_eq!(y.view::<i32>(), &[i32::MAX.wrapping_add(6)]);
        let x = t(&[2, 2], vec![200u8, 100, 16, 16]);
        let y = run1(&red(ReduceOp::Sum, false, false), &[x.clone(), axes(&[1])]);
        assert_eq!(y.view::<u8>(), &[44, 32]);
        let y = run1(&red(ReduceOp::Prod, false, false), &[x.clone(), axes(&[1])]);
        assert_eq!(y.view::<u8>(), &[(20000u32 % 256) as u8, 0]);
        let y = run1(&red(ReduceOp::Mean, false, false), &[x, axes(&[1])]);
        assert_eq!(y.view::<u8>(), &[150, 16]);
        let x = t(&[2], vec![u64::MAX, u64::MAX - 2]);
        let y = run1(&red(ReduceOp::Mean, false, false), &[x.clone()]);
        assert_eq!(y.view::<u64>(), &[u64::MAX - 1]);
        let y = run1(&red(ReduceOp::Max, false, false), &[x]);
        assert_eq!(y.view::<u64>(), &[u64::MAX]);
        let x = t(&[2], vec![-7i64, 0]);
        let y = run1(&red(ReduceOp::Mean, false, false), &[x.clone()]);
        assert_eq!(y.view::<i64>(), &[-3]);
        let y = run1(&red(ReduceOp::SumSquare, false, false), &[x.clone()]);
        assert_eq!(y.view::<i64>(), &[49]);
        let y = run1(&red(ReduceOp::L2, false, false), &[t(&[2], vec![3i64, -4])]);
        assert_eq!(y.view::<i64>(), &[5]);
        let y = run1(
            &red(ReduceOp::LogSum, false, false),
            &[t(&[2], vec![4i32, 4])],
        );
        assert_eq!(y.view::<i32>(), &[2]);
    }

    #[test]
    fn floats_nan_halves_and_stability() {
        let x = t(&[3], vec![1f32, f32::NAN, 3.0]);
        for rop in [
            ReduceOp::Max,
            ReduceOp::Min,
            ReduceOp::LogSumExp,
            ReduceOp::Sum,
        ] {
            let y = run1(&red(rop, false, false), &[x.clone()]);
            assert!(y.view::<f32>()[0].is_nan(), "{rop:?}");
        }
        let y = run1(
            &red(ReduceOp::LogSumExp, false, false),
            &[t(&[2], vec![1000f32, 1000.0])],
        );
        close(&y, &[], &[1000.0 + std::f64::consts::LN_2], 1e-4);
        let y = run1(
            &red(ReduceOp::LogSumExp, false, false),
            &[t(&[2], vec![f64::NEG_INFINITY, f64::NEG_INFINITY])],
        );
        close(&y, &[], &[f64::NEG_INFINITY], 0.0);
        // f16: 2048 + 1 + 1 is 2050 when summed in f64 (f16 steps are 2 there).
        let h = |v: f32| half::f16::from_f32(v);
        let y = run1(
            &red(ReduceOp::Sum, false, false),
            &[t(&[3], vec![h(2048.0), h(1.0), h(1.0)])],
        );
        assert_eq!(y.dtype(), DType::F16);
        close(&y, &[], &[2050.0], 0.0);
        let y = run1(
            &red(ReduceOp::Mean, false, false),
            &[t(
                &[2],
                vec![half::bf16::from_f32(1.0), half::bf16::from_f32(2.0)],
            )],
        );
        close(&y, &[], &[1.5], 0.0);
    }

    #[test]
    fn bools() {
        let x = t(&[2, 2], vec![Bool8(1), Bool8(0), Bool8(1), Bool8(1)]);
        let y = run1(&red(ReduceOp::Max, false, false), &[x.clone(), axes(&[1])]);
        assert_eq!(y.view::<Bool8>(), &[Bool8(1), Bool8(1)]);
        let y = run1(&red(ReduceOp::Min, false, false), &[x.clone(), axes(&[1])]);
        assert_eq!(y.view::<Bool8>(), &[Bool8(0), Bool8(1)]);
        let y = run1(
            &red(ReduceOp::Max, false, false),
            &[t(&[0], Vec::<Bool8>::new())],
        );
        assert_eq!(y.view::<Bool8>(), &[Bool8(0)]);
        assert!(run(&red(ReduceOp::Sum, false, false), &[x]).is_err());
    }

    #[test]
    fn large_strided_reduction() {
        // [64, 1024] over axis 0 (strided) and axis 1 (contiguous), both parallel.
        let v: Vec<f32> = (0..64 * 1024).map(|i| (i % 7) as f32).collect();
        let x = t(&[64, 1024], v.clone());
        let y = run1(&red(ReduceOp::Sum, false, false), &[x.clone(), axes(&[0])]);
        for (c, &s) in y.view::<f32>().iter().enumerate() {
            let want: f32 = (0..64).map(|r| v[r * 1024 + c]).sum();
            assert_eq!(s, want, "column {c}");
        }
        let y = run1(&red(ReduceOp::Mean, false, false), &[x, axes(&[1])]);
        for (r, &s) in y.view::<f32>().iter().enumerate() {
            let want: f64 = v[r * 1024..(r + 1) * 1024]
                .iter()
                .map(|&x| x as f64)
                .sum::<f64>()
                / 1024.0;
            assert_eq!(s, want as f32, "row {r}");
        }
    }

    #[test]
    fn bad_axes() {
        let op = red(ReduceOp::Sum, true, false);
        assert!(run(&op, &[x23(), axes(&[2])]).is_err());
        assert!(run(&op, &[x23(), axes(&[-3])]).is_err());
        assert!(run(&op, &[x23(), axes(&[1, -1])]).is_err());
        assert!(run(&op, &[x23(), t(&[1], vec![1f32])]).is_err());
        assert!(run(&op, &[x23(), t(&[1, 1], vec![1i64])]).is_err());
        assert!(run(&op, &[Tensor::scalar(1f32), axes(&[0])]).is_err());
    }

    #[test]
    fn inference() {
        use crate::types::{Dim, Shape};
        let x = TensorType {
            dtype: DType::F32,
            shape: Shape::Ranked(vec![
                Dim::Sym("b".into()),
                Dim::Static(197),
                Dim::Static(192),
            ]),
        };
        let at = TensorType::fixed(DType::I64, &[1]);
        let a = axes(&[-1]);
        let ty = |op: &Op, ins: &[(TensorType, Option<&Tensor>)]| infer(op, ins).unwrap().remove(0);
        let keep = red(ReduceOp::Mean, true, false);
        let drop = red(ReduceOp::Mean, false, false);
        assert_eq!(
            ty(&keep, &[(x.clone(), None), (at.clone(), Some(&a))]).shape,
            Shape::Ranked(vec![Dim::Sym("b".into()), Dim::Static(197), Dim::Static(1)])
        );
        assert_eq!(
            ty(&drop, &[(x.clone(), None), (at.clone(), Some(&a))]).shape,
            Shape::Ranked(vec![Dim::Sym("b".into()), Dim::Static(197)])
        );
        // Unknown axes of known length.
        assert_eq!(
            ty(&drop, &[(x.clone(), None), (at.clone(), None)]).shape,
            Shape::unknown_dims(2)
        );
        assert_eq!(
            ty(&keep, &[(x.clone(), None), (at.clone(), None)]).shape,
            Shape::unknown_dims(3)
        );
        let any_len = TensorType {
            dtype: DType::I64,
            shape: Shape::Ranked(vec![Dim::Unknown]),
        };
        assert_eq!(
            ty(&drop, &[(x.clone(), None), (any_len, None)]).shape,
            Shape::Unranked
        );
        // No axes.
        assert_eq!(ty(&drop, &[(x.clone(), None)]).shape, Shape::Ranked(vec![]));
        assert_eq!(
            ty(&keep, &[(x.clone(), None)]).shape,
            Shape::fixed(&[1, 1, 1])
        );
        let noop = red(ReduceOp::Sum, false, true);
        assert_eq!(ty(&noop, &[(x.clone(), None)]), x);
        let empty = TensorType::fixed(DType::I64, &[0]);
        assert_eq!(ty(&noop, &[(x.clone(), None), (empty, None)]), x);
        // Unranked input.
        let u = TensorType::unranked(DType::I32);
        assert_eq!(ty(&drop, &[(u.clone(), None)]).shape, Shape::Ranked(vec![]));
        assert_eq!(
            ty(&keep, &[(u, None), (at.clone(), Some(&a))]).shape,
            Shape::Unranked
        );
        // Errors.
        let bad = axes(&[3]);
        assert!(infer(&keep, &[(x.clone(), None), (at.clone(), Some(&bad))]).is_err());
        let b = TensorType::fixed(DType::Bool, &[2]);
        assert!(infer(&red(ReduceOp::Sum, true, false), &[(b.clone(), None)]).is_err());
        assert!(infer(&red(ReduceOp::Max, true, false), &[(b, None)]).is_ok());
        assert!(
            infer(
                &keep,
                &[
                    (x.clone(), None),
                    (TensorType::fixed(DType::F32, &[1]), None)
                ]
            )
            .is_err()
        );
    }
}
