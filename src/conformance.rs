//! The conformance harness: runs ONNX backend-test folders (`model.onnx` plus
//! `test_data_set_*/input_*.pb` and `output_*.pb`) and compares with the expected outputs.
//!
//! Node tests (folders named `test_*`) use the ONNX backend tolerance (NumPy `allclose`, rtol
//! 1e-3, atol 1e-7); other folders are whole models and use [`Tolerance::MODEL`]. A test is
//! *skipped* when the model is valid but uses something optc does not support (an op, a dtype,
//! a sequence type), and *failed* when optc imports it but errors or computes wrong values.

use crate::compare::{Tolerance, compare};
use crate::error::Error;
use optc_ir::front::onnx::ImportError;
use protobuf::Message;
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Outcome of one test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Every output within tolerance.
    Passed,
    /// Wrong values, or an error on a model optc claims to support.
    Failed,
    /// Valid, but uses something optc does not support.
    Skipped,
}

impl Status {
    /// `passed`, `failed` or `skipped`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Passed => "passed",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
        }
    }

    /// Parses [`Status::as_str`].
    pub fn parse(s: &str) -> Option<Status> {
        [Status::Passed, Status::Failed, Status::Skipped]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

/// The result of one test folder.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TestResult {
    /// The folder name (`test_abs`, `resnet18`).
    pub name: String,
    /// Outcome.
    pub status: Status,
    /// ONNX op types in the model (subgraphs included), sorted.
    pub op_types: Vec<String>,
    /// Why it failed or was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Wall time in milliseconds (import + all data sets).
    pub ms: f64,
}

/// Which executor runs the tests.
#[derive(Clone, Copy)]
pub enum Backend<'a> {
    /// The CPU reference interpreter.
    Reference,
    /// Compiled to WGSL and run through wgpu on this device.
    Wgpu(&'a optc_runtime::wgpu_exec::Device),
    /// Compiled to PTX for the device's target and run by the CUDA driver on this device.
    #[cfg(feature = "cuda")]
    Cuda(&'a optc_runtime::cuda_exec::CudaDevice),
    /// Compiled for the runner's target and run by an executor from outside this crate (the
    /// test-only PTX interpreter, `optc-ptxsim`). Runs tests in parallel.
    Runner(&'a dyn ArtifactRunner),
}

/// An artifact executor the harness can drive without depending on it.
pub trait ArtifactRunner: Sync {
    /// The target artifacts are compiled for.
    fn target(&self) -> optc_runtime::Target;
    /// Runs `artifact` on `inputs` (manifest order), returning its outputs.
    fn run(
        &self,
        artifact: &optc_runtime::Artifact,
        inputs: &[optc_runtime::HostTensor],
    ) -> Result<Vec<optc_runtime::HostTensor>, String>;
}

/// Every test folder (a folder with a `model.onnx`) under `dir`, sorted by path.
pub fn discover(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    fn walk(d: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        if d.join("model.onnx").is_file() {
            out.push(d.to_path_buf());
            return Ok(());
        }
        let mut entries: Vec<PathBuf> = std::fs::read_dir(d)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        entries.sort();
        for e in entries {
            walk(&e, out)?;
        }
        Ok(())
    }
    walk(dir, &mut out)?;
    Ok(out)
}

/// Op types used by an ONNX model file (including subgraphs); empty when unreadable.
pub fn op_types(model: &Path) -> Vec<String> {
    fn collect(g: &onnx_protobuf::GraphProto, out: &mut Vec<String>) {
        for n in &g.node {
            let domain = if n.domain.is_empty() || n.domain == "ai.onnx" {
                String::new()
            } else {
                format!("{}.", n.domain)
            };
            out.push(format!("{domain}{}", n.op_type));
            for a in &n.attribute {
                if let Some(sg) = a.g.as_ref() {
                    collect(sg, out);
                }
                for sg in &a.graphs {
                    collect(sg, out);
                }
            }
        }
    }
    let mut out = Vec::new();
    if let Ok(bytes) = std::fs::read(model) {
        if let Ok(m) = onnx_protobuf::ModelProto::parse_from_bytes(&bytes) {
            if let Some(g) = m.graph.as_ref() {
                collect(g, &mut out);
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The tolerance for a test folder: node tests (`test_*`) use the ONNX backend default.
pub fn tolerance_for(name: &str) -> Tolerance {
    if name.starts_with("test_") {
        Tolerance::NODE
    } else {
        Tolerance::MODEL
    }
}

fn data_sets(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_dir()
                        && p.file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with("test_data_set_"))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn count_files(dir: &Path, prefix: &str) -> usize {
    (0..)
        .take_while(|i| dir.join(format!("{prefix}_{i}.pb")).is_file())
        .count()
}

/// Runs one test folder.
pub fn run_test(dir: &Path, backend: Backend<'_>) -> TestResult {
    let start = Instant::now();
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let op_types = op_types(&dir.join("model.onnx"));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_test_inner(dir, &name, backend)
    }))
    .unwrap_or_else(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        (Status::Failed, Some(format!("panic: {msg}")))
    });
    TestResult {
        name,
        status: outcome.0,
        op_types,
        reason: outcome.1,
        ms: start.elapsed().as_secs_f64() * 1e3,
    }
}

fn run_test_inner(dir: &Path, name: &str, backend: Backend<'_>) -> (Status, Option<String>) {
    let model = match crate::model::load(&dir.join("model.onnx")) {
        Ok(m) => m,
        Err(Error::Import {
            source: e @ ImportError::Unsupported { .. },
            ..
        }) => {
            return (Status::Skipped, Some(e.to_string()));
        }
        Err(e) => return (Status::Failed, Some(e.to_string())),
    };
    let sets = data_sets(dir);
    if sets.is_empty() {
        return (Status::Skipped, Some("no test_data_set_* folder".into()));
    }
    let tol = match (backend, tolerance_for(name)) {
        (Backend::Reference, t) => t,
        (_, Tolerance::Norms { .. }) => Tolerance::DEVICE_MODEL,
        (_, t) => t,
    };
    for set in sets {
        let set_name = set
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let n_out = count_files(&set, "output");
        let inputs = match crate::model::read_inputs(&model.graph, &set) {
            Ok(i) => i,
            Err(e) => return (Status::Failed, Some(format!("{set_name}: {e}"))),
        };
        let expected = match crate::model::read_outputs(&set, n_out) {
            Ok(o) => o,
            Err(e) => return (Status::Failed, Some(format!("{set_name}: {e}"))),
        };
        let actual = match backend {
            Backend::Reference => match optc_ir::run(&model.graph, &inputs) {
                Ok(a) => a,
                Err(e) => {
                    let status = if matches!(e.root(), optc_ir::EvalError::Unsupported(_)) {
                        Status::Skipped
                    } else {
                        Status::Failed
                    };
                    return (status, Some(format!("{set_name}: {e}")));
                }
            },
            device => match run_device(device, &model.graph, name, &inputs) {
                Ok(a) => a,
                Err(e) => {
                    use crate::compile::CompileError as C;
                    let status = match &e {
                        Error::Compile(C::Unsupported(_) | C::Dynamic(_) | C::Target(..)) => {
                            Status::Skipped
                        }
                        _ => Status::Failed,
                    };
                    return (status, Some(format!("{set_name}: {e}")));
                }
            },
        };
        if actual.len() != expected.len() {
            return (
                Status::Failed,
                Some(format!(
                    "{set_name}: {} outputs, expected {}",
                    actual.len(),
                    expected.len()
                )),
            );
        }
        for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
            let out_name = &model.graph.value(model.graph.outputs()[i]).name;
            match compare(a, e, tol) {
                Err(msg) => {
                    return (
                        Status::Failed,
                        Some(format!("{set_name}: output '{out_name}': {msg}")),
                    );
                }
                Ok(d) if !d.within(tol) => {
                    return (
                        Status::Failed,
                        Some(format!(
                            "{set_name}: output '{out_name}': {} of {} elements off (max abs err {:.3e}, rel l2 {:.3e})",
                            d.mismatches, d.elements, d.max_abs_err, d.rel_l2_err
                        )),
                    );
                }
                Ok(_) => {}
            }
        }
    }
    (Status::Passed, None)
}

/// Compiles `g` for the shapes of `inputs` and runs it on `device`. Graph inputs that feed a
/// shape operand (axes, pads, target shapes…) are fixed to their given values at compile time,
/// as a deployment would with `optc compile --const-input`.
pub fn run_wgpu(
    device: &optc_runtime::wgpu_exec::Device,
    g: &optc_ir::Graph,
    name: &str,
    inputs: &[optc_ir::Tensor],
) -> Result<Vec<optc_ir::Tensor>, Error> {
    run_device(Backend::Wgpu(device), g, name, inputs)
}

/// [`run_wgpu`] for any device backend (the reference backend is refused): WGSL on wgpu, PTX for
/// the device's own target on CUDA.
pub fn run_device(
    backend: Backend<'_>,
    g: &optc_ir::Graph,
    name: &str,
    inputs: &[optc_ir::Tensor],
) -> Result<Vec<optc_ir::Tensor>, Error> {
    let target = match backend {
        Backend::Reference => {
            return Err(Error::BadInput(
                "run_device needs a device backend, not the reference interpreter".into(),
            ));
        }
        Backend::Wgpu(_) => optc_runtime::Target::Wgsl,
        #[cfg(feature = "cuda")]
        Backend::Cuda(d) => d.target()?,
        Backend::Runner(r) => r.target(),
    };
    let mut opts = crate::compile::Options::new(target);
    opts.input_shapes = Some(inputs.iter().map(|t| t.shape().to_vec()).collect());
    for v in crate::compile::shape_inputs(g) {
        if let Some(k) = g.inputs().iter().position(|&x| x == v) {
            opts.const_inputs
                .insert(g.value(v).name.clone(), inputs[k].clone());
        }
    }
    let (artifact, _) = crate::exec::compile_artifact(g, name, &opts)?;
    let host = crate::exec::manifest_inputs(g, &artifact.manifest, inputs)?;
    let outs = match backend {
        Backend::Wgpu(device) => {
            optc_runtime::wgpu_exec::Session::new(device, &artifact)?.run(&host)?
        }
        #[cfg(feature = "cuda")]
        Backend::Cuda(device) => {
            optc_runtime::cuda_exec::CudaSession::new(device, &artifact)?.run(&host)?
        }
        Backend::Runner(r) => r.run(&artifact, &host).map_err(Error::Executor)?,
        Backend::Reference => {
            return Err(Error::BadInput("run_device needs a device backend".into()));
        }
    };
    outs.iter().map(crate::exec::from_host).collect()
}

/// Runs every test under `dir` whose name contains `filter` (in parallel on the reference
/// interpreter and on a runner, one at a time on a device); results sorted by name. `progress`
/// is called once per finished test.
pub fn run_all(
    dir: &Path,
    backend: Backend<'_>,
    filter: Option<&str>,
    progress: &(dyn Fn(&TestResult) + Sync),
) -> std::io::Result<Vec<TestResult>> {
    let tests: Vec<PathBuf> = discover(dir)?
        .into_iter()
        .filter(|p| {
            filter.is_none_or(|f| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().contains(f))
            })
        })
        .collect();
    let one = |t: &PathBuf| {
        let r = run_test(t, backend);
        progress(&r);
        r
    };
    let mut results: Vec<TestResult> = match backend {
        Backend::Reference | Backend::Runner(_) => tests.par_iter().map(one).collect(),
        _ => tests.iter().map(one).collect(),
    };
    results.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(results)
}

/// Counts per status.
pub fn totals(results: &[TestResult]) -> (usize, usize, usize) {
    let c = |s| results.iter().filter(|r| r.status == s).count();
    (c(Status::Passed), c(Status::Failed), c(Status::Skipped))
}

/// The per-op table: for each op type, tests containing it by status.
pub fn per_op(results: &[TestResult]) -> BTreeMap<String, [usize; 3]> {
    let mut m: BTreeMap<String, [usize; 3]> = BTreeMap::new();
    for r in results {
        for op in &r.op_types {
            let e = m.entry(op.clone()).or_default();
            e[r.status as usize] += 1;
        }
    }
    m
}

/// The per-op table as Markdown.
pub fn per_op_markdown(results: &[TestResult]) -> String {
    let mut s = String::from("| op | passed | failed | skipped |\n|---|---:|---:|---:|\n");
    for (op, [p, f, k]) in per_op(results) {
        s.push_str(&format!("| {op} | {p} | {f} | {k} |\n"));
    }
    let (p, f, k) = totals(results);
    s.push_str(&format!("| **all tests** | {p} | {f} | {k} |\n"));
    s
}

/// The expectations file format: one `name status` line per test, then `  # reason` for
/// failures and skips. Sorted by name.
pub fn expectations(results: &[TestResult]) -> String {
    let mut s = String::new();
    for r in results {
        s.push_str(&r.name);
        s.push(' ');
        s.push_str(r.status.as_str());
        if let Some(reason) = &r.reason {
            if r.status != Status::Passed {
                let one_line: String = reason
                    .chars()
                    .map(|c| if c == '\n' { ' ' } else { c })
                    .take(300)
                    .collect();
                s.push_str("  # ");
                s.push_str(&one_line);
            }
        }
        s.push('\n');
    }
    s
}

/// Parses an expectations file into `name → status`.
pub fn parse_expectations(text: &str) -> BTreeMap<String, Status> {
    text.lines()
        .filter_map(|l| {
            let l = l.split("  #").next()?.trim();
            let (name, status) = l.split_once(' ')?;
            Some((name.to_string(), Status::parse(status.trim())?))
        })
        .collect()
}

/// Differences between results and expectations: `(name, expected, actual)`; a test missing
/// on either side counts as a difference.
pub fn regressions(
    results: &[TestResult],
    expected: &BTreeMap<String, Status>,
) -> Vec<(String, Option<Status>, Option<Status>)> {
    let actual: BTreeMap<&str, Status> = results
        .iter()
        .map(|r| (r.name.as_str(), r.status))
        .collect();
    let mut out = Vec::new();
    for (name, &e) in expected {
        match actual.get(name.as_str()) {
            Some(&a) if a == e => {}
            a => out.push((name.clone(), Some(e), a.copied())),
        }
    }
    for (name, &a) in &actual {
        if !expected.contains_key(*name) {
            out.push((name.to_string(), None, Some(a)));
        }
    }
    out
}
