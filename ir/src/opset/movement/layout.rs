//! Layout ops: Transpose, DepthToSpace, SpaceToDepth, Concat, Split, Slice, Pad and Trilu.

use super::copy::{by_width, first_word, from_words, istrides, materialize, words};
use super::{
    attr_err, dim_mul, input, invalid, known_ints, norm_axes, norm_axis_eval, norm_axis_infer,
    ranked, require_int, shape_err,
};
use crate::infer::{InferError, InferInput, opt_input};
use crate::interp::EvalError;
use crate::ops::{Op, PadMode};
use crate::opset::util::{opt, req};
use crate::tensor::{Tensor, checked_numel};
use crate::types::{Dim, Shape, TensorType};

// ---------------------------------------------------------------------------------------------
// Transpose

/// The permutation of a Transpose over `rank` dims (reversal when absent), validated.
fn resolve_perm(perm: Option<&[usize]>, rank: usize) -> Result<Vec<usize>, String> {
    let Some(p) = perm else {
        return Ok((0..rank).rev().collect());
    };
    let mut seen = vec![false; rank];
    if p.len() != rank {
        return Err(format!("perm {p:?} does not have {rank} entries"));
    }
    for &i in p {
        if i >= rank || std::mem::replace(&mut seen[i], true) {
            return Err(format!("perm {p:?} is not a permutation of 0..{rank}"));
        }
    }
    Ok(p.to_vec())
}

/// Transpose inference.
pub(super) fn infer_transpose(
    op: &Op,
    perm: Option<&[usize]>,
    inputs: &[Option<InferInput<'_>>],
) -> Result<TensorType, InferError> {
    let x = input(op, inputs, 0)?;
    let Some(dims) = x.ty.shape.dims() else {
        return Ok(match perm {
            Some(p) => TensorType {
                dtype: x.ty.dtype,
                shape: Shape::unknown_dims(p.len()),
            },
            None => TensorType::unranked(x.ty.dtype),
        });
    };
    let perm = resolve_perm(perm, dims.len()).map_err(|e| attr_err(op, e))?;
    Ok(ranked(
        x.ty.dtype,
        perm.iter().map(|&p| dims[p].clone()).collect(),
    ))
}

/// Transpose evaluation: no copy when the non-unit dims keep their order.
pub(super) fn eval_transpose(
    op: &Op,
    perm: Option<&[usize]>,
    inputs: &[Option<Tensor>],
) -> Result<Tensor, EvalError> {
    let x = req(op, inputs, 0)?;
    let perm = resolve_perm(perm, x.rank()).map_err(|e| invalid(op, e))?;
    let shape = x.shape();
    let out: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let moved: Vec<usize> = perm.iter().copied().filter(|&p| shape[p] != 1).collect();
    if moved.windows(2).all(|w| w[0] < w[1]) {
        return Ok(x.reshape(out)?);
    }
    let s = istrides(shape);
    let strides: Vec<isize> = perm.iter().map(|&p| s[p]).collect();
    materialize(x, out.clone(), &out, &strides, 0)
}

// ---------------------------------------------------------------------------------------------
// DepthToSpace / SpaceToDepth

/// The static NCHW dims of a 4-D input, or `None` when the rank is unknown.
fn dims4<'a>(op: &Op, x: &InferInput<'a>) -> Result<Option<&'a [Dim]>, InferError> {
    match x.ty.shape.dims() {
        Some(d) if d.len() == 4 => Ok(Some(d)),
        Some(d) => Err(shape_err(
            op,
            format!("the input must be 4-D, got rank {}", d.len()),
        )),
        None => Ok(None),
    }
}

/// `d / k` as a dim; an error when a static `d` is not a multiple of `k`.
fn dim_div(op: &Op, d: &Dim, k: usize, what: &str) -> Result<Dim, InferError> {
    match d {
        Dim::Static(n) if n % k == 0 => Ok(Dim::Static(n / k)),
        Dim::Static(n) => Err(shape_err(
            op,
            format!("{what} {n} is not a multiple of {k}"),
        )),
        _ if k == 1 => Ok(d.clone()),
        _ => Ok(Dim::Unknown),
    }
}

/// DepthToSpace inference.
pub(super) fn infer_depth_to_space(
    op: &Op,
    b: usize,
    inputs: &[Option<InferInput<'_>>],
) -> Result<TensorType, InferError> {
    let x = input(op, inputs, 0)?;
    if b == 0 {
        return Err(attr_err(op, "blocksize must be positive"));
    }
    let Some(d) = dims4(op, &x)? else {
        return Ok(ranked(x.ty.dtype, vec![Dim::Unknown; 4]));
    };
    let bb = b
        .checked_mul(b)
        .ok_or_else(|| attr_err(op, "blocksize is too large"))?;
    let c = dim_div(op, &d[1], bb, "channels")?;
    Ok(ranked(
        x.ty.dtype,
        vec![d[0].clone(), c, dim_mul(&d[2], b), dim_mul(&d[3], b)],
    ))
}

/// The NCHW dims of a 4-D tensor.
fn nchw(op: &Op, x: &Tensor) -> Result<[usize; 4], EvalError> {
    <[usize; 4]>::try_from(x.shape())
        .map_err(|_| invalid(op, format!("the input must be 4-D, got {:?}", x.shape())))
}

/// DepthToSpace evaluation: a transpose of a 6-D view.
pub(super) fn eval_depth_to_space(
    op: &Op,
    b: usize,
    crd: bool,
    inputs: &[Option<Tensor>],
) -> Result<Tensor, EvalError> {
    let x = req(op, inputs, 0)?;
    let [n, c, h, w] = nchw(op, x)?;
    let bb = b.checked_mul(b).filter(|&bb| bb > 0);
    let Some(bb) = bb.filter(|&bb| c % bb == 0) else {
        return Err(invalid(
            op,
            format!("{c} channels are not a multiple of blocksize² ({b}²)"),
        ));
    };
    let c2 = c / bb;
    let (Some(hb), Some(wb)) = (h.checked_mul(b), w.checked_mul(b)) else {
        return Err(invalid(op, format!("blocksize {b} is too large")));
    };
    let out = vec![n, c2, hb, wb];
    checked_numel(&out)?;
    let view = [n, c2, h, b, w, b];
    let strides = if crd {
        // [N, C', b, b, H, W] -> [0, 1, 4, 2, 5, 3]
        let s = istrides(&[n, c2, b, b, h, w]);
        [s[0], s[1], s[4], s[2], s[5], s[3]]
    } else {
        // [N, b, b, C', H, W] -> [0, 3, 4, 1, 5, 2]
        let s = istrides(&[n, b, b, c2, h, w]);
        [s[0], s[3], s[4], s[1], s[5], s[2]]
    };
    materialize(x, out, &view, &strides, 0)
}

/// SpaceToDepth inference.
pub(super) fn infer_space_to_depth(
    op: &Op,
    b: usize,
    inputs: &[Option<InferInput<'_>>],
) -> Result<TensorType, InferError> {
    let x = input(op, inputs, 0)?;
    if b == 0 {
        return Err(attr_err(op, "blocksize must be positive"));
    }
    let Some(d) = dims4(op, &x)? else {
        return Ok(ranked(x.ty.dtype, vec![Dim::Unknown; 4]));
    };
    let bb = b
        .checked_mul(b)
        .ok_or_else(|| attr_err(op, "blocksize is too large"))?;
    Ok(ranked(
        x.ty.dtype,
        vec![
            d[0].clone(),
            dim_mul(&d[1], bb),
            dim_div(op, &d[2], b, "height")?,
            dim_div(op, &d[3], b, "width")?,
        ],
    ))
}

/// SpaceToDepth evaluation: `[N, C, H/b, b, W/b, b]` transposed to `[N, b, b, C, H/b, W/b]`.
pub(super) fn eval_space_to_depth(
    op: &Op,
    b: usize,
    inputs: &[Option<Tensor>],
) -> Result<Tensor, EvalError> {
    let x = req(op, inputs, 0)?;
    let [n, c, h, w] = nchw(op, x)?;
    if b == 0 || h % b != 0 || w % b != 0 {
        return Err(invalid(
            op,
            format!("height {h} and width {w} must be multiples of blocksize {b}"),
        ));
    }
    let (h2, w2) = (h / b, w / b);
    let Some(cbb) = b.checked_mul(b).and_then(|bb| bb.checked_mul(c)) else {
        return Err(invalid(op, format!("blocksize {b} is too large")));
    };
    let out = vec![n, cbb, h2, w2];
    checked_numel(&out)?;
    let view = [n, b, b, c, h2, w2];
    let s = istrides(&[n, c, h2, b, w2, b]);
    let strides = [s[0], s[3], s[5], s[1], s[2], s[4]];
    materialize(x, out, &view, &strides, 0)
}

// ---------------------------------------------------------------------------------------------
// Concat

/// Merges two dims that must agree.
fn merge_dim(op: &Op, a: &Dim, b: &Dim, axis: usize) -> Result<Dim, InferError> {
    Ok(match (a, b) {
        (Dim::Static(x), Dim::Static(y)) if x != y => {
            return Err(shape_err(op, format!("dim {axis} differs: {x} vs {y}")));
        }
        (Dim::Static(_), _) => a.clone(),
        (_, Dim::Static(_)) => b.clone(),
        (Dim::Sym(_), _) => a.clone(),
        _ => b.clone(),
    })
}

/// Concat inference.
pub(super) fn infer_concat(
    op: &Op,
    axis: i64,
    inputs: &[Option<InferInput<'_>>],
) -> Result<TensorType, InferError> {
    if inputs.is_empty() {
        return Err(InferError::Arity("Concat needs at least one input".into()));
    }
    let ins: Vec<InferInput<'_>> = (0..inputs.len())
        .map(|i| input(op, inputs, i))
        .collect::<Result<_, _>>()?;
    let dtype = ins[0].ty.dtype;
    if let Some(o) = ins.iter().find(|i| i.ty.dtype != dtype) {
        return Err(InferError::Dtype(format!(
            "Concat inputs must share a dtype, got {dtype} and {}",
            o.ty.dtype
        )));
    }
    let Some(first) = ins.iter().find_map(|i| i.ty.shape.dims()) else {
        return Ok(TensorType::unranked(dtype));
    };
    let r = first.len();
    let a = norm_axis_infer(op, axis, r)?;
    let mut out = first.to_vec();
    let mut sum: Option<usize> = Some(0);
    for i in &ins {
        let Some(d) = i.ty.shape.dims() else {
            sum = None;
            continue;
        };
        if d.len() != r {
            return Err(shape_err(
                op,
                format!("inputs have ranks {r} and {}", d.len()),
            ));
        }
        for k in (0..r).filter(|&k| k != a) {
            out[k] = merge_dim(op, &out[k], &d[k], k)?;
        }
        sum = match (&d[a], sum) {
            (Dim::Static(n), Some(s)) => s.checked_add(*n),
            _ => None,
        };
    }
    out[a] = match sum {
        Some(s) => Dim::Static(s),
        None => {
            // One non-static input among empty ones keeps its dim.
            let non_empty: Vec<&Dim> = ins
                .iter()
                .map(|i| i.ty.shape.dims().map_or(&Dim::Unknown, |d| &d[a]))
                .filter(|d| **d != Dim::Static(0))
                .collect();
            match non_empty.as_slice() {
                [d] => (*d).clone(),
                _ => Dim::Unknown,
            }
        }
    };
    Ok(ranked(dtype, out))
}

/// Concat evaluation: per outer index, one slice copy per input.
pub(super) fn eval_concat(
    op: &Op,
    axis: i64,
    inputs: &[Option<Tensor>],
) -> Result<Tensor, EvalError> {
    let ins: Vec<&Tensor> = (0..inputs.len())
        .map(|i| req(op, inputs, i))
        .collect::<Result<_, _>>()?;
    let Some(first) = ins.first() else {
        return Err(invalid(op, "needs at least one input"));
    };
    let r = first.rank();
    let a = norm_axis_eval(op, axis, r)?;
    let mut out = first.shape().to_vec();
    out[a] = 0;
    for t in &ins {
        if t.dtype() != first.dtype() {
            return Err(invalid(
                op,
                format!("inputs have dtypes {} and {}", first.dtype(), t.dtype()),
            ));
        }
        let same = t.rank() == r && (0..r).all(|k| k == a || t.shape()[k] == first.shape()[k]);
        if !same {
            return Err(invalid(
                op,
                format!(
                    "shapes {:?} and {:?} differ off axis {a}",
                    first.shape(),
                    t.shape()
                ),
            ));
        }
        out[a] += t.shape()[a];
    }
    if ins.len() == 1 {
        return Ok((*first).clone());
    }
    let total = checked_numel(&out)?;
    let outer: usize = out[..a].iter().product();
    let inner: usize = out[a + 1..].iter().product();
    by_width!(first.dtype(), W => {
        let srcs: Vec<_> = ins.iter().map(|t| words::<W>(t)).collect();
        let chunks: Vec<usize> = ins.iter().map(|t| t.shape()[a] * inner).collect();
        let mut v: Vec<W> = Vec::with_capacity(total);
        for o in 0..outer {
            for (src, &c) in srcs.iter().zip(&chunks) {
                v.extend_from_slice(&src[o * c..(o + 1) * c]);
            }
        }
        from_words(first.dtype(), out, v)
    })
}

// ---------------------------------------------------------------------------------------------
// Split

/// Chunk sizes of a Split of a dim of size `dim`: `split` when given, otherwise `n` parts of
/// `ceil(dim / n)` with a smaller last one (opset 18).
fn split_sizes(dim: usize, split: Option<&[i64]>, n: usize) -> Result<Vec<usize>, String> {
    if let Some(s) = split {
        let sizes: Vec<usize> = s
            .iter()
            .map(|&v| usize::try_from(v).map_err(|_| format!("split {s:?} has a negative size")))
            .collect::<Result<_, _>>()?;
        let total = sizes.iter().try_fold(0usize, |a, &b| a.checked_add(b));
        if total != Some(dim) {
            return Err(format!("split {s:?} does not sum to the dim size {dim}"));
        }
        return Ok(sizes);
    }
    if n == 0 {
        return Err("no outputs to split into".into());
    }
    if dim % n == 0 {
        return Ok(vec![dim / n; n]);
    }
    let div = dim / n + 1;
    let last = dim
        .checked_sub(div * (n - 1))
        .ok_or_else(|| format!("a dim of {dim} cannot be split into {n} chunks of {div}"))?;
    let mut v = vec![div; n];
    v[n - 1] = last;
    Ok(v)
}

/// The number of Split outputs.
fn split_count(split: Option<&[i64]>, attr: Option<usize>, node_outputs: usize) -> usize {
    match split {
        Some(s) => s.len(),
        None => attr.unwrap_or(node_outputs),
    }
}

/// Split inference.
pub(super) fn infer_split(
    op: &Op,
    axis: i64,
    num_outputs: Option<usize>,
    inputs: &[Option<InferInput<'_>>],
    node_outputs: usize,
) -> Result<Vec<TensorType>, InferError> {
    let x = input(op, inputs, 0)?;
    let split_in = opt_input(inputs, 1).filter(|s| super::static_len(s) != Some(0));
    if let Some(s) = split_in {
        require_int(op, s.ty.dtype, "split")?;
    }
    let split = split_in.and_then(|s| known_ints(&s));
    let count = match (&split, split_in) {
        (None, Some(s)) => super::static_len(&s).unwrap_or(node_outputs),
        _ => split_count(split.as_deref(), num_outputs, node_outputs),
    };
    if count > node_outputs.max(1) {
        return Err(InferError::Arity(format!(
            "Split makes {count} chunks but the node has {node_outputs} outputs"
        )));
    }
    let dtype = x.ty.dtype;
    let Some(dims) = x.ty.shape.dims() else {
        return Ok(vec![TensorType::unranked(dtype); count]);
    };
    let a = norm_axis_infer(op, axis, dims.len())?;
    let sizes: Vec<Dim> = match (&dims[a], &split, split_in) {
        (Dim::Static(d), Some(s), _) => split_sizes(*d, Some(s), count)
            .map_err(|e| shape_err(op, e))?
            .into_iter()
            .map(Dim::Static)
            .collect(),
        (_, Some(s), _) => s
            .iter()
            .map(|&v| usize::try_from(v).map(Dim::Static))
            .collect::<Result<_, _>>()
            .map_err(|_| attr_err(op, format!("split {s:?} has a negative size")))?,
        (Dim::Static(d), None, None) => split_sizes(*d, None, count)
            .map_err(|e| shape_err(op, e))?
            .into_iter()
            .map(Dim::Static)
            .collect(),
        _ => vec![Dim::Unknown; count],
    };
    Ok(sizes
        .into_iter()
        .map(|s| {
            let mut d = dims.to_vec();
            d[a] = s;
            ranked(dtype, d)
        })
        .collect())
}

/// Split evaluation.
pub(super) fn eval_split(
    op: &Op,
    axis: i64,
    num_outputs: Option<usize>,
    inputs: &[Option<Tensor>],
    node_outputs: usize,
) -> Result<Vec<Tensor>, EvalError> {
    let x = req(op, inputs, 0)?;
    let split = match opt(inputs, 1) {
        Some(s) if s.numel() > 0 => Some(super::int_values(op, s, "split")?),
        _ => None,
    };
    let count = split_count(split.as_deref(), num_outputs, node_outputs);
    if count > node_outputs.max(1) {
        return Err(invalid(
            op,
            format!("{count} chunks but the node has {node_outputs} outputs"),
        ));
    }
    let a = norm_axis_eval(op, axis, x.rank())?;
    let dim = x.shape()[a];
    let sizes = split_sizes(dim, split.as_deref(), count).map_err(|e| invalid(op, e))?;
    if sizes.len() == 1 {
        return Ok(vec![x.clone()]);
    }
    let outer: usize = x.shape()[..a].iter().product();
    let inner: usize = x.shape()[a + 1..].iter().product();
    by_width!(x.dtype(), W => {
        let src = words::<W>(x);
        let mut outs = Vec::with_capacity(sizes.len());
        let mut off = 0;
        for &s in &sizes {
            let mut v: Vec<W> = Vec::with_capacity(outer * s * inner);
            for o in 0..outer {
                let base = (o * dim + off) * inner;
                v.extend_from_slice(&src[base..base + s * inner]);
            }
            let mut shape = x.shape().to_vec();
            shape[a] = s;
            outs.push(from_words(x.dtype(), shape, v)?);
            off += s;
        }
        Ok(outs)
    })
}

// ---------------------------------------------------------------------------------------------
// Slice

/// One sliced axis: its index, normalised start, step and output length.
struct SliceAxis {
    axis: usize,
    start: i64,
    step: i64,
    len: usize,
}

/// Clamps a slice of a dim of size `dim` per the ONNX rules; returns `(start, len)`.
fn slice_axis(dim: usize, start: i64, end: i64, step: i64) -> (i64, usize) {
    let d = dim as i128;
    let (mut s, mut e, st) = (start as i128, end as i128, step as i128);
    if s < 0 {
        s += d;
    }
    if e < 0 {
        e += d;
    }
    let len = if st > 0 {
        s = s.clamp(0, d);
        e = e.clamp(0, d);
        if e > s { (e - s + st - 1) / st } else { 0 }
    } else {
        s = s.max(0).min(d - 1);
        e = e.max(-1).min(d - 1);
        if s > e { (s - e - st - 1) / -st } else { 0 }
    };
    (s as i64, len as usize)
}

/// Validated Slice arguments: `(axes, steps)` resolved against `rank`.
fn slice_args(
    rank: usize,
    starts: &[i64],
    ends: &[i64],
    axes: Option<&[i64]>,
    steps: Option<&[i64]>,
) -> Result<(Vec<usize>, Vec<i64>), String> {
    let n = starts.len();
    if ends.len() != n {
        return Err(format!("{n} starts but {} ends", ends.len()));
    }
    let axes = match axes {
        Some(a) if a.len() != n => return Err(format!("{n} starts but {} axes", a.len())),
        Some(a) => norm_axes(a, rank)?,
        None if n > rank => return Err(format!("{n} starts for a rank-{rank} input")),
        None => (0..n).collect(),
    };
    let steps = match steps {
        Some(s) if s.len() != n => return Err(format!("{n} starts but {} steps", s.len())),
        Some(s) if s.contains(&0) => return Err("a step is 0".into()),
        Some(s) => s.to_vec(),
        None => vec![1; n],
    };
    Ok((axes, steps))
}

/// Slice inference.
pub(super) fn infer_slice(
    op: &Op,
    inputs: &[Option<InferInput<'_>>],
) -> Result<TensorType, InferError> {
    let x = input(op, inputs, 0)?;
    let st = input(op, inputs, 1)?;
    let en = input(op, inputs, 2)?;
    let ax = opt_input(inputs, 3);
    let sp = opt_input(inputs, 4);
    for (i, what) in [
        (Some(st), "starts"),
        (Some(en), "ends"),
        (ax, "axes"),
        (sp, "steps"),
    ] {
        if let Some(i) = i {
            require_int(op, i.ty.dtype, what)?;
        }
    }
    let dtype = x.ty.dtype;
    let Some(dims) = x.ty.shape.dims() else {
        return Ok(TensorType::unranked(dtype));
    };
    // `Some(None)`: absent; `None`: present but unknown.
    let axes = match ax {
        None => Some(None),
        Some(a) => known_ints(&a).map(Some),
    };
    let steps = match sp {
        None => Some(None),
        Some(s) => known_ints(&s).map(Some),
    };
    let (Some(starts), Some(ends), Some(axes), Some(steps)) =
        (known_ints(&st), known_ints(&en), axes, steps)
    else {
        // Unknown bounds: the axes that are known lose their size, or all of them.
        let mut out = vec![Dim::Unknown; dims.len()];
        if let Some(Some(a)) = ax.map(|a| known_ints(&a))
            && let Ok(a) = norm_axes(&a, dims.len())
        {
            out = dims.to_vec();
            for i in a {
                out[i] = Dim::Unknown;
            }
        }
        return Ok(ranked(dtype, out));
    };
    let (axes, steps) = slice_args(
        dims.len(),
        &starts,
        &ends,
        axes.as_deref(),
        steps.as_deref(),
    )
    .map_err(|e| attr_err(op, e))?;
    const BIG: i64 = 1 << 62;
    let mut out = dims.to_vec();
    for (i, &a) in axes.iter().enumerate() {
        let (s, e, step) = (starts[i], ends[i], steps[i]);
        out[a] = match &dims[a] {
            Dim::Static(d) => Dim::Static(slice_axis(*d, s, e, step).1),
            d if step == 1 && (s == 0 || s <= -BIG) && e >= BIG => d.clone(),
            d if step == -1 && s >= BIG && e <= -BIG => d.clone(),
            _ => Dim::Unknown,
        };
    }
    Ok(ranked(dtype, out))
}

/// Slice evaluation: a strided view of the input.
pub(super) fn eval_slice(op: &Op, inputs: &[Option<Tensor>]) -> Result<Tensor, EvalError> {
    let x = req(op, inputs, 0)?;
    let starts = super::int_values(op, req(op, inputs, 1)?, "starts")?;
    let ends = super::int_values(op, req(op, inputs, 2)?, "ends")?;
    let axes = opt(inputs, 3)
        .map(|a| super::int_values(op, a, "axes"))
        .transpose()?;
    let steps = opt(inputs, 4)
        .map(|s| super::int_values(op, s, "steps"))
        .transpose()?;
    let (axes, steps) = slice_args(x.rank(), &starts, &ends, axes.as_deref(), steps.as_deref())
        .map_err(|e| invalid(op, e))?;
    let sliced: Vec<SliceAxis> = axes
        .iter()
        .zip(&steps)
        .enumerate()
        .map(|(i, (&axis, &step))| {
            let (start, len) = slice_axis(x.shape()[axis], starts[i], ends[i], step);
            SliceAxis {
                axis,
                start,
                step,
                len,
            }
        })
        .collect();
    let mut shape = x.shape().to_vec();
    let mut strides = istrides(x.shape());
    let mut base = 0isize;
    for s in &sliced {
        shape[s.axis] = s.len;
        if s.len > 0 {
            base += s.start as isize * strides[s.axis];
        }
        // A single element needs no step (and a huge step would overflow).
        strides[s.axis] = if s.len > 1 {
            strides[s.axis] * s.step as isize
        } else {
            0
        };
    }
    if shape == x.shape() && sliced.iter().all(|s| s.step == 1) {
        return Ok(x.clone());
    }
    if shape.contains(&0) {
        return Ok(Tensor::zeros(x.dtype(), shape)?);
    }
    materialize(x, shape.clone(), &shape, &strides, base as usize)
}

// ---------------------------------------------------------------------------------------------
// Pad

/// Per-axis `(begin, end)` pads from the `pads` input and optional `axes`.
fn pad_amounts(rank: usize, pads: &[i64], axes: Option<&[i64]>) -> Result<Vec<(i64, i64)>, String> {
    let axes = match axes {
        Some(a) => norm_axes(a, rank)?,
        None => (0..rank).collect(),
    };
    if pads.len() != 2 * axes.len() {
        return Err(format!(
            "pads has {} values, expected {} for {} axes",
            pads.len(),
            2 * axes.len(),
            axes.len()
        ));
    }
    let mut out = vec![(0, 0); rank];
    for (i, &a) in axes.iter().enumerate() {
        out[a] = (pads[i], pads[axes.len() + i]);
    }
    Ok(out)
}

/// The padded size of a dim, or an error when cropping removes more than it has.
fn padded(d: usize, (b, e): (i64, i64)) -> Result<usize, String> {
    let n = d as i128 + b as i128 + e as i128;
    usize::try_from(n).map_err(|_| format!("pads ({b}, {e}) make a dim of {d} negative"))
}

/// Pad inference.
pub(super) fn infer_pad(
    op: &Op,
    inputs: &[Option<InferInput<'_>>],
) -> Result<TensorType, InferError> {
    let x = input(op, inputs, 0)?;
    let p = input(op, inputs, 1)?;
    require_int(op, p.ty.dtype, "pads")?;
    let dtype = x.ty.dtype;
    if let Some(c) = opt_input(inputs, 2)
        && c.ty.dtype != dtype
        && super::static_len(&c) != Some(0)
    {
        return Err(InferError::Dtype(format!(
            "Pad constant_value is {} but the data is {dtype}",
            c.ty.dtype
        )));
    }
    let ax = opt_input(inputs, 3);
    if let Some(a) = ax {
        require_int(op, a.ty.dtype, "axes")?;
    }
    let Some(dims) = x.ty.shape.dims() else {
        return Ok(TensorType::unranked(dtype));
    };
    // `Some(None)`: absent; `None`: present but unknown.
    let axes = match ax {
        None => Some(None),
        Some(a) => known_ints(&a).map(Some),
    };
    let (Some(pads), Some(axes)) = (known_ints(&p), axes.clone()) else {
        let mut out = vec![Dim::Unknown; dims.len()];
        if let Some(Some(a)) = axes
            && let Ok(a) = norm_axes(&a, dims.len())
        {
            out = dims.to_vec();
            for i in a {
                out[i] = Dim::Unknown;
            }
        }
        return Ok(ranked(dtype, out));
    };
    let amounts = pad_amounts(dims.len(), &pads, axes.as_deref()).map_err(|e| attr_err(op, e))?;
    let out = dims
        .iter()
        .zip(&amounts)
        .map(|(d, &be)| match d {
            Dim::Static(n) => padded(*n, be)
                .map(Dim::Static)
                .map_err(|e| shape_err(op, e)),
            _ if be == (0, 0) => Ok(d.clone()),
            _ => Ok(Dim::Unknown),
        })
        .collect::<Result<_, _>>()?;
    Ok(ranked(dtype, out))
}

/// For each output coordinate of one axis, the input coordinate it reads (-1: the constant).
fn pad_map(mode: PadMode, d: usize, b: i64, out: usize) -> Vec<isize> {
    let d = d as i128;
    (0..out as i128)
        .map(|o| {
            let i = o - b as i128;
            let src = if (0..d).contains(&i) {
                i
            } else {
                match mode {
                    PadMode::Constant => -1,
                    PadMode::Edge => i.clamp(0, d - 1),
                    PadMode::Wrap => i.rem_euclid(d),
                    PadMode::Reflect if d == 1 => 0,
                    PadMode::Reflect => {
                        let p = 2 * (d - 1);
                        let m = i.rem_euclid(p);
                        if m >= d { p - m } else { m }
                    }
                }
            };
            src as isize
        })
        .collect()
}

/// Runs of consecutive source coordinates in a map: `(output start, length, source start)`
/// with source -1 for constant runs.
fn runs(map: &[isize]) -> Vec<(usize, usize, isize)> {
    let mut out: Vec<(usize, usize, isize)> = Vec::new();
    for (o, &m) in map.iter().enumerate() {
        if let Some(last) = out.last_mut() {
            let next = if last.2 < 0 {
                -1
            } else {
                last.2 + last.1 as isize
            };
            if (m < 0 && last.2 < 0) || (m >= 0 && last.2 >= 0 && m == next) {
                last.1 += 1;
                continue;
            }
        }
        out.push((o, 1, m));
    }
    out
}

/// Fills a padded output from per-axis coordinate maps (-1: the constant `c`), row by row.
pub(super) fn pad_fill<W: Copy>(
    src: &[W],
    in_shape: &[usize],
    maps: &[Vec<isize>],
    out_shape: &[usize],
    c: W,
    n: usize,
) -> Vec<W> {
    let r = in_shape.len();
    if r == 0 {
        return src.to_vec();
    }
    let mut out = Vec::with_capacity(n);
    let row = out_shape[r - 1];
    if n == 0 {
        return out;
    }
    let s = crate::opset::util::strides(in_shape);
    let last = runs(&maps[r - 1]);
    // Short runs (nearest upsampling, reflections) copy element by element.
    let elementwise = last.len() * 4 > row;
    let mut idx = vec![0usize; r - 1];
    for _ in 0..n / row {
        let mut base = Some(0usize);
        for a in 0..r - 1 {
            let m = maps[a][idx[a]];
            if m < 0 {
                base = None;
                break;
            }
            base = base.map(|b| b + m as usize * s[a]);
        }
        match base {
            None => out.extend(std::iter::repeat_n(c, row)),
            Some(b) if elementwise => {
                out.extend(
                    maps[r - 1]
                        .iter()
                        .map(|&m| if m < 0 { c } else { src[b + m as usize] }),
                );
            }
            Some(b) => {
                for &(_, len, m) in &last {
                    if m < 0 {
                        out.extend(std::iter::repeat_n(c, len));
                    } else {
                        let at = b + m as usize;
                        out.extend_from_slice(&src[at..at + len]);
                    }
                }
            }
        }
        for a in (0..r - 1).rev() {
            idx[a] += 1;
            if idx[a] < out_shape[a] {
                break;
            }
            idx[a] = 0;
        }
    }
    out
}

/// Pad evaluation.
pub(super) fn eval_pad(
    op: &Op,
    mode: PadMode,
    inputs: &[Option<Tensor>],
) -> Result<Tensor, EvalError> {
    let x = req(op, inputs, 0)?;
    let pads = super::int_values(op, req(op, inputs, 1)?, "pads")?;
    let constant = opt(inputs, 2).filter(|c| c.numel() > 0);
    if let Some(c) = constant {
        if c.dtype() != x.dtype() {
            return Err(invalid(
                op,
                format!(
                    "constant_value is {} but the data is {}",
                    c.dtype(),
                    x.dtype()
                ),
            ));
        }
        if c.numel() != 1 {
            return Err(invalid(op, "constant_value must have one element"));
        }
    }
    let axes = opt(inputs, 3)
        .map(|a| super::int_values(op, a, "axes"))
        .transpose()?;
    let amounts = pad_amounts(x.rank(), &pads, axes.as_deref()).map_err(|e| invalid(op, e))?;
    let out: Vec<usize> = x
        .shape()
        .iter()
        .zip(&amounts)
        .map(|(&d, &be)| padded(d, be))
        .collect::<Result<_, _>>()
        .map_err(|e| invalid(op, e))?;
    let n = checked_numel(&out)?;
    if x.rank() == 0 || out == x.shape() && amounts.iter().all(|&p| p == (0, 0)) {
        return Ok(x.clone());
    }
    if n == 0 {
        return Ok(Tensor::zeros(x.dtype(), out)?);
    }
    if n > 0 && mode != PadMode::Constant && x.numel() == 0 {
        return Err(invalid(op, format!("cannot {mode:?}-pad an empty tensor")));
    }
    let maps: Vec<Vec<isize>> = x
        .shape()
        .iter()
        .zip(&amounts)
        .zip(&out)
        .map(|((&d, &(b, _)), &o)| pad_map(mode, d, b, o))
        .collect();
    by_width!(x.dtype(), W => {
        let c: W = match constant {
            Some(c) => first_word(c),
            None => bytemuck::Zeroable::zeroed(),
        };
        let v = pad_fill(&words::<W>(x), x.shape(), &maps, &out, c, n);
        from_words(x.dtype(), out, v)
    })
}

// ---------------------------------------------------------------------------------------------
// Trilu

/// Trilu inference.
pub(super) fn infer_trilu(
    op: &Op,
    inputs: &[Option<InferInput<'_>>],
) -> Result<TensorType, InferError> {
    let x = input(op, inputs, 0)?;
    if let Some(k) = opt_input(inputs, 1) {
        require_int(op, k.ty.dtype, "k")?;
    }
    if let Some(r) = x.ty.shape.rank()
        && r < 2
    {
        return Err(shape_err(
            op,
            format!("the input must have rank ≥ 2, got {r}"),
        ));
    }
    Ok(x.ty.clone())
}

/// Trilu evaluation: zero the elements below (upper) or above (lower) diagonal `k`.
pub(super) fn eval_trilu(
    op: &Op,
    upper: bool,
    inputs: &[Option<Tensor>],
) -> Result<Tensor, EvalError> {
    let x = req(op, inputs, 0)?;
    let k = match opt(inputs, 1) {
        Some(k) if k.dtype().is_int() => k
            .scalar_i64()
            .ok_or_else(|| invalid(op, "k must have one element"))?,
        Some(k) => {
            return Err(invalid(
                op,
                format!("k must be an integer, got {}", k.dtype()),
            ));
        }
        None => 0,
    };
    let r = x.rank();
    if r < 2 {
        return Err(invalid(
            op,
            format!("the input must have rank ≥ 2, got {:?}", x.shape()),
        ));
    }
    let (n, m) = (x.shape()[r - 2], x.shape()[r - 1]);
    let mats = x.numel().checked_div(n * m).unwrap_or(0);
    by_width!(x.dtype(), W => {
        let mut v: Vec<W> = words::<W>(x).into_owned();
        let zero: W = bytemuck::Zeroable::zeroed();
        for b in 0..mats {
            for i in 0..n {
                let d = i as i128 + k as i128;
                let row = &mut v[(b * n + i) * m..(b * n + i + 1) * m];
                let cut = if upper {
                    0..d.clamp(0, m as i128) as usize
                } else {
                    (d + 1).clamp(0, m as i128) as usize..m
                };
                row[cut].fill(zero);
            }
        }
        from_words(x.dtype(), x.shape().to_vec(), v)
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;
    use crate::dtype::DType;

    #[test]
    fn transpose_permutes_and_validates() {
        let x = t(&[2, 3], vec![1i16, 2, 3, 4, 5, 6]);
        let y = run1(&Op::Transpose { perm: None }, std::slice::from_ref(&x));
        assert_eq!(
            (y.shape(), y.view::<i16>()),
            (&[3, 2][..], &[1, 4, 2, 5, 3, 6][..])
        );
        let x = t(&[2, 1, 3, 2], (0..12).collect::<Vec<u8>>());
        let y = run1(
            &Op::Transpose {
                perm: Some(vec![2, 0, 1, 3]),
            },
            std::slice::from_ref(&x),
        );
        assert_eq!(y.shape(), &[3, 2, 1, 2]);
        assert_eq!(y.view::<u8>(), &[0, 1, 6, 7, 2, 3, 8, 9, 4, 5, 10, 11]);
        // Moving only a unit dim is a reshape.
        let y = run1(
            &Op::Transpose {
                perm: Some(vec![1, 0, 2, 3]),
            },
            std::slice::from_ref(&x),
        );
        assert_eq!(
            (y.shape(), y.view::<u8>()),
            (&[1, 2, 3, 2][..], x.view::<u8>())
        );
        for bad in [vec![0, 1, 2], vec![0, 0, 1, 2], vec![0, 1, 2, 4]] {
            assert!(run(&Op::Transpose { perm: Some(bad) }, &[Some(x.clone())]).is_err());
        }
    }

    #[test]
    fn depth_to_space_and_back() {
        // [1, 4, 1, 2]: channels c0..c3 each with 2 pixels.
        let x = t(&[1, 4, 1, 2], (0..8).map(|v| v as f32).collect());
        let dcr = run1(
            &Op::DepthToSpace {
                blocksize: 2,
                crd: false,
            },
            std::slice::from_ref(&x),
        );
        assert_eq!(dcr.shape(), &[1, 1, 2, 4]);
        // out[0,0,y*2+i, x*2+j] = in[0, (i*2+j), y, x]
        assert_eq!(dcr.view::<f32>(), &[0., 2., 1., 3., 4., 6., 5., 7.]);
        let crd = run1(
            &Op::DepthToSpace {
                blocksize: 2,
                crd: true,
            },
            std::slice::from_ref(&x),
        );
        // With one output channel CRD and DCR agree.
        assert_eq!(crd.view::<f32>(), dcr.view::<f32>());
        let back = run1(&Op::SpaceToDepth { blocksize: 2 }, &[dcr]);
        assert_eq!(back, x);
        // Two output channels: CRD groups channel-major.
        let x = t(&[1, 8, 1, 1], (0..8).map(|v| v as f32).collect());
        let crd = run1(
            &Op::DepthToSpace {
                blocksize: 2,
                crd: true,
            },
            std::slice::from_ref(&x),
        );
        assert_eq!(crd.view::<f32>(), &[0., 1., 2., 3., 4., 5., 6., 7.]);
        let dcr = run1(
            &Op::DepthToSpace {
                blocksize: 2,
                crd: false,
            },
            std::slice::from_ref(&x),
        );
        assert_eq!(dcr.view::<f32>(), &[0., 2., 4., 6., 1., 3., 5., 7.]);
        assert!(
            run(
                &Op::DepthToSpace {
                    blocksize: 3,
                    crd: false
                },
                &[Some(x.clone())]
            )
            .is_err()
        );
        assert!(run(&Op::SpaceToDepth { blocksize: 2 }, &[Some(x)]).is_err());
    }

    #[test]
    fn concat_joins_along_any_axis() {
        let a = t(&[2, 1], vec![1i64, 2]);
        let b = t(&[2, 2], vec![3i64, 4, 5, 6]);
        let e = t::<i64>(&[2, 0], vec![]);
        let y = run1(&Op::Concat { axis: -1 }, &[a.clone(), e.clone(), b.clone()]);
        assert_eq!(
            (y.shape(), y.view::<i64>()),
            (&[2, 3][..], &[1, 3, 4, 2, 5, 6][..])
        );
        assert!(run(&Op::Concat { axis: 0 }, &[Some(a.clone()), Some(b.clone())]).is_err());
        let f = t(&[2, 1], vec![1i32, 2]);
        assert!(run(&Op::Concat { axis: 1 }, &[Some(a.clone()), Some(f)]).is_err());
        assert!(run(&Op::Concat { axis: 0 }, &[Some(Tensor::scalar(1i64))]).is_err());
        let (ta, tb) = (ty_of(&a), ty_of(&b));
        let s = infer_out(
            &Op::Concat { axis: 1 },
            &[Some((&ta, None)), Some((&tb, None))],
        );
        assert_eq!(s.unwrap(), Shape::fixed(&[2, 3]));
    }

    #[test]
    fn split_equal_uneven_and_explicit() {
        let x = t(&[2, 5], (0..10).collect::<Vec<i32>>());
        let op = Op::Split {
            axis: 1,
            num_outputs: Some(3),
        };
        let ys = super::super::eval(&op, &[Some(x.clone())], 3).unwrap();
        let shapes: Vec<&[usize]> = ys.iter().map(|y| y.shape()).collect();
        assert_eq!(shapes, vec![&[2, 2][..], &[2, 2], &[2, 1]]);
        assert_eq!(ys[2].view::<i32>(), &[4, 9]);
        let op = Op::Split {
            axis: -1,
            num_outputs: None,
        };
        let ys = super::super::eval(&op, &[Some(x.clone()), Some(i64s(&[1, 0, 4]))], 3).unwrap();
        assert_eq!(ys[0].view::<i32>(), &[0, 5]);
        assert_eq!(ys[1].shape(), &[2, 0]);
        assert_eq!(ys[2].view::<i32>(), &[1, 2, 3, 4, 6, 7, 8, 9]);
        assert!(super::super::eval(&op, &[Some(x.clone()), Some(i64s(&[1, 1]))], 2).is_err());
        // 5 into 4 chunks of 2 leaves a negative last chunk.
        let op4 = Op::Split {
            axis: 1,
            num_outputs: Some(4),
        };
        assert!(super::super::eval(&op4, &[Some(x.clone())], 4).is_err());
        let tx = ty_of(&x);
        let infer = |n| {
            super::super::infer(
                &Op::Split {
                    axis: 1,
                    num_outputs: None,
                },
                &[Some(InferInput {
                    ty: &tx,
                    value: None,
                })],
                n,
            )
        };
        let types = infer(2).unwrap();
        assert_eq!(types[0].shape, Shape::fixed(&[2, 3]));
        assert_eq!(types[1].shape, Shape::fixed(&[2, 2]));
        assert!(infer(4).is_err(), "5 does not split into 4 chunks of 2");
    }

    #[test]
    fn slice_clamps_and_steps_backwards() {
        let x = t(&[2, 4], (0..8).collect::<Vec<i32>>());
        let y = run1(&Op::Slice, &[x.clone(), i64s(&[0, 1]), i64s(&[1, 1000])]);
        assert_eq!((y.shape(), y.view::<i32>()), (&[1, 3][..], &[1, 2, 3][..]));
        // Reverse the last axis with INT64 sentinels.
        let y = run1(
            &Op::Slice,
            &[
                x.clone(),
                i64s(&[i64::MAX]),
                i64s(&[i64::MIN]),
                i64s(&[-1]),
                i64s(&[-1]),
            ],
        );
        assert_eq!(y.view::<i32>(), &[3, 2, 1, 0, 7, 6, 5, 4]);
        let y = run1(
            &Op::Slice,
            &[
                x.clone(),
                i64s(&[-1, 3]),
                i64s(&[-3, 0]),
                i64s(&[0, 1]),
                i64s(&[-1, -2]),
            ],
        );
        // Row end -3 + 2 = -1 stays -1 for a negative step: rows 1 and 0.
        assert_eq!(
            (y.shape(), y.view::<i32>()),
            (&[2, 2][..], &[7, 5, 3, 1][..])
        );
        let y = run1(
            &Op::Slice,
            &[x.clone(), i64s(&[5]), i64s(&[10]), i64s(&[1])],
        );
        assert_eq!(y.shape(), &[2, 0]);
        assert!(
            run(
                &Op::Slice,
                &[
                    Some(x.clone()),
                    Some(i64s(&[0])),
                    Some(i64s(&[1])),
                    Some(i64s(&[0])),
                    Some(i64s(&[0]))
                ]
            )
            .is_err()
        );
        assert!(
            run(
                &Op::Slice,
                &[
                    Some(x.clone()),
                    Some(i64s(&[0, 0])),
                    Some(i64s(&[1, 1])),
                    Some(i64s(&[1, 1]))
                ]
            )
            .is_err()
        );
        // Inference with known bounds, including a symbolic dim kept by a full slice.
        let ty = TensorType {
            dtype: DType::I32,
            shape: Shape::Ranked(vec![Dim::Sym("b".into()), Dim::Static(4)]),
        };
        let (s, e) = (i64s(&[0, 1]), i64s(&[i64::MAX, -1]));
        let ts = ty_of(&s);
        let sh = infer_out(
            &Op::Slice,
            &[
                Some((&ty, None)),
                Some((&ts, Some(&s))),
                Some((&ts, Some(&e))),
            ],
        );
        assert_eq!(
            sh.unwrap(),
            Shape::Ranked(vec![Dim::Sym("b".into()), Dim::Static(2)])
        );
        let sh = infer_out(
            &Op::Slice,
            &[Some((&ty, None)), Some((&ts, None)), Some((&ts, Some(&e)))],
        );
        assert_eq!(sh.unwrap(), Shape::unknown_dims(2));
    }

    #[test]
    fn pad_modes_match_numpy() {
        let x = t(&[3], vec![1.0f32, 2.0, 3.0]);
        let pad = |mode, pads: &[i64]| {
            run1(&Op::Pad { mode }, &[x.clone(), i64s(pads)])
                .view::<f32>()
                .to_vec()
        };
        assert_eq!(
            pad(PadMode::Constant, &[2, 1]),
            vec![0., 0., 1., 2., 3., 0.]
        );
        assert_eq!(
            pad(PadMode::Reflect, &[2, 3]),
            vec![3., 2., 1., 2., 3., 2., 1., 2.]
        );
        assert_eq!(pad(PadMode::Edge, &[2, 1]), vec![1., 1., 1., 2., 3., 3.]);
        assert_eq!(
            pad(PadMode::Wrap, &[2, 4]),
            vec![2., 3., 1., 2., 3., 1., 2., 3., 1.]
        );
        assert_eq!(pad(PadMode::Constant, &[-1, 1]), vec![2., 3., 0.]);
        assert!(
            run(
                &Op::Pad {
                    mode: PadMode::Constant
                },
                &[Some(x.clone()), Some(i64s(&[-4, 0]))]
            )
            .is_err()
        );
        let x2 = t(&[1, 2], vec![1.0f32, 2.0]);
        let c = Tensor::scalar(9.0f32);
        let y = run1(
            &Op::Pad {
                mode: PadMode::Constant,
            },
            &[x2.clone(), i64s(&[1, 0]), c, i64s(&[-1])],
        );
        assert_eq!(
            (y.shape(), y.view::<f32>()),
            (&[1, 3][..], &[9., 1., 2.][..])
        );
        let y = run1(
            &Op::Pad {
                mode: PadMode::Edge,
            },
            &[x2, i64s(&[1, 0, 0, 1])],
        );
        assert_eq!(y.view::<f32>(), &[1., 2., 2., 1., 2., 2.]);
        let e = t::<f32>(&[0], vec![]);
        assert!(
            run(
                &Op::Pad {
                    mode: PadMode::Reflect
                },
                &[Some(e), Some(i64s(&[1, 1]))]
            )
            .is_err()
        );
    }

    #[test]
    fn trilu_keeps_a_triangle() {
        let x = t(&[2, 3], (1..=6).collect::<Vec<i32>>());
        let up = |k: Option<i64>, upper| {
            let mut ins = vec![Some(x.clone())];
            if let Some(k) = k {
                ins.push(Some(Tensor::scalar(k)));
            }
            run(&Op::Trilu { upper }, &ins)
                .unwrap()
                .view::<i32>()
                .to_vec()
        };
        assert_eq!(up(None, true), vec![1, 2, 3, 0, 5, 6]);
        assert_eq!(up(Some(1), true), vec![0, 2, 3, 0, 0, 6]);
        assert_eq!(up(Some(-5), true), vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(up(None, false), vec![1, 0, 0, 4, 5, 0]);
        assert_eq!(up(Some(-1), false), vec![0, 0, 0, 4, 0, 0]);
        assert_eq!(up(Some(i64::MAX), false), vec![1, 2, 3, 4, 5, 6]);
        assert!(
            run(
                &Op::Trilu { upper: true },
                &[Some(t(&[3], vec![1i32, 2, 3]))]
            )
            .is_err()
        );
    }
}
