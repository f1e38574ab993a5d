//! ConvInteger and QLinearConv: a direct N-D convolution loop in i32, with the window
//! arithmetic (kernel from the weight, strides, dilations, pads, auto_pad) shared with
//! inference.

use super::{half_round, int_range};
use crate::dtype::DType;
use crate::interp::EvalError;
use crate::ops::{AutoPad, ConvAttrs};
use crate::tensor::{Tensor, checked_numel};
use crate::types::Dim;
use rayon::prelude::*;

/// Resolved per-axis window parameters of a convolution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window1 {
    /// Kernel size.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Dilation.
    pub dilation: usize,
    /// Explicit begin/end pads (ignored by auto_pad modes other than NOTSET).
    pub pads: (usize, usize),
}

/// Resolves `attrs` for `k` spatial axes with the weight's spatial dims `wk` (when known).
pub fn windows(
    op: &str,
    attrs: &ConvAttrs,
    k: usize,
    wk: &[Option<usize>],
) -> Result<Vec<Option<Window1>>, String> {
    let w = &attrs.window;
    let check_len = |name: &str, len: usize, want: usize| {
        if len != 0 && len != want {
            Err(format!(
                "{op}: {name} has {len} values for {k} spatial axes"
            ))
        } else {
            Ok(())
        }
    };
    check_len("kernel_shape", w.kernel_shape.len(), k)?;
    check_len("strides", w.strides.len(), k)?;
    check_len("dilations", w.dilations.len(), k)?;
    check_len("pads", w.pads.len(), 2 * k)?;
    if attrs.group == 0 {
        return Err(format!("{op}: group must be at least 1"));
    }
    (0..k)
        .map(|i| {
            let stride = w.strides.get(i).copied().unwrap_or(1);
            let dilation = w.dilations.get(i).copied().unwrap_or(1);
            if stride == 0 || dilation == 0 {
                return Err(format!("{op}: strides and dilations must be at least 1"));
            }
            let pads = (
                w.pads.get(i).copied().unwrap_or(0),
                w.pads.get(i + k).copied().unwrap_or(0),
            );
            let kernel = match (w.kernel_shape.get(i).copied(), wk[i]) {
                (Some(a), Some(b)) if a != b => {
                    return Err(format!(
                        "{op}: kernel_shape {:?} differs from the weight's spatial dims",
                        w.kernel_shape
                    ));
                }
                (Some(a), _) | (None, Some(a)) => a,
                (None, None) => return Ok(None),
            };
            if kernel == 0 {
                return Err(format!("{op}: kernel dims must be at least 1"));
            }
            Ok(Some(Window1 {
                kernel,
                stride,
                dilation,
                pads,
            }))
        })
        .collect()
}

/// The output size and begin pad of one spatial axis of input size `n`.
pub fn out_dim(op: &str, n: usize, w: &Window1, auto: AutoPad) -> Result<(usize, usize), String> {
    let span = (w.kernel - 1)
        .checked_mul(w.dilation)
        .and_then(|s| s.checked_add(1))
        .ok_or_else(|| format!("{op}: kernel span overflows"))?;
    let too_small = || format!("{op}: the dilated kernel ({span}) is larger than the padded input");
    match auto {
        AutoPad::NotSet => {
            let padded = n
                .checked_add(w.pads.0)
                .and_then(|p| p.checked_add(w.pads.1))
                .ok_or_else(|| format!("{op}: pads overflow"))?;
            if padded < span {
                return Err(too_small());
            }
            Ok(((padded - span) / w.stride + 1, w.pads.0))
        }
        AutoPad::Valid => {
            if n < span {
                return Err(too_small());
            }
            Ok(((n - span) / w.stride + 1, 0))
        }
        AutoPad::SameUpper | AutoPad::SameLower => {
            let out = n.div_ceil(w.stride);
            let need = (out.saturating_sub(1))
                .checked_mul(w.stride)
                .and_then(|v| v.checked_add(span))
                .ok_or_else(|| format!("{op}: pads overflow"))?;
            let total = need.saturating_sub(n);
            let begin = if auto == AutoPad::SameUpper {
                total / 2
            } else {
                total - total / 2
            };
            Ok((out, begin))
        }
    }
}

/// The output shape of a convolution over `x` with weight `w` (dims may be unknown).
pub fn infer_shape(op: &str, attrs: &ConvAttrs, x: &[Dim], w: &[Dim]) -> Result<Vec<Dim>, String> {
    if x.len() < 3 || w.len() != x.len() {
        return Err(format!(
            "{op}: needs X of rank ≥ 3 and W of the same rank, got {} and {}",
            x.len(),
            w.len()
        ));
    }
    let k = x.len() - 2;
    let wk: Vec<Option<usize>> = w[2..].iter().map(Dim::as_static).collect();
    let win = windows(op, attrs, k, &wk)?;
    if let (Some(c), Some(wc)) = (x[1].as_static(), w[1].as_static()) {
        if c != wc * attrs.group {
            return Err(format!(
                "{op}: X has {c} channels but W expects {wc} × {} groups",
                attrs.group
            ));
        }
    }
    if let Some(m) = w[0].as_static() {
        if m % attrs.group != 0 {
            return Err(format!(
                "{op}: {m} output channels do not split into {} groups",
                attrs.group
            ));
        }
    }
    let mut out = vec![x[0].clone(), w[0].clone()];
    for (i, wi) in win.iter().enumerate() {
        out.push(match (x[2 + i].as_static(), wi) {
            (Some(n), Some(wi)) => Dim::Static(out_dim(op, n, wi, attrs.window.auto_pad)?.0),
            _ => Dim::Unknown,
        });
    }
    Ok(out)
}

/// A direct convolution of centered i32 inputs: `x` `[N, C, D...]`, `w` `[M, C/group, K...]`,
/// optional `bias` `[M]`. Accumulation wraps in i32.
pub fn conv_i32(
    op: &str,
    attrs: &ConvAttrs,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&[i32]>,
) -> Result<Tensor, EvalError> {
    let (xs, ws) = (x.shape(), w.shape());
    let xd: Vec<Dim> = xs.iter().map(|&d| Dim::Static(d)).collect();
    let wd: Vec<Dim> = ws.iter().map(|&d| Dim::Static(d)).collect();
    let shape: Vec<usize> = infer_shape(op, attrs, &xd, &wd)
        .map_err(EvalError::Invalid)?
        .iter()
        .map(|d| d.as_static().unwrap_or(0))
        .collect();
    let k = xs.len() - 2;
    let wk: Vec<Option<usize>> = ws[2..].iter().map(|&d| Some(d)).collect();
    let win: Vec<Window1> = windows(op, attrs, k, &wk)
        .map_err(EvalError::Invalid)?
        .into_iter()
        .flatten()
        .collect();
    let begins: Vec<i64> = win
        .iter()
        .zip(&xs[2..])
        .map(|(wi, &n)| out_dim(op, n, wi, attrs.window.auto_pad).map(|(_, b)| b as i64))
        .collect::<Result<_, _>>()
        .map_err(EvalError::Invalid)?;
    let (c, m) = (xs[1], ws[0]);
    let group = attrs.group;
    let (cg, mg) = (c / group, m / group);
    if let Some(b) = bias {
        if b.len() != m {
            return Err(EvalError::Invalid(format!(
                "{op}: bias has {} values for {m} output channels",
                b.len()
            )));
        }
    }
    let total = checked_numel(&shape)?;
    let in_sp = &xs[2..];
    let out_sp = &shape[2..];
    let plane: usize = in_sp.iter().product();
    let out_plane: usize = out_sp.iter().product();
    let ksize: usize = ws[2..].iter().product();
    // Kernel multi-indices, row-major.
    let mut ktab = vec![0usize; ksize * k];
    for kk in 0..ksize {
        let mut r = kk;
        for d in (0..k).rev() {
            ktab[kk * k + d] = r % ws[2 + d];
            r /= ws[2 + d];
        }
    }
    let in_strides = crate::opset::util::strides(in_sp);
    let (xv, wv) = (x.view::<i32>(), w.view::<i32>());
    let mut out = vec![0i32; total];
    if out_plane == 0 || total == 0 {
        return Ok(Tensor::from_vec(shape, out)?);
    }
    out.par_chunks_mut(out_plane)
        .enumerate()
        .for_each(|(nm, o)| {
            let (b, oc) = (nm / m, nm % m);
            let g = oc / mg;
            let mut taps: Vec<(usize, usize)> = Vec::with_capacity(ksize);
            let mut pos = vec![0usize; k];
            for (p, acc_out) in o.iter_mut().enumerate() {
                // Output multi-index of p.
                let mut r = p;
                for d in (0..k).rev() {
                    pos[d] = r % out_sp[d];
                    r /= out_sp[d];
                }
                taps.clear();
                'tap: for kk in 0..ksize {
                    let mut off = 0usize;
                    for d in 0..k {
                        let wi = &win[d];
                        let q = (pos[d] * wi.stride) as i64 - begins[d]
                            + (ktab[kk * k + d] * wi.dilation) as i64;
                        if q < 0 || q >= in_sp[d] as i64 {
                            continue 'tap;
                        }
                        off += q as usize * in_strides[d];
                    }
                    taps.push((kk, off));
                }
                let mut acc = bias.map_or(0, |bv| bv[oc]);
                for ci in 0..cg {
                    let xplane = &xv[(b * c + g * cg + ci) * plane..][..plane];
                    let wk = &wv[(oc * cg + ci) * ksize..][..ksize];
                    for &(kk, off) in &taps {
                        acc = acc.wrapping_add(xplane[off].wrapping_mul(wk[kk]));
                    }
                }
                *acc_out = acc;
            }
        });
    Ok(Tensor::from_vec(shape, out)?)
}

fn check_8bit(op: &str, what: &str, t: &Tensor) -> Result<(), EvalError> {
    if !matches!(t.dtype(), DType::I8 | DType::U8) {
        return Err(EvalError::Invalid(format!(
            "{op}: {what} must be i8 or u8, got {}",
            t.dtype()
        )));
    }
    Ok(())
}

/// `x - x_zero_point` with a per-tensor zero point.
fn center_x(op: &str, x: &Tensor, zp: Option<&Tensor>) -> Result<Tensor, EvalError> {
    let z = match zp {
        None => 0,
        Some(z) => {
            if z.dtype() != x.dtype() {
                return Err(EvalError::Invalid(format!(
                    "{op}: x zero point of {} for an input of {}",
                    z.dtype(),
                    x.dtype()
                )));
            }
            z.scalar_i64().ok_or_else(|| {
                EvalError::Invalid(format!("{op}: the x zero point must have one element"))
            })? as i32
        }
    };
    let v: Vec<i32> = x.to_i64_vec().into_iter().map(|e| e as i32 - z).collect();
    Ok(Tensor::from_vec(x.shape().to_vec(), v)?)
}

/// `w - w_zero_point` with a per-tensor or per-output-channel zero point.
fn center_w(op: &str, w: &Tensor, zp: Option<&Tensor>) -> Result<Tensor, EvalError> {
    let m = w.shape().first().copied().unwrap_or(0);
    let per = w.numel() / m.max(1);
    let zs: Vec<i64> = match zp {
        None => vec![0],
        Some(z) => {
            if z.dtype() != w.dtype() {
                return Err(EvalError::Invalid(format!(
                    "{op}: w zero point of {} for a weight of {}",
                    z.dtype(),
                    w.dtype()
                )));
            }
            if z.numel() != 1 && (z.rank() != 1 || z.numel() != m) {
                return Err(EvalError::Invalid(format!(
                    "{op}: w zero point of shape {:?} is neither per tensor nor per output \
                     channel ({m})",
                    z.shape()
                )));
            }
            z.to_i64_vec()
        }
    };
    let v: Vec<i32> = w
        .to_i64_vec()
        .into_iter()
        .enumerate()
        .map(|(i, e)| (e - zs[if zs.len() == 1 { 0 } else { i / per }]) as i32)
        .collect();
    Ok(Tensor::from_vec(w.shape().to_vec(), v)?)
}

/// ConvInteger: `conv(x - x_zero_point, w - w_zero_point)` in i32.
pub fn conv_integer(
    attrs: &ConvAttrs,
    x: &Tensor,
    w: &Tensor,
    xzp: Option<&Tensor>,
    wzp: Option<&Tensor>,
) -> Result<Tensor, EvalError> {
    let op = "ConvInteger";
    check_8bit(op, "x", x)?;
    check_8bit(op, "w", w)?;
    let xc = center_x(op, x, xzp)?;
    let wc = center_w(op, w, wzp)?;
    conv_i32(op, attrs, &xc, &wc, None)
}

/// QLinearConv: requantizes `conv(x - x_zp, w - w_zp) + B` by `x_scale * w_scale / y_scale`
/// (per output channel when `w_scale` is).
#[allow(clippy::too_many_arguments)]
pub fn qlinear_conv(
    attrs: &ConvAttrs,
    x: &Tensor,
    x_scale: &Tensor,
    x_zp: Option<&Tensor>,
    w: &Tensor,
    w_scale: &Tensor,
    w_zp: Option<&Tensor>,
    y_scale: &Tensor,
    y_zp: Option<&Tensor>,
    bias: Option<&Tensor>,
) -> Result<Tensor, EvalError> {
    let op = "QLinearConv";
    check_8bit(op, "x", x)?;
    check_8bit(op, "w", w)?;
    let out_dtype = match y_zp {
        Some(z) => {
            check_8bit(op, "y_zero_point", z)?;
            z.dtype()
        }
        None => x.dtype(),
    };
    let sd = x_scale.dtype();
    for s in [x_scale, w_scale, y_scale] {
        if !s.dtype().is_float() || s.dtype() != sd {
            return Err(EvalError::Invalid(format!(
                "{op}: scales must share one float dtype, got {}",
                s.dtype()
            )));
        }
    }
    let one = |t: &Tensor, what: &str| {
        t.scalar_f64()
            .ok_or_else(|| EvalError::Invalid(format!("{op}: {what} must have one element")))
    };
    let xs = one(x_scale, "x_scale")? as f32;
    let ys = one(y_scale, "y_scale")? as f32;
    let m = w.shape().first().copied().unwrap_or(0);
    let ws: Vec<f64> = w_scale.to_f64_vec();
    if ws.len() != 1 && (w_scale.rank() != 1 || ws.len() != m) {
        return Err(EvalError::Invalid(format!(
            "{op}: w_scale of shape {:?} is neither per tensor nor per output channel ({m})",
            w_scale.shape()
        )));
    }
    let zy = match y_zp {
        Some(z) => one(z, "y_zero_point")?,
        None => 0.0,
    };
    let bias_v = match bias {
        Some(b) if b.dtype() != DType::I32 => {
            return Err(EvalError::Invalid(format!(
                "{op}: bias must be i32, got {}",
                b.dtype()
            )));
        }
        Some(b) => Some(b.view::<i32>().to_vec()),
        None => None,
    };
    let xc = center_x(op, x, x_zp)?;
    let wc = center_w(op, w, w_zp)?;
    let acc = conv_i32(op, attrs, &xc, &wc, bias_v.as_deref())?;
    let mult: Vec<f64> = ws
        .iter()
        .map(|&s| half_round(sd, half_round(sd, xs * s as f32) / ys) as f64)
        .collect();
    let shape = acc.shape().to_vec();
    let plane: usize = shape[2..].iter().product();
    let (lo, hi) = int_range(out_dtype);
    let q: Vec<f64> = acc
        .view::<i32>()
        .iter()
        .enumerate()
        .map(|(i, &a)| {
            let s = if mult.len() == 1 {
                mult[0]
            } else {
                mult[(i / plane.max(1)) % m]
            };
            (a as f64 * s + zy).clamp(lo, hi).round_ties_even()
        })
        .collect();
    super::from_f64_as(out_dtype, shape, &q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::Elem;
    use crate::ops::Window;

    fn t<T: Elem>(shape: &[usize], v: Vec<T>) -> Tensor {
        Tensor::from_vec(shape.to_vec(), v).unwrap()
    }

    fn attrs(pads: Vec<usize>, strides: Vec<usize>, auto_pad: AutoPad) -> ConvAttrs {
        ConvAttrs {
            window: Window {
                pads,
                strides,
                auto_pad,
                ..Window::default()
            },
            group: 1,
            layout: Default::default(),
        }
    }

    #[test]
    fn window_arithmetic() {
        let w = Window1 {
            kernel: 3,
            stride: 2,
            dilation: 1,
            pads: (1, 1),
        };
        assert_eq!(out_dim("C", 5, &w, AutoPad::NotSet).unwrap(), (3, 1));
        assert_eq!(out_dim("C", 5, &w, AutoPad::Valid).unwrap(), (2, 0));
        // SAME: out = ceil(6/2) = 3, total pad = 2*2 + 3 - 6 = 1.
        assert_eq!(out_dim("C", 6, &w, AutoPad::SameUpper).unwrap(), (3, 0));
        assert_eq!(out_dim("C", 6, &w, AutoPad::SameLower).unwrap(), (3, 1));
        let d = Window1 {
            kernel: 3,
            stride: 1,
            dilation: 2,
            pads: (0, 0),
        };
        assert_eq!(out_dim("C", 7, &d, AutoPad::NotSet).unwrap(), (3, 0));
        assert!(out_dim("C", 4, &d, AutoPad::NotSet).is_err());
        let a = attrs(vec![1], vec![], AutoPad::NotSet);
        assert!(
            windows("C", &a, 1, &[Some(3)]).is_err(),
            "pads need 2 values per axis"
        );
        let mut g = attrs(vec![], vec![], AutoPad::NotSet);
        g.group = 0;
        assert!(windows("C", &g, 1, &[Some(3)]).is_err());
    }

    #[test]
    fn infer_shape_uses_symbols_and_static_dims() {
        let x = vec![
            Dim::Sym("n".into()),
            Dim::Static(4),
            Dim::Static(7),
            Dim::Unknown,
        ];
        let w = vec![
            Dim::Static(6),
            Dim::Static(2),
            Dim::Static(3),
            Dim::Static(3),
        ];
        let mut a = attrs(vec![], vec![2, 1], AutoPad::NotSet);
        a.group = 2;
        let s = infer_shape("C", &a, &x, &w).unwrap();
        assert_eq!(
            s,
            vec![
                Dim::Sym("n".into()),
                Dim::Static(6),
                Dim::Static(3),
                Dim::Unknown
            ]
        );
        a.group = 3;
        assert!(infer_shape("C", &a, &x, &w).is_err());
    }

    #[test]
    fn conv_integer_matches_the_spec_example() {
        let x = t(&[1, 1, 3, 3], vec![2u8, 3, 4, 5, 6, 7, 8, 9, 10]);
        let w = t(&[1, 1, 2, 2], vec![1u8, 1, 1, 1]);
        let a = attrs(vec![], vec![], AutoPad::NotSet);
        let y = conv_integer(&a, &x, &w, Some(&t(&[], vec![1u8])), None).unwrap();
        assert_eq!(y.shape(), &[1, 1, 2, 2]);
        assert_eq!(y.view::<i32>(), &[12, 16, 24, 28]);
        let p = attrs(vec![1, 1, 1, 1], vec![], AutoPad::NotSet);
        let w2 = t(&[2, 1, 2, 2], vec![1u8; 8]);
        let y = conv_integer(
            &p,
            &x,
            &w2,
            Some(&t(&[], vec![1u8])),
            Some(&t(&[2], vec![0u8, 1])),
        )
        .unwrap();
        assert_eq!(y.shape(), &[1, 2, 4, 4]);
        assert_eq!(
            &y.view::<i32>()[..16],
            &[1, 3, 5, 3, 5, 12, 16, 9, 11, 24, 28, 15, 7, 15, 17, 9]
        );
        assert!(y.view::<i32>()[16..].iter().all(|&v| v == 0));
    }

    #[test]
    fn grouped_strided_1d_and_3d_convs() {
        // 1-D, 2 groups, stride 2, SAME_UPPER.
        let x = t(&[1, 2, 4], vec![1i8, 2, 3, 4, 10, 20, 30, 40]);
        let w = t(&[2, 1, 2], vec![1i8, -1, 2, 0]);
        let mut a = attrs(vec![], vec![2], AutoPad::SameUpper);
        a.group = 2;
        let y = conv_integer(&a, &x, &w, None, None).unwrap();
        // out = 2, total pad = 1*2 + 2 - 4 = 0.
        assert_eq!(y.shape(), &[1, 2, 2]);
        assert_eq!(y.view::<i32>(), &[-1, -1, 20, 60]);
        // 3-D 2x2x2 input, 1x1x1 kernel, dilation irrelevant.
        let x3 = t(&[1, 1, 2, 2, 2], (1..=8).map(|v| v as u8).collect());
        let w3 = t(&[1, 1, 1, 1, 1], vec![3u8]);
        let y3 =
            conv_integer(&attrs(vec![], vec![], AutoPad::Valid), &x3, &w3, None, None).unwrap();
        assert_eq!(y3.view::<i32>(), &[3, 6, 9, 12, 15, 18, 21, 24]);
        assert!(
            conv_integer(&attrs(vec![], vec![], AutoPad::NotSet), &x3, &w, None, None).is_err()
        );
    }

    #[test]
    fn qlinear_conv_requantizes_per_channel() {
        let x = t(&[1, 1, 1, 2], vec![10u8, 20]);
        let w = t(&[2, 1, 1, 1], vec![3u8, 5]);
        let a = attrs(vec![], vec![], AutoPad::NotSet);
        let y = qlinear_conv(
            &a,
            &x,
            &t(&[], vec![0.5f32]),
            Some(&t(&[], vec![0u8])),
            &w,
            &t(&[2], vec![1f32, 0.25]),
            Some(&t(&[2], vec![1u8, 1])),
            &t(&[], vec![2f32]),
            Some(&t(&[], vec![100u8])),
            Some(&t(&[2], vec![4i32, 0])),
        )
        .unwrap();
        // channel 0: (x*2 + 4) * 0.25 + 100 = [106, 111]; channel 1: x*4 * 0.0625 + 100 = [102.5, 105]
        assert_eq!(y.view::<u8>(), &[106, 111, 102, 105]);
    }
}
