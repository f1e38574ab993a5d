//! Shared helpers of the integration tests: where the test data lives, deterministic random
//! tensors, small graphs, the wgpu device and value comparison.

// Each test binary uses only some of these helpers.
#![allow(dead_code)]

use std::path::PathBuf;

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shared ONNX models (`OPTC_MODELS`, default `../shared/models`).
pub fn models_dir() -> Option<PathBuf> {
    let p = std::env::var_os("OPTC_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/models"));
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!(
            "\n!!!!!!!! WARNING: the shared models folder {} is missing: model tests did NOT run.\n\
             !!!!!!!! Set OPTC_MODELS to the folder holding mlp/, resnet18/, ... (CI always has it).\n",
            p.display()
        );
        None
    }
}

/// One shared model with its first data set.
pub struct SharedModel {
    /// Folder name (`resnet18`…).
    pub name: String,
    /// The imported model.
    pub model: optc_ir::front::onnx::Model,
    /// `test_data_set_0` inputs, in graph-input order.
    pub inputs: Vec<optc_ir::Tensor>,
    /// onnxruntime's outputs for them.
    pub expected: Vec<optc_ir::Tensor>,
}

/// Loads the shared model in folder `dir` with its `test_data_set_0`.
pub fn shared_model(dir: &std::path::Path) -> SharedModel {
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let model =
        optc::model::load(&dir.join("model.onnx")).unwrap_or_else(|e| panic!("{name}: {e}"));
    let set = dir.join("test_data_set_0");
    let inputs = optc::model::read_inputs(&model.graph, &set).unwrap();
    let expected = optc::model::read_outputs(&set, model.graph.outputs().len()).unwrap();
    SharedModel {
        name,
        model,
        inputs,
        expected,
    }
}

/// The 7 shared models, loaded (asserting there are 7); `None`, with a loud warning, when the
/// folder is missing.
pub fn shared_models() -> Option<Vec<SharedModel>> {
    let dir = models_dir()?;
    let tests = optc::conformance::discover(&dir).unwrap();
    assert_eq!(
        tests.len(),
        7,
        "expected the 7 shared models under {}",
        dir.display()
    );
    Some(tests.iter().map(|t| shared_model(t)).collect())
}

impl SharedModel {
    /// Compile options for `target` at `level`, with the data set's input shapes.
    pub fn options(&self, target: optc_runtime::Target, level: u8) -> optc::compile::Options {
        let mut opts = optc::compile::Options::new(target);
        opts.opt_level = level;
        opts.input_shapes = Some(self.inputs.iter().map(|x| x.shape().to_vec()).collect());
        opts
    }

    /// Compares an artifact's outputs with onnxruntime's at the device-model tolerance
    /// (max abs 1e-3, relative L2 1e-4), printing one line per output (`note` appended);
    /// returns the failures.
    pub fn compare_outputs(&self, outs: &[optc_runtime::HostTensor], note: &str) -> Vec<String> {
        self.compare_outputs_within(outs, optc::compare::Tolerance::DEVICE_MODEL, note)
    }

    /// [`Self::compare_outputs`] at tolerance `tol`.
    pub fn compare_outputs_within(
        &self,
        outs: &[optc_runtime::HostTensor],
        tol: optc::compare::Tolerance,
        note: &str,
    ) -> Vec<String> {
        use optc::compare::compare;
        let name = &self.name;
        let mut failures = Vec::new();
        for (i, (o, e)) in outs.iter().zip(&self.expected).enumerate() {
            let a = optc::exec::from_host(o).unwrap();
            let d = compare(&a, e, tol).unwrap_or_else(|m| panic!("{name} output {i}: {m}"));
            eprintln!(
                "{name} output {i}: max abs {:.2e}, rel l2 {:.2e} ({note})",
                d.max_abs_err, d.rel_l2_err
            );
            if !d.within(tol) {
                failures.push(format!("{name} output {i}: {d:?}"));
            }
        }
        failures
    }
}

/// The generated ONNX node tests (`OPTC_NODE_TESTS`, default `.cache/onnx-node`).
pub fn node_tests_dir() -> PathBuf {
    std::env::var_os("OPTC_NODE_TESTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".cache/onnx-node"))
}

/// Runs every generated node test on `backend` and checks the statuses against
/// `tests/conformance/<file>.expected` (rewritten, with the per-op table, under `OPTC_BLESS`).
/// Also requires at least `min_pass` passes.
pub fn check_node_tests(backend: optc::conformance::Backend<'_>, file: &str, min_pass: usize) {
    use optc::conformance::{self, Status};
    let dir = node_tests_dir();
    assert!(
        dir.is_dir(),
        "ONNX node tests not found at {}: run scripts/gen-node-tests.sh (scripts/test.sh does) or set OPTC_NODE_TESTS",
        dir.display()
    );
    let results = conformance::run_all(&dir, backend, None, &|_| {}).unwrap();
    let (p, f, s) = conformance::totals(&results);
    eprintln!("node tests ({file}): {p} passed, {f} failed, {s} skipped");
    let expect_path = root().join(format!("tests/conformance/{file}.expected"));
    if std::env::var_os("OPTC_BLESS").is_some() {
        std::fs::write(&expect_path, conformance::expectations(&results)).unwrap();
        std::fs::write(
            expect_path.with_extension("md"),
            conformance::per_op_markdown(&results),
        )
        .unwrap();
        return;
    }
    let text = std::fs::read_to_string(&expect_path).expect("expectations file");
    let expected = conformance::parse_expectations(&text);
    let diffs = conformance::regressions(&results, &expected);
    let reasons: std::collections::BTreeMap<&str, &str> = results
        .iter()
        .map(|r| (r.name.as_str(), r.reason.as_deref().unwrap_or("")))
        .collect();
    let lines: Vec<String> = diffs
        .iter()
        .map(|(n, e, a)| {
            format!(
                "{n}: expected {}, got {} {}",
                e.map_or("(absent)", Status::as_str),
                a.map_or("(absent)", Status::as_str),
                reasons.get(n.as_str()).unwrap_or(&"")
            )
        })
        .collect();
    assert!(
        diffs.is_empty(),
        "{} conformance changes (re-bless with OPTC_BLESS=1 if intended):\n{}",
        diffs.len(),
        lines.join("\n")
    );
    assert!(p >= min_pass, "only {p} node tests pass on {file}");
}

/// Deterministic values in [-2, 2).
pub fn rand(shape: &[usize], seed: u64) -> optc_ir::Tensor {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
        })
        .collect();
    optc_ir::Tensor::from_vec(shape.to_vec(), v).unwrap()
}

/// The first wgpu adapter; panics (the test fails, it does not skip) when there is none.
pub fn device() -> optc_runtime::wgpu_exec::Device {
    optc_runtime::wgpu_exec::Device::open(None)
        .unwrap_or_else(|e| panic!("{e}: install a Vulkan driver (scripts/setup-vulkan.sh)"))
}

/// Asserts `got` matches `want` element by element within `atol + rtol·|want|` (NaN matches
/// NaN), with the same dtype and shape.
pub fn assert_close(
    name: &str,
    got: &optc_ir::Tensor,
    want: &optc_ir::Tensor,
    rtol: f64,
    atol: f64,
) {
    assert_eq!(got.dtype(), want.dtype(), "{name}");
    assert_eq!(got.shape(), want.shape(), "{name}");
    let (gv, wv) = (got.to_f64_vec(), want.to_f64_vec());
    for (k, (a, b)) in gv.iter().zip(&wv).enumerate() {
        let ok = (a.is_nan() && b.is_nan()) || (a - b).abs() <= atol + rtol * b.abs();
        assert!(ok, "{name}: element {k}: got {a}, want {b}");
    }
}

/// A graph of `ins` (those in `consts` as constants) and one node per `(op, args)` (`args`
/// index the inputs, then earlier nodes' outputs); the last node's output is the graph output.
/// Returns the graph and the fed inputs.
pub fn graph(
    ins: &[optc_ir::Tensor],
    consts: &[usize],
    nodes: &[(optc_ir::Op, Vec<usize>)],
) -> (optc_ir::Graph, Vec<optc_ir::Tensor>) {
    let mut g = optc_ir::Graph::new();
    let mut vals = Vec::new();
    let mut feeds = Vec::new();
    for (k, t) in ins.iter().enumerate() {
        let v = if consts.contains(&k) {
            g.add_const(format!("c{k}"), t.clone()).unwrap()
        } else {
            feeds.push(t.clone());
            g.add_input(
                format!("x{k}"),
                optc_ir::TensorType::fixed(t.dtype(), t.shape()),
            )
            .unwrap()
        };
        vals.push(v);
    }
    for (j, (op, args)) in nodes.iter().enumerate() {
        let (_, outs) = g
            .add_node(
                format!("n{j}"),
                op.clone(),
                args.iter().map(|&a| Some(vals[a])).collect(),
                vec![Some(format!("v{j}"))],
            )
            .unwrap();
        vals.push(outs[0].unwrap());
    }
    g.set_outputs(vec![*vals.last().unwrap()]);
    (g, feeds)
}
