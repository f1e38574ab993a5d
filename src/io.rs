//! Tensor files: ONNX `TensorProto` (`.pb`, the backend-test layout) and NumPy `.npy`.

use crate::error::{Error, Result};
use npyz::WriterBuilder;
use optc_ir::half::{bf16, f16};
use optc_ir::{Bool8, DType, Tensor};
use std::path::Path;

/// Reads a tensor from a `.pb` (TensorProto) or `.npy` file; returns its stored name (the
/// TensorProto name, or the file stem for `.npy`).
pub fn load_tensor(path: &Path) -> Result<(String, Tensor)> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("npy") => load_npy(path),
        _ => optc_ir::front::onnx::load_tensor_pb(path).map_err(|source| Error::Import {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Writes a tensor as `.npy` or `.pb` by the path's extension.
pub fn save_tensor(path: &Path, name: &str, t: &Tensor) -> Result<()> {
    let bytes = match path.extension().and_then(|e| e.to_str()) {
        Some("npy") => npy_bytes(t).map_err(|msg| Error::TensorFile {
            path: path.to_path_buf(),
            msg,
        })?,
        _ => optc_ir::front::onnx::tensor_to_pb_bytes(name, t),
    };
    std::fs::write(path, bytes).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn load_npy(path: &Path) -> Result<(String, Tensor)> {
    let bad = |msg: String| Error::TensorFile {
        path: path.to_path_buf(),
        msg,
    };
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let npy = npyz::NpyFile::new(&bytes[..]).map_err(|e| bad(e.to_string()))?;
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    if npy.order() == npyz::Order::Fortran && shape.len() > 1 {
        return Err(bad("Fortran-order arrays are not supported".into()));
    }
    let descr = match npy.dtype() {
        npyz::DType::Plain(t) => t.to_string(),
        other => return Err(bad(format!("unsupported npy dtype {}", other.descr()))),
    };
    let code = descr.trim_start_matches(['<', '|', '=']);
    macro_rules! read {
        ($t:ty) => {{
            let v: Vec<$t> = npy.into_vec().map_err(|e| bad(e.to_string()))?;
            Tensor::from_vec(shape, v).map_err(|e| bad(e.to_string()))?
        }};
    }
    let t = match code {
        "f4" => read!(f32),
        "f8" => read!(f64),
        "f2" => read!(f16),
        "i1" => read!(i8),
        "u1" => read!(u8),
        "i2" => read!(i16),
        "u2" => read!(u16),
        "i4" => read!(i32),
        "u4" => read!(u32),
        "i8" => read!(i64),
        "u8" => read!(u64),
        "b1" => {
            let v: Vec<bool> = npy.into_vec().map_err(|e| bad(e.to_string()))?;
            Tensor::from_vec(shape, v.into_iter().map(Bool8::from).collect::<Vec<_>>())
                .map_err(|e| bad(e.to_string()))?
        }
        other => return Err(bad(format!("unsupported npy dtype '{other}'"))),
    };
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok((name, t))
}

fn npy_bytes(t: &Tensor) -> Result<Vec<u8>, String> {
    let shape: Vec<u64> = t.shape().iter().map(|&d| d as u64).collect();
    let mut out = Vec::new();
    macro_rules! write {
        ($t:ty, $v:expr) => {{
            let mut w = npyz::WriteOptions::<$t>::new()
                .default_dtype()
                .shape(&shape)
                .writer(&mut out)
                .begin_nd()
                .map_err(|e| e.to_string())?;
            w.extend($v.iter().copied()).map_err(|e| e.to_string())?;
            w.finish().map_err(|e| e.to_string())?;
        }};
    }
    match t.dtype() {
        DType::F32 => write!(f32, t.view::<f32>()),
        DType::F64 => write!(f64, t.view::<f64>()),
        DType::F16 => write!(f16, t.view::<f16>()),
        DType::I8 => write!(i8, t.view::<i8>()),
        DType::U8 => write!(u8, t.view::<u8>()),
        DType::I16 => write!(i16, t.view::<i16>()),
        DType::U16 => write!(u16, t.view::<u16>()),
        DType::I32 => write!(i32, t.view::<i32>()),
        DType::U32 => write!(u32, t.view::<u32>()),
        DType::I64 => write!(i64, t.view::<i64>()),
        DType::U64 => write!(u64, t.view::<u64>()),
        DType::Bool => {
            let v: Vec<bool> = t.view::<Bool8>().iter().map(|b| b.get()).collect();
            write!(bool, v)
        }
        DType::BF16 => {
            // NumPy has no bfloat16: widen to f32.
            let v: Vec<f32> = t.view::<bf16>().iter().map(|x| x.to_f32()).collect();
            write!(f32, v)
        }
        DType::I4 | DType::U4 | DType::I2 | DType::U2 => {
            // NumPy has no 4-bit or 2-bit integers: widen to i8.
            let v: Vec<i8> = t.to_i64_vec().into_iter().map(|x| x as i8).collect();
            write!(i8, v)
        }
        DType::F8E4M3FN
        | DType::F8E4M3FNUZ
        | DType::F8E5M2
        | DType::F8E5M2FNUZ
        | DType::F8E8M0
        | DType::F4E2M1 => {
            // NumPy has no float8/float4: widen to f32 (exact).
            let v: Vec<f32> = t.to_f64_vec().into_iter().map(|x| x as f32).collect();
            write!(f32, v)
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_round_trips_every_numpy_dtype() {
        let dir = std::env::temp_dir().join(format!("optc-npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cases = vec![
            Tensor::from_vec(vec![2, 2], vec![1.5f32, -2.0, 0.0, 7.25]).unwrap(),
            Tensor::from_vec(vec![3], vec![1i64, -5, 1 << 40]).unwrap(),
            Tensor::from_vec(vec![2], vec![Bool8(1), Bool8(0)]).unwrap(),
            Tensor::from_vec(vec![1], vec![f16::from_f32(0.5)]).unwrap(),
            Tensor::scalar(3u8),
        ];
        for (i, t) in cases.into_iter().enumerate() {
            let p = dir.join(format!("t{i}.npy"));
            save_tensor(&p, "x", &t).unwrap();
            let (name, back) = load_tensor(&p).unwrap();
            assert_eq!(name, format!("t{i}"));
            assert_eq!(back, t);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn corrupt_npy_is_an_error_naming_the_file() {
        let p = std::env::temp_dir().join(format!("optc-bad-{}.npy", std::process::id()));
        std::fs::write(&p, b"\x93NUMPY garbage").unwrap();
        let e = load_tensor(&p).unwrap_err();
        assert!(e.to_string().contains("optc-bad-"), "{e}");
        assert_eq!(e.exit_code(), 2);
        std::fs::remove_file(&p).unwrap();
    }
}
