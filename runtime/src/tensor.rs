//! Host tensors (what callers pass in and get back) and the conversions between host element
//! types and the device element types of the manifest.

use crate::error::RuntimeError;
use crate::manifest::{DeviceType, HostType, TensorInfo};
use half::{bf16, f16};

/// A dense tensor in host memory: little-endian element bytes in row-major order.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    /// Element type.
    pub dtype: HostType,
    /// Shape.
    pub shape: Vec<u64>,
    /// `numel × dtype.size()` little-endian bytes (bool: one byte, 0 or 1).
    pub data: Vec<u8>,
}

macro_rules! from_to {
    ($from:ident, $to:ident, $t:ty, $ht:expr) => {
        #[doc = concat!("A tensor of `", stringify!($t), "` values (panics if `values.len()` is not the product of `shape`).")]
        pub fn $from(shape: &[u64], values: &[$t]) -> HostTensor {
            assert_eq!(
                shape.iter().product::<u64>(),
                values.len() as u64,
                "shape {shape:?} does not match {} values",
                values.len()
            );
            HostTensor {
                dtype: $ht,
                shape: shape.to_vec(),
                data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            }
        }

        #[doc = concat!("The values, when the tensor holds `", stringify!($t), "`.")]
        pub fn $to(&self) -> Option<Vec<$t>> {
            (self.dtype == $ht).then(|| {
                self.data
                    .chunks_exact(std::mem::size_of::<$t>())
                    .map(|c| <$t>::from_le_bytes(c.try_into().expect("element size")))
                    .collect()
            })
        }
    };
}

impl HostTensor {
    /// A tensor from raw bytes; errors when the byte count does not match the shape.
    pub fn new(
        dtype: HostType,
        shape: Vec<u64>,
        data: Vec<u8>,
    ) -> Result<HostTensor, RuntimeError> {
        let need = shape
            .iter()
            .try_fold(dtype.size() as u64, |a, &d| a.checked_mul(d));
        if need != Some(data.len() as u64) {
            return Err(RuntimeError::BadTensor(format!(
                "{dtype} tensor of shape {shape:?} needs {} bytes, got {}",
                need.map_or_else(|| "too many".into(), |n| n.to_string()),
                data.len()
            )));
        }
        Ok(HostTensor { dtype, shape, data })
    }

    /// A zero-filled tensor.
    pub fn zeros(dtype: HostType, shape: &[u64]) -> HostTensor {
        let n = shape.iter().product::<u64>() as usize;
        HostTensor {
            dtype,
            shape: shape.to_vec(),
            data: vec![0; n * dtype.size()],
        }
    }

    /// Number of elements.
    pub fn numel(&self) -> u64 {
        self.shape.iter().product()
    }

    from_to!(from_f32, to_f32, f32, HostType::F32);
    from_to!(from_f64, to_f64, f64, HostType::F64);
    from_to!(from_i64, to_i64, i64, HostType::I64);
    from_to!(from_i32, to_i32, i32, HostType::I32);
    from_to!(from_u32, to_u32, u32, HostType::U32);
    from_to!(from_u8, to_u8, u8, HostType::U8);
    from_to!(from_i8, to_i8, i8, HostType::I8);

    /// A tensor of f16 values.
    pub fn from_f16(shape: &[u64], values: &[f16]) -> HostTensor {
        let bits: Vec<u16> = values.iter().map(|v| v.to_bits()).collect();
        let mut t = Self::from_u16_bits(shape, &bits);
        t.dtype = HostType::F16;
        t
    }

    fn from_u16_bits(shape: &[u64], values: &[u16]) -> HostTensor {
        assert_eq!(shape.iter().product::<u64>(), values.len() as u64);
        HostTensor {
            dtype: HostType::U16,
            shape: shape.to_vec(),
            data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    /// The values, when the tensor holds f16.
    pub fn to_f16(&self) -> Option<Vec<f16>> {
        (self.dtype == HostType::F16).then(|| {
            self.data
                .chunks_exact(2)
                .map(|c| f16::from_le_bytes([c[0], c[1]]))
                .collect()
        })
    }

    /// A tensor of bools.
    pub fn from_bool(shape: &[u64], values: &[bool]) -> HostTensor {
        assert_eq!(shape.iter().product::<u64>(), values.len() as u64);
        HostTensor {
            dtype: HostType::Bool,
            shape: shape.to_vec(),
            data: values.iter().map(|&v| v as u8).collect(),
        }
    }

    /// The values, when the tensor holds bools.
    pub fn to_bool(&self) -> Option<Vec<bool>> {
        (self.dtype == HostType::Bool).then(|| self.data.iter().map(|&v| v != 0).collect())
    }

    /// Every value as f64, whatever the element type (for comparisons and reports; the code
    /// types give their codes).
    pub fn to_f64_lossy(&self) -> Vec<f64> {
        (0..self.numel() as usize)
            .map(|i| match read_host(self.dtype, &self.data, i) {
                Scalar::F(v) => v,
                Scalar::I(v) => v as f64,
            })
            .collect()
    }
}

#[derive(Clone, Copy)]
enum Scalar {
    F(f64),
    I(i128),
}

fn read_host(t: HostType, b: &[u8], i: usize) -> Scalar {
    let s = t.size();
    let e = &b[i * s..(i + 1) * s];
    match t {
        HostType::F32 => Scalar::F(f32::from_le_bytes(e.try_into().unwrap()) as f64),
        HostType::F16 => Scalar::F(f16::from_le_bytes([e[0], e[1]]).to_f64()),
        HostType::Bf16 => Scalar::F(bf16::from_le_bytes([e[0], e[1]]).to_f64()),
        HostType::F64 => Scalar::F(f64::from_le_bytes(e.try_into().unwrap())),
        HostType::I8 => Scalar::I(e[0] as i8 as i128),
        HostType::U8 => Scalar::I(e[0] as i128),
        HostType::Bool => Scalar::I((e[0] != 0) as i128),
        HostType::I16 => Scalar::I(i16::from_le_bytes([e[0], e[1]]) as i128),
        HostType::U16 => Scalar::I(u16::from_le_bytes([e[0], e[1]]) as i128),
        HostType::I32 => Scalar::I(i32::from_le_bytes(e.try_into().unwrap()) as i128),
        HostType::U32 => Scalar::I(u32::from_le_bytes(e.try_into().unwrap()) as i128),
        HostType::I64 => Scalar::I(i64::from_le_bytes(e.try_into().unwrap()) as i128),
        HostType::U64 => Scalar::I(u64::from_le_bytes(e.try_into().unwrap()) as i128),
        // Codes, moved as they are.
        _ => Scalar::I(e[0] as i128),
    }
}

fn write_host(t: HostType, out: &mut Vec<u8>, v: Scalar) {
    let f = |v: Scalar| match v {
        Scalar::F(x) => x,
        Scalar::I(x) => x as f64,
    };
    let i = |v: Scalar| match v {
        Scalar::F(x) => x as i128,
        Scalar::I(x) => x,
    };
    match t {
        HostType::F32 => out.extend_from_slice(&(f(v) as f32).to_le_bytes()),
        HostType::F16 => out.extend_from_slice(&f16::from_f64(f(v)).to_le_bytes()),
        HostType::Bf16 => out.extend_from_slice(&bf16::from_f64(f(v)).to_le_bytes()),
        HostType::F64 => out.extend_from_slice(&f(v).to_le_bytes()),
        HostType::I8 => out.push(i(v) as i8 as u8),
        HostType::U8 => out.push(i(v) as u8),
        HostType::Bool => out.push((i(v) != 0) as u8),
        HostType::I16 => out.extend_from_slice(&(i(v) as i16).to_le_bytes()),
        HostType::U16 => out.extend_from_slice(&(i(v) as u16).to_le_bytes()),
        HostType::I32 => out.extend_from_slice(&(i(v) as i32).to_le_bytes()),
        HostType::U32 => out.extend_from_slice(&(i(v) as u32).to_le_bytes()),
        HostType::I64 => out.extend_from_slice(&(i(v) as i64).to_le_bytes()),
        HostType::U64 => out.extend_from_slice(&(i(v) as u64).to_le_bytes()),
        _ => out.push(i(v) as u8),
    }
}

fn same_layout(h: HostType, d: DeviceType) -> bool {
    matches!(
        (h, d),
        (HostType::F32, DeviceType::F32)
            | (HostType::F16, DeviceType::F16)
            | (HostType::Bf16, DeviceType::Bf16)
            | (HostType::I32, DeviceType::I32)
            | (HostType::U32, DeviceType::U32)
    )
}

/// Checks `t` against the manifest entry `info` (dtype and shape) and converts it to device
/// bytes. Integers that do not fit the device type are an error naming the input and the
/// element.
pub fn host_to_device(info: &TensorInfo, t: &HostTensor) -> Result<Vec<u8>, RuntimeError> {
    if t.dtype != info.dtype || t.shape != info.shape {
        return Err(RuntimeError::Input {
            name: info.name.clone(),
            message: format!(
                "expected {} {:?}, got {} {:?}",
                info.dtype, info.shape, t.dtype, t.shape
            ),
        });
    }
    let n = info.numel() as usize;
    if t.data.len() != n * t.dtype.size() {
        return Err(RuntimeError::Input {
            name: info.name.clone(),
            message: format!(
                "{} bytes of data for {n} {} elements",
                t.data.len(),
                t.dtype
            ),
        });
    }
    if same_layout(t.dtype, info.device) {
        return Ok(t.data.clone());
    }
    let mut out = Vec::with_capacity(n * info.device.size());
    for k in 0..n {
        let v = read_host(t.dtype, &t.data, k);
        match (info.device, v) {
            (DeviceType::F32, v) => {
                let x = match v {
                    Scalar::F(x) => x,
                    Scalar::I(x) => x as f64,
                };
                out.extend_from_slice(&(x as f32).to_le_bytes())
            }
            (DeviceType::F16, v) => {
                let x = match v {
                    Scalar::F(x) => x,
                    Scalar::I(x) => x as f64,
                };
                out.extend_from_slice(&f16::from_f64(x).to_le_bytes())
            }
            (DeviceType::Bf16, v) => {
                let x = match v {
                    Scalar::F(x) => x,
                    Scalar::I(x) => x as f64,
                };
                out.extend_from_slice(&bf16::from_f64(x).to_le_bytes())
            }
            (DeviceType::I32, Scalar::I(x)) => {
                let y = i32::try_from(x).map_err(|_| range_error(info, k, x))?;
                out.extend_from_slice(&y.to_le_bytes())
            }
            (DeviceType::U32, Scalar::I(x)) => {
                let y = u32::try_from(x).map_err(|_| range_error(info, k, x))?;
                out.extend_from_slice(&y.to_le_bytes())
            }
            (_, Scalar::F(_)) => {
                return Err(RuntimeError::Input {
                    name: info.name.clone(),
                    message: format!("cannot store {} as {}", t.dtype, info.device),
                });
            }
        }
    }
    Ok(out)
}

fn range_error(info: &TensorInfo, index: usize, value: i128) -> RuntimeError {
    RuntimeError::Input {
        name: info.name.clone(),
        message: format!(
            "element {index} = {value} does not fit the device type {} (the compiler narrowed this {} input)",
            info.device, info.dtype
        ),
    }
}

/// Converts device bytes of the tensor `info` back to a host tensor.
pub fn device_to_host(info: &TensorInfo, bytes: &[u8]) -> HostTensor {
    let n = info.numel() as usize;
    let data = if same_layout(info.dtype, info.device) {
        bytes[..n * info.device.size()].to_vec()
    } else {
        let mut out = Vec::with_capacity(n * info.dtype.size());
        for k in 0..n {
            let v = match info.device {
                DeviceType::F32 => Scalar::F(f32::from_le_bytes(
                    bytes[k * 4..k * 4 + 4].try_into().unwrap(),
                ) as f64),
                DeviceType::F16 => {
                    Scalar::F(f16::from_le_bytes([bytes[k * 2], bytes[k * 2 + 1]]).to_f64())
                }
                DeviceType::Bf16 => {
                    Scalar::F(bf16::from_le_bytes([bytes[k * 2], bytes[k * 2 + 1]]).to_f64())
                }
                DeviceType::I32 => Scalar::I(i32::from_le_bytes(
                    bytes[k * 4..k * 4 + 4].try_into().unwrap(),
                ) as i128),
                DeviceType::U32 => Scalar::I(u32::from_le_bytes(
                    bytes[k * 4..k * 4 + 4].try_into().unwrap(),
                ) as i128),
            };
            write_host(info.dtype, &mut out, v);
        }
        out
    };
    HostTensor {
        dtype: info.dtype,
        shape: info.shape.clone(),
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Location, Region};

    fn info(dtype: HostType, device: DeviceType, n: u64) -> TensorInfo {
        TensorInfo {
            name: "x".into(),
            dtype,
            shape: vec![n],
            device,
            location: Location {
                region: Region::Arena,
                offset: 0,
                bytes: n * device.size() as u64,
            },
        }
    }

    #[test]
    fn code_types_move_codes_widened_to_u32_and_back_unchanged() {
        let codes: Vec<u8> = vec![0x00, 0x7F, 0x80, 0xFF, 0x0F, 0x3C];
        for t in [
            HostType::F8e4m3fn,
            HostType::F8e5m2fnuz,
            HostType::I4,
            HostType::U2,
        ] {
            assert!(t.is_code() && !t.is_float() && t.size() == 1);
            assert!(t.storable_as(DeviceType::U32) && !t.storable_as(DeviceType::F32));
            let i = info(t, DeviceType::U32, codes.len() as u64);
            let h = HostTensor::new(t, vec![codes.len() as u64], codes.clone()).unwrap();
            let dev = host_to_device(&i, &h).unwrap();
            let words: Vec<u32> = dev
                .chunks_exact(4)
                .map(|w| u32::from_le_bytes(w.try_into().unwrap()))
                .collect();
            assert_eq!(words, codes.iter().map(|&c| c as u32).collect::<Vec<_>>());
            assert_eq!(device_to_host(&i, &dev), h);
            assert_eq!(t.to_string(), t.name());
            // The manifest spells it the same way.
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.name()));
        }
        assert_eq!(HostType::F8e4m3fnuz.name(), "f8e4m3fnuz");
        assert!(!HostType::U8.is_code());
    }
}
