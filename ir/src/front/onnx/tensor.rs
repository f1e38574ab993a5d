//! `TensorProto` ↔ [`Tensor`]: every ONNX storage form (typed fields, little-endian
//! `raw_data`, external data in a memory-mapped file) with the sizes checked before anything
//! is allocated.

use super::error::{ImportError, Unsupported};
use crate::dtype::{Bool8, DType};
use crate::tensor::{Tensor, checked_numel};
use half::{bf16, f16};
use memmap2::Mmap;
use onnx_protobuf::TensorProto;
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// ONNX `TensorProto.DataType` code of `STRING`.
const STRING: i32 = 8;
/// ONNX `TensorProto.DataLocation` code of `EXTERNAL`.
const EXTERNAL: i32 = 1;

/// The ONNX name of a `TensorProto.DataType` code (`FLOAT`, `STRING`, ...).
pub fn onnx_dtype_name(code: i32) -> String {
    let name = match code {
        0 => "UNDEFINED",
        1 => "FLOAT",
        2 => "UINT8",
        3 => "INT8",
        4 => "UINT16",
        5 => "INT16",
        6 => "INT32",
        7 => "INT64",
        8 => "STRING",
        9 => "BOOL",
        10 => "FLOAT16",
        11 => "DOUBLE",
        12 => "UINT32",
        13 => "UINT64",
        14 => "COMPLEX64",
        15 => "COMPLEX128",
        16 => "BFLOAT16",
        17 => "FLOAT8E4M3FN",
        18 => "FLOAT8E4M3FNUZ",
        19 => "FLOAT8E5M2",
        20 => "FLOAT8E5M2FNUZ",
        21 => "UINT4",
        22 => "INT4",
        23 => "FLOAT4E2M1",
        24 => "FLOAT8E8M0",
        25 => "UINT2",
        26 => "INT2",
        _ => return format!("data type {code}"),
    };
    name.to_string()
}

/// A model-level unsupported item (no node).
pub(crate) fn unsupported_item(what: &str, reason: String) -> ImportError {
    ImportError::Unsupported {
        items: vec![Unsupported {
            op_type: what.to_string(),
            domain: String::new(),
            node: String::new(),
            index: None,
            opset: 0,
            reason,
        }],
    }
}

/// The dtype of an ONNX element type code, for a value described by `what`
/// (e.g. `tensor 'w'`, `graph input 'x'`).
pub(crate) fn dtype_of(code: i32, what: &str) -> Result<DType, ImportError> {
    if let Some(d) = DType::from_onnx_code(code) {
        return Ok(d);
    }
    match code {
        0 => Err(ImportError::invalid(format!("{what} has no data type"))),
        STRING => Err(unsupported_item(
            "dtype",
            format!("{what} is a string tensor; optc has no string tensors"),
        )),
        _ => Err(unsupported_item(
            "dtype",
            format!(
                "{what} has data type {}, which optc does not support",
                onnx_dtype_name(code)
            ),
        )),
    }
}

/// Validates ONNX dims: non-negative, element count within [`crate::tensor::MAX_ELEMENTS`].
pub(crate) fn dims_of(dims: &[i64], what: &str) -> Result<(Vec<usize>, usize), ImportError> {
    let mut shape = Vec::with_capacity(dims.len());
    for &d in dims {
        if d < 0 {
            return Err(ImportError::invalid(format!(
                "{what} has a negative dim {d} in {dims:?}"
            )));
        }
        shape.push(usize::try_from(d).map_err(|_| {
            ImportError::invalid(format!("{what} has dim {d} too large for this machine"))
        })?);
    }
    let n = checked_numel(&shape).map_err(|_| {
        ImportError::invalid(format!(
            "{what} of shape {dims:?} has too many elements (at most {} allowed)",
            crate::tensor::MAX_ELEMENTS
        ))
    })?;
    Ok((shape, n))
}

/// Memory maps of external data files, one per file, and the folder they are relative to.
#[derive(Default)]
pub(crate) struct ExternalData {
    dir: Option<PathBuf>,
    maps: HashMap<PathBuf, Arc<Mmap>>,
}

impl ExternalData {
    /// External data resolved against `dir` (the model's folder); `None` refuses external data.
    pub(crate) fn new(dir: Option<&Path>) -> ExternalData {
        ExternalData {
            dir: dir.map(Path::to_path_buf),
            maps: HashMap::new(),
        }
    }

    /// The map of `location` (relative to the model folder), mapped on first use.
    fn map(&mut self, location: &str) -> Result<Arc<Mmap>, ImportError> {
        let err = |msg: String| ImportError::ExternalData {
            path: PathBuf::from(location),
            msg,
        };
        let rel = safe_relative(location).map_err(err)?;
        let Some(dir) = &self.dir else {
            return Err(err(
                "the model was loaded from bytes without a folder to resolve external data".into(),
            ));
        };
        let path = dir.join(rel);
        if let Some(m) = self.maps.get(&path) {
            return Ok(m.clone());
        }
        let file = std::fs::File::open(&path).map_err(|e| ImportError::ExternalData {
            path: path.clone(),
            msg: format!("cannot open: {e}"),
        })?;
        // SAFETY: the map is read-only; like every memory-mapped model loader we assume the
        // file is not truncated or modified while the model is alive.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| ImportError::ExternalData {
            path: path.clone(),
            msg: format!("cannot map: {e}"),
        })?;
        let map = Arc::new(map);
        self.maps.insert(path, map.clone());
        Ok(map)
    }
}

/// Checks an external data `location`: relative, and still inside the model folder after
/// lexical normalisation (`a/../b` is fine, `../b` and `/etc/passwd` are not).
fn safe_relative(location: &str) -> Result<PathBuf, String> {
    if location.is_empty() {
        return Err("empty location".into());
    }
    if location.contains('\0') {
        return Err("location contains a NUL byte".into());
    }
    // Windows-style absolute paths and separators are refused on every platform.
    let b = location.as_bytes();
    if location.starts_with('\\')
        || location.starts_with('/')
        || (b.len() >= 2 && b[1] == b':' && b[0].is_ascii_alphabetic())
    {
        return Err("absolute location; external data must be relative to the model folder".into());
    }
    let norm = location.replace('\\', "/");
    let mut out: Vec<&std::ffi::OsStr> = Vec::new();
    for c in Path::new(&norm).components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::CurDir => {}
            Component::ParentDir => {
                if out.pop().is_none() {
                    return Err("location escapes the model folder".into());
                }
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(
                    "absolute location; external data must be relative to the model folder".into(),
                );
            }
        }
    }
    if out.is_empty() {
        return Err("location names the model folder itself".into());
    }
    Ok(out.iter().collect())
}

/// Decodes a `TensorProto` into a tensor; `ext` resolves external data.
pub(crate) fn decode(tp: &TensorProto, ext: &mut ExternalData) -> Result<Tensor, ImportError> {
    let what = if tp.name.is_empty() {
        "tensor".to_string()
    } else {
        format!("tensor '{}'", tp.name)
    };
    let dtype = dtype_of(tp.data_type, &what)?;
    let (shape, n) = dims_of(&tp.dims, &what)?;
    if tp.segment.is_some() {
        return Err(unsupported_item(
            "segment",
            format!("{what} is segmented, which optc does not support"),
        ));
    }
    let invalid = |msg: String| ImportError::invalid(format!("{what}: {msg}"));
    if tp.data_location.value() == EXTERNAL {
        return decode_external(tp, dtype, shape, n, ext, &what);
    }
    if tp.data_location.value() != 0 {
        return Err(invalid(format!(
            "unknown data_location {}",
            tp.data_location.value()
        )));
    }
    if !tp.raw_data.is_empty() {
        let need = byte_len(dtype, n);
        if tp.raw_data.len() != need {
            return Err(invalid(format!(
                "raw_data has {} bytes but shape {:?} of {dtype} needs {need}",
                tp.raw_data.len(),
                shape
            )));
        }
        return Tensor::from_le_bytes(dtype, shape, &tp.raw_data)
            .map_err(|e| invalid(e.to_string()));
    }
    // Typed fields (ONNX spec: which field holds which dtype).
    let (field, have) = match dtype {
        DType::F32 => ("float_data", tp.float_data.len()),
        DType::F64 => ("double_data", tp.double_data.len()),
        DType::I64 => ("int64_data", tp.int64_data.len()),
        DType::U32 | DType::U64 => ("uint64_data", tp.uint64_data.len()),
        _ => ("int32_data", tp.int32_data.len()),
    };
    // Storage-only dtypes keep one byte per int32_data entry: a float8 code, or two 4-bit /
    // four 2-bit codes packed as in raw_data.
    let need = if dtype.is_lowp() {
        crate::lowp::packed_len(dtype, n)
    } else {
        n
    };
    if have != need {
        return Err(invalid(format!(
            "{field} has {have} elements but shape {shape:?} of {dtype} needs {need}"
        )));
    }
    let i32s = &tp.int32_data;
    let t = match dtype {
        DType::F32 => Tensor::from_vec(shape, tp.float_data.clone()),
        DType::F64 => Tensor::from_vec(shape, tp.double_data.clone()),
        DType::I64 => Tensor::from_vec(shape, tp.int64_data.clone()),
        DType::U64 => Tensor::from_vec(shape, tp.uint64_data.clone()),
        DType::U32 => {
            let v: Result<Vec<u32>, _> = tp.uint64_data.iter().map(|&x| u32::try_from(x)).collect();
            let v = v.map_err(|_| invalid("uint64_data holds a value beyond UINT32".into()))?;
            Tensor::from_vec(shape, v)
        }
        DType::I32 => Tensor::from_vec(shape, i32s.clone()),
        // Narrow integers are stored widened in int32_data; values wrap like numpy's astype.
        DType::I8 => Tensor::from_vec(shape, i32s.iter().map(|&x| x as i8).collect()),
        DType::U8 => Tensor::from_vec(shape, i32s.iter().map(|&x| x as u8).collect()),
        DType::I16 => Tensor::from_vec(shape, i32s.iter().map(|&x| x as i16).collect()),
        DType::U16 => Tensor::from_vec(shape, i32s.iter().map(|&x| x as u16).collect()),
        DType::Bool => Tensor::from_vec(shape, i32s.iter().map(|&x| Bool8::from(x != 0)).collect()),
        // 16-bit floats are stored as their bit patterns in the low half of int32_data.
        DType::F16 => Tensor::from_vec(
            shape,
            i32s.iter().map(|&x| f16::from_bits(x as u16)).collect(),
        ),
        DType::BF16 => Tensor::from_vec(
            shape,
            i32s.iter().map(|&x| bf16::from_bits(x as u16)).collect(),
        ),
        _ => Tensor::from_le_bytes(
            dtype,
            shape,
            &i32s.iter().map(|&x| x as u8).collect::<Vec<u8>>(),
        ),
    };
    t.map_err(|e| invalid(e.to_string()))
}

/// Bytes that `n` elements of `dtype` take in `raw_data` or external data (4-bit and 2-bit
/// dtypes packed).
fn byte_len(dtype: DType, n: usize) -> usize {
    if dtype.is_lowp() {
        crate::lowp::packed_len(dtype, n)
    } else {
        n * dtype.size()
    }
}

fn decode_external(
    tp: &TensorProto,
    dtype: DType,
    shape: Vec<usize>,
    n: usize,
    ext: &mut ExternalData,
    what: &str,
) -> Result<Tensor, ImportError> {
    let mut location = None;
    let mut offset: Option<&str> = None;
    let mut length: Option<&str> = None;
    for kv in &tp.external_data {
        match kv.key.as_str() {
            "location" => location = Some(kv.value.as_str()),
            "offset" => offset = Some(kv.value.as_str()),
            "length" => length = Some(kv.value.as_str()),
            _ => {}
        }
    }
    let Some(location) = location else {
        return Err(ImportError::invalid(format!(
            "{what} has external data without a location"
        )));
    };
    let err = |msg: String| ImportError::ExternalData {
        path: PathBuf::from(location),
        msg: format!("{what}: {msg}"),
    };
    let parse = |key: &str, v: Option<&str>| -> Result<Option<usize>, ImportError> {
        v.map(|s| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| err(format!("{key} '{s}' is not a non-negative integer")))
        })
        .transpose()
    };
    let offset = parse("offset", offset)?.unwrap_or(0);
    let need = byte_len(dtype, n);
    let length = parse("length", length)?.unwrap_or(need);
    if length != need {
        return Err(err(format!(
            "length {length} but shape {shape:?} of {dtype} needs {need} bytes"
        )));
    }
    let map = ext.map(location)?;
    let end = offset.checked_add(length);
    if end.is_none_or(|e| e > map.len()) {
        return Err(err(format!(
            "bytes {offset}..{offset}+{length} are past the end of the file ({} bytes)",
            map.len()
        )));
    }
    Tensor::from_mmap(dtype, shape, map, offset, length).map_err(|e| err(e.to_string()))
}

/// Encodes `t` as a `TensorProto` named `name` with `raw_data` (little-endian).
///
/// Hand-encoded (fields 1 `dims`, 2 `data_type`, 8 `name`, 9 `raw_data`) so that it cannot
/// fail or panic for any tensor size.
pub fn tensor_to_pb_bytes(name: &str, t: &Tensor) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    let bytes = t.to_le_bytes();
    let mut out = Vec::with_capacity(bytes.len() + name.len() + 16 + 11 * t.rank());
    for &d in t.shape() {
        out.push(0x08); // field 1, varint
        varint(&mut out, d as u64);
    }
    out.push(0x10); // field 2, varint
    varint(&mut out, t.dtype().onnx_code() as u64);
    if !name.is_empty() {
        out.push(0x42); // field 8, length-delimited
        varint(&mut out, name.len() as u64);
        out.extend_from_slice(name.as_bytes());
    }
    out.push(0x4a); // field 9, length-delimited
    varint(&mut out, bytes.len() as u64);
    out.extend_from_slice(&bytes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use onnx_protobuf::{Message, StringStringEntryProto};

    fn proto(dtype: DType, dims: &[i64]) -> TensorProto {
        TensorProto {
            name: "t".into(),
            data_type: dtype.onnx_code(),
            dims: dims.to_vec(),
            ..Default::default()
        }
    }

    fn dec(tp: &TensorProto) -> Result<Tensor, ImportError> {
        decode(tp, &mut ExternalData::new(None))
    }

    #[test]
    fn typed_fields_decode_for_every_dtype() {
        let mut p = proto(DType::F32, &[2]);
        p.float_data = vec![1.5, -2.0];
        assert_eq!(dec(&p).unwrap().view::<f32>(), &[1.5, -2.0]);

        let mut p = proto(DType::F64, &[1]);
        p.double_data = vec![0.25];
        assert_eq!(dec(&p).unwrap().view::<f64>(), &[0.25]);

        let mut p = proto(DType::I64, &[3]);
        p.int64_data = vec![-1, i64::MAX, 7];
        assert_eq!(dec(&p).unwrap().view::<i64>(), &[-1, i64::MAX, 7]);

        let mut p = proto(DType::U64, &[1]);
        p.uint64_data = vec![u64::MAX];
        assert_eq!(dec(&p).unwrap().view::<u64>(), &[u64::MAX]);

        let mut p = proto(DType::U32, &[2]);
        p.uint64_data = vec![4_000_000_000, 1];
        assert_eq!(dec(&p).unwrap().view::<u32>(), &[4_000_000_000, 1]);
        p.uint64_data = vec![1 << 40, 1];
        assert!(dec(&p).unwrap_err().to_string().contains("UINT32"));

        let mut p = proto(DType::I32, &[2]);
        p.int32_data = vec![-5, 9];
        assert_eq!(dec(&p).unwrap().view::<i32>(), &[-5, 9]);

        let mut p = proto(DType::I8, &[2]);
        p.int32_data = vec![-128, 127];
        assert_eq!(dec(&p).unwrap().view::<i8>(), &[-128, 127]);
        let mut p = proto(DType::U8, &[2]);
        p.int32_data = vec![0, 255];
        assert_eq!(dec(&p).unwrap().view::<u8>(), &[0, 255]);
        let mut p = proto(DType::I16, &[1]);
        p.int32_data = vec![-30000];
        assert_eq!(dec(&p).unwrap().view::<i16>(), &[-30000]);
        let mut p = proto(DType::U16, &[1]);
        p.int32_data = vec![65535];
        assert_eq!(dec(&p).unwrap().view::<u16>(), &[65535]);

        let mut p = proto(DType::Bool, &[3]);
        p.int32_data = vec![1, 0, 5];
        assert_eq!(
            dec(&p).unwrap().view::<Bool8>(),
            &[Bool8(1), Bool8(0), Bool8(1)]
        );
    }

    #[test]
    fn low_precision_tensors_decode_packed() {
        // Float8 codes one per int32_data entry; int4 two per entry, low nibble first.
        let mut p = proto(DType::F8E4M3FN, &[3]);
        p.int32_data = vec![0x7E, 0x38, 0xB8];
        assert_eq!(dec(&p).unwrap().to_f64_vec(), vec![448.0, 1.0, -1.0]);
        let mut p = proto(DType::I4, &[3]);
        p.int32_data = vec![0x87, 0x05];
        let t = dec(&p).unwrap();
        assert_eq!(t.to_i64_vec(), vec![7, -8, 5]);
        p.int32_data = vec![0x87, 0x05, 0];
        assert!(dec(&p).unwrap_err().to_string().contains("needs 2"));
        // raw_data: uint2 packs four per byte; the .pb writer packs the same way.
        let mut p = proto(DType::U2, &[5]);
        p.raw_data = vec![0b11_10_01_00, 0b01];
        let u = dec(&p).unwrap();
        assert_eq!(u.to_i64_vec(), vec![0, 1, 2, 3, 1]);
        let back = TensorProto::parse_from_bytes(&tensor_to_pb_bytes("t", &u)).unwrap();
        assert_eq!(back.raw_data, p.raw_data);
        p.raw_data = vec![0];
        assert!(dec(&p).is_err());
    }

    #[test]
    fn half_floats_are_bit_patterns_in_int32_data() {
        // f16: 1.0 = 0x3C00, -2.0 = 0xC000; bf16: 1.0 = 0x3F80, -2.0 = 0xC000.
        let mut p = proto(DType::F16, &[2]);
        p.int32_data = vec![0x3C00, 0xC000];
        assert_eq!(
            dec(&p).unwrap().view::<f16>(),
            &[f16::from_f32(1.0), f16::from_f32(-2.0)]
        );
        let mut p = proto(DType::BF16, &[2]);
        p.int32_data = vec![0x3F80, 0xC000];
        assert_eq!(
            dec(&p).unwrap().view::<bf16>(),
            &[bf16::from_f32(1.0), bf16::from_f32(-2.0)]
        );
    }

    #[test]
    fn raw_data_is_little_endian_and_length_checked() {
        let mut p = proto(DType::I32, &[2]);
        p.raw_data = vec![1, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff];
        assert_eq!(dec(&p).unwrap().view::<i32>(), &[1, -2]);
        let mut p = proto(DType::F16, &[1]);
        p.raw_data = vec![0x00, 0x3C];
        assert_eq!(dec(&p).unwrap().view::<f16>(), &[f16::from_f32(1.0)]);
        let mut p = proto(DType::Bool, &[2]);
        p.raw_data = vec![0, 7];
        assert_eq!(dec(&p).unwrap().view::<Bool8>(), &[Bool8(0), Bool8(1)]);
        let mut p = proto(DType::F32, &[2, 3]);
        p.raw_data = vec![0; 20];
        let e = dec(&p).unwrap_err().to_string();
        assert!(
            e.contains("raw_data has 20 bytes") && e.contains("needs 24"),
            "{e}"
        );
        p.raw_data = vec![0; 28];
        assert!(dec(&p).is_err());
    }

    #[test]
    fn bad_headers_are_refused_before_allocating() {
        let p = proto(DType::F32, &[1 << 30, 1 << 30]);
        let e = dec(&p).unwrap_err().to_string();
        assert!(e.contains("too many elements"), "{e}");
        let p = proto(DType::F32, &[1 << 62, 1 << 62]);
        assert!(
            dec(&p)
                .unwrap_err()
                .to_string()
                .contains("too many elements")
        );
        let p = proto(DType::F32, &[2, -1]);
        assert!(dec(&p).unwrap_err().to_string().contains("negative dim -1"));
        let mut p = proto(DType::F32, &[1]);
        p.data_type = 8;
        assert!(dec(&p).unwrap_err().to_string().contains("string tensor"));
        p.data_type = 14;
        let e = dec(&p).unwrap_err();
        assert!(matches!(e, ImportError::Unsupported { .. }), "{e}");
        assert!(e.to_string().contains("COMPLEX64"), "{e}");
        p.data_type = 0;
        assert!(dec(&p).unwrap_err().to_string().contains("no data type"));
        let mut p = proto(DType::F32, &[3]);
        p.float_data = vec![1.0, 2.0];
        let e = dec(&p).unwrap_err().to_string();
        assert!(
            e.contains("float_data has 2 elements") && e.contains("needs 3"),
            "{e}"
        );
    }

    #[test]
    fn zero_size_and_scalar_tensors() {
        let p = proto(DType::F32, &[0, 3]);
        let t = dec(&p).unwrap();
        assert_eq!(t.shape(), &[0, 3]);
        let mut p = proto(DType::I64, &[]);
        p.int64_data = vec![42];
        assert_eq!(dec(&p).unwrap().scalar_i64(), Some(42));
    }

    #[test]
    fn external_locations_must_stay_in_the_folder() {
        assert_eq!(safe_relative("w.bin").unwrap(), PathBuf::from("w.bin"));
        assert_eq!(
            safe_relative("./a/../b/w.bin").unwrap(),
            PathBuf::from("b/w.bin")
        );
        for bad in [
            "../w.bin",
            "a/../../w.bin",
            "/etc/passwd",
            "C:\\w.bin",
            "\\\\server\\w",
            "..\\w.bin",
            "",
            ".",
        ] {
            assert!(safe_relative(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn external_data_is_mapped_and_range_checked() {
        let dir = std::env::temp_dir().join(format!("optc-ext-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let vals = [1.0f32, 2.0, 3.0, 4.0];
        let mut bytes = vec![0u8; 8];
        bytes.extend(vals.iter().flat_map(|v| v.to_le_bytes()));
        std::fs::write(dir.join("w.bin"), &bytes).unwrap();
        let kv = |k: &str, v: &str| StringStringEntryProto {
            key: k.into(),
            value: v.into(),
            ..Default::default()
        };
        let mut p = proto(DType::F32, &[2, 2]);
        p.data_location = protobuf::EnumOrUnknown::from_i32(EXTERNAL);
        p.external_data = vec![
            kv("location", "w.bin"),
            kv("offset", "8"),
            kv("length", "16"),
        ];
        let mut ext = ExternalData::new(Some(&dir));
        let t = decode(&p, &mut ext).unwrap();
        assert!(t.is_mapped());
        assert_eq!(t.view::<f32>(), &vals);
        // A second tensor of the same file reuses the map.
        p.external_data = vec![
            kv("location", "w.bin"),
            kv("offset", "12"),
            kv("length", "4"),
        ];
        p.dims = vec![1];
        assert_eq!(decode(&p, &mut ext).unwrap().view::<f32>(), &[2.0]);
        assert_eq!(ext.maps.len(), 1);
        // Past the end.
        p.external_data = vec![
            kv("location", "w.bin"),
            kv("offset", "22"),
            kv("length", "4"),
        ];
        let e = decode(&p, &mut ext).unwrap_err();
        assert!(matches!(e, ImportError::ExternalData { .. }), "{e}");
        assert!(e.to_string().contains("past the end"), "{e}");
        p.external_data = vec![kv("location", "w.bin"), kv("offset", "-4")];
        assert!(decode(&p, &mut ext).is_err());
        // Missing file, escaping path, no folder.
        p.external_data = vec![kv("location", "nope.bin")];
        let e = decode(&p, &mut ext).unwrap_err().to_string();
        assert!(e.contains("nope.bin") && e.contains("cannot open"), "{e}");
        p.external_data = vec![kv("location", "../w.bin")];
        assert!(
            decode(&p, &mut ext)
                .unwrap_err()
                .to_string()
                .contains("escapes")
        );
        p.external_data = vec![kv("location", "w.bin")];
        assert!(decode(&p, &mut ExternalData::new(None)).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn pb_bytes_round_trip_through_protobuf() {
        for t in [
            Tensor::from_vec(vec![2, 3], vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap(),
            Tensor::from_vec(vec![3], vec![Bool8(1), Bool8(0), Bool8(1)]).unwrap(),
            Tensor::scalar(-7i64),
            Tensor::from_vec(vec![0, 4], Vec::<f16>::new()).unwrap(),
        ] {
            let bytes = tensor_to_pb_bytes("name", &t);
            let p = TensorProto::parse_from_bytes(&bytes).unwrap();
            assert_eq!(p.name, "name");
            assert_eq!(dec(&p).unwrap(), t);
        }
    }
}
