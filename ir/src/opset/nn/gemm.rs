//! Gemm and MatMul (numpy semantics), plus the strided GEMM wrapper the convolutions share.
//!
//! Floats go through `matrixmultiply` (f32 for f32/f16/bf16, f64 for f64); the integer forms
//! (i32/i64/u32/u64) are exact loops with wrapping two's-complement arithmetic.

use super::{Real, bad_dtype, fmt_dims, infer_same_dtype, load, same_dtype, store, with_real};
use crate::dtype::DType;
use crate::infer::{InferError, InferInput, broadcast_shapes, input, opt_input};
use crate::interp::EvalError;
use crate::ops::Op;
use crate::opset::util::{broadcast, broadcast_offsets, opt, req};
use crate::tensor::{Tensor, checked_numel};
use crate::types::{Dim, Shape, TensorType};
use rayon::prelude::*;

/// A matrix operand of [`gemm`]: its elements and its row and column strides.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a, F> {
    /// Elements.
    pub data: &'a [F],
    /// Row stride.
    pub rs: usize,
    /// Column stride.
    pub cs: usize,
}

impl<'a, F> Mat<'a, F> {
    /// A row-major contiguous matrix with `cols` columns.
    pub fn rows(data: &'a [F], cols: usize) -> Self {
        Mat {
            data,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose of a row-major contiguous matrix with `cols` columns.
    pub fn cols(data: &'a [F], cols: usize) -> Self {
        Mat {
            data,
            rs: 1,
            cs: cols,
        }
    }

    /// True when an `r×c` matrix with these strides lies within `data`.
    fn fits(&self, r: usize, c: usize) -> bool {
        r == 0 || c == 0 || (r - 1) * self.rs + (c - 1) * self.cs < self.data.len()
    }
}

/// `C ← alpha·A·B + beta·C` for an `m×k` A, a `k×n` B and a row-major contiguous `m×n` C.
/// With `beta == 0` the previous contents of C are ignored (even NaN).
///
/// # Panics
/// When an operand is smaller than its dims and strides need (a bug in the caller).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm<F: Real>(
    m: usize,
    k: usize,
    n: usize,
    alpha: F,
    a: Mat<'_, F>,
    b: Mat<'_, F>,
    beta: F,
    c: &mut [F],
) {
    assert!(
        a.fits(m, k) && b.fits(k, n) && c.len() >= m * n,
        "gemm operands too small"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for x in &mut c[..m * n] {
            *x = if beta == F::ZERO { F::ZERO } else { *x * beta };
        }
        return;
    }
    if beta == F::ZERO {
        c[..m * n].fill(F::ZERO);
    }
    // SAFETY: `fits` checked that every element the strides address is inside the slices,
    // and `c` is a distinct, contiguous, exclusively borrowed m×n matrix.
    unsafe {
        F::gemm(
            m,
            k,
            n,
            alpha,
            a.data.as_ptr(),
            a.rs as isize,
            a.cs as isize,
            b.data.as_ptr(),
            b.rs as isize,
            b.cs as isize,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        )
    }
}

/// True for the integer dtypes Gemm and MatMul accept.
fn int_ok(d: DType) -> bool {
    matches!(d, DType::I32 | DType::I64 | DType::U32 | DType::U64)
}

/// Infer-time dtype check shared by Gemm and MatMul.
fn infer_dtype(op: &Op, d: DType) -> Result<(), InferError> {
    if d.is_float() || int_ok(d) {
        Ok(())
    } else {
        Err(InferError::Dtype(format!(
            "{} accepts float and i32/i64/u32/u64 inputs, got {d}",
            op.name()
        )))
    }
}

/// True when two dims may be equal (false only for two different static sizes).
fn compatible(a: &Dim, b: &Dim) -> bool {
    match (a, b) {
        (Dim::Static(x), Dim::Static(y)) => x == y,
        _ => true,
    }
}

/// Output types of Gemm.
pub(super) fn infer_gemm(
    op: &Op,
    trans_a: bool,
    trans_b: bool,
    inputs: &[Option<InferInput<'_>>],
) -> Result<Vec<TensorType>, InferError> {
    let a = input(op, inputs, 0)?;
    let b = input(op, inputs, 1)?;
    let dtype = a.ty.dtype;
    infer_dtype(op, dtype)?;
    infer_same_dtype(op, "B", b.ty.dtype, dtype)?;
    let c = opt_input(inputs, 2);
    if let Some(c) = c {
        infer_same_dtype(op, "C", c.ty.dtype, dtype)?;
    }
    let rank2 = |what: &str, s: &Shape| -> Result<Option<Vec<Dim>>, InferError> {
        match s.dims() {
            None => Ok(None),
            Some(d) if d.len() == 2 => Ok(Some(d.to_vec())),
            Some(d) => Err(InferError::Shape(format!(
                "Gemm {what} must be 2-D, got {}",
                fmt_dims(d)
            ))),
        }
    };
    let ad = rank2("A", &a.ty.shape)?;
    let bd = rank2("B", &b.ty.shape)?;
    let (m, ka) = match &ad {
        Some(d) if trans_a => (d[1].clone(), d[0].clone()),
        Some(d) => (d[0].clone(), d[1].clone()),
        None => (Dim::Unknown, Dim::Unknown),
    };
    let (kb, n) = match &bd {
        Some(d) if trans_b => (d[1].clone(), d[0].clone()),
        Some(d) => (d[0].clone(), d[1].clone()),
        None => (Dim::Unknown, Dim::Unknown),
    };
    if !compatible(&ka, &kb) {
        return Err(InferError::Shape(format!(
            "Gemm inner dims differ: A {} (trans_a={trans_a}) has K={ka}, B {} \
             (trans_b={trans_b}) has K={kb}",
            a.ty.shape, b.ty.shape
        )));
    }
    if let Some(cd) = c.and_then(|c| c.ty.shape.dims()) {
        let target = [m.clone(), n.clone()];
        let bad = cd.len() > 2
            || cd
                .iter()
                .rev()
                .zip(target.iter().rev())
                .any(|(x, t)| !matches!(x, Dim::Static(1)) && !compatible(x, t));
        if bad {
            return Err(InferError::Shape(format!(
                "Gemm C {} does not broadcast to [{m}x{n}]",
                fmt_dims(cd)
            )));
        }
    }
    Ok(vec![TensorType {
        dtype,
        shape: Shape::Ranked(vec![m, n]),
    }])
}

/// Evaluates Gemm.
pub(super) fn eval_gemm(
    op: &Op,
    alpha: f32,
    beta: f32,
    trans_a: bool,
    trans_b: bool,
    inputs: &[Option<Tensor>],
) -> Result<Vec<Tensor>, EvalError> {
    let a = req(op, inputs, 0)?;
    let b = req(op, inputs, 1)?;
    let dtype = a.dtype();
    same_dtype(op, "B", b, dtype)?;
    let c = opt(inputs, 2);
    if let Some(c) = c {
        same_dtype(op, "C", c, dtype)?;
    }
    if a.rank() != 2 || b.rank() != 2 {
        return Err(EvalError::Invalid(format!(
            "Gemm needs 2-D A and B, got {:?} and {:?}",
            a.shape(),
            b.shape()
        )));
    }
    let (m, k) = if trans_a {
        (a.shape()[1], a.shape()[0])
    } else {
        (a.shape()[0], a.shape()[1])
    };
    let (kb, n) = if trans_b {
        (b.shape()[1], b.shape()[0])
    } else {
        (b.shape()[0], b.shape()[1])
    };
    if k != kb {
        return Err(EvalError::Invalid(format!(
            "Gemm inner dims differ: A {:?} (trans_a={trans_a}) and B {:?} (trans_b={trans_b})",
            a.shape(),
            b.shape()
        )));
    }
    let out_shape = vec![m, n];
    let mn = checked_numel(&out_shape)?;
    // C broadcast to [m, n] (only when it contributes).
    let c_offsets = match c {
        Some(c) if beta != 0.0 => {
            let ok = c.rank() <= 2
                && c.shape()
                    .iter()
                    .rev()
                    .zip([n, m])
                    .all(|(&x, t)| x == 1 || x == t);
            if !ok {
                return Err(EvalError::Invalid(format!(
                    "Gemm C {:?} does not broadcast to [{m}, {n}]",
                    c.shape()
                )));
            }
            Some((c, broadcast_offsets(c.shape(), &out_shape)))
        }
        _ => None,
    };
    with_real!(dtype, F => {
        let av = load::<F>(a);
        let bv = load::<F>(b);
        let mut out: Vec<F> = match &c_offsets {
            Some((c, offs)) => {
                let cv = load::<F>(c);
                offs.iter().map(|&o| cv[o]).collect()
            }
            None => vec![F::ZERO; mn],
        };
        let am = if trans_a { Mat::cols(&av[..], m) } else { Mat::rows(&av[..], k) };
        let bm = if trans_b { Mat::cols(&bv[..], k) } else { Mat::rows(&bv[..], n) };
        let beta_eff = if c_offsets.is_some() { F::of(beta) } else { F::ZERO };
        gemm(m, k, n, F::of(alpha), am, bm, beta_eff, &mut out);
        Ok(vec![store(dtype, out_shape, out)?])
    }, else {
        if !int_ok(dtype) {
            return Err(bad_dtype(op, dtype));
        }
        let av = a.to_i64_vec();
        let bv = b.to_i64_vec();
        let (ars, acs) = if trans_a { (1, m) } else { (k, 1) };
        let (brs, bcs) = if trans_b { (1, k) } else { (n, 1) };
        let cv = c_offsets.as_ref().map(|(c, offs)| (c.to_i64_vec(), offs));
        let mut out = vec![0i64; mn];
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0i64;
                for p in 0..k {
                    acc = acc.wrapping_add(av[i * ars + p * acs].wrapping_mul(bv[p * brs + j * bcs]));
                }
                let mut y = if alpha == 1.0 { acc } else { (alpha as f64 * acc as f64) as i64 };
                if let Some((cv, offs)) = &cv {
                    let cval = cv[offs[i * n + j]];
                    y = if beta == 1.0 {
                        y.wrapping_add(cval)
                    } else {
                        y.wrapping_add((beta as f64 * cval as f64) as i64)
                    };
                }
                out[i * n + j] = y;
            }
        }
        Ok(vec![Tensor::from_vec(out_shape, out)?.cast(dtype)])
    })
}

/// The batch dims, M, K, N of a MatMul operand pair (numpy semantics).
struct MatMulDims<D> {
    a_batch: Vec<D>,
    b_batch: Vec<D>,
    m: Option<D>,
    ka: D,
    kb: D,
    n: Option<D>,
}

/// Splits MatMul operand dims; 1-D operands are promoted (M or N is then `None`).
fn split_dims<D: Clone>(a: &[D], b: &[D]) -> Option<MatMulDims<D>> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let (a_batch, m, ka) = if a.len() == 1 {
        (vec![], None, a[0].clone())
    } else {
        let r = a.len();
        (
            a[..r - 2].to_vec(),
            Some(a[r - 2].clone()),
            a[r - 1].clone(),
        )
    };
    let (b_batch, kb, n) = if b.len() == 1 {
        (vec![], b[0].clone(), None)
    } else {
        let r = b.len();
        (
            b[..r - 2].to_vec(),
            b[r - 2].clone(),
            Some(b[r - 1].clone()),
        )
    };
    Some(MatMulDims {
        a_batch,
        b_batch,
        m,
        ka,
        kb,
        n,
    })
}

/// Output types of MatMul.
pub(super) fn infer_matmul(
    op: &Op,
    inputs: &[Option<InferInput<'_>>],
) -> Result<Vec<TensorType>, InferError> {
    let a = input(op, inputs, 0)?;
    let b = input(op, inputs, 1)?;
    let dtype = a.ty.dtype;
    infer_dtype(op, dtype)?;
    infer_same_dtype(op, "B", b.ty.dtype, dtype)?;
    let (Some(ad), Some(bd)) = (a.ty.shape.dims(), b.ty.shape.dims()) else {
        return Ok(vec![TensorType::unranked(dtype)]);
    };
    let Some(d) = split_dims(ad, bd) else {
        return Err(InferError::Shape(format!(
            "MatMul does not accept scalars: A {} and B {}",
            a.ty.shape, b.ty.shape
        )));
    };
    if !compatible(&d.ka, &d.kb) {
        return Err(InferError::Shape(format!(
            "MatMul inner dims differ: A {} has K={}, B {} has K={}",
            a.ty.shape, d.ka, b.ty.shape, d.kb
        )));
    }
    let batch =
        broadcast_shapes(&Shape::Ranked(d.a_batch), &Shape::Ranked(d.b_batch)).map_err(|e| {
            InferError::Shape(format!(
                "MatMul batch dims of A {} and B {}: {e}",
                a.ty.shape, b.ty.shape
            ))
        })?;
    let mut out = batch.dims().map(<[Dim]>::to_vec).unwrap_or_default();
    out.extend(d.m);
    out.extend(d.n);
    Ok(vec![TensorType {
        dtype,
        shape: Shape::Ranked(out),
    }])
}

/// Evaluates MatMul.
pub(super) fn eval_matmul(op: &Op, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>, EvalError> {
    let a = req(op, inputs, 0)?;
    let b = req(op, inputs, 1)?;
    let dtype = a.dtype();
    same_dtype(op, "B", b, dtype)?;
    let d = split_dims(a.shape(), b.shape()).ok_or_else(|| {
        EvalError::Invalid(format!(
            "MatMul does not accept scalars: A {:?} and B {:?}",
            a.shape(),
            b.shape()
        ))
    })?;
    if d.ka != d.kb {
        return Err(EvalError::Invalid(format!(
            "MatMul inner dims differ: A {:?} and B {:?}",
            a.shape(),
            b.shape()
        )));
    }
    let (m, k, n) = (d.m.unwrap_or(1), d.ka, d.n.unwrap_or(1));
    let batch = broadcast(&d.a_batch, &d.b_batch)?;
    let mut out_shape = batch.clone();
    out_shape.extend(d.m);
    out_shape.extend(d.n);
    let total = checked_numel(&out_shape)?;
    let nb: usize = batch.iter().product();
    let (mk, kn, mn) = (m * k, k * n, m * n);
    // Matrix index of each output batch entry in A and B.
    let b_shared = d.b_batch.iter().product::<usize>() == 1;
    let a_full = d.a_batch.iter().product::<usize>() == nb;
    with_real!(dtype, F => {
        let av = load::<F>(a);
        let bv = load::<F>(b);
        let mut out = vec![F::ZERO; total];
        if b_shared && a_full {
            // One GEMM with the batch folded into M.
            gemm(nb * m, k, n, F::ONE, Mat::rows(&av[..], k), Mat::rows(&bv[..], n), F::ZERO, &mut out);
        } else if mn > 0 {
            let ao = broadcast_offsets(&d.a_batch, &batch);
            let bo = broadcast_offsets(&d.b_batch, &batch);
            out.par_chunks_mut(mn).enumerate().for_each(|(i, c)| {
                let am = Mat::rows(&av[ao[i] * mk..(ao[i] + 1) * mk], k);
                let bm = Mat::rows(&bv[bo[i] * kn..(bo[i] + 1) * kn], n);
                gemm(m, k, n, F::ONE, am, bm, F::ZERO, c);
            });
        }
        Ok(vec![store(dtype, out_shape, out)?])
    }, else {
        if !int_ok(dtype) {
            return Err(bad_dtype(op, dtype));
        }
        let av = a.to_i64_vec();
        let bv = b.to_i64_vec();
        let mut out = vec![0i64; total];
        if mn > 0 {
            let ao = broadcast_offsets(&d.a_batch, &batch);
            let bo = broadcast_offsets(&d.b_batch, &batch);
            for (bi, c) in out.chunks_mut(mn).enumerate() {
                let am = &av[ao[bi] * mk..(ao[bi] + 1) * mk];
                let bm = &bv[bo[bi] * kn..(bo[bi] + 1) * kn];
                for i in 0..m {
                    let row = &mut c[i * n..(i + 1) * n];
                    for p in 0..k {
                        let x = am[i * k + p];
                        for (y, &w) in row.iter_mut().zip(&bm[p * n..(p + 1) * n]) {
                            *y = y.wrapping_add(x.wrapping_mul(w));
                        }
                    }
                }
            }
        }
        Ok(vec![Tensor::from_vec(out_shape, out)?.cast(dtype)])
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    fn gemm_op(alpha: f32, beta: f32, trans_a: bool, trans_b: bool) -> Op {
        Op::Gemm {
            alpha,
            beta,
            trans_a,
            trans_b,
        }
    }

    #[test]
    fn matmul_2d_and_promotions() {
        let a = iota(&[2, 3]);
        let b = iota(&[3, 2]);
        // [[0,1,2],[3,4,5]] x [[0,1],[2,3],[4,5]]
        close(
            &run1(&Op::MatMul, &[a.clone(), b]),
            &[2, 2],
            &[10., 13., 28., 40.],
        );
        let v = f(&[3], &[1., 1., 1.]);
        close(
            &run1(&Op::MatMul, &[a.clone(), v.clone()]),
            &[2],
            &[3., 12.],
        );
        let w = f(&[2], &[1., 2.]);
        close(&run1(&Op::MatMul, &[w, a]), &[3], &[6., 9., 12.]);
        close(&run1(&Op::MatMul, &[v.clone(), v]), &[], &[3.]);
    }

    #[test]
    fn matmul_broadcasts_batches() {
        // A [2,1,2,2] x B [3,2,1]: batch [2,3].
        let a = iota(&[2, 1, 2, 2]);
        let b = iota(&[3, 2, 1]);
        let y = run1(&Op::MatMul, &[a, b]);
        assert_eq!(y.shape(), &[2, 3, 2, 1]);
        // batch (0, 1): A0 = [[0,1],[2,3]], B1 = [2,3]^T -> [3, 13]
        let v = y.to_f64_vec();
        assert_eq!(&v[2..4], &[3., 13.]);
        // batch (1, 2): A1 = [[4,5],[6,7]], B2 = [4,5] -> [41, 59]
        assert_eq!(&v[10..12], &[41., 59.]);
        // Folded path: [2,2,3] x [3,1].
        let y = run1(&Op::MatMul, &[iota(&[2, 2, 3]), f(&[3, 1], &[1., 0., -1.])]);
        close(&y, &[2, 2, 1], &[-2., -2., -2., -2.]);
    }

    #[test]
    fn matmul_dtypes() {
        let a = Tensor::from_vec(vec![2, 2], vec![1i32, -2, 3, 4]).unwrap();
        let b = Tensor::from_vec(vec![2, 1], vec![5i32, 6]).unwrap();
        let y = run1(&Op::MatMul, &[a, b]);
        assert_eq!(y.view::<i32>(), &[-7, 39]);
        let a = Tensor::from_vec(vec![1, 2], vec![u64::MAX, 2]).unwrap();
        let b = Tensor::from_vec(vec![2, 1], vec![1u64, 3]).unwrap();
        // wraps: (2^64 - 1) + 6 = 5 mod 2^64
        assert_eq!(run1(&Op::MatMul, &[a, b]).view::<u64>(), &[5]);
        let h = |v: &[f32]| {
            Tensor::from_vec(
                vec![v.len()],
                v.iter().map(|&x| half::f16::from_f32(x)).collect(),
            )
            .unwrap()
        };
        let y = run1(&Op::MatMul, &[h(&[0.5, 1.5]), h(&[2.0, 4.0])]);
        assert_eq!(y.dtype(), DType::F16);
        assert_eq!(y.to_f64_vec(), vec![7.0]);
        let y = run1(
            &Op::MatMul,
            &[
                Tensor::from_vec(vec![2], vec![1.0f64, 2.0]).unwrap(),
                Tensor::from_vec(vec![2, 2], vec![1.0f64, 2.0, 3.0, 4.0]).unwrap(),
            ],
        );
        assert_eq!(y.view::<f64>(), &[7.0, 10.0]);
    }

    #[test]
    fn matmul_errors() {
        let e = eval_op(&Op::MatMul, &[Some(iota(&[2, 3])), Some(iota(&[2, 3]))], 1);
        assert!(e.unwrap_err().to_string().contains("inner dims"));
        assert!(eval_op(&Op::MatMul, &[Some(iota(&[])), Some(iota(&[2]))], 1).is_err());
        let i8s = Tensor::from_vec(vec![1, 1], vec![1i8]).unwrap();
        assert!(eval_op(&Op::MatMul, &[Some(i8s.clone()), Some(i8s)], 1).is_err());
        assert!(eval_op(&Op::MatMul, &[Some(iota(&[2, 2]))], 1).is_err());
    }

    #[test]
    fn matmul_infer() {
        let t = infer_types(
            &Op::MatMul,
            &[
                Some(sty(DType::F32, &["B", "1", "S", "64"])),
                Some(sty(DType::F32, &["8", "64", "S"])),
            ],
            1,
        )
        .unwrap();
        assert_eq!(t[0], sty(DType::F32, &["B", "8", "S", "S"]));
        let t = infer_types(
            &Op::MatMul,
            &[Some(ty(DType::F32, &[4])), Some(ty(DType::F32, &[2, 4, 3]))],
            1,
        )
        .unwrap();
        assert_eq!(t[0], ty(DType::F32, &[2, 3]));
        let e = infer_types(
            &Op::MatMul,
            &[Some(ty(DType::F32, &[2, 3])), Some(ty(DType::F32, &[4, 5]))],
            1,
        )
        .unwrap_err();
        assert!(
            matches!(&e, InferError::Shape(m) if m.contains("[2x3]") && m.contains("[4x5]")),
            "{e}"
        );
        let e = infer_types(
            &Op::MatMul,
            &[Some(ty(DType::I8, &[2, 3])), Some(ty(DType::I8, &[3, 5]))],
            1,
        );
        assert!(matches!(e, Err(InferError::Dtype(_))));
    }

    #[test]
    fn gemm_attributes_and_bias() {
        let a = iota(&[2, 3]);
        let b = iota(&[3, 2]);
        let c = f(&[2], &[100., 200.]);
        let y = run1(&gemm_op(2.0, 0.5, false, false), &[a.clone(), b.clone(), c]);
        close(&y, &[2, 2], &[70., 126., 106., 180.]);
        // Transposed inputs give the same product.
        let at = iota(&[3, 2]); // A^T of [[0,2,4],[1,3,5]]
        let y = run1(&gemm_op(1.0, 1.0, true, false), &[at, b.clone()]);
        close(&y, &[2, 2], &[20., 26., 26., 35.]);
        let bt = f(&[2, 3], &[0., 2., 4., 1., 3., 5.]);
        let y = run1(&gemm_op(1.0, 1.0, false, true), &[a.clone(), bt]);
        close(&y, &[2, 2], &[10., 13., 28., 40.]);
        // Column bias [2,1] and scalar bias; beta 0 ignores C even if NaN.
        let y = run1(
            &gemm_op(1.0, 1.0, false, false),
            &[a.clone(), b.clone(), f(&[2, 1], &[1., 2.])],
        );
        close(&y, &[2, 2], &[11., 14., 30., 42.]);
        let y = run1(
            &gemm_op(1.0, 0.0, false, false),
            &[a.clone(), b.clone(), f(&[], &[f32::NAN])],
        );
        close(&y, &[2, 2], &[10., 13., 28., 40.]);
        let e = eval_op(
            &gemm_op(1.0, 1.0, false, false),
            &[
                Some(a.clone()),
                Some(b.clone()),
                Some(f(&[3], &[1., 2., 3.])),
            ],
            1,
        );
        assert!(e.is_err());
        assert!(eval_op(&gemm_op(1.0, 1.0, true, false), &[Some(a), Some(b)], 1).is_err());
    }

    #[test]
    fn gemm_integers() {
        let a = Tensor::from_vec(vec![1, 2], vec![3i64, -4]).unwrap();
        let b = Tensor::from_vec(vec![2, 2], vec![1i64, 2, 3, 4]).unwrap();
        let c = Tensor::from_vec(vec![1, 2], vec![10i64, 20]).unwrap();
        let y = run1(&gemm_op(1.0, 1.0, false, false), &[a.clone(), b.clone(), c]);
        assert_eq!(y.view::<i64>(), &[1, 10]);
        let y = run1(&gemm_op(2.0, 1.0, false, false), &[a, b]);
        assert_eq!(y.view::<i64>(), &[-18, -20]);
    }

    #[test]
    fn gemm_infer() {
        let op = gemm_op(1.0, 1.0, true, false);
        let t = infer_types(
            &op,
            &[
                Some(sty(DType::F32, &["K", "M"])),
                Some(ty(DType::F32, &[7, 5])),
                Some(ty(DType::F32, &[5])),
            ],
            1,
        )
        .unwrap();
        assert_eq!(t[0], sty(DType::F32, &["M", "5"]));
        let e = infer_types(
            &op,
            &[Some(ty(DType::F32, &[6, 3])), Some(ty(DType::F32, &[7, 5]))],
            1,
        )
        .unwrap_err();
        assert!(
            matches!(&e, InferError::Shape(m) if m.contains("[6x3]") && m.contains("[7x5]")),
            "{e}"
        );
        let e = infer_types(
            &op,
            &[
                Some(ty(DType::F32, &[7, 3])),
                Some(ty(DType::F32, &[7, 5])),
                Some(ty(DType::F32, &[4])),
            ],
            1,
        );
        assert!(matches!(e, Err(InferError::Shape(_))));
    }
}
