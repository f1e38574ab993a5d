//! MatMulInteger and QLinearMatMul: numpy-matmul broadcasting over i32 accumulation.
//!
//! Zero points and scales of `a` are per tensor (one element) or per row (`[M]`, or an N-D
//! tensor broadcastable to `[..., M, 1]`); those of `b` per tensor or per column (`[N]`, or
//! broadcastable to `[..., 1, N]`).

use super::{half_round, int_range};
use crate::dtype::DType;
use crate::interp::EvalError;
use crate::opset::elementwise::kernels::{map2, map3};
use crate::opset::util::{broadcast, broadcast_offsets};
use crate::tensor::{Tensor, checked_numel};
use rayon::prelude::*;

/// Which operand a zero point or scale belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// `a`: per-row parameters.
    A,
    /// `b`: per-column parameters.
    B,
}

/// `a` viewed with rank ≥ 2 (a 1-D `a` is one row, a 1-D `b` one column).
fn as_matrix(t: &Tensor, side: Side) -> Result<Tensor, EvalError> {
    match (t.rank(), side) {
        (0, _) => Err(EvalError::Invalid(
            "matmul operands must have rank ≥ 1".into(),
        )),
        (1, Side::A) => Ok(t.reshape(vec![1, t.numel()])?),
        (1, Side::B) => Ok(t.reshape(vec![t.numel(), 1])?),
        _ => Ok(t.clone()),
    }
}

/// A per-row/per-column parameter reshaped so that it broadcasts against its operand (or the
/// output): a one-element tensor stays a scalar, `[M]` becomes `[M, 1]` for `a`, `[N]` stays
/// `[N]` for `b`.
fn param_shape(p: &Tensor, side: Side) -> Result<Tensor, EvalError> {
    if p.numel() == 1 {
        return Ok(p.reshape(vec![])?);
    }
    if p.rank() == 1 && side == Side::A {
        return Ok(p.reshape(vec![p.numel(), 1])?);
    }
    Ok(p.clone())
}

/// `x - zp` as i32, with `zp` per tensor or per row/column.
pub fn centered(
    op: &str,
    x: &Tensor,
    zp: Option<&Tensor>,
    side: Side,
) -> Result<Tensor, EvalError> {
    let xi = x.cast(DType::I32);
    let Some(zp) = zp else { return Ok(xi) };
    if zp.dtype() != x.dtype() {
        return Err(EvalError::Invalid(format!(
            "{op}: zero point of {} for an input of {}",
            zp.dtype(),
            x.dtype()
        )));
    }
    let z = param_shape(zp, side)?.cast(DType::I32);
    let out = map2(&xi, &z, |a: i32, b: i32| a.wrapping_sub(b))?;
    if out.shape() != xi.shape() {
        return Err(EvalError::Invalid(format!(
            "{op}: zero point of shape {:?} does not fit an input of shape {:?}",
            zp.shape(),
            x.shape()
        )));
    }
    Ok(out)
}

/// Batched i32 matmul of rank ≥ 2 operands with numpy batch broadcasting; accumulation wraps.
pub fn matmul_i32(a: &Tensor, b: &Tensor) -> Result<Tensor, EvalError> {
    let (ash, bsh) = (a.shape(), b.shape());
    let (m, k) = (ash[ash.len() - 2], ash[ash.len() - 1]);
    let (k2, n) = (bsh[bsh.len() - 2], bsh[bsh.len() - 1]);
    if k != k2 {
        return Err(EvalError::Invalid(format!(
            "matmul inner dims differ: {ash:?} × {bsh:?}"
        )));
    }
    let (abatch, bbatch) = (&ash[..ash.len() - 2], &bsh[..bsh.len() - 2]);
    let batch = broadcast(abatch, bbatch)?;
    let mut shape = batch.clone();
    shape.extend([m, n]);
    let total = checked_numel(&shape)?;
    let oa = broadcast_offsets(abatch, &batch);
    let ob = broadcast_offsets(bbatch, &batch);
    let (av, bv) = (a.view::<i32>(), b.view::<i32>());
    let mut out = vec![0i32; total];
    if n > 0 {
        out.par_chunks_mut(n)
            .with_min_len((4096 / (k * n).max(1)).max(1))
            .enumerate()
            .for_each(|(row, o)| {
                let (bi, i) = (row / m, row % m);
                let arow = &av[(oa[bi] * m + i) * k..][..k];
                let bmat = &bv[ob[bi] * k * n..][..k * n];
                for (p, &x) in arow.iter().enumerate() {
                    if x == 0 {
                        continue;
                    }
                    for (acc, &y) in o.iter_mut().zip(&bmat[p * n..(p + 1) * n]) {
                        *acc = acc.wrapping_add(x.wrapping_mul(y));
                    }
                }
            });
    }
    Ok(Tensor::from_vec(shape, out)?)
}

/// Drops the unit dims [`as_matrix`] added for 1-D operands.
fn squeeze_vectors(y: Tensor, a_rank: usize, b_rank: usize) -> Result<Tensor, EvalError> {
    let mut shape = y.shape().to_vec();
    let r = shape.len();
    if b_rank == 1 {
        shape.remove(r - 1);
    }
    if a_rank == 1 {
        shape.remove(r - 2);
    }
    Ok(y.reshape(shape)?)
}

fn check_operand(op: &str, what: &str, t: &Tensor) -> Result<(), EvalError> {
    if !matches!(t.dtype(), DType::I8 | DType::U8) {
        return Err(EvalError::Invalid(format!(
            "{op}: {what} must be i8 or u8, got {}",
            t.dtype()
        )));
    }
    Ok(())
}

/// MatMulInteger: `(a - a_zero_point) @ (b - b_zero_point)` in i32.
pub fn matmul_integer(
    a: &Tensor,
    b: &Tensor,
    azp: Option<&Tensor>,
    bzp: Option<&Tensor>,
) -> Result<Tensor, EvalError> {
    let op = "MatMulInteger";
    check_operand(op, "A", a)?;
    check_operand(op, "B", b)?;
    let am = as_matrix(a, Side::A)?;
    let bm = as_matrix(b, Side::B)?;
    let ac = centered(op, &am, azp, Side::A)?;
    let bc = centered(op, &bm, bzp, Side::B)?;
    squeeze_vectors(matmul_i32(&ac, &bc)?, a.rank(), b.rank())
}

/// A scale checked to be float, as f32 values in a tensor shaped to broadcast.
fn scale_param(op: &str, s: &Tensor, side: Side) -> Result<Tensor, EvalError> {
    if !s.dtype().is_float() {
        return Err(EvalError::Invalid(format!(
            "{op}: scales must be float, got {}",
            s.dtype()
        )));
    }
    Ok(param_shape(s, side)?.cast(DType::F32))
}

/// QLinearMatMul: requantizes `(a - a_zp) @ (b - b_zp)` with the multiplier
/// `a_scale * b_scale / y_scale` (computed in the scales' dtype, as the ONNX reference does).
#[allow(clippy::too_many_arguments)]
pub fn qlinear_matmul(
    a: &Tensor,
    a_scale: &Tensor,
    a_zp: Option<&Tensor>,
    b: &Tensor,
    b_scale: &Tensor,
    b_zp: Option<&Tensor>,
    y_scale: &Tensor,
    y_zp: Option<&Tensor>,
) -> Result<Tensor, EvalError> {
    let op = "QLinearMatMul";
    check_operand(op, "a", a)?;
    check_operand(op, "b", b)?;
    let out_dtype = match y_zp {
        Some(z) => {
            check_operand(op, "y_zero_point", z)?;
            z.dtype()
        }
        None => a.dtype(),
    };
    let sd = a_scale.dtype();
    if b_scale.dtype() != sd || y_scale.dtype() != sd {
        return Err(EvalError::Invalid(format!(
            "{op}: scales of different dtypes ({sd}, {}, {})",
            b_scale.dtype(),
            y_scale.dtype()
        )));
    }
    let am = as_matrix(a, Side::A)?;
    let bm = as_matrix(b, Side::B)?;
    let c = matmul_i32(
        &centered(op, &am, a_zp, Side::A)?,
        &centered(op, &bm, b_zp, Side::B)?,
    )?;
    let sa = scale_param(op, a_scale, Side::A)?;
    let sb = scale_param(op, b_scale, Side::B)?;
    let sy = scale_param(op, y_scale, Side::A)?;
    let ab = map2(&sa, &sb, |x: f32, y: f32| half_round(sd, x * y))?;
    let mult = map2(&ab, &sy, |x: f32, y: f32| half_round(sd, x / y))?;
    let zp = match y_zp {
        Some(z) => param_shape(z, Side::A)?.cast(DType::I32),
        None => Tensor::scalar(0i32),
    };
    let (lo, hi) = int_range(out_dtype);
    let q = map3(&c, &mult, &zp, |acc: i32, s: f32, z: i32| {
        (acc as f64 * s as f64 + z as f64)
            .round_ties_even()
            .clamp(lo, hi)
    })?;
    if q.shape() != c.shape() {
        return Err(EvalError::Invalid(format!(
            "{op}: scales or zero points do not fit the output of shape {:?}",
            c.shape()
        )));
    }
    let q = squeeze_vectors(q, a.rank(), b.rank())?;
    super::from_f64_as(out_dtype, q.shape().to_vec(), q.view::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::Elem;
    use half::f16;

    fn t<T: Elem>(shape: &[usize], v: Vec<T>) -> Tensor {
        Tensor::from_vec(shape.to_vec(), v).unwrap()
    }

    #[test]
    fn matmul_integer_matches_the_spec_example() {
        let a = t(&[4, 3], vec![11u8, 7, 3, 10, 6, 2, 9, 5, 1, 8, 4, 0]);
        let b = t(&[3, 2], vec![1u8, 4, 2, 5, 3, 6]);
        let y = matmul_integer(
            &a,
            &b,
            Some(&t(&[1], vec![12u8])),
            Some(&t(&[1], vec![0u8])),
        )
        .unwrap();
        assert_eq!(y.dtype(), DType::I32);
        assert_eq!(y.view::<i32>(), &[-38, -83, -44, -98, -50, -113, -56, -128]);
    }

    #[test]
    fn matmul_integer_per_row_column_and_broadcast() {
        // a: 2x2 with per-row zero points [1, 2]; b: 2x2 with per-column [0, 1].
        let a = t(&[2, 2], vec![2i8, 3, 4, 5]);
        let b = t(&[2, 2], vec![1i8, 2, 3, 4]);
        let y = matmul_integer(
            &a,
            &b,
            Some(&t(&[2], vec![1i8, 2])),
            Some(&t(&[2], vec![0i8, 1])),
        )
        .unwrap();
        // A' = [[1,2],[2,3]], B' = [[1,1],[3,3]]
        assert_eq!(y.view::<i32>(), &[7, 7, 11, 11]);
        // Batch broadcast [2,1,2] x [2,1] and vectors.
        let a3 = t(&[2, 1, 2], vec![1u8, 2, 3, 4]);
        let v = t(&[2], vec![5u8, 6]);
        let y3 = matmul_integer(&a3, &v, None, None).unwrap();
        assert_eq!(y3.shape(), &[2, 1]);
        assert_eq!(y3.view::<i32>(), &[17, 39]);
        let yv = matmul_integer(&v, &t(&[2, 2], vec![1u8, 0, 0, 1]), None, None).unwrap();
        assert_eq!(yv.shape(), &[2]);
        assert_eq!(yv.view::<i32>(), &[5, 6]);
        assert!(matmul_integer(&a, &t(&[3, 1], vec![1i8, 1, 1]), None, None).is_err());
        assert!(matmul_integer(&a, &b, Some(&t(&[3], vec![1i8, 1, 1])), None).is_err());
        assert!(
            matmul_integer(&a, &b, Some(&t(&[], vec![1u8])), None).is_err(),
            "zp dtype"
        );
    }

    #[test]
    fn qlinear_matmul_matches_the_spec_example() {
        let a = t(&[2, 4], vec![208u8, 236, 0, 238, 3, 214, 255, 29]);
        let b = t(
            &[4, 3],
            vec![152u8, 51, 244, 60, 26, 255, 0, 127, 246, 127, 254, 247],
        );
        let y = qlinear_matmul(
            &a,
            &t(&[], vec![0.0066f32]),
            Some(&t(&[], vec![113u8])),
            &b,
            &t(&[], vec![0.00705f32]),
            Some(&t(&[], vec![114u8])),
            &t(&[], vec![0.0107f32]),
            Some(&t(&[], vec![118u8])),
        )
        .unwrap();
        assert_eq!(y.view::<u8>(), &[168, 115, 255, 1, 66, 151]);
    }

    #[test]
    fn qlinear_matmul_per_row_and_half_scales() {
        let a = t(&[2, 1], vec![10i8, 10]);
        let b = t(&[1, 2], vec![1i8, 2]);
        let y = qlinear_matmul(
            &a,
            &t(&[2], vec![f16::from_f32(1.0), f16::from_f32(2.0)]),
            Some(&t(&[2], vec![0i8, 0])),
            &b,
            &t(&[2], vec![f16::from_f32(1.0), f16::from_f32(0.5)]),
            None,
            &t(&[], vec![f16::from_f32(4.0)]),
            Some(&t(&[], vec![1i8])),
        )
        .unwrap();
        // row scale × column scale / 4: [[0.25, 0.125], [0.5, 0.25]] × [[10, 20], [10, 20]]
        assert_eq!(y.view::<i8>(), &[4, 4, 6, 6]);
        assert!(
            qlinear_matmul(
                &a,
                &t(&[], vec![1f32]),
                None,
                &b,
                &t(&[], vec![f16::from_f32(1.0)]),
                None,
                &t(&[], vec![1f32]),
                None
            )
            .is_err()
        );
    }
}
