//! Numeric comparison of an actual tensor against an expected one.

use optc_ir::Tensor;

/// How an actual tensor differs from the expected one.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Diff {
    /// Largest absolute difference (NaN/inf agreeing positions excluded).
    pub max_abs_err: f64,
    /// `||a - e||_2 / ||e||_2` (0 when both are 0).
    pub rel_l2_err: f64,
    /// Cosine similarity (1 when both are 0).
    pub cosine: f64,
    /// Positions violating `|a - e| <= atol + rtol * |e|` (NumPy `allclose`), including NaN
    /// or infinity mismatches.
    pub mismatches: usize,
    /// Elements compared.
    pub elements: usize,
}

/// Tolerance for [`Diff::within`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Tolerance {
    /// NumPy `assert_allclose(rtol, atol)`, the ONNX backend-test check.
    AllClose {
        /// Relative tolerance.
        rtol: f64,
        /// Absolute tolerance.
        atol: f64,
    },
    /// Whole-tensor bounds, for models: max abs error and relative L2 error.
    Norms {
        /// Bound on [`Diff::max_abs_err`].
        max_abs: f64,
        /// Bound on [`Diff::rel_l2_err`].
        rel_l2: f64,
    },
}

impl Tolerance {
    /// The ONNX backend-test default: rtol 1e-3, atol 1e-7.
    pub const NODE: Tolerance = Tolerance::AllClose {
        rtol: 1e-3,
        atol: 1e-7,
    };
    /// The bound for whole fp32 models: max abs 1e-4, relative L2 1e-5.
    pub const MODEL: Tolerance = Tolerance::Norms {
        max_abs: 1e-4,
        rel_l2: 1e-5,
    };
    /// The bound for whole fp32 models compiled for a device (other summation orders, fused
    /// multiply-adds, approximate transcendentals): max abs 1e-3, relative L2 1e-4.
    pub const DEVICE_MODEL: Tolerance = Tolerance::Norms {
        max_abs: 1e-3,
        rel_l2: 1e-4,
    };
    /// The bound for fp32 models compiled with tf32 GEMMs (`--allow-tf32`: operands rounded
    /// to 10 mantissa bits, unit roundoff 2⁻¹¹ ≈ 4.9e-4): relative L2 2e-3 (≈ 4 units),
    /// max abs 1e-2.
    pub const TF32_MODEL: Tolerance = Tolerance::Norms {
        max_abs: 1e-2,
        rel_l2: 2e-3,
    };
}

impl Diff {
    /// True when within `tol`.
    pub fn within(&self, tol: Tolerance) -> bool {
        match tol {
            Tolerance::AllClose { .. } => self.mismatches == 0,
            Tolerance::Norms { max_abs, rel_l2 } => {
                self.mismatches == 0 || (self.max_abs_err <= max_abs && self.rel_l2_err <= rel_l2)
            }
        }
    }
}

/// Compares `actual` with `expected`; `Err` explains a dtype or shape mismatch.
pub fn compare(actual: &Tensor, expected: &Tensor, tol: Tolerance) -> Result<Diff, String> {
    if actual.dtype() != expected.dtype() {
        return Err(format!(
            "dtype {} but expected {}",
            actual.dtype(),
            expected.dtype()
        ));
    }
    if actual.shape() != expected.shape() {
        return Err(format!(
            "shape {:?} but expected {:?}",
            actual.shape(),
            expected.shape()
        ));
    }
    let (rtol, atol) = match tol {
        Tolerance::AllClose { rtol, atol } => (rtol, atol),
        Tolerance::Norms { .. } => (1e-3, 1e-7),
    };
    let exact = !actual.dtype().is_float();
    let (a, e) = (actual.to_f64_vec(), expected.to_f64_vec());
    let (mut max_abs, mut num, mut den, mut dot, mut na, mut mismatches) =
        (0f64, 0f64, 0f64, 0f64, 0f64, 0usize);
    for (&x, &y) in a.iter().zip(&e) {
        if x.is_nan() || y.is_nan() || x.is_infinite() || y.is_infinite() {
            let same = (x.is_nan() && y.is_nan()) || x == y;
            if !same {
                mismatches += 1;
                max_abs = f64::INFINITY;
            }
            continue;
        }
        let d = (x - y).abs();
        max_abs = max_abs.max(d);
        num += d * d;
        den += y * y;
        dot += x * y;
        na += x * x;
        let bad = if exact {
            x != y
        } else {
            d > atol + rtol * y.abs()
        };
        if bad {
            mismatches += 1;
        }
    }
    let rel_l2 = if den == 0.0 {
        num.sqrt()
    } else {
        (num / den).sqrt()
    };
    let cosine = if na == 0.0 && den == 0.0 {
        1.0
    } else {
        dot / (na.sqrt() * den.sqrt()).max(f64::MIN_POSITIVE)
    };
    Ok(Diff {
        max_abs_err: max_abs,
        rel_l2_err: rel_l2,
        cosine,
        mismatches,
        elements: a.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allclose_uses_numpy_semantics() {
        let e = Tensor::from_vec(vec![3], vec![1.0f32, 100.0, f32::NAN]).unwrap();
        let a = Tensor::from_vec(vec![3], vec![1.0005f32, 100.09, f32::NAN]).unwrap();
        let d = compare(&a, &e, Tolerance::NODE).unwrap();
        assert_eq!(d.mismatches, 0);
        assert!(d.within(Tolerance::NODE));
        let a = Tensor::from_vec(vec![3], vec![1.002f32, 100.0, 0.0]).unwrap();
        let d = compare(&a, &e, Tolerance::NODE).unwrap();
        assert_eq!(d.mismatches, 2);
        assert!(!d.within(Tolerance::NODE));
    }

    #[test]
    fn model_tolerance_bounds_norms() {
        let e = Tensor::from_vec(vec![2], vec![1.0f32, 1e-6]).unwrap();
        let a = Tensor::from_vec(vec![2], vec![1.0f32, 2e-6]).unwrap();
        let d = compare(&a, &e, Tolerance::MODEL).unwrap();
        assert!(!d.within(Tolerance::NODE));
        assert!(d.within(Tolerance::MODEL));
        assert!((d.max_abs_err - 1e-6).abs() < 1e-9);
        assert!(compare(&a, &e.reshape(vec![1, 2]).unwrap(), Tolerance::MODEL).is_err());
    }
}
