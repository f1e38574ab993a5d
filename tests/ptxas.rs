//! The PTX backend checked by NVIDIA's assembler: every shared model (../shared/models, or
//! `$OPTC_MODELS`) compiled for sm_80, sm_86, sm_89 and sm_90, each kernel written to a temp
//! folder as `<kernel>.ptx` (what `optc compile --emit-dir` writes) and assembled with
//! `ptxas -arch=sm_XX`; and every distinct kernel of the ONNX node tests that pass on wgpu
//! (`tests/conformance/wgpu.expected`) compiled for sm_89 at -O0 and at the default level and
//! assembled likewise.
//!
//! Fails (does not skip) when ptxas is missing: `scripts/setup-ptxas.sh` installs it into
//! `.venv` (CI runs it); `$OPTC_PTXAS` overrides the path. Any ptxas error fails the test.

mod common;

use optc_codegen::ptx::PtxTarget;
use optc_codegen::ptxas;
use optc_runtime::Target;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn ptxas_bin() -> PathBuf {
    ptxas::find(&common::root()).unwrap_or_else(|| {
        panic!(
            "ptxas not found ($OPTC_PTXAS, {}/.venv, PATH): run scripts/setup-ptxas.sh",
            common::root().display()
        )
    })
}

fn temp_dir(what: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("optc-ptxas-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Assembles `files` in batches of at most `batch` per ptxas run, two runs at a time; returns
/// every failure.
fn assemble(bin: &Path, files: &[PathBuf], t: PtxTarget, dir: &Path, batch: usize) -> Vec<String> {
    let chunks: Vec<&[PathBuf]> = files.chunks(batch.max(1)).collect();
    let failures = std::sync::Mutex::new(Vec::new());
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(chunk) = chunks.get(i) else { break };
                    let out = dir.join(format!("batch{i}_{}.cubin", t.name()));
                    if let Err(e) = ptxas::assemble(bin, chunk, t, &out) {
                        failures.lock().unwrap().push(e.to_string());
                    }
                }
            });
        }
    });
    failures.into_inner().unwrap()
}

#[test]
fn shared_models_compile_to_ptx_that_ptxas_accepts() {
    let bin = ptxas_bin();
    let Some(dir) = common::models_dir() else {
        return;
    };
    let tests = optc::conformance::discover(&dir).unwrap();
    assert_eq!(
        tests.len(),
        7,
        "expected the 7 shared models under {}",
        dir.display()
    );
    let tmp = temp_dir("models");
    let targets = [Target::Sm80, Target::Sm86, Target::Sm89, Target::Sm90];
    let mut failures = Vec::new();
    let (mut total, mut ok) = (0usize, 0usize);
    eprintln!("model          target  kernels  launches  compile_ms  ptxas_ms  ptxas");
    for t in tests {
        let name = t.file_name().unwrap().to_string_lossy().into_owned();
        let model = optc::model::load(&t.join("model.onnx")).unwrap();
        let inputs = optc::model::read_inputs(&model.graph, &t.join("test_data_set_0")).unwrap();
        for target in targets {
            let ptx_target = optc::compile::ptx_target(target).unwrap();
            let mut opts = optc::compile::Options::new(target);
            opts.input_shapes = Some(inputs.iter().map(|x| x.shape().to_vec()).collect());
            let start = Instant::now();
            let compiled = match optc::compile::compile(&model.graph, &name, &opts) {
                Ok(c) => c,
                Err(e) => {
                    failures.push(format!("{name} {target}: {e}"));
                    continue;
                }
            };
            let compile_ms = start.elapsed().as_secs_f64() * 1e3;
            assert_eq!(compiled.manifest.target, target);
            let out = tmp.join(&name).join(target.name());
            std::fs::create_dir_all(&out).unwrap();
            let mut files = Vec::new();
            for k in &compiled.manifest.kernels {
                let src = &compiled.sources[k.source as usize];
                assert!(src.contains(&format!(".target {}\n", target.name())));
                assert!(src.contains(&format!(".visible .entry {}(", k.name)));
                let f = out.join(format!("{}.ptx", k.name));
                std::fs::write(&f, src).unwrap();
                files.push(f);
            }
            let start = Instant::now();
            let errs = assemble(&bin, &files, ptx_target, &out, 16);
            let ptxas_ms = start.elapsed().as_secs_f64() * 1e3;
            let n = files.len();
            total += n;
            if errs.is_empty() {
                ok += n;
            }
            eprintln!(
                "{name:<14} {:<7} {n:>7}  {:>8}  {compile_ms:>10.0}  {ptxas_ms:>8.0}  {}",
                target.name(),
                compiled.manifest.launches.len(),
                if errs.is_empty() { "ok" } else { "FAILED" }
            );
            failures.extend(errs.into_iter().map(|e| format!("{name} {target}: {e}")));
        }
    }
    eprintln!(
        "ptxas accepted {ok} of {total} kernels (7 models x {} targets)",
        targets.len()
    );
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn node_test_kernels_assemble_for_sm89() {
    let bin = ptxas_bin();
    let dir = common::node_tests_dir();
    assert!(
        dir.is_dir(),
        "ONNX node tests not found at {}: run scripts/gen-node-tests.sh or set OPTC_NODE_TESTS",
        dir.display()
    );
    // The node tests that compile and pass on wgpu: their kernels cover every template.
    let expected = std::fs::read_to_string(common::root().join("tests/conformance/wgpu.expected"))
        .expect("wgpu expectations");
    let passing: Vec<&str> = expected
        .lines()
        .filter_map(|l| l.strip_suffix(" passed"))
        .collect();
    assert!(
        passing.len() > 1000,
        "only {} passing node tests",
        passing.len()
    );
    let tmp = temp_dir("nodes");
    let start = Instant::now();
    let mut files = Vec::new();
    let mut failures = Vec::new();
    let mut other = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let default_level = optc::compile::Options::new(Target::Sm89).opt_level;
    for (i, name) in passing.iter().enumerate() {
        let t = dir.join(name);
        let model = optc::model::load(&t.join("model.onnx")).unwrap();
        let inputs = optc::model::read_inputs(&model.graph, &t.join("test_data_set_0")).unwrap();
        // Unoptimized (every single-op template) and at the default level (fused kernels).
        for level in [0, default_level] {
            let mut opts = optc::compile::Options::new(Target::Sm89);
            opts.opt_level = level;
            opts.input_shapes = Some(inputs.iter().map(|x| x.shape().to_vec()).collect());
            for v in optc::compile::shape_inputs(&model.graph) {
                if let Some(k) = model.graph.inputs().iter().position(|&x| x == v) {
                    opts.const_inputs
                        .insert(model.graph.value(v).name.clone(), inputs[k].clone());
                }
            }
            let compiled = match optc::compile::compile(&model.graph, name, &opts) {
                Ok(c) => c,
                // The PTX printer's refusals (`sm_89: kernel ...`) fail this test; other compile
                // errors are the conformance tests' business and only reported here.
                Err(optc::compile::CompileError::Internal(m)) if m.starts_with("sm_89: ") => {
                    failures.push(format!("{name} -O{level}: {m}"));
                    continue;
                }
                Err(e) => {
                    other.push(format!("{name} -O{level}: {e}"));
                    continue;
                }
            };
            for k in &compiled.manifest.kernels {
                let src = &compiled.sources[k.source as usize];
                // Entry names are unique within a model: compare texts without the name, and
                // prefix the test index and level for one ptxas run.
                if !seen.insert(src.replace(&k.name, "K")) {
                    continue;
                }
                let unique = format!("t{i}_o{level}_{}", k.name);
                let src = src.replacen(
                    &format!(".entry {}(", k.name),
                    &format!(".entry {unique}("),
                    1,
                );
                let f = tmp.join(format!("{unique}.ptx"));
                std::fs::write(&f, src).unwrap();
                files.push(f);
            }
        }
    }
    if !other.is_empty() {
        eprintln!(
            "\n!!!!!!!! {} node-test compiles failed outside the PTX printer (the conformance tests own them):\n{}\n",
            other.len(),
            other.join("\n")
        );
    }
    let compile_s = start.elapsed().as_secs_f64();
    let start = Instant::now();
    failures.extend(assemble(&bin, &files, PtxTarget::Sm89, &tmp, 128));
    eprintln!(
        "{} node tests at -O0 and the default level: {} distinct kernels compiled in {compile_s:.1} s, assembled for sm_89 in {:.1} s",
        passing.len(),
        files.len(),
        start.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
