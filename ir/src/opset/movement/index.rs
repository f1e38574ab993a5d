//! Indexing ops: Gather, GatherElements, GatherND, ScatterElements, ScatterND, OneHot and
//! NonZero. Every index is checked against its dim (negative indices count from the end);
//! an out-of-range index is an error, never an out-of-bounds access.

use super::copy::{by_width, from_words, words};
use super::{
    attr_err, input, invalid, norm_axis_eval, norm_axis_infer, ranked, require_int, shape_err,
};
use crate::dtype::{DType, Elem};
use crate::infer::{InferError, InferInput};
use crate::interp::EvalError;
use crate::ops::{Op, ScatterReduction};
use crate::opset::util::{req, strides};
use crate::tensor::{Tensor, checked_numel};
use crate::types::{Dim, TensorType};

/// Resolves index `i` of a dim of size `d` (negative counts from the end).
fn wrap(op: &Op, i: i64, d: usize) -> Result<usize, EvalError> {
    let j = if i < 0 {
        i as i128 + d as i128
    } else {
        i as i128
    };
    if j < 0 || j >= d as i128 {
        return Err(invalid(
            op,
            format!("index {i} is out of range for a dim of size {d}"),
        ));
    }
    Ok(j as usize)
}

/// The elements of an integer indices tensor.
fn indices(op: &Op, t: &Tensor) -> Result<Vec<i64>, EvalError> {
    if !t.dtype().is_int() {
        return Err(invalid(
            op,
            format!("indices must be integers, got {}", t.dtype()),
        ));
    }
    Ok(t.to_i64_vec())
}

/// Calls `f(position, offset)` for every element of `shape` in row-major order, where
/// `offset` is the dot product of the multi-index with `strides`.
fn for_each_offset(shape: &[usize], strides: &[usize], mut f: impl FnMut(usize, usize)) {
    let n: usize = shape.iter().product();
    let mut idx = vec![0usize; shape.len()];
    let mut off = 0usize;
    for p in 0..n {
        f(p, off);
        for d in (0..shape.len()).rev() {
            idx[d] += 1;
            off += strides[d];
            if idx[d] < shape[d] {
                break;
            }
            off -= strides[d] * shape[d];
            idx[d] = 0;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Gather

/// Gather inference.
pub(super) fn infer_gather(
    op: &Op,
    axis: i64,
    inputs: &[Option<InferInput<'_>>],
) -> Result<TensorType, InferError> {
    let data = input(op, inputs, 0)?;
    let idx = input(op, inputs, 1)?;
    require_int(op, idx.ty.dtype, "indices")?;
    let dtype = data.ty.dtype;
    let (Some(d), Some(i)) = (data.ty.shape.dims(), idx.ty.shape.dims()) else {
        return Ok(TensorType::unranked(dtype));
    };
    let a = norm_axis_infer(op, axis, d.len())?;
    let out = d[..a].iter().chain(i).chain(&d[a + 1..]).cloned().collect();
    Ok(ranked(dtype, out))
}

/// Gather evaluation: one slice copy per (outer index, index).
pub(super) fn eval_gather(
    op: &Op,
    axis: i64,
    inputs: &[Option<Tensor>],
) -> Result<Tensor, EvalError> {
    let data = req(op, inputs, 0)?;
    let it = req(op, inputs, 1)?;
    let a = norm_axis_eval(op, axis, data.rank())?;
    let d = data.shape()[a];
    let idx: Vec<usize> = indices(op, it)?
        .into_iter()
        .map(|i| wrap(op, i, d))
        .collect::<Result<_, _>>()?;
    let ds = data.shape();
    let out: Vec<usize> = ds[..a]
        .iter()
        .chain(it.shape())
        .chain(&ds[a + 1..])
        .copied()
        .collect();
    let n = checked_numel(&out)?;
    let outer: usize = ds[..a].iter().product();
    let inner: usize = ds[a + 1..].iter().product();
    by_width!(data.dtype(), W => {
        let src = words::<W>(data);
        let mut v: Vec<W> = Vec::with_capacity(n);
        for o in 0..outer {
            let base = o * d * inner;
            if inner == 1 {
                v.extend(idx.iter().map(|&i| src[base + i]));
            } else {
                for &i in &idx {
                    let at = base + i * inner;
                    v.extend_from_slice(&src[at..at + inner]);
                }
            }
        }
        from_words(data.dtype(), out, v)
    })
}

// ---------------------------------------------------------------------------------------------
// GatherElements / ScatterElements

/// Checks that `idx` (the indices shape) fits `data` off `axis`.
fn check_elements_shape(data: &[usize], idx: &[usize], axis: usize) -> Result<(), String> {
    if data.len() != idx.len() {
        return Err(format!(
            "indices {idx:?} must have the rank of data {data:?}"
        ));
    }
    if (0..data.len()).any(|k| k != axis && idx[k] > data[k]) {
        return Err(format!(
            "indices {idx:?} exceed data {data:?} off axis {axis}"
        ));
    }
    Ok(())
}

/// Infers GatherElements: the indices' shape with the data's dtype.
pub(super) fn infer_gather_elements(
    op: &Op,
    axis: i64,
    inputs: &[Option<InferInput<'_>>],
) -> Result<TensorType, InferError> {
    let data = input(op, inputs, 0)?;
    let idx = input(op, inputs, 1)?;
    require_int(op, idx.ty.dtype, "indices")?;
    if let (Some(d), Some(i)) = (data.ty.shape.rank(), idx.ty.shape.rank()) {
        norm_axis_infer(op, axis, d)?;
        if d != i {
            return Err(shape_err(op, format!("indices have rank {i}, data {d}")));
        }
    }
    Ok(TensorType {
        dtype: data.ty.dtype,
        shape: idx.ty.shape.clone(),
    })
}

/// GatherElements evaluation.
pub(super) fn eval_gather_elements(
    op: &Op,
    axis: i64,
    inputs: &[Option<Tensor>],
) -> Result<Tensor, EvalError> {
    let data = req(op, inputs, 0)?;
    let it = req(op, inputs, 1)?;
    let a = norm_axis_eval(op, axis, data.rank())?;
    check_elements_shape(data.shape(), it.shape(), a).map_err(|e| invalid(op, e))?;
    let idx = indices(op, it)?;
    let d = data.shape()[a];
    let mut ds = strides(data.shape());
    let sa = std::mem::replace(&mut ds[a], 0);
    let mut offs = Vec::with_capacity(idx.len());
    let mut err = None;
    for_each_offset(it.shape(), &ds, |p, base| match wrap(op, idx[p], d) {
        Ok(i) => offs.push(base + i * sa),
        Err(e) => {
            err.get_or_insert(e);
        }
    });
    if let Some(e) = err {
        return Err(e);
    }
    by_width!(data.dtype(), W => {
        let src = words::<W>(data);
        let v: Vec<W> = offs.iter().map(|&o| src[o]).collect();
        from_words(data.dtype(), it.shape().to_vec(), v)
    })
}

/// Combines an existing element with an update under a scatter reduction.
fn combine<T: Elem>(r: ScatterReduction, old: T, new: T) -> T {
    let float = T::DTYPE.is_float();
    match r {
        ScatterReduction::None => new,
        ScatterReduction::Add if float => T::round_from_f64(old.to_f64() + new.to_f64()),
        ScatterReduction::Add => T::from_i64(old.to_i64().wrapping_add(new.to_i64())),
        ScatterReduction::Mul if float => T::round_from_f64(old.to_f64() * new.to_f64()),
        ScatterReduction::Mul => T::from_i64(old.to_i64().wrapping_mul(new.to_i64())),
        ScatterReduction::Max => {
            if new > old {
                new
            } else {
                old
            }
        }
        ScatterReduction::Min => {
            if new < old {
                new
            } else {
                old
            }
        }
    }
}

/// Shared scatter inference: the data's type, after dtype checks.
fn infer_scatter(op: &Op, inputs: &[Option<InferInput<'_>>]) -> Result<TensorType, InferError> {
    let data = input(op, inputs, 0)?;
    let idx = input(op, inputs, 1)?;
    let upd = input(op, inputs, 2)?;
    require_int(op, idx.ty.dtype, "indices")?;
    if upd.ty.dtype != data.ty.dtype {
        return Err(InferError::Dtype(format!(
            "{}: updates are {} but data is {}",
            op.name(),
            upd.ty.dtype,
            data.ty.dtype
        )));
    }
    Ok(data.ty.clone())
}

/// ScatterElements inference.
pub(super) fn infer_scatter_elements(
    op: &Op,
    axis: i64,
    inputs: &[Option<InferInput<'_>>],
) -> Result<TensorType, InferError> {
    let ty = infer_scatter(op, inputs)?;
    let idx = input(op, inputs, 1)?;
    if let (Some(d), Some(i)) = (ty.shape.rank(), idx.ty.shape.rank()) {
        norm_axis_infer(op, axis, d)?;
        if d != i {
            return Err(shape_err(op, format!("indices have rank {i}, data {d}")));
        }
    }
    let upd = input(op, inputs, 2)?;
    if let (Some(i), Some(u)) = (idx.ty.shape.as_static(), upd.ty.shape.as_static())
        && i != u
    {
        return Err(shape_err(
            op,
            format!("updates {u:?} must have the indices' shape {i:?}"),
        ));
    }
    Ok(ty)
}

/// Checks the updates tensor of a scatter.
fn check_updates(op: &Op, data: &Tensor, upd: &Tensor, shape: &[usize]) -> Result<(), EvalError> {
    if upd.dtype() != data.dtype() {
        return Err(invalid(
            op,
            format!("updates are {} but data is {}", upd.dtype(), data.dtype()),
        ));
    }
    if upd.shape() != shape {
        return Err(invalid(
            op,
            format!("updates have shape {:?}, expected {shape:?}", upd.shape()),
        ));
    }
    Ok(())
}

/// ScatterElements evaluation.
pub(super) fn eval_scatter_elements(
    op: &Op,
    axis: i64,
    reduction: ScatterReduction,
    inputs: &[Option<Tensor>],
) -> Result<Tensor, EvalError> {
    let data = req(op, inputs, 0)?;
    let it = req(op, inputs, 1)?;
    let upd = req(op, inputs, 2)?;
    let a = norm_axis_eval(op, axis, data.rank())?;
    check_elements_shape(data.shape(), it.shape(), a).map_err(|e| invalid(op, e))?;
    check_updates(op, data, upd, it.shape())?;
    let idx = indices(op, it)?;
    let d = data.shape()[a];
    let mut ds = strides(data.shape());
    let sa = std::mem::replace(&mut ds[a], 0);
    let mut offs = Vec::with_capacity(idx.len());
    let mut err = None;
    for_each_offset(it.shape(), &ds, |p, base| match wrap(op, idx[p], d) {
        Ok(i) => offs.push(base + i * sa),
        Err(e) => {
            err.get_or_insert(e);
        }
    });
    if let Some(e) = err {
        return Err(e);
    }
    crate::dispatch!(data.dtype(), T => {
        let mut v: Vec<T> = data.view::<T>().to_vec();
        for (&o, &u) in offs.iter().zip(upd.view::<T>()) {
            v[o] = combine(reduction, v[o], u);
        }
        Ok(Tensor::from_vec(data.shape().to_vec(), v)?)
    })
}

// ---------------------------------------------------------------------------------------------
// GatherND / ScatterND

/// GatherND inference.
pub(super) fn infer_gather_nd(
    op: &Op,
    b: usize,
    inputs: &[Option<InferInput<'_>>],
) -> Result<TensorType, InferError> {
    let data = input(op, inputs, 0)?;
    let idx = input(op, inputs, 1)?;
    require_int(op, idx.ty.dtype, "indices")?;
    let dtype = data.ty.dtype;
    let (Some(d), Some(i)) = (data.ty.shape.dims(), idx.ty.shape.dims()) else {
        return Ok(TensorType::unranked(dtype));
    };
    let (r, q) = (d.len(), i.len());
    if q == 0 || r == 0 || b >= q.min(r) {
        return Err(shape_err(
            op,
            format!("batch_dims {b} needs data and indices of rank > {b}, got {r} and {q}"),
        ));
    }
    let Dim::Static(m) = i[q - 1] else {
        return Ok(TensorType::unranked(dtype));
    };
    if m < 1 || m > r - b {
        return Err(shape_err(
            op,
            format!("index tuples of length {m} for rank {r} with {b} batch dims"),
        ));
    }
    for k in 0..b {
        if let (Dim::Static(x), Dim::Static(y)) = (&d[k], &i[k])
            && x != y
        {
            return Err(shape_err(op, format!("batch dim {k} differs: {x} vs {y}")));
        }
    }
    let out = i[..q - 1].iter().chain(&d[b + m..]).cloned().collect();
    Ok(ranked(dtype, out))
}

/// Checks GatherND/ScatterND index shapes; returns the tuple length.
fn nd_tuple_len(op: &Op, data: &[usize], idx: &[usize], b: usize) -> Result<usize, EvalError> {
    let (r, q) = (data.len(), idx.len());
    if q == 0 || r == 0 || (b > 0 && b >= q.min(r)) {
        return Err(invalid(
            op,
            format!("batch_dims {b} with data {data:?} and indices {idx:?}"),
        ));
    }
    let m = idx[q - 1];
    if m > r - b {
        return Err(invalid(
            op,
            format!("index tuples of length {m} for data {data:?} with {b} batch dims"),
        ));
    }
    if data[..b] != idx[..b] {
        return Err(invalid(
            op,
            format!("batch dims of data {data:?} and indices {idx:?} differ"),
        ));
    }
    Ok(m)
}

/// Resolves every index tuple to an element offset within its batch block.
fn nd_offsets(op: &Op, dims: &[usize], idx: &[i64], m: usize) -> Result<Vec<usize>, EvalError> {
    let s = strides(dims);
    if m == 0 {
        return Ok(vec![]);
    }
    idx.chunks(m)
        .map(|tuple| {
            tuple.iter().enumerate().try_fold(0usize, |acc, (j, &i)| {
                Ok(acc + wrap(op, i, dims[j])? * s[j])
            })
        })
        .collect()
}

/// GatherND evaluation.
pub(super) fn eval_gather_nd(
    op: &Op,
    b: usize,
    inputs: &[Option<Tensor>],
) -> Result<Tensor, EvalError> {
    let data = req(op, inputs, 0)?;
    let it = req(op, inputs, 1)?;
    let (ds, is) = (data.shape(), it.shape());
    let m = nd_tuple_len(op, ds, is, b)?;
    if m == 0 {
        return Err(invalid(op, "index tuples must have at least one element"));
    }
    let idx = indices(op, it)?;
    let out: Vec<usize> = is[..is.len() - 1]
        .iter()
        .chain(&ds[b + m..])
        .copied()
        .collect();
    let n = checked_numel(&out)?;
    let batches: usize = ds[..b].iter().product();
    let block: usize = ds[b..].iter().product();
    let slice: usize = ds[b + m..].iter().product();
    let offs = nd_offsets(op, &ds[b..], &idx, m)?;
    let per_batch = offs.len().checked_div(batches).unwrap_or(0);
    by_width!(data.dtype(), W => {
        let src = words::<W>(data);
        let mut v: Vec<W> = Vec::with_capacity(n);
        for (t, &o) in offs.iter().enumerate() {
            let at = (t / per_batch.max(1)) * block + o;
            v.extend_from_slice(&src[at..at + slice]);
        }
        from_words(data.dtype(), out, v)
    })
}

/// ScatterND inference.
pub(super) fn infer_scatter_nd(
    op: &Op,
    inputs: &[Option<InferInput<'_>>],
) -> Result<TensorType, InferError> {
    let ty = infer_scatter(op, inputs)?;
    let idx = input(op, inputs, 1)?;
    let upd = input(op, inputs, 2)?;
    let (Some(d), Some(i), Some(u)) = (
        ty.shape.as_static(),
        idx.ty.shape.as_static(),
        upd.ty.shape.as_static(),
    ) else {
        return Ok(ty);
    };
    let k = match i.last() {
        Some(&k) if k <= d.len() => k,
        _ => {
            return Err(shape_err(
                op,
                format!("indices {i:?} do not index data {d:?}"),
            ));
        }
    };
    let expect: Vec<usize> = i[..i.len() - 1].iter().chain(&d[k..]).copied().collect();
    if u != expect {
        return Err(shape_err(
            op,
            format!("updates have shape {u:?}, expected {expect:?}"),
        ));
    }
    Ok(ty)
}

/// ScatterND evaluation.
pub(super) fn eval_scatter_nd(
    op: &Op,
    reduction: ScatterReduction,
    inputs: &[Option<Tensor>],
) -> Result<Tensor, EvalError> {
    let data = req(op, inputs, 0)?;
    let it = req(op, inputs, 1)?;
    let upd = req(op, inputs, 2)?;
    let (ds, is) = (data.shape(), it.shape());
    let k = nd_tuple_len(op, ds, is, 0)?;
    let expect: Vec<usize> = is[..is.len() - 1].iter().chain(&ds[k..]).copied().collect();
    check_updates(op, data, upd, &expect)?;
    let idx = indices(op, it)?;
    let slice: usize = ds[k..].iter().product();
    let offs = if k == 0 {
        vec![0; is[..is.len() - 1].iter().product()]
    } else {
        nd_offsets(op, ds, &idx, k)?
    };
    crate::dispatch!(data.dtype(), T => {
        let mut v: Vec<T> = data.view::<T>().to_vec();
        let u = upd.view::<T>();
        for (t, &o) in offs.iter().enumerate() {
            for s in 0..slice {
                v[o + s] = combine(reduction, v[o + s], u[t * slice + s]);
            }
        }
        Ok(Tensor::from_vec(ds.to_vec(), v)?)
    })
}

// ---------------------------------------------------------------------------------------------
// OneHot / NonZero

/// Normalises OneHot's axis in `[-(rank + 1), rank]`.
fn one_hot_axis(axis: i64, rank: usize) -> Result<usize, String> {
    let r = rank as i64 + 1;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r {
        return Err(format!(
            "axis {axis} is out of range for rank {rank} indices"
        ));
    }
    Ok(a as usize)
}

/// The depth of a OneHot from its one-element input.
fn one_hot_depth(t: &Tensor) -> Result<usize, String> {
    let d = t
        .scalar_f64()
        .ok_or_else(|| format!("depth must have one element, got {:?}", t.shape()))?;
    if !(0.0..=(i64::MAX as f64)).contains(&d) {
        return Err(format!("depth {d} is negative or too large"));
    }
    Ok(if t.dtype().is_float() {
        d as usize
    } else {
        t.to_i64_vec()[0] as usize
    })
}

/// OneHot inference.
pub(super) fn infer_one_hot(
    op: &Op,
    axis: i64,
    inputs: &[Option<InferInput<'_>>],
) -> Result<TensorType, InferError> {
    let idx = input(op, inputs, 0)?;
    let depth = input(op, inputs, 1)?;
    let values = input(op, inputs, 2)?;
    if idx.ty.dtype == DType::Bool || depth.ty.dtype == DType::Bool {
        return Err(InferError::Dtype(
            "OneHot indices and depth must be numeric".into(),
        ));
    }
    let dtype = values.ty.dtype;
    let Some(i) = idx.ty.shape.dims() else {
        return Ok(TensorType::unranked(dtype));
    };
    let a = one_hot_axis(axis, i.len()).map_err(|e| attr_err(op, e))?;
    let d = match depth.value {
        Some(t) => Dim::Static(one_hot_depth(t).map_err(|e| attr_err(op, e))?),
        None => Dim::Unknown,
    };
    let mut out = i.to_vec();
    out.insert(a, d);
    Ok(ranked(dtype, out))
}

/// OneHot evaluation: `off` everywhere, `on` at each in-range index along `axis`.
pub(super) fn eval_one_hot(
    op: &Op,
    axis: i64,
    inputs: &[Option<Tensor>],
) -> Result<Tensor, EvalError> {
    let it = req(op, inputs, 0)?;
    let depth = one_hot_depth(req(op, inputs, 1)?).map_err(|e| invalid(op, e))?;
    let values = req(op, inputs, 2)?;
    if values.numel() != 2 {
        return Err(invalid(
            op,
            format!("values must be [off, on], got shape {:?}", values.shape()),
        ));
    }
    if it.dtype() == DType::Bool {
        return Err(invalid(op, "indices must be numeric"));
    }
    let a = one_hot_axis(axis, it.rank()).map_err(|e| invalid(op, e))?;
    let mut out = it.shape().to_vec();
    out.insert(a, depth);
    let n = checked_numel(&out)?;
    let idx = it.to_i64_vec();
    let inner: usize = it.shape()[a..].iter().product();
    by_width!(values.dtype(), W => {
        let vals = words::<W>(values);
        let (off, on) = (vals[0], vals[1]);
        let mut v: Vec<W> = vec![off; n];
        for (p, &i) in idx.iter().enumerate() {
            let j = if i < 0 { i as i128 + depth as i128 } else { i as i128 };
            if (0..depth as i128).contains(&j) {
                let (o, k) = (p / inner, p % inner);
                v[(o * depth + j as usize) * inner + k] = on;
            }
        }
        from_words(values.dtype(), out, v)
    })
}

/// NonZero inference: `[rank, ?]` i64.
pub(super) fn infer_non_zero(
    op: &Op,
    inputs: &[Option<InferInput<'_>>],
) -> Result<TensorType, InferError> {
    let x = input(op, inputs, 0)?;
    let r = x.ty.shape.rank().map_or(Dim::Unknown, Dim::Static);
    Ok(ranked(DType::I64, vec![r, Dim::Unknown]))
}

/// NonZero evaluation: the coordinates of the non-zero elements, one row per axis, in
/// row-major order (`[0, nnz]` for a scalar, like the ONNX reference).
pub(super) fn eval_non_zero(op: &Op, inputs: &[Option<Tensor>]) -> Result<Tensor, EvalError> {
    let x = req(op, inputs, 0)?;
    let flat: Vec<usize> = crate::dispatch!(x.dtype(), T => {
        let z = T::zero();
        x.view::<T>()
            .iter()
            .enumerate()
            .filter(|&(_, v)| *v != z)
            .map(|(p, _)| p)
            .collect()
    });
    let r = x.rank();
    let nnz = flat.len();
    let mut v = vec![0i64; r * nnz];
    let s = strides(x.shape());
    for (j, &p) in flat.iter().enumerate() {
        let mut rem = p;
        for a in 0..r {
            v[a * nnz + j] = (rem / s[a]) as i64;
            rem %= s[a];
        }
    }
    Ok(Tensor::from_vec(vec![r, nnz], v)?)
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;
    use crate::types::Shape;

    #[test]
    fn gather_takes_rows_and_wraps_negative_indices() {
        let x = t(&[3, 2], vec![1.0f32, 2., 3., 4., 5., 6.]);
        let y = run1(
            &Op::Gather { axis: 0 },
            &[x.clone(), t(&[2, 2], vec![0i32, 2, -1, 1])],
        );
        assert_eq!(y.shape(), &[2, 2, 2]);
        assert_eq!(y.view::<f32>(), &[1., 2., 5., 6., 5., 6., 3., 4.]);
        let y = run1(&Op::Gather { axis: 1 }, &[x.clone(), Tensor::scalar(-1i64)]);
        assert_eq!((y.shape(), y.view::<f32>()), (&[3][..], &[2., 4., 6.][..]));
        assert!(
            run(
                &Op::Gather { axis: 0 },
                &[Some(x.clone()), Some(i64s(&[3]))]
            )
            .is_err()
        );
        assert!(
            run(
                &Op::Gather { axis: 0 },
                &[Some(x.clone()), Some(i64s(&[-4]))]
            )
            .is_err()
        );
        assert!(
            run(
                &Op::Gather { axis: 2 },
                &[Some(x.clone()), Some(i64s(&[0]))]
            )
            .is_err()
        );
        let (tx, ti) = (ty_of(&x), TensorType::fixed(DType::I64, &[4, 5]));
        let s = infer_out(
            &Op::Gather { axis: 1 },
            &[Some((&tx, None)), Some((&ti, None))],
        );
        assert_eq!(s.unwrap(), Shape::fixed(&[3, 4, 5]));
    }

    #[test]
    fn gather_and_scatter_elements() {
        let x = t(&[2, 2], vec![1i32, 2, 3, 4]);
        let i = t(&[2, 2], vec![0i64, 0, 1, 0]);
        let y = run1(&Op::GatherElements { axis: 1 }, &[x.clone(), i.clone()]);
        assert_eq!(y.view::<i32>(), &[1, 1, 4, 3]);
        let i2 = t(&[1, 2], vec![1i64, -2]);
        let y = run1(&Op::GatherElements { axis: 0 }, &[x.clone(), i2.clone()]);
        assert_eq!(y.view::<i32>(), &[3, 2]);
        let bad = t(&[1, 2], vec![2i64, 0]);
        assert!(
            run(
                &Op::GatherElements { axis: 0 },
                &[Some(x.clone()), Some(bad)]
            )
            .is_err()
        );
        let u = t(&[1, 2], vec![10i32, 20]);
        let op = |reduction| Op::ScatterElements { axis: 0, reduction };
        let y = run1(
            &op(ScatterReduction::None),
            &[x.clone(), i2.clone(), u.clone()],
        );
        assert_eq!(y.view::<i32>(), &[1, 20, 10, 4]);
        let y = run1(
            &op(ScatterReduction::Add),
            &[x.clone(), i2.clone(), u.clone()],
        );
        assert_eq!(y.view::<i32>(), &[1, 22, 13, 4]);
        let y = run1(
            &op(ScatterReduction::Mul),
            &[x.clone(), i2.clone(), u.clone()],
        );
        assert_eq!(y.view::<i32>(), &[1, 40, 30, 4]);
        let y = run1(
            &op(ScatterReduction::Min),
            &[x.clone(), i2.clone(), u.clone()],
        );
        assert_eq!(y.view::<i32>(), &[1, 2, 3, 4]);
        let dup = t(&[1, 2], vec![0i64, 0]);
        let y = run1(
            &Op::ScatterElements {
                axis: 1,
                reduction: ScatterReduction::Add,
            },
            &[x.clone(), dup, u.clone()],
        );
        assert_eq!(y.view::<i32>(), &[31, 2, 3, 4]);
        let f = t(&[2], vec![1.5f32, 2.0]);
        let y = run1(
            &Op::ScatterElements {
                axis: 0,
                reduction: ScatterReduction::Max,
            },
            &[f, t(&[1], vec![1i32]), t(&[1], vec![7.25f32])],
        );
        assert_eq!(y.view::<f32>(), &[1.5, 7.25]);
    }

    #[test]
    fn gather_nd_with_batch_dims() {
        let x = t(&[2, 2], vec![0i32, 1, 2, 3]);
        let y = run1(
            &Op::GatherNd { batch_dims: 0 },
            &[x.clone(), t(&[2, 2], vec![0i64, 0, 1, 1])],
        );
        assert_eq!(y.view::<i32>(), &[0, 3]);
        let y = run1(
            &Op::GatherNd { batch_dims: 0 },
            &[x.clone(), t(&[2, 1], vec![1i64, 0])],
        );
        assert_eq!(
            (y.shape(), y.view::<i32>()),
            (&[2, 2][..], &[2, 3, 0, 1][..])
        );
        let x3 = t(&[2, 2, 2], (0..8).collect::<Vec<i32>>());
        let y = run1(
            &Op::GatherNd { batch_dims: 1 },
            &[x3.clone(), t(&[2, 1], vec![1i64, 0])],
        );
        assert_eq!(
            (y.shape(), y.view::<i32>()),
            (&[2, 2][..], &[2, 3, 4, 5][..])
        );
        assert!(
            run(
                &Op::GatherNd { batch_dims: 0 },
                &[Some(x.clone()), Some(t(&[1, 2], vec![0i64, 2]))]
            )
            .is_err()
        );
        assert!(
            run(
                &Op::GatherNd { batch_dims: 0 },
                &[Some(x), Some(t(&[1, 3], vec![0i64, 0, 0]))]
            )
            .is_err()
        );
    }

    #[test]
    fn scatter_nd_reductions() {
        let x = t(&[4], vec![1.0f64, 2., 3., 4.]);
        let i = t(&[2, 1], vec![3i64, -4]);
        let u = t(&[2], vec![10.0f64, 20.]);
        let op = |reduction| Op::ScatterNd { reduction };
        let y = run1(
            &op(ScatterReduction::None),
            &[x.clone(), i.clone(), u.clone()],
        );
        assert_eq!(y.view::<f64>(), &[20., 2., 3., 10.]);
        let y = run1(
            &op(ScatterReduction::Mul),
            &[x.clone(), i.clone(), u.clone()],
        );
        assert_eq!(y.view::<f64>(), &[20., 2., 3., 40.]);
        let y = run1(
            &op(ScatterReduction::Max),
            &[x.clone(), i.clone(), t(&[2], vec![0.0f64, 5.])],
        );
        assert_eq!(y.view::<f64>(), &[5., 2., 3., 4.]);
        // Slices: update whole rows.
        let m = t(&[2, 2], vec![1i64, 2, 3, 4]);
        let y = run1(
            &op(ScatterReduction::Add),
            &[
                m.clone(),
                t(&[1, 1], vec![1i64]),
                t(&[1, 2], vec![10i64, 10]),
            ],
        );
        assert_eq!(y.view::<i64>(), &[1, 2, 13, 14]);
        assert!(
            run(
                &op(ScatterReduction::None),
                &[
                    Some(x.clone()),
                    Some(t(&[1, 1], vec![4i64])),
                    Some(t(&[1], vec![0.0f64]))
                ]
            )
            .is_err()
        );
        assert!(
            run(
                &op(ScatterReduction::None),
                &[Some(x), Some(i), Some(t(&[3], vec![0.0f64; 3]))]
            )
            .is_err()
        );
        // Inference checks the updates' shape too.
        let td = TensorType::fixed(DType::F64, &[4]);
        let ti = TensorType::fixed(DType::I64, &[2, 1]);
        let good = TensorType::fixed(DType::F64, &[2]);
        let bad = TensorType::fixed(DType::F64, &[3]);
        let nd = op(ScatterReduction::None);
        let ok = infer_out(
            &nd,
            &[Some((&td, None)), Some((&ti, None)), Some((&good, None))],
        );
        assert_eq!(ok.unwrap(), Shape::fixed(&[4]));
        let ins = [Some((&td, None)), Some((&ti, None)), Some((&bad, None))];
        assert!(infer_out(&nd, &ins).is_err());
    }

    #[test]
    fn one_hot_wraps_negative_and_ignores_out_of_range() {
        let i = t(&[3], vec![0i64, -1, 5]);
        let d = Tensor::scalar(3.0f32);
        let vals = t(&[2], vec![0i32, 7]);
        let y = run1(
            &Op::OneHot { axis: -1 },
            &[i.clone(), d.clone(), vals.clone()],
        );
        assert_eq!(y.shape(), &[3, 3]);
        assert_eq!(y.view::<i32>(), &[7, 0, 0, 0, 0, 7, 0, 0, 0]);
        let y = run1(
            &Op::OneHot { axis: 0 },
            &[i.clone(), d.clone(), vals.clone()],
        );
        assert_eq!(y.view::<i32>(), &[7, 0, 0, 0, 0, 0, 0, 7, 0]);
        assert!(
            run(
                &Op::OneHot { axis: 2 },
                &[Some(i.clone()), Some(d.clone()), Some(vals.clone())]
            )
            .is_err()
        );
        assert!(
            run(
                &Op::OneHot { axis: 0 },
                &[Some(i), Some(Tensor::scalar(-1i64)), Some(vals)]
            )
            .is_err()
        );
    }

    #[test]
    fn non_zero_lists_coordinates_row_major() {
        let x = t(&[2, 2], vec![1.0f32, 0.0, -0.0, f32::NAN]);
        let y = run1(&Op::NonZero, &[x]);
        assert_eq!(
            (y.shape(), y.view::<i64>()),
            (&[2, 2][..], &[0, 1, 0, 1][..])
        );
        let b = t(
            &[3],
            vec![crate::Bool8(0), crate::Bool8(1), crate::Bool8(1)],
        );
        assert_eq!(run1(&Op::NonZero, &[b]).view::<i64>(), &[1, 2]);
        let y = run1(&Op::NonZero, &[Tensor::scalar(3u8)]);
        assert_eq!(y.shape(), &[0, 1]);
    }
}
