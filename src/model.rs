//! Loading models and making inputs for them.

use crate::error::{Error, Result};
use optc_ir::front::onnx::{self, Model};
use optc_ir::{Bool8, DType, Dim, Graph, Tensor};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use std::collections::BTreeMap;
use std::path::Path;

/// Imports an ONNX model and verifies the resulting graph. `path` may also be a folder holding
/// a `model.onnx` (the backend-test layout).
pub fn load(path: &Path) -> Result<Model> {
    let inner = path.join("model.onnx");
    let path = if path.is_dir() && inner.is_file() {
        inner.as_path()
    } else {
        path
    };
    let model = onnx::load_model(path).map_err(|source| Error::Import {
        path: path.to_path_buf(),
        source,
    })?;
    if let Err(errs) = optc_ir::verify::verify(&model.graph) {
        let msgs: Vec<String> = errs.iter().take(5).map(ToString::to_string).collect();
        return Err(Error::Verifier(msgs.join("; ")));
    }
    Ok(model)
}

/// The `--shape` keys that can size dim `axis` (declared `d`) of input `name`, in precedence
/// order: its symbol, then `INPUT.AXIS`; none for a static dim.
fn size_keys(name: &str, axis: usize, d: &Dim) -> Vec<String> {
    let positional = format!("{name}.{axis}");
    match d {
        Dim::Static(_) => vec![],
        Dim::Sym(s) => vec![s.clone(), positional],
        Dim::Unknown => vec![positional],
    }
}

/// `(input name, declared dims)` of every graph input with a declared rank.
fn declared_dims(g: &Graph) -> impl Iterator<Item = (&str, &[Dim])> {
    g.inputs().iter().filter_map(|&v| {
        let dims = g.ty(v).shape.dims()?;
        Some((g.value(v).name.as_str(), dims))
    })
}

/// The concrete shape of graph input `v`: static dims as declared; a symbolic dim from
/// `shapes` by its symbol (`batch` → 4), or any non-static dim by position as `INPUT.AXIS`
/// (`x.2` → 48); 1 when not given.
pub fn input_shape(
    g: &Graph,
    v: optc_ir::ValueId,
    shapes: &BTreeMap<String, usize>,
) -> Result<Vec<usize>> {
    let name = &g.value(v).name;
    let dims = g.ty(v).shape.dims().ok_or_else(|| {
        Error::BadInput(format!(
            "input '{name}' has no declared rank: pass --inputs"
        ))
    })?;
    Ok(dims
        .iter()
        .enumerate()
        .map(|(axis, d)| match d {
            Dim::Static(n) => *n,
            _ => size_keys(name, axis, d)
                .iter()
                .find_map(|k| shapes.get(k).copied())
                .unwrap_or(1),
        })
        .collect())
}

/// The dims of the graph inputs that [`input_shape`] sets to 1 for want of a size in `shapes`
/// (by symbol or as `INPUT.AXIS`): `(input, axis, symbol)` — for a warning, since a spatial
/// dim of 1 compiles a different model than the user meant.
pub fn defaulted_dims(
    g: &Graph,
    shapes: &BTreeMap<String, usize>,
) -> Vec<(String, usize, Option<String>)> {
    let mut out = Vec::new();
    for (name, dims) in declared_dims(g) {
        for (axis, d) in dims.iter().enumerate() {
            let keys = size_keys(name, axis, d);
            if keys.is_empty() || keys.iter().any(|k| shapes.contains_key(k)) {
                continue;
            }
            let sym = match d {
                Dim::Sym(s) => Some(s.clone()),
                _ => None,
            };
            out.push((name.to_string(), axis, sym));
        }
    }
    out
}

/// The keys of `shapes` that size no dim of the graph inputs (a symbol no input has, an
/// `INPUT.AXIS` naming no input, or an axis past its rank, or a static dim): most likely typos.
pub fn unused_shapes(g: &Graph, shapes: &BTreeMap<String, usize>) -> Vec<String> {
    let used: std::collections::BTreeSet<String> = declared_dims(g)
        .flat_map(|(name, dims)| {
            dims.iter()
                .enumerate()
                .flat_map(move |(axis, d)| size_keys(name, axis, d))
        })
        .collect();
    shapes
        .keys()
        .filter(|k| !used.contains(*k))
        .cloned()
        .collect()
}

/// Seeded random inputs of the declared shapes and dtypes (as trtexec does): floats standard
/// normal, integers uniform in [0, 4), booleans fair coins.
pub fn random_inputs(
    g: &Graph,
    seed: u64,
    shapes: &BTreeMap<String, usize>,
) -> Result<Vec<Tensor>> {
    let specs = g
        .inputs()
        .iter()
        .map(|&v| Ok((g.ty(v).dtype, input_shape(g, v, shapes)?)))
        .collect::<Result<Vec<_>>>()?;
    random_tensors(&specs, seed)
}

/// Seeded random tensors of the given dtypes and shapes, drawn as [`random_inputs`] draws them
/// (one generator over all tensors, in order), so a model and its artifact get the same inputs
/// from the same seed.
pub fn random_tensors(specs: &[(DType, Vec<usize>)], seed: u64) -> Result<Vec<Tensor>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    specs
        .iter()
        .map(|(dtype, shape)| {
            let (dtype, shape) = (*dtype, shape.clone());
            let n = optc_ir::tensor::checked_numel(&shape)
                .map_err(|e| Error::BadInput(e.to_string()))?;
            let t = if dtype.is_float() {
                let vals: Vec<f64> = (0..n).map(|_| StandardNormal.sample(&mut rng)).collect();
                Tensor::from_vec(shape, vals).map(|t| t.cast(dtype))
            } else if dtype == DType::Bool {
                Tensor::from_vec(
                    shape,
                    (0..n)
                        .map(|_| Bool8::from(rng.random::<bool>()))
                        .collect::<Vec<_>>(),
                )
            } else {
                Tensor::from_vec(
                    shape,
                    (0..n)
                        .map(|_| rng.random_range(0..4i64))
                        .collect::<Vec<_>>(),
                )
                .map(|t| t.cast(dtype))
            };
            t.map_err(|e| Error::BadInput(e.to_string()))
        })
        .collect()
}

/// Reads the inputs of `g` from a folder: `input_<i>.pb` / `input_<i>.npy` (backend-test
/// layout) or `<input name>.npy` / `<input name>.pb`.
pub fn read_inputs(g: &Graph, dir: &Path) -> Result<Vec<Tensor>> {
    g.inputs()
        .iter()
        .enumerate()
        .map(|(i, &v)| read_input(dir, i, &g.value(v).name))
        .collect()
}

/// Reads input `i` named `name` from a folder: `input_<i>.pb`, `input_<i>.npy`, `<name>.npy` or
/// `<name>.pb` (characters other than alphanumerics, `_` and `.` in the name become `_`).
pub fn read_input(dir: &Path, i: usize, name: &str) -> Result<Tensor> {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let candidates = [
        format!("input_{i}.pb"),
        format!("input_{i}.npy"),
        format!("{safe}.npy"),
        format!("{safe}.pb"),
    ];
    let path = candidates
        .iter()
        .map(|c| dir.join(c))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::BadInput(format!(
                "no file for input '{name}' (#{i}) in {}",
                dir.display()
            ))
        })?;
    Ok(crate::io::load_tensor(&path)?.1)
}

/// Reads the expected outputs `output_<i>.pb` of a backend-test data folder.
pub fn read_outputs(dir: &Path, count: usize) -> Result<Vec<Tensor>> {
    (0..count)
        .map(|i| Ok(crate::io::load_tensor(&dir.join(format!("output_{i}.pb")))?.1))
        .collect()
}
