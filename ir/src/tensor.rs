//! Dense tensors: a dtype, a static shape and shared, immutable element storage.
//!
//! Storage is reference counted, so cloning a tensor (Identity, Reshape, a constant used twice)
//! never copies elements. Weights of external-data models stay in a memory map: a tensor can
//! view a byte range of an `Mmap` directly when that range is aligned for its dtype.

use crate::dtype::{Bool8, DType, Elem};
use crate::lowp::{self, E8m0Round};
use half::{bf16, f16};
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// Elements of one tensor, owned as a typed vector or borrowed from a memory map.
#[derive(Clone)]
enum Storage {
    F32(Arc<Vec<f32>>),
    F16(Arc<Vec<f16>>),
    BF16(Arc<Vec<bf16>>),
    F64(Arc<Vec<f64>>),
    I8(Arc<Vec<i8>>),
    U8(Arc<Vec<u8>>),
    I16(Arc<Vec<i16>>),
    U16(Arc<Vec<u16>>),
    I32(Arc<Vec<i32>>),
    U32(Arc<Vec<u32>>),
    I64(Arc<Vec<i64>>),
    U64(Arc<Vec<u64>>),
    Bool(Arc<Vec<Bool8>>),
    /// `len` bytes at `offset` in a memory-mapped file, aligned for the tensor's dtype.
    Mapped {
        map: Arc<memmap2::Mmap>,
        offset: usize,
        len: usize,
    },
}

/// Errors building a tensor from raw parts.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TensorError {
    /// The element count implied by the shape does not match the data.
    #[error("shape {shape:?} needs {expected} elements but the data has {actual}")]
    ElementCount {
        /// The shape.
        shape: Vec<usize>,
        /// Elements the shape needs.
        expected: usize,
        /// Elements present.
        actual: usize,
    },
    /// The shape's element count overflows `usize` or exceeds the supported maximum.
    #[error("shape {0:?} has too many elements")]
    TooLarge(Vec<usize>),
}

/// The largest element count optc accepts for one tensor (2^34, 16 Gi elements).
pub const MAX_ELEMENTS: usize = 1 << 34;

/// Element count of `shape`, or an error when it overflows or exceeds [`MAX_ELEMENTS`].
pub fn checked_numel(shape: &[usize]) -> Result<usize, TensorError> {
    let mut n: usize = 1;
    for &d in shape {
        n = n
            .checked_mul(d)
            .ok_or_else(|| TensorError::TooLarge(shape.to_vec()))?;
    }
    if n > MAX_ELEMENTS {
        return Err(TensorError::TooLarge(shape.to_vec()));
    }
    Ok(n)
}

/// A dense, immutable, row-major tensor.
#[derive(Clone)]
pub struct Tensor {
    dtype: DType,
    shape: Vec<usize>,
    storage: Storage,
}

/// Wraps a typed vector in the storage variant for its dtype.
fn storage_of<T: Elem>(v: Vec<T>) -> Storage {
    // Each arm is only taken when `T` is exactly that type, so the casts are identities.
    fn cast<T: Elem, U: Elem>(v: Vec<T>) -> Vec<U> {
        bytemuck::allocation::cast_vec(v)
    }
    match T::DTYPE {
        DType::F32 => Storage::F32(Arc::new(cast(v))),
        DType::F16 => Storage::F16(Arc::new(cast(v))),
        DType::BF16 => Storage::BF16(Arc::new(cast(v))),
        DType::F64 => Storage::F64(Arc::new(cast(v))),
        DType::I8 => Storage::I8(Arc::new(cast(v))),
        DType::U8 => Storage::U8(Arc::new(cast(v))),
        DType::I16 => Storage::I16(Arc::new(cast(v))),
        DType::U16 => Storage::U16(Arc::new(cast(v))),
        DType::I32 => Storage::I32(Arc::new(cast(v))),
        DType::U32 => Storage::U32(Arc::new(cast(v))),
        DType::I64 => Storage::I64(Arc::new(cast(v))),
        DType::U64 => Storage::U64(Arc::new(cast(v))),
        DType::Bool => Storage::Bool(Arc::new(cast(v))),
        // `T` is never a storage-only dtype (they have no `Elem` type; their codes are u8).
        _ => Storage::U8(Arc::new(cast(v))),
    }
}

impl Tensor {
    /// A tensor from a typed vector; fails when `data.len()` does not match `shape`.
    pub fn from_vec<T: Elem>(shape: Vec<usize>, data: Vec<T>) -> Result<Tensor, TensorError> {
        let expected = checked_numel(&shape)?;
        if expected != data.len() {
            return Err(TensorError::ElementCount {
                shape,
                expected,
                actual: data.len(),
            });
        }
        Ok(Tensor {
            dtype: T::DTYPE,
            shape,
            storage: storage_of(data),
        })
    }

    /// A scalar (rank-0) tensor.
    pub fn scalar<T: Elem>(v: T) -> Tensor {
        Tensor {
            dtype: T::DTYPE,
            shape: vec![],
            storage: storage_of(vec![v]),
        }
    }

    /// A tensor of `shape` filled with `v`.
    pub fn full<T: Elem>(shape: Vec<usize>, v: T) -> Result<Tensor, TensorError> {
        let n = checked_numel(&shape)?;
        Tensor::from_vec(shape, vec![v; n])
    }

    /// A tensor of `dtype` and `shape` filled with zeros.
    pub fn zeros(dtype: DType, shape: Vec<usize>) -> Result<Tensor, TensorError> {
        if dtype.is_lowp() {
            // Code 0 is zero in every storage-only format (2^-127 in FLOAT8E8M0, which has no 0).
            let n = checked_numel(&shape)?;
            return Tensor::from_codes(dtype, shape, vec![0; n]);
        }
        crate::dispatch!(dtype, T => Tensor::full::<T>(shape, T::zero()))
    }

    /// A tensor of a storage-only dtype ([`DType::is_lowp`]) from one code per element (the
    /// format's bit pattern; 4-bit and 2-bit codes in the low bits, upper bits ignored), or
    /// of `u8` from bytes.
    pub fn from_codes(
        dtype: DType,
        shape: Vec<usize>,
        codes: Vec<u8>,
    ) -> Result<Tensor, TensorError> {
        let expected = checked_numel(&shape)?;
        if expected != codes.len() || !(dtype.is_lowp() || dtype == DType::U8) {
            return Err(TensorError::ElementCount {
                shape,
                expected,
                actual: if dtype.size() == 1 { codes.len() } else { 0 },
            });
        }
        let mask = match lowp::bits(dtype) {
            Some(w @ (2 | 4)) => ((1u16 << w) - 1) as u8,
            _ => 0xFF,
        };
        let codes = if mask == 0xFF {
            codes
        } else {
            codes.into_iter().map(|c| c & mask).collect()
        };
        Ok(Tensor {
            dtype,
            shape,
            storage: Storage::U8(Arc::new(codes)),
        })
    }

    /// The elements in ONNX `raw_data` layout: [`Tensor::bytes`], except that 4-bit and 2-bit
    /// dtypes are packed (two or four elements per byte, low bits first).
    pub fn to_le_bytes(&self) -> Cow<'_, [u8]> {
        match lowp::bits(self.dtype) {
            Some(2 | 4) => Cow::Owned(lowp::pack(self.dtype, self.bytes())),
            _ => Cow::Borrowed(self.bytes()),
        }
    }

    /// A tensor of `dtype` and `shape` from little-endian bytes (ONNX `raw_data` layout).
    pub fn from_le_bytes(
        dtype: DType,
        shape: Vec<usize>,
        bytes: &[u8],
    ) -> Result<Tensor, TensorError> {
        let n = checked_numel(&shape)?;
        if dtype.is_lowp() {
            let Some(codes) = lowp::unpack(dtype, bytes, n) else {
                return Err(TensorError::ElementCount {
                    shape,
                    expected: n,
                    actual: bytes.len() * n.max(1) / lowp::packed_len(dtype, n).max(1),
                });
            };
            return Tensor::from_codes(dtype, shape, codes);
        }
        if bytes.len() != n * dtype.size() {
            return Err(TensorError::ElementCount {
                shape,
                expected: n,
                actual: bytes.len() / dtype.size(),
            });
        }
        crate::dispatch!(dtype, T => {
            let mut v: Vec<T> = vec![T::zero(); n];
            bytemuck::cast_slice_mut::<T, u8>(&mut v).copy_from_slice(bytes);
            if dtype == DType::Bool {
                // Normalise booleans to 0/1.
                for b in bytemuck::cast_slice_mut::<T, u8>(&mut v) {
                    *b = (*b != 0) as u8;
                }
            }
            Tensor::from_vec(shape, v)
        })
    }

    /// A tensor viewing `len` bytes at `offset` of a memory map, without copying when the
    /// range is aligned for `dtype`; otherwise the bytes are copied once.
    pub fn from_mmap(
        dtype: DType,
        shape: Vec<usize>,
        map: Arc<memmap2::Mmap>,
        offset: usize,
        len: usize,
    ) -> Result<Tensor, TensorError> {
        let n = checked_numel(&shape)?;
        let need = if dtype.is_lowp() {
            lowp::packed_len(dtype, n)
        } else {
            n * dtype.size()
        };
        let bytes = offset
            .checked_add(len)
            .and_then(|end| map.get(offset..end))
            .filter(|b| b.len() == need);
        let Some(bytes) = bytes else {
            return Err(TensorError::ElementCount {
                shape,
                expected: n,
                actual: len / dtype.size(),
            });
        };
        if dtype == DType::Bool || dtype.is_lowp() || (bytes.as_ptr() as usize) % dtype.size() != 0
        {
            return Tensor::from_le_bytes(dtype, shape, bytes);
        }
        Ok(Tensor {
            dtype,
            shape,
            storage: Storage::Mapped { map, offset, len },
        })
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The shape (row-major dims).
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The rank (number of dims).
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// The number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// True when the elements live in a memory map rather than on the heap.
    pub fn is_mapped(&self) -> bool {
        matches!(self.storage, Storage::Mapped { .. })
    }

    /// The same elements under another shape with the same element count (no copy).
    pub fn reshape(&self, shape: Vec<usize>) -> Result<Tensor, TensorError> {
        let n = checked_numel(&shape)?;
        if n != self.numel() {
            return Err(TensorError::ElementCount {
                shape,
                expected: n,
                actual: self.numel(),
            });
        }
        Ok(Tensor {
            dtype: self.dtype,
            shape,
            storage: self.storage.clone(),
        })
    }

    /// The raw little-endian bytes of the elements (one code per element for the storage-only
    /// dtypes, unpacked; see [`Tensor::to_le_bytes`] for the ONNX layout).
    pub fn bytes(&self) -> &[u8] {
        match &self.storage {
            Storage::F32(v) => bytemuck::cast_slice(v),
            Storage::F16(v) => bytemuck::cast_slice(v),
            Storage::BF16(v) => bytemuck::cast_slice(v),
            Storage::F64(v) => bytemuck::cast_slice(v),
            Storage::I8(v) => bytemuck::cast_slice(v),
            Storage::U8(v) => v,
            Storage::I16(v) => bytemuck::cast_slice(v),
            Storage::U16(v) => bytemuck::cast_slice(v),
            Storage::I32(v) => bytemuck::cast_slice(v),
            Storage::U32(v) => bytemuck::cast_slice(v),
            Storage::I64(v) => bytemuck::cast_slice(v),
            Storage::U64(v) => bytemuck::cast_slice(v),
            Storage::Bool(v) => bytemuck::cast_slice(v),
            Storage::Mapped { map, offset, len } => &map[*offset..*offset + *len],
        }
    }

    /// The elements as a typed slice.
    ///
    /// # Panics
    /// When `T` is not the Rust type of this tensor's dtype — a bug in the caller, which must
    /// dispatch on [`Tensor::dtype`] first (see [`crate::dispatch!`]).
    pub fn view<T: Elem>(&self) -> &[T] {
        self.try_view()
            .unwrap_or_else(|| panic!("tensor of {} viewed as {}", self.dtype, T::DTYPE))
    }

    /// The elements as a typed slice, or `None` when `T` does not match the dtype. The codes
    /// of a storage-only dtype ([`DType::is_lowp`]) view as `u8`.
    pub fn try_view<T: Elem>(&self) -> Option<&[T]> {
        if T::DTYPE != self.dtype && !(T::DTYPE == DType::U8 && self.dtype.is_lowp()) {
            return None;
        }
        // Typed storage is always aligned; mapped storage was checked at construction.
        bytemuck::try_cast_slice(self.bytes()).ok()
    }

    /// The elements as an owned vector (copies unless this tensor holds the only reference
    /// to heap storage).
    pub fn into_vec<T: Elem>(self) -> Vec<T> {
        assert!(
            T::DTYPE == self.dtype || (T::DTYPE == DType::U8 && self.dtype.is_lowp()),
            "tensor of {} read as {}",
            self.dtype,
            T::DTYPE
        );
        macro_rules! take {
            ($v:expr) => {
                bytemuck::allocation::cast_vec(Arc::try_unwrap($v).unwrap_or_else(|a| (*a).clone()))
            };
        }
        match self.storage {
            Storage::F32(v) => take!(v),
            Storage::F16(v) => take!(v),
            Storage::BF16(v) => take!(v),
            Storage::F64(v) => take!(v),
            Storage::I8(v) => take!(v),
            Storage::U8(v) => take!(v),
            Storage::I16(v) => take!(v),
            Storage::U16(v) => take!(v),
            Storage::I32(v) => take!(v),
            Storage::U32(v) => take!(v),
            Storage::I64(v) => take!(v),
            Storage::U64(v) => take!(v),
            Storage::Bool(v) => take!(v),
            Storage::Mapped { .. } => self.view::<T>().to_vec(),
        }
    }

    /// Every element converted to f64 (booleans as 0/1, storage-only dtypes decoded).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        if self.dtype.is_lowp() {
            let d = self.dtype;
            return self
                .bytes()
                .iter()
                .map(|&c| lowp::decode(d, c) as f64)
                .collect();
        }
        crate::dispatch!(self.dtype, T => self.view::<T>().iter().map(|x| x.to_f64()).collect())
    }

    /// Every element converted to i64 (floats truncate toward zero; u64 wraps).
    pub fn to_i64_vec(&self) -> Vec<i64> {
        if self.dtype.is_lowp() {
            let d = self.dtype;
            return self
                .bytes()
                .iter()
                .map(|&c| lowp::decode_int(d, c))
                .collect();
        }
        crate::dispatch!(self.dtype, T => self.view::<T>().iter().map(|x| x.to_i64()).collect())
    }

    /// Integer (or bool) elements as i128, exactly (u64 included).
    fn to_i128_vec(&self) -> Vec<i128> {
        if self.dtype == DType::U64 {
            self.view::<u64>().iter().map(|&v| v as i128).collect()
        } else {
            self.to_i64_vec().into_iter().map(i128::from).collect()
        }
    }

    /// This tensor converted to `dtype` with ONNX `Cast` semantics and its default attributes
    /// (`saturate = 1`, `round_mode = "up"`); see [`Tensor::cast_with`].
    pub fn cast(&self, dtype: DType) -> Tensor {
        self.cast_with(dtype, true, E8m0Round::Up)
    }

    /// This tensor converted to `dtype` with ONNX `Cast` semantics: every conversion rounds at
    /// most once (to nearest even; integers of any width convert exactly or round once), floats
    /// to integers truncate toward zero (saturating out of range, NaN → 0), integers wrap, anything
    /// to bool is `!= 0`. `saturate` applies to float8 targets and `round` to FLOAT8E8M0 (see
    /// [`crate::lowp`]); 4-bit and 2-bit integer targets wrap.
    pub fn cast_with(&self, dtype: DType, saturate: bool, round: E8m0Round) -> Tensor {
        if dtype == self.dtype {
            return self.clone();
        }
        let shape = self.shape.clone();
        let src = self.dtype;
        let int_src = src.is_int() || src == DType::Bool || lowp::is_lowp_int(src);
        if dtype.is_lowp() {
            let codes: Vec<u8> = if int_src && lowp::is_lowp_int(dtype) {
                self.to_i64_vec()
                    .into_iter()
                    .map(|v| lowp::encode_int(dtype, v))
                    .collect()
            } else if int_src {
                self.to_i128_vec()
                    .into_iter()
                    .map(|v| {
                        let f = crate::dtype::i128_to_f64_odd(v);
                        lowp::encode_f64(dtype, f, saturate, round)
                    })
                    .collect()
            } else {
                // Float sources (storage-only ones decoded) are exact in f64.
                self.to_f64_vec()
                    .into_iter()
                    .map(|v| lowp::encode_f64(dtype, v, saturate, round))
                    .collect()
            };
            return Tensor {
                dtype,
                shape,
                storage: Storage::U8(Arc::new(codes)),
            };
        }
        if src.is_lowp() {
            // Decode exactly (to i64 or f32), then convert as that type.
            let wide = if lowp::is_lowp_int(src) {
                Tensor {
                    dtype: DType::I64,
                    shape,
                    storage: storage_of(self.to_i64_vec()),
                }
            } else {
                let d = self.dtype;
                let v: Vec<f32> = self.bytes().iter().map(|&c| lowp::decode(d, c)).collect();
                Tensor {
                    dtype: DType::F32,
                    shape,
                    storage: storage_of(v),
                }
            };
            return wide.cast_with(dtype, saturate, round);
        }
        if int_src && dtype.is_float() {
            let v = self.to_i128_vec();
            let out = crate::dispatch_float!(dtype, D => Some(Tensor {
                dtype,
                shape: shape.clone(),
                storage: storage_of(v.into_iter().map(crate::dtype::int_to_float::<D>).collect()),
            }), else None);
            if let Some(t) = out {
                return t;
            }
        }
        crate::dispatch!(self.dtype, S => {
            let src = self.view::<S>();
            crate::dispatch!(dtype, D => {
                let out: Vec<D> = if int_src {
                    src.iter().map(|x| D::from_i64(x.to_i64())).collect()
                } else {
                    src.iter().map(|x| D::round_from_f64(x.to_f64())).collect()
                };
                Tensor { dtype, shape, storage: storage_of(out) }
            })
        })
    }

    /// The single element of a one-element tensor as i64, if it has exactly one.
    pub fn scalar_i64(&self) -> Option<i64> {
        (self.numel() == 1).then(|| self.to_i64_vec()[0])
    }

    /// The single element of a one-element tensor as f64, if it has exactly one.
    pub fn scalar_f64(&self) -> Option<f64> {
        (self.numel() == 1).then(|| self.to_f64_vec()[0])
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor<{}>{:?}", self.dtype, self.shape)?;
        let n = self.numel();
        let shown = n.min(8);
        let vals = self.to_f64_vec();
        write!(f, " {:?}", &vals[..shown])?;
        if n > shown {
            write!(f, "…")?;
        }
        Ok(())
    }
}

impl PartialEq for Tensor {
    /// Equal dtype, shape and bytes (so NaN payloads compare by bits).
    fn eq(&self, other: &Tensor) -> bool {
        self.dtype == other.dtype && self.shape == other.shape && self.bytes() == other.bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_vec_checks_the_element_count() {
        assert!(Tensor::from_vec(vec![2, 3], vec![0f32; 6]).is_ok());
        assert_eq!(
            Tensor::from_vec(vec![2, 3], vec![0f32; 5]).unwrap_err(),
            TensorError::ElementCount {
                shape: vec![2, 3],
                expected: 6,
                actual: 5
            }
        );
        assert!(matches!(
            Tensor::from_vec::<f32>(vec![1 << 40, 1 << 40], vec![]),
            Err(TensorError::TooLarge(_))
        ));
    }

    #[test]
    fn cast_follows_onnx_semantics() {
        let t = Tensor::from_vec(vec![4], vec![-1.7f32, 0.0, 2.5, 300.0]).unwrap();
        assert_eq!(t.cast(DType::I32).view::<i32>(), &[-1, 0, 2, 300]);
        assert_eq!(
            t.cast(DType::Bool).view::<Bool8>(),
            &[Bool8(1), Bool8(0), Bool8(1), Bool8(1)]
        );
        let big = Tensor::from_vec(vec![1], vec![(1i64 << 53) + 1]).unwrap();
        assert_eq!(big.cast(DType::U64).view::<u64>(), &[(1u64 << 53) + 1]);
    }

    #[test]
    fn le_bytes_and_views_round_trip() {
        let t = Tensor::from_vec(vec![3], vec![1.5f64, -2.0, 3.25]).unwrap();
        let u = Tensor::from_le_bytes(DType::F64, vec![3], t.bytes()).unwrap();
        assert_eq!(t, u);
        assert!(u.try_view::<f32>().is_none());
        assert_eq!(u.into_vec::<f64>(), vec![1.5, -2.0, 3.25]);
    }

    #[test]
    fn cast_is_exact_for_wide_integers() {
        let u = Tensor::from_vec(vec![2], vec![u64::MAX, 1u64 << 63]).unwrap();
        assert_eq!(
            u.cast(DType::F32).view::<f32>(),
            &[1.8446744e19, 9.223372e18]
        );
        assert_eq!(
            u.cast(DType::F64).view::<f64>(),
            &[1.8446744073709552e19, 9.223372036854776e18]
        );
        assert_eq!(
            u.cast(DType::BF16).to_f64_vec(),
            vec![1.8446744073709552e19, 9.223372036854776e18]
        );
        // 2^62 + 2^54 + 1 lies just above a bf16 tie; rounding through f64 would lose the 1.
        let i = Tensor::from_vec(vec![1], vec![(1i64 << 62) + (1 << 54) + 1]).unwrap();
        assert_eq!(
            i.cast(DType::BF16).to_f64_vec(),
            vec![(1u64 << 62) as f64 + (1u64 << 55) as f64]
        );
        // f64 → f16 rounds once: 1 + 2^-11 + 2^-40 is above the tie.
        let f = Tensor::from_vec(vec![1], vec![1.0 + 2f64.powi(-11) + 2f64.powi(-40)]).unwrap();
        assert_eq!(f.cast(DType::F16).to_f64_vec(), vec![1.0 + 2f64.powi(-10)]);
    }

    #[test]
    fn low_precision_casts_and_storage() {
        let x = Tensor::from_vec(vec![5], vec![448f32, 464.0, 465.0, -0.0, f32::NAN]).unwrap();
        let sat = x.cast(DType::F8E4M3FN);
        assert_eq!(sat.bytes(), &[0x7E, 0x7E, 0x7E, 0x80, 0x7F]);
        let raw = x.cast_with(DType::F8E4M3FN, false, E8m0Round::Up);
        assert_eq!(raw.bytes(), &[0x7E, 0x7E, 0x7F, 0x80, 0x7F]);
        let back = sat.cast(DType::F32);
        assert_eq!(&back.view::<f32>()[..3], &[448.0, 448.0, 448.0]);
        assert!(back.view::<f32>()[3].is_sign_negative() && back.view::<f32>()[4].is_nan());
        // Integers wrap into 4 bits; an odd element count packs into a padded last byte.
        let i = Tensor::from_vec(vec![3], vec![-9i32, 8, 5])
            .unwrap()
            .cast(DType::I4);
        assert_eq!(i.to_i64_vec(), vec![7, -8, 5]);
        assert_eq!(i.to_le_bytes().as_ref(), &[0x87, 0x05]);
        let j = Tensor::from_le_bytes(DType::I4, vec![3], &[0x87, 0x05]).unwrap();
        assert_eq!(i, j);
        assert!(Tensor::from_le_bytes(DType::I4, vec![3], &[0x87]).is_err());
        assert_eq!(i.cast(DType::I8).view::<i8>(), &[7, -8, 5]);
        // uint2 round trip through f16 and packed bytes.
        let u = Tensor::from_vec(vec![5], vec![0u8, 1, 2, 3, 5])
            .unwrap()
            .cast(DType::U2);
        assert_eq!(u.to_i64_vec(), vec![0, 1, 2, 3, 1]);
        assert_eq!(u.to_le_bytes().as_ref(), &[0b11_10_01_00, 0b01]);
        let h = u.cast(DType::F16).cast(DType::U2);
        assert_eq!(h, u);
        // Float8 ↔ float8 and zeros.
        let e5 = sat.cast(DType::F8E5M2);
        assert_eq!(e5.to_f64_vec()[0], 448.0);
        assert_eq!(
            Tensor::zeros(DType::F4E2M1, vec![2]).unwrap().to_f64_vec(),
            vec![0.0, 0.0]
        );
        assert_eq!(sat.view::<u8>(), sat.bytes());
        assert!(Tensor::from_codes(DType::F32, vec![1], vec![0]).is_err());
    }
}
