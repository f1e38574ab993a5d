//! Einsum: equation parsing (explicit and implicit output, `...` broadcasting, repeated
//! labels for diagonals and traces) and a direct evaluation over the index space.
//!
//! Floats accumulate in f64 and integers in wrapping i64, then round once to the dtype.

use crate::dtype::{DType, Elem};
use crate::infer::{InferError, InferInput};
use crate::interp::EvalError;
use crate::ops::Op;
use crate::tensor::{Tensor, checked_numel};
use crate::types::{Dim, Shape, TensorType};
use rayon::prelude::*;

/// One subscript of a term.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sub {
    /// A letter label.
    Letter(u8),
    /// `...`: the broadcast dims.
    Ellipsis,
}

/// A parsed equation; `output` is explicit or derived (implicit mode).
#[derive(Debug, PartialEq, Eq)]
struct Equation {
    inputs: Vec<Vec<Sub>>,
    output: Vec<Sub>,
}

/// Parses one term (`ij`, `...ij`, `b...`).
fn parse_term(t: &str) -> Result<Vec<Sub>, String> {
    let b = t.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            c if c.is_ascii_alphabetic() => {
                out.push(Sub::Letter(c));
                i += 1;
            }
            b'.' if b.get(i..i + 3) == Some(b"...") => {
                if out.contains(&Sub::Ellipsis) {
                    return Err(format!("term '{t}' has more than one ellipsis"));
                }
                out.push(Sub::Ellipsis);
                i += 3;
            }
            c => {
                return Err(format!(
                    "term '{t}' has an invalid character '{}'",
                    c as char
                ));
            }
        }
    }
    Ok(out)
}

/// Parses an equation for `n` inputs.
fn parse(eq: &str, n: usize) -> Result<Equation, String> {
    let eq: String = eq.chars().filter(|c| !c.is_whitespace()).collect();
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l, Some(r)),
        None => (eq.as_str(), None),
    };
    let inputs: Vec<Vec<Sub>> = lhs.split(',').map(parse_term).collect::<Result<_, _>>()?;
    if inputs.len() != n {
        return Err(format!(
            "equation '{eq}' has {} input terms but the node has {n} inputs",
            inputs.len()
        ));
    }
    let mut counts = [0usize; 256];
    for s in inputs.iter().flatten() {
        if let Sub::Letter(c) = s {
            counts[*c as usize] += 1;
        }
    }
    let any_ellipsis = inputs.iter().flatten().any(|s| *s == Sub::Ellipsis);
    let output = match rhs {
        Some(r) => {
            let out = parse_term(r)?;
            for (i, s) in out.iter().enumerate() {
                if let Sub::Letter(c) = s {
                    if counts[*c as usize] == 0 {
                        return Err(format!(
                            "output label '{}' of '{eq}' is not in any input",
                            *c as char
                        ));
                    }
                    if out[..i].contains(s) {
                        return Err(format!(
                            "output label '{}' of '{eq}' is repeated",
                            *c as char
                        ));
                    }
                }
            }
            out
        }
        None => {
            let mut out = Vec::new();
            if any_ellipsis {
                out.push(Sub::Ellipsis);
            }
            out.extend(
                (0u8..=255)
                    .filter(|&c| counts[c as usize] == 1)
                    .map(Sub::Letter),
            );
            out
        }
    };
    Ok(Equation { inputs, output })
}

/// The terms of an equation for `n` inputs as letter lists (inputs, then the output, derived as
/// ONNX does in implicit mode), for the consumers that only handle letters (the optimizer's
/// contraction rules, the GEMM lowering). `Err` for a malformed equation, or one with `...`
/// (its message then starts with "ellipsis").
pub fn letter_terms(eq: &str, n: usize) -> Result<(Vec<Vec<char>>, Vec<char>), String> {
    let e = parse(eq, n)?;
    let letters = |t: &[Sub]| -> Result<Vec<char>, String> {
        t.iter()
            .map(|s| match s {
                Sub::Letter(c) => Ok(*c as char),
                Sub::Ellipsis => Err(format!("ellipsis in '{eq}'")),
            })
            .collect()
    };
    let inputs = e
        .inputs
        .iter()
        .map(|t| letters(t))
        .collect::<Result<_, _>>()?;
    Ok((inputs, letters(&e.output)?))
}

/// A dim that can be merged with another occurrence of the same label.
trait EDim: Clone + PartialEq {
    /// The static size, if known.
    fn size(&self) -> Option<usize>;
    /// A static size.
    fn of(n: usize) -> Self;
    /// Printable.
    fn show(&self) -> String;
}

impl EDim for usize {
    fn size(&self) -> Option<usize> {
        Some(*self)
    }
    fn of(n: usize) -> Self {
        n
    }
    fn show(&self) -> String {
        self.to_string()
    }
}

impl EDim for Dim {
    fn size(&self) -> Option<usize> {
        self.as_static()
    }
    fn of(n: usize) -> Self {
        Dim::Static(n)
    }
    fn show(&self) -> String {
        self.to_string()
    }
}

/// Label sizes of an equation over input shapes.
struct Sizes<D> {
    /// Size of each letter (by byte), if it occurs.
    letters: Vec<Option<D>>,
    /// The broadcast ellipsis dims.
    ell: Vec<D>,
}

/// Merges two occurrences of a label; `bcast` lets a size-1 dim broadcast (ellipsis dims).
fn merge<D: EDim>(a: &D, b: &D, bcast: bool) -> Option<D> {
    match (a.size(), b.size()) {
        (Some(x), Some(y)) if x == y => Some(a.clone()),
        (Some(1), _) if bcast => Some(b.clone()),
        (_, Some(1)) if bcast => Some(a.clone()),
        (Some(_), Some(_)) => None,
        (Some(_), None) => Some(a.clone()),
        (None, Some(_)) => Some(b.clone()),
        (None, None) if a == b => Some(a.clone()),
        // Two different symbols: keep the first (they must be equal at run time).
        (None, None) => Some(a.clone()),
    }
}

/// Resolves the label sizes of `eq` over the input `shapes`.
fn sizes<D: EDim>(eq: &Equation, shapes: &[&[D]]) -> Result<Sizes<D>, String> {
    let mut letters: Vec<Option<D>> = vec![None; 256];
    let mut ell: Vec<D> = Vec::new();
    for (t, (term, shape)) in eq.inputs.iter().zip(shapes).enumerate() {
        let n_letters = term.iter().filter(|s| **s != Sub::Ellipsis).count();
        let has_ell = term.contains(&Sub::Ellipsis);
        let ell_rank = if has_ell {
            shape.len().checked_sub(n_letters).ok_or_else(|| {
                format!(
                    "input {t} has rank {} but its term needs at least {n_letters}",
                    shape.len()
                )
            })?
        } else if shape.len() != n_letters {
            return Err(format!(
                "input {t} has rank {} but its term has {n_letters} labels",
                shape.len()
            ));
        } else {
            0
        };
        let mut axis = 0;
        for s in term {
            match s {
                Sub::Letter(c) => {
                    let d = &shape[axis];
                    let slot = &mut letters[*c as usize];
                    *slot = Some(match slot {
                        None => d.clone(),
                        Some(prev) => merge(prev, d, false).ok_or_else(|| {
                            format!(
                                "label '{}' has sizes {} and {}",
                                *c as char,
                                prev.show(),
                                d.show()
                            )
                        })?,
                    });
                    axis += 1;
                }
                Sub::Ellipsis => {
                    let dims = &shape[axis..axis + ell_rank];
                    // Right-aligned broadcast with the dims seen so far.
                    if dims.len() > ell.len() {
                        let mut grown = dims[..dims.len() - ell.len()].to_vec();
                        grown.extend(ell.iter().cloned());
                        ell = grown;
                    }
                    let off = ell.len() - dims.len();
                    for (j, d) in dims.iter().enumerate() {
                        ell[off + j] = merge(&ell[off + j], d, true)
                            .ok_or_else(|| format!("'...' dims of input {t} do not broadcast"))?;
                    }
                    axis += ell_rank;
                }
            }
        }
    }
    if !ell.is_empty() && !eq.output.contains(&Sub::Ellipsis) {
        return Err("the inputs have '...' dims but the output has no '...'".into());
    }
    Ok(Sizes { letters, ell })
}

/// Output dims of `eq`.
fn output_dims<D: EDim>(eq: &Equation, s: &Sizes<D>) -> Vec<D> {
    let mut out = Vec::new();
    for sub in &eq.output {
        match sub {
            Sub::Letter(c) => out.push(s.letters[*c as usize].clone().unwrap_or(D::of(1))),
            Sub::Ellipsis => out.extend(s.ell.iter().cloned()),
        }
    }
    out
}

/// True for the dtypes Einsum accepts (numeric).
fn dtype_ok(d: DType) -> bool {
    d != DType::Bool
}

/// Output types of Einsum.
pub(super) fn infer(
    op: &Op,
    equation: &str,
    inputs: &[Option<InferInput<'_>>],
) -> Result<Vec<TensorType>, InferError> {
    let tys: Vec<&TensorType> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| {
            t.map(|t| t.ty)
                .ok_or_else(|| InferError::Arity(format!("Einsum needs input {i}")))
        })
        .collect::<Result<_, _>>()?;
    let Some(first) = tys.first() else {
        return Err(InferError::Arity("Einsum needs at least one input".into()));
    };
    let dtype = first.dtype;
    if !dtype_ok(dtype) {
        return Err(InferError::Dtype(format!(
            "Einsum does not accept {dtype} inputs"
        )));
    }
    if let Some(t) = tys.iter().find(|t| t.dtype != dtype) {
        return Err(InferError::Dtype(format!(
            "Einsum inputs have dtypes {dtype} and {}",
            t.dtype
        )));
    }
    let eq = parse(equation, tys.len())
        .map_err(|e| InferError::Attribute(format!("{} equation: {e}", op.name())))?;
    let dims: Option<Vec<&[Dim]>> = tys.iter().map(|t| t.shape.dims()).collect();
    let shape = match dims {
        Some(d) => {
            let s = sizes(&eq, &d).map_err(|e| {
                InferError::Shape(format!(
                    "Einsum '{equation}' over {}: {e}",
                    shapes_str(&tys)
                ))
            })?;
            Shape::Ranked(output_dims(&eq, &s))
        }
        None if !eq.output.contains(&Sub::Ellipsis) => {
            Shape::Ranked(vec![Dim::Unknown; eq.output.len()])
        }
        None => Shape::Unranked,
    };
    Ok(vec![TensorType { dtype, shape }])
}

fn shapes_str(tys: &[&TensorType]) -> String {
    tys.iter()
        .map(|t| t.shape.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Evaluates Einsum.
pub(super) fn eval(
    op: &Op,
    equation: &str,
    inputs: &[Option<Tensor>],
) -> Result<Vec<Tensor>, EvalError> {
    let ts: Vec<&Tensor> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| {
            t.as_ref()
                .ok_or_else(|| EvalError::Invalid(format!("Einsum needs input {i}")))
        })
        .collect::<Result<_, _>>()?;
    let Some(first) = ts.first() else {
        return Err(EvalError::Invalid("Einsum needs at least one input".into()));
    };
    let dtype = first.dtype();
    if !dtype_ok(dtype) {
        return Err(super::bad_dtype(op, dtype));
    }
    if let Some(t) = ts.iter().find(|t| t.dtype() != dtype) {
        return Err(EvalError::Invalid(format!(
            "Einsum inputs have dtypes {dtype} and {}",
            t.dtype()
        )));
    }
    let eq = parse(equation, ts.len())
        .map_err(|e| EvalError::Invalid(format!("Einsum equation: {e}")))?;
    let shapes: Vec<&[usize]> = ts.iter().map(|t| t.shape()).collect();
    let s = sizes(&eq, &shapes)
        .map_err(|e| EvalError::Invalid(format!("Einsum '{equation}' over {shapes:?}: {e}")))?;
    let out_shape = output_dims(&eq, &s);
    checked_numel(&out_shape)?;

    // Labels: the ellipsis dims first, then each letter present.
    let e = s.ell.len();
    let mut label_of = [usize::MAX; 256];
    let mut size: Vec<usize> = s.ell.clone();
    for (c, n) in s.letters.iter().enumerate() {
        if let Some(n) = n {
            label_of[c] = size.len();
            size.push(*n);
        }
    }
    // The label of each axis of each operand.
    let axis_labels: Vec<Vec<usize>> = eq
        .inputs
        .iter()
        .zip(&shapes)
        .map(|(term, shape)| {
            let n_letters = term.iter().filter(|x| **x != Sub::Ellipsis).count();
            let ell_rank = shape.len() - n_letters;
            let mut labels = Vec::with_capacity(shape.len());
            for sub in term {
                match sub {
                    Sub::Letter(c) => labels.push(label_of[*c as usize]),
                    Sub::Ellipsis => labels.extend(e - ell_rank..e),
                }
            }
            labels
        })
        .collect();
    // Stride of each label in each operand (repeated labels add up: diagonals; broadcast
    // size-1 dims add nothing).
    let strides: Vec<Vec<usize>> = axis_labels
        .iter()
        .zip(&shapes)
        .map(|(labels, shape)| {
            let st = crate::opset::util::strides(shape);
            let mut ls = vec![0usize; size.len()];
            for (axis, &l) in labels.iter().enumerate() {
                if shape[axis] == size[l] {
                    ls[l] += st[axis];
                }
            }
            ls
        })
        .collect();
    let mut out_labels: Vec<usize> = Vec::new();
    for sub in &eq.output {
        match sub {
            Sub::Letter(c) => out_labels.push(label_of[*c as usize]),
            Sub::Ellipsis => out_labels.extend(0..e),
        }
    }
    let sum_labels: Vec<usize> = (0..size.len())
        .filter(|l| !out_labels.contains(l))
        .collect();
    let plan = Plan {
        out_sizes: out_labels.iter().map(|&l| size[l]).collect(),
        out_strides: strides
            .iter()
            .map(|ls| out_labels.iter().map(|&l| ls[l]).collect())
            .collect(),
        sum_sizes: sum_labels.iter().map(|&l| size[l]).collect(),
        sum_strides: strides
            .iter()
            .map(|ls| sum_labels.iter().map(|&l| ls[l]).collect())
            .collect(),
    };
    if dtype.is_float()
        && let Some(g) = GemmPlan::new(&axis_labels, &shapes, &size, &out_labels)
    {
        return super::with_real!(dtype, F => {
            let a = super::load::<F>(ts[0]);
            let b = super::load::<F>(ts[1]);
            let y = g.run::<F>(&a, &b, &strides);
            Ok(vec![super::store(dtype, out_shape, y)?])
        }, else Err(super::bad_dtype(op, dtype)));
    }
    if dtype.is_float() {
        let vals: Vec<Vec<f64>> = ts.iter().map(|t| t.to_f64_vec()).collect();
        let out = plan.run(&vals, 0.0, |a, b| a * b, |a, b| a + b);
        crate::dispatch!(dtype, T => Ok(vec![Tensor::from_vec(
            out_shape,
            out.into_iter().map(T::round_from_f64).collect::<Vec<T>>(),
        )?]))
    } else {
        let vals: Vec<Vec<i64>> = ts.iter().map(|t| t.to_i64_vec()).collect();
        let out = plan.run(&vals, 0i64, i64::wrapping_mul, i64::wrapping_add);
        Ok(vec![Tensor::from_vec(out_shape, out)?.cast(dtype)])
    }
}

/// A two-operand Einsum without diagonals, broadcasting or one-sided sums, run as a batched
/// GEMM: A gathered to [batch, m, k], B to [batch, k, n], the product scattered to the output.
struct GemmPlan {
    batch: Vec<usize>,
    m: Vec<usize>,
    n: Vec<usize>,
    k: Vec<usize>,
    /// Sizes of the labels.
    size: Vec<usize>,
    /// Output labels in order.
    out: Vec<usize>,
}

impl GemmPlan {
    fn new(
        axis_labels: &[Vec<usize>],
        shapes: &[&[usize]],
        size: &[usize],
        out: &[usize],
    ) -> Option<GemmPlan> {
        let [la, lb] = axis_labels else { return None };
        for (labels, shape) in axis_labels.iter().zip(shapes) {
            for (i, &l) in labels.iter().enumerate() {
                // No diagonals and no broadcast dims.
                if labels[..i].contains(&l) || shape[i] != size[l] {
                    return None;
                }
            }
        }
        let (in_a, in_b) = (|l: &usize| la.contains(l), |l: &usize| lb.contains(l));
        // Labels summed in one operand only would need a reduction first.
        if (0..size.len()).any(|l| !out.contains(&l) && in_a(&l) != in_b(&l)) {
            return None;
        }
        Some(GemmPlan {
            batch: out.iter().copied().filter(|l| in_a(l) && in_b(l)).collect(),
            m: out
                .iter()
                .copied()
                .filter(|l| in_a(l) && !in_b(l))
                .collect(),
            n: out
                .iter()
                .copied()
                .filter(|l| !in_a(l) && in_b(l))
                .collect(),
            k: la.iter().copied().filter(|l| !out.contains(l)).collect(),
            size: size.to_vec(),
            out: out.to_vec(),
        })
    }

    fn prod(&self, labels: &[usize]) -> usize {
        labels.iter().map(|&l| self.size[l]).product()
    }

    fn run<F: super::Real>(&self, a: &[F], b: &[F], strides: &[Vec<usize>]) -> Vec<F> {
        let (nb, m, n, k) = (
            self.prod(&self.batch),
            self.prod(&self.m),
            self.prod(&self.n),
            self.prod(&self.k),
        );
        let cat = |parts: &[&[usize]]| parts.concat();
        let a_order = cat(&[&self.batch, &self.m, &self.k]);
        let b_order = cat(&[&self.batch, &self.k, &self.n]);
        let ag = gather(a, &a_order, &self.size, &strides[0]);
        let bg = gather(b, &b_order, &self.size, &strides[1]);
        let mut c = vec![F::ZERO; nb * m * n];
        if m * n > 0 {
            c.par_chunks_mut(m * n).enumerate().for_each(|(i, ci)| {
                super::gemm::gemm(
                    m,
                    k,
                    n,
                    F::ONE,
                    super::gemm::Mat::rows(&ag[i * m * k..(i + 1) * m * k], k),
                    super::gemm::Mat::rows(&bg[i * k * n..(i + 1) * k * n], n),
                    F::ZERO,
                    ci,
                );
            });
        }
        // Strides of each label in C = [batch, m, n], then gathered in output order.
        let c_order = cat(&[&self.batch, &self.m, &self.n]);
        let c_sizes: Vec<usize> = c_order.iter().map(|&l| self.size[l]).collect();
        let c_st = crate::opset::util::strides(&c_sizes);
        let mut cs = vec![0usize; self.size.len()];
        for (&l, &s) in c_order.iter().zip(&c_st) {
            cs[l] = s;
        }
        if c_order == self.out {
            return c;
        }
        gather(&c, &self.out, &self.size, &cs)
    }
}

/// The elements of `v` (label strides `st`) laid out contiguously in `order` of labels.
fn gather<F: Copy + Send + Sync>(v: &[F], order: &[usize], size: &[usize], st: &[usize]) -> Vec<F> {
    let sizes: Vec<usize> = order.iter().map(|&l| size[l]).collect();
    let strides: Vec<usize> = order.iter().map(|&l| st[l]).collect();
    let contiguous = crate::opset::util::strides(&sizes);
    let total: usize = sizes.iter().product();
    if strides == contiguous && v.len() == total {
        return v.to_vec();
    }
    let mut out = Vec::with_capacity(total);
    let mut idx = vec![0usize; sizes.len()];
    let mut off = 0usize;
    for _ in 0..total {
        out.push(v[off]);
        for d in (0..idx.len()).rev() {
            idx[d] += 1;
            off += strides[d];
            if idx[d] < sizes[d] {
                break;
            }
            off -= strides[d] * idx[d];
            idx[d] = 0;
        }
    }
    out
}

/// The loop nest of an Einsum: output labels outside, summed labels inside.
struct Plan {
    out_sizes: Vec<usize>,
    /// Per operand, the stride of each output label.
    out_strides: Vec<Vec<usize>>,
    sum_sizes: Vec<usize>,
    /// Per operand, the stride of each summed label.
    sum_strides: Vec<Vec<usize>>,
}

impl Plan {
    fn run<V: Copy + Send + Sync>(
        &self,
        vals: &[Vec<V>],
        zero: V,
        mul: impl Fn(V, V) -> V + Sync,
        add: impl Fn(V, V) -> V + Sync,
    ) -> Vec<V> {
        let n_out: usize = self.out_sizes.iter().product();
        let n_sum: usize = self.sum_sizes.iter().product();
        let k = vals.len();
        let mut out = vec![zero; n_out];
        if n_sum == 0 {
            return out;
        }
        out.par_iter_mut()
            .enumerate()
            .with_min_len(64)
            .for_each(|(o, y)| {
                // Base offsets of this output element.
                let mut base = vec![0usize; k];
                let mut rem = o;
                for d in (0..self.out_sizes.len()).rev() {
                    let i = rem % self.out_sizes[d];
                    rem /= self.out_sizes[d];
                    for (b, st) in base.iter_mut().zip(&self.out_strides) {
                        *b += i * st[d];
                    }
                }
                let mut idx = vec![0usize; self.sum_sizes.len()];
                let mut off = base.clone();
                let mut acc = zero;
                for _ in 0..n_sum {
                    let mut p = vals[0][off[0]];
                    for t in 1..k {
                        p = mul(p, vals[t][off[t]]);
                    }
                    acc = add(acc, p);
                    // Advance the summed multi-index.
                    for d in (0..idx.len()).rev() {
                        idx[d] += 1;
                        for (of, st) in off.iter_mut().zip(&self.sum_strides) {
                            *of += st[d];
                        }
                        if idx[d] < self.sum_sizes[d] {
                            break;
                        }
                        for (of, st) in off.iter_mut().zip(&self.sum_strides) {
                            *of -= st[d] * idx[d];
                        }
                        idx[d] = 0;
                    }
                }
                *y = acc;
            });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    fn op(eq: &str) -> Op {
        Op::Einsum {
            equation: eq.to_string(),
        }
    }

    #[test]
    fn parse_implicit_and_explicit() {
        use Sub::*;
        let e = parse("ij,jk", 2).unwrap();
        assert_eq!(e.output, vec![Letter(b'i'), Letter(b'k')]);
        let e = parse("ba", 1).unwrap();
        assert_eq!(e.output, vec![Letter(b'a'), Letter(b'b')]);
        let e = parse("...ij, ...jk", 2).unwrap();
        assert_eq!(e.output, vec![Ellipsis, Letter(b'i'), Letter(b'k')]);
        assert_eq!(parse("ii", 1).unwrap().output, vec![]);
        assert!(parse("ij->k", 1).is_err());
        assert!(parse("ij->ii", 1).is_err());
        assert!(parse("i.j", 1).is_err());
        assert!(parse("ij,jk", 1).is_err());
        assert!(parse("i1", 1).is_err());
    }

    #[test]
    fn matmul_transpose_sum_trace() {
        let a = iota(&[2, 3]);
        let b = iota(&[3, 2]);
        close(
            &run1(&op("ij,jk->ik"), &[a.clone(), b]),
            &[2, 2],
            &[10., 13., 28., 40.],
        );
        close(
            &run1(&op("ij->ji"), std::slice::from_ref(&a)),
            &[3, 2],
            &[0., 3., 1., 4., 2., 5.],
        );
        close(
            &run1(&op("ij->i"), std::slice::from_ref(&a)),
            &[2],
            &[3., 12.],
        );
        close(&run1(&op("ij->"), std::slice::from_ref(&a)), &[], &[15.]);
        close(&run1(&op("ii"), &[iota(&[3, 3])]), &[], &[12.]);
        close(&run1(&op("ii->i"), &[iota(&[3, 3])]), &[3], &[0., 4., 8.]);
        close(
            &run1(
                &op("i,i"),
                &[f(&[3], &[1., 2., 3.]), f(&[3], &[4., 5., 6.])],
            ),
            &[],
            &[32.],
        );
        close(
            &run1(&op("i,j->ij"), &[f(&[2], &[1., 2.]), f(&[2], &[3., 4.])]),
            &[2, 2],
            &[3., 4., 6., 8.],
        );
    }

    #[test]
    fn ellipsis_broadcast_and_batch_diagonal() {
        // Batch matmul with a broadcast batch dim.
        let a = iota(&[2, 1, 2]);
        let b = f(&[2, 1], &[1., 1.]);
        let y = run1(&op("...ij,jk->...ik"), &[a, b]);
        close(&y, &[2, 1, 1], &[1., 5.]);
        // '...' dims broadcast across operands: [2,1] with [3].
        let y = run1(
            &op("...,...->..."),
            &[f(&[2, 1], &[1., 2.]), f(&[3], &[1., 2., 3.])],
        );
        close(&y, &[2, 3], &[1., 2., 3., 2., 4., 6.]);
        // Batch diagonal (test_einsum_batch_diagonal): [2,3,3] -> [2,3].
        let y = run1(&op("...ii->...i"), &[iota(&[2, 3, 3])]);
        close(&y, &[2, 3], &[0., 4., 8., 9., 13., 17.]);
    }

    #[test]
    fn gemm_path_matches_exact_loops() {
        // Integer inputs take the exact loop nest; the same values as f32 take the GEMM path.
        let cases: &[(&str, &[usize], &[usize])] = &[
            ("bij,bjk->bik", &[2, 3, 4], &[2, 4, 5]),
            ("bhqd,bhkd->bhqk", &[1, 2, 3, 4], &[1, 2, 5, 4]),
            ("ij,jk->ki", &[3, 4], &[4, 2]),
            ("i,j->ji", &[3], &[2]),
            ("ij,ij->", &[3, 4], &[3, 4]),
            ("ij,ij->ji", &[3, 4], &[3, 4]),
            ("abc,cd->dba", &[2, 3, 4], &[4, 3]),
            ("...ij,...jk->...ik", &[2, 2, 3], &[2, 3, 2]),
        ];
        for &(eq, sa, sb) in cases {
            let a = iota(sa);
            let b = iota(sb);
            let ai = a.cast(DType::I64);
            let bi = b.cast(DType::I64);
            let exact = run1(&op(eq), &[ai, bi]);
            let fast = run1(&op(eq), &[a, b]);
            assert_eq!(fast.shape(), exact.shape(), "{eq}");
            assert_eq!(fast.to_f64_vec(), exact.to_f64_vec(), "{eq}");
        }
    }

    #[test]
    fn dtypes() {
        let a = Tensor::from_vec(vec![2], vec![200u8, 100]).unwrap();
        let y = run1(&op("i->"), &[a]);
        assert_eq!(y.view::<u8>(), &[44]); // 300 mod 256
        let a = Tensor::from_vec(vec![2], vec![-3i64, 4]).unwrap();
        assert_eq!(run1(&op("i,i->"), &[a.clone(), a]).view::<i64>(), &[25]);
        let y = run1(&op("ij->"), &[iota(&[2, 2]).cast(DType::BF16)]);
        assert_eq!(y.dtype(), DType::BF16);
        assert_eq!(y.to_f64_vec(), vec![6.0]);
        let b = Tensor::from_vec(vec![1], vec![crate::Bool8(1)]).unwrap();
        assert!(eval_op(&op("i"), &[Some(b)], 1).is_err());
    }

    #[test]
    fn errors_and_infer() {
        assert!(eval_op(&op("ij,jk"), &[Some(iota(&[2, 3])), Some(iota(&[2, 3]))], 1).is_err());
        assert!(eval_op(&op("ij"), &[Some(iota(&[2, 3, 4]))], 1).is_err());
        assert!(eval_op(&op("...ij->ij"), &[Some(iota(&[2, 3, 4]))], 1).is_err());
        let t = infer_types(
            &op("bij,bjk->bik"),
            &[
                Some(sty(DType::F32, &["B", "4", "8"])),
                Some(sty(DType::F32, &["B", "8", "N"])),
            ],
            1,
        )
        .unwrap();
        assert_eq!(t[0], sty(DType::F32, &["B", "4", "N"]));
        let t = infer_types(
            &op("...ij->...ji"),
            &[Some(sty(DType::F32, &["A", "B", "2", "3"]))],
            1,
        )
        .unwrap();
        assert_eq!(t[0], sty(DType::F32, &["A", "B", "3", "2"]));
        let e = infer_types(
            &op("ij,jk"),
            &[Some(ty(DType::F32, &[2, 3])), Some(ty(DType::F32, &[4, 3]))],
            1,
        );
        assert!(matches!(e, Err(InferError::Shape(m)) if m.contains("[2x3]")));
        let e = infer_types(
            &op("ij,jk"),
            &[Some(ty(DType::F32, &[2, 3])), Some(ty(DType::F64, &[3, 3]))],
            1,
        );
        assert!(matches!(e, Err(InferError::Dtype(_))));
    }
}
