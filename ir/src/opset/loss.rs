//! Loss functions: `NegativeLogLikelihoodLoss` and `SoftmaxCrossEntropyLoss`.
//!
//! Both take an input `[N, C, d1..dk]` (k >= 0), an integer target `[N, d1..dk]` of class
//! indices and an optional per-class weight `[C]`. The per-element loss is
//! `-weight[t] * x[n, t, d]` (`x` is the log-probability: the input itself for NLL, the
//! log-softmax of the scores over axis 1 for SCE). A target equal to `ignore_index`
//! contributes 0 with weight 0 (and may lie outside `[0, C)`); any other target outside
//! `[0, C)` is an error. Reduction `mean` divides the weighted sum by the sum of the weights of
//! the non-ignored elements (their count when there is no weight), like the ONNX reference.
//!
//! f16/bf16/f32 inputs are computed in f32 (f64 inputs in f64), the reduction sums accumulate
//! in f64, and the results are rounded to the input dtype at the end.

use crate::dtype::DType;
use crate::infer::{InferError, InferInput, input, opt_input, require_float};
use crate::interp::EvalError;
use crate::ops::{LossReduction, Op};
use crate::opset::util::{opt, req};
use crate::tensor::{Tensor, checked_numel};
use crate::types::{Dim, Shape, TensorType};

/// The op's attributes and whether it is SoftmaxCrossEntropyLoss.
fn attrs(op: &Op) -> (LossReduction, Option<i64>, bool) {
    match op {
        Op::NegativeLogLikelihoodLoss {
            reduction,
            ignore_index,
        } => (*reduction, *ignore_index, false),
        Op::SoftmaxCrossEntropyLoss {
            reduction,
            ignore_index,
        } => (*reduction, *ignore_index, true),
        _ => unreachable!("loss::attrs called with {}", op.name()),
    }
}

/// Two dims that must agree: an error if both are static and differ, else the more precise.
fn unify(op: &Op, what: &str, a: &Dim, b: &Dim) -> Result<Dim, InferError> {
    Ok(match (a, b) {
        (Dim::Static(x), Dim::Static(y)) if x != y => {
            return Err(InferError::Shape(format!(
                "{}: {what} is {y}, the input has {x}",
                op.name()
            )));
        }
        (Dim::Static(x), _) | (_, Dim::Static(x)) => Dim::Static(*x),
        (Dim::Sym(x), _) | (_, Dim::Sym(x)) => Dim::Sym(x.clone()),
        _ => Dim::Unknown,
    })
}

/// Output types: the loss (target's shape for reduction `none`, a scalar otherwise) and, for
/// SoftmaxCrossEntropyLoss, the log-probabilities (the scores' type).
pub fn infer(
    op: &Op,
    inputs: &[Option<InferInput<'_>>],
    _num_outputs: usize,
) -> Result<Vec<TensorType>, InferError> {
    let (reduction, _, sce) = attrs(op);
    if inputs.len() > 3 {
        return Err(InferError::Arity(format!(
            "{} takes at most 3 inputs, got {}",
            op.name(),
            inputs.len()
        )));
    }
    let x = input(op, inputs, 0)?;
    let t = input(op, inputs, 1)?;
    require_float(op, x.ty.dtype)?;
    if !matches!(t.ty.dtype, DType::I32 | DType::I64) {
        return Err(InferError::Dtype(format!(
            "{}: target must be int32 or int64, got {}",
            op.name(),
            t.ty.dtype
        )));
    }
    if let Some(r) = x.ty.shape.rank()
        && r < 2
    {
        return Err(InferError::Shape(format!(
            "{}: input must have rank >= 2 ([N, C, ...]), got rank {r}",
            op.name()
        )));
    }
    // The loss dims [N, d1..dk], from the input and the target.
    let loss_dims: Option<Vec<Dim>> = match (x.ty.shape.dims(), t.ty.shape.dims()) {
        (Some(xd), Some(td)) => {
            if td.len() + 1 != xd.len() {
                return Err(InferError::Shape(format!(
                    "{}: target must have rank {} (input rank - 1), got rank {}",
                    op.name(),
                    xd.len() - 1,
                    td.len()
                )));
            }
            let mut d = vec![unify(op, "target dim 0", &xd[0], &td[0])?];
            for i in 1..td.len() {
                d.push(unify(op, &format!("target dim {i}"), &xd[i + 1], &td[i])?);
            }
            Some(d)
        }
        (Some(xd), None) => Some(
            std::iter::once(xd[0].clone())
                .chain(xd[2..].iter().cloned())
                .collect(),
        ),
        (None, Some(td)) => Some(td.to_vec()),
        (None, None) => None,
    };
    if let Some(w) = opt_input(inputs, 2) {
        if w.ty.dtype != x.ty.dtype {
            return Err(InferError::Dtype(format!(
                "{}: weight is {}, the input is {}",
                op.name(),
                w.ty.dtype,
                x.ty.dtype
            )));
        }
        if let Some(wd) = w.ty.shape.dims() {
            if wd.len() != 1 {
                return Err(InferError::Shape(format!(
                    "{}: weight must have rank 1 ([C]), got rank {}",
                    op.name(),
                    wd.len()
                )));
            }
            if let Some(xd) = x.ty.shape.dims() {
                unify(op, "weight length", &xd[1], &wd[0])?;
            }
        }
    }
    let loss = TensorType {
        dtype: x.ty.dtype,
        shape: match (reduction, loss_dims) {
            (LossReduction::None, Some(d)) => Shape::Ranked(d),
            (LossReduction::None, None) => Shape::Unranked,
            _ => Shape::Ranked(vec![]),
        },
    };
    Ok(if sce {
        vec![loss, x.ty.clone()]
    } else {
        vec![loss]
    })
}

/// Float arithmetic in the compute precision (f32 for f16/bf16/f32, f64 for f64).
trait Calc: Copy + PartialOrd + std::ops::Sub<Output = Self> + std::ops::Neg<Output = Self> {
    fn of(v: f64) -> Self;
    fn f64(self) -> f64;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn mul(self, o: Self) -> Self;
}

impl Calc for f32 {
    fn of(v: f64) -> Self {
        v as f32
    }
    fn f64(self) -> f64 {
        self as f64
    }
    fn exp(self) -> Self {
        f32::exp(self)
    }
    fn ln(self) -> Self {
        f32::ln(self)
    }
    fn mul(self, o: Self) -> Self {
        self * o
    }
}

impl Calc for f64 {
    fn of(v: f64) -> Self {
        v
    }
    fn f64(self) -> f64 {
        self
    }
    fn exp(self) -> Self {
        f64::exp(self)
    }
    fn ln(self) -> Self {
        f64::ln(self)
    }
    fn mul(self, o: Self) -> Self {
        self * o
    }
}

/// Evaluates NegativeLogLikelihoodLoss (outputs: loss) or SoftmaxCrossEntropyLoss (outputs:
/// loss, log_prob).
pub fn eval(
    op: &Op,
    inputs: &[Option<Tensor>],
    _num_outputs: usize,
) -> Result<Vec<Tensor>, EvalError> {
    let bad = |m: String| EvalError::Invalid(format!("{}: {m}", op.name()));
    if inputs.len() > 3 {
        return Err(bad(format!("takes at most 3 inputs, got {}", inputs.len())));
    }
    let x = req(op, inputs, 0)?;
    let t = req(op, inputs, 1)?;
    let w = opt(inputs, 2);
    if !x.dtype().is_float() {
        return Err(bad(format!(
            "input must be a float tensor, got {}",
            x.dtype()
        )));
    }
    if !matches!(t.dtype(), DType::I32 | DType::I64) {
        return Err(bad(format!(
            "target must be int32 or int64, got {}",
            t.dtype()
        )));
    }
    let xs = x.shape();
    if xs.len() < 2 {
        return Err(bad(format!(
            "input must have rank >= 2 ([N, C, ...]), got shape {xs:?}"
        )));
    }
    let (n, c) = (xs[0], xs[1]);
    let d: usize = xs[2..].iter().product();
    let want: Vec<usize> = std::iter::once(n).chain(xs[2..].iter().copied()).collect();
    if t.shape() != want.as_slice() {
        return Err(bad(format!(
            "target shape {:?} does not match input shape {xs:?} (want {want:?})",
            t.shape()
        )));
    }
    if let Some(w) = w {
        if w.dtype() != x.dtype() {
            return Err(bad(format!(
                "weight is {}, the input is {}",
                w.dtype(),
                x.dtype()
            )));
        }
        if w.shape() != [c] {
            return Err(bad(format!(
                "weight shape {:?} must be [C] = [{c}]",
                w.shape()
            )));
        }
    }
    let (reduction, ignore_index, sce) = attrs(op);
    let xv = x.to_f64_vec();
    let tv = t.to_i64_vec();
    let wv = w.map(Tensor::to_f64_vec);
    let (loss, log_prob) = if x.dtype() == DType::F64 {
        compute::<f64>(
            &xv,
            &tv,
            wv.as_deref(),
            n,
            c,
            d,
            sce,
            reduction,
            ignore_index,
        )
    } else {
        compute::<f32>(
            &xv,
            &tv,
            wv.as_deref(),
            n,
            c,
            d,
            sce,
            reduction,
            ignore_index,
        )
    }
    .map_err(bad)?;
    let loss_shape = if reduction == LossReduction::None {
        want
    } else {
        vec![]
    };
    checked_numel(&loss_shape)?;
    let mut out = vec![Tensor::from_vec(loss_shape, loss)?.cast(x.dtype())];
    if let Some(lp) = log_prob {
        out.push(Tensor::from_vec(xs.to_vec(), lp)?.cast(x.dtype()));
    }
    Ok(out)
}

/// The loss values (per element, or the one reduced value) and, for SCE, the log-softmax of
/// `x` over axis 1, as f64s holding values of the compute type `F`.
#[allow(clippy::too_many_arguments)]
fn compute<F: Calc>(
    x: &[f64],
    target: &[i64],
    weight: Option<&[f64]>,
    n: usize,
    c: usize,
    d: usize,
    sce: bool,
    reduction: LossReduction,
    ignore_index: Option<i64>,
) -> Result<(Vec<f64>, Option<Vec<f64>>), String> {
    // log-probabilities x[n, c, d], in F.
    let lp: Vec<F> = if sce {
        let mut lp: Vec<F> = x.iter().map(|&v| F::of(v)).collect();
        for i in 0..n {
            for j in 0..d {
                let at = |k: usize| (i * c + k) * d + j;
                let mut max = F::of(f64::NEG_INFINITY);
                for k in 0..c {
                    let v = lp[at(k)];
                    if v > max || v.f64().is_nan() {
                        max = v;
                    }
                }
                let mut sum = 0f64;
                for k in 0..c {
                    sum += (lp[at(k)] - max).exp().f64();
                }
                let log_sum = F::of(sum).ln();
                for k in 0..c {
                    let a = at(k);
                    lp[a] = lp[a] - max - log_sum;
                }
            }
        }
        lp
    } else {
        x.iter().map(|&v| F::of(v)).collect()
    };
    let mut losses = Vec::with_capacity(n * d);
    let (mut sum, mut wsum) = (0f64, 0f64);
    for i in 0..n {
        for j in 0..d {
            let tgt = target[i * d + j];
            if Some(tgt) == ignore_index {
                losses.push(0.0);
                continue;
            }
            if tgt < 0 || tgt as u64 >= c as u64 {
                return Err(format!(
                    "target value {tgt} (at element {}) is out of range [0, {c})",
                    i * d + j
                ));
            }
            let k = tgt as usize;
            let wk = weight.map_or(F::of(1.0), |w| F::of(w[k]));
            let l = -(lp[(i * c + k) * d + j]).mul(wk);
            losses.push(l.f64());
            sum += l.f64();
            wsum += wk.f64();
        }
    }
    let loss = match reduction {
        LossReduction::None => losses,
        LossReduction::Sum => vec![F::of(sum).f64()],
        LossReduction::Mean => vec![F::of(sum / wsum).f64()],
    };
    Ok((loss, sce.then(|| lp.iter().map(|v| v.f64()).collect())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interp::eval_op;
    use half::{bf16, f16};

    fn nll(reduction: LossReduction, ignore_index: Option<i64>) -> Op {
        Op::NegativeLogLikelihoodLoss {
            reduction,
            ignore_index,
        }
    }

    fn sce(reduction: LossReduction, ignore_index: Option<i64>) -> Op {
        Op::SoftmaxCrossEntropyLoss {
            reduction,
            ignore_index,
        }
    }

    fn t32(shape: &[usize], v: &[f32]) -> Tensor {
        Tensor::from_vec(shape.to_vec(), v.to_vec()).unwrap()
    }

    fn ti(shape: &[usize], v: &[i64]) -> Tensor {
        Tensor::from_vec(shape.to_vec(), v.to_vec()).unwrap()
    }

    fn run(op: &Op, ins: Vec<Option<Tensor>>, nout: usize) -> Vec<Tensor> {
        eval_op(op, &ins, nout).unwrap()
    }

    fn close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{a:?} vs {b:?}");
        }
    }

    // x [2, 3]: rows [-1, -2, -3], [-4, -5, -6]; target [2, 0].
    fn x2() -> Tensor {
        t32(&[2, 3], &[-1., -2., -3., -4., -5., -6.])
    }

    #[test]
    fn nll_2d_reductions() {
        let t = ti(&[2], &[2, 0]);
        let r = run(
            &nll(LossReduction::None, None),
            vec![Some(x2()), Some(t.clone())],
            1,
        );
        assert_eq!(r[0].shape(), &[2]);
        close(r[0].view::<f32>(), &[3., 4.]);
        let r = run(
            &nll(LossReduction::Sum, None),
            vec![Some(x2()), Some(t.clone())],
            1,
        );
        assert_eq!(r[0].shape(), &[] as &[usize]);
        close(r[0].view::<f32>(), &[7.]);
        let r = run(
            &nll(LossReduction::Mean, None),
            vec![Some(x2()), Some(t)],
            1,
        );
        close(r[0].view::<f32>(), &[3.5]);
    }

    #[test]
    fn nll_weighted_mean_divides_by_weight_sum() {
        // weights [0.5, 1, 2]: losses 3*2 = 6 and 4*0.5 = 2; mean = 8 / 2.5 = 3.2.
        let w = t32(&[3], &[0.5, 1., 2.]);
        let t = ti(&[2], &[2, 0]);
        let ins = vec![Some(x2()), Some(t), Some(w)];
        let r = run(&nll(LossReduction::Mean, None), ins.clone(), 1);
        close(r[0].view::<f32>(), &[3.2]);
        let r = run(&nll(LossReduction::None, None), ins, 1);
        close(r[0].view::<f32>(), &[6., 2.]);
    }

    #[test]
    fn nll_ignore_index_out_of_range_and_mean() {
        // target [-1, 0] with ignore_index -1: loss [0, 4]; mean over 1 element = 4;
        // weighted: 4*0.5 / 0.5 = 4.
        let t = ti(&[2], &[-1, 0]);
        let r = run(
            &nll(LossReduction::None, Some(-1)),
            vec![Some(x2()), Some(t.clone())],
            1,
        );
        close(r[0].view::<f32>(), &[0., 4.]);
        let r = run(
            &nll(LossReduction::Mean, Some(-1)),
            vec![Some(x2()), Some(t.clone())],
            1,
        );
        close(r[0].view::<f32>(), &[4.]);
        let w = t32(&[3], &[0.5, 1., 2.]);
        let r = run(
            &nll(LossReduction::Mean, Some(-1)),
            vec![Some(x2()), Some(t), Some(w)],
            1,
        );
        close(r[0].view::<f32>(), &[4.]);
        // ignore_index 10 with in-range targets: not ignored.
        let t = ti(&[2], &[1, 1]);
        let r = run(
            &nll(LossReduction::Sum, Some(10)),
            vec![Some(x2()), Some(t)],
            1,
        );
        close(r[0].view::<f32>(), &[7.]);
    }

    #[test]
    fn nll_nd_and_i32_target() {
        // x [1, 2, 2]: x[0, :, 0] = [-1, -2], x[0, :, 1] = [-3, -4]; target [[1, 0]] → [2, 3].
        let x = t32(&[1, 2, 2], &[-1., -3., -2., -4.]);
        let t = Tensor::from_vec(vec![1, 2], vec![1i32, 0]).unwrap();
        let r = run(
            &nll(LossReduction::None, None),
            vec![Some(x.clone()), Some(t.clone())],
            1,
        );
        assert_eq!(r[0].shape(), &[1, 2]);
        close(r[0].view::<f32>(), &[2., 3.]);
        let r = run(
            &nll(LossReduction::Mean, Some(0)),
            vec![Some(x), Some(t)],
            1,
        );
        close(r[0].view::<f32>(), &[2.]);
    }

    #[test]
    fn nll_other_float_dtypes() {
        let x = x2().cast(DType::F16);
        let t = ti(&[2], &[2, 0]);
        let r = run(
            &nll(LossReduction::Mean, None),
            vec![Some(x), Some(t.clone())],
            1,
        );
        assert_eq!(r[0].dtype(), DType::F16);
        assert_eq!(r[0].view::<f16>(), &[f16::from_f32(3.5)]);
        let x = x2().cast(DType::BF16);
        let r = run(
            &nll(LossReduction::Sum, None),
            vec![Some(x), Some(t.clone())],
            1,
        );
        assert_eq!(r[0].view::<bf16>(), &[bf16::from_f32(7.)]);
        let x = x2().cast(DType::F64);
        let w = Tensor::from_vec(vec![3], vec![0.1f64, 0.2, 0.3]).unwrap();
        let r = run(
            &nll(LossReduction::Mean, None),
            vec![Some(x), Some(t), Some(w)],
            1,
        );
        // (3*0.3 + 4*0.1) / 0.4 = 3.25
        let v = r[0].view::<f64>()[0];
        assert!((v - 3.25).abs() < 1e-12, "{v}");
    }

    #[test]
    fn sce_values_and_log_prob() {
        // scores [[0, 0], [0, ln 3]]: log_prob row 0 = [-ln2, -ln2],
        // row 1 = [-ln4, ln3 - ln4]. target [0, 1] → losses [ln2, ln4 - ln3].
        let l3 = 3f32.ln();
        let x = t32(&[2, 2], &[0., 0., 0., l3]);
        let t = ti(&[2], &[0, 1]);
        let r = run(
            &sce(LossReduction::None, None),
            vec![Some(x.clone()), Some(t.clone())],
            2,
        );
        assert_eq!(r.len(), 2);
        let (l2, l4) = (2f32.ln(), 4f32.ln());
        close(r[0].view::<f32>(), &[l2, l4 - l3]);
        assert_eq!(r[1].shape(), &[2, 2]);
        close(r[1].view::<f32>(), &[-l2, -l2, -l4, l3 - l4]);
        let r = run(
            &sce(LossReduction::Mean, None),
            vec![Some(x.clone()), Some(t.clone())],
            1,
        );
        close(r[0].view::<f32>(), &[(l2 + l4 - l3) / 2.]);
        // weights [1, 3], ignore_index 0: only element 1, mean = 3 * loss / 3.
        let w = t32(&[2], &[1., 3.]);
        let r = run(
            &sce(LossReduction::Mean, Some(0)),
            vec![Some(x.clone()), Some(t.clone()), Some(w.clone())],
            2,
        );
        close(r[0].view::<f32>(), &[l4 - l3]);
        let r = run(
            &sce(LossReduction::Sum, None),
            vec![Some(x), Some(t), Some(w)],
            1,
        );
        close(r[0].view::<f32>(), &[l2 + 3. * (l4 - l3)]);
    }

    #[test]
    fn sce_nd_log_softmax_over_axis_1() {
        // x [1, 2, 2] = x[0, c, d]: d=0 has [0, 0], d=1 has [ln3, 0].
        let l3 = 3f32.ln();
        let x = t32(&[1, 2, 2], &[0., l3, 0., 0.]);
        let t = ti(&[1, 2], &[1, 0]);
        let r = run(&sce(LossReduction::None, None), vec![Some(x), Some(t)], 2);
        let (l2, l4) = (2f32.ln(), 4f32.ln());
        close(r[1].view::<f32>(), &[-l2, l3 - l4, -l2, -l4]);
        close(r[0].view::<f32>(), &[l2, l4 - l3]);
    }

    #[test]
    fn errors() {
        let t = ti(&[2], &[3, 0]);
        let e = eval_op(&nll(LossReduction::Mean, None), &[Some(x2()), Some(t)], 1).unwrap_err();
        assert!(e.to_string().contains("target value 3"), "{e}");
        let t = ti(&[2], &[-1, 0]);
        let e = eval_op(
            &sce(LossReduction::Mean, Some(-2)),
            &[Some(x2()), Some(t)],
            1,
        )
        .unwrap_err();
        assert!(e.to_string().contains("target value -1"), "{e}");
        let t = ti(&[3], &[0, 0, 0]);
        let e = eval_op(&nll(LossReduction::Mean, None), &[Some(x2()), Some(t)], 1).unwrap_err();
        assert!(e.to_string().contains("target shape"), "{e}");
        let t = ti(&[2], &[0, 0]);
        let w = t32(&[2], &[1., 1.]);
        let e = eval_op(
            &nll(LossReduction::Mean, None),
            &[Some(x2()), Some(t.clone()), Some(w)],
            1,
        )
        .unwrap_err();
        assert!(e.to_string().contains("weight shape"), "{e}");
        let e = eval_op(
            &nll(LossReduction::Mean, None),
            &[Some(x2()), Some(t.cast(DType::F32))],
            1,
        )
        .unwrap_err();
        assert!(e.to_string().contains("int32 or int64"), "{e}");
        let e = eval_op(&nll(LossReduction::Mean, None), &[Some(x2())], 1).unwrap_err();
        assert!(e.to_string().contains("input 1"), "{e}");
    }

    #[test]
    fn inference() {
        let x = TensorType {
            dtype: DType::F32,
            shape: Shape::Ranked(vec![Dim::Sym("n".into()), Dim::Static(5), Dim::Static(4)]),
        };
        let t = TensorType {
            dtype: DType::I64,
            shape: Shape::Ranked(vec![Dim::Unknown, Dim::Static(4)]),
        };
        let w = TensorType::fixed(DType::F32, &[5]);
        fn i(ty: &TensorType) -> Option<InferInput<'_>> {
            Some(InferInput { ty, value: None })
        }
        let out = infer(&sce(LossReduction::None, None), &[i(&x), i(&t), i(&w)], 2).unwrap();
        assert_eq!(
            out[0].shape,
            Shape::Ranked(vec![Dim::Sym("n".into()), Dim::Static(4)])
        );
        assert_eq!(out[1], x);
        let out = infer(&nll(LossReduction::Mean, None), &[i(&x), i(&t)], 1).unwrap();
        assert_eq!(out, vec![TensorType::fixed(DType::F32, &[])]);
        let bad_t = TensorType::fixed(DType::I64, &[3, 5]);
        assert!(matches!(
            infer(&nll(LossReduction::None, None), &[i(&x), i(&bad_t)], 1),
            Err(InferError::Shape(_))
        ));
        let bad_w = TensorType::fixed(DType::F32, &[4]);
        assert!(matches!(
            infer(
                &nll(LossReduction::None, None),
                &[i(&x), i(&t), i(&bad_w)],
                1
            ),
            Err(InferError::Shape(_))
        ));
        let f_t = TensorType::fixed(DType::F32, &[3, 4]);
        assert!(matches!(
            infer(&nll(LossReduction::None, None), &[i(&x), i(&f_t)], 1),
            Err(InferError::Dtype(_))
        ));
        // Too many outputs for NLL is caught by the generic arity check.
        assert!(crate::infer::infer(&nll(LossReduction::None, None), &[i(&x), i(&t)], 2).is_err());
    }
}
