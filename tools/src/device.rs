//! The device-side commands: `compile` (any target: WGSL or PTX), `verify`, `run` (artifacts
//! or models) and `bench` on wgpu (`wgsl`) or CUDA (`sm_XX`), and `inspect --stage kernels`.
//! CUDA devices are opened before compiling, so a machine without a driver or GPU fails fast
//! with exit code 3.

use crate::backend::{Dev, Sess, open_cuda};
use crate::{EXIT_CHECK, EXIT_INPUT, Exit, available_threads, load_inputs, summary};
use anyhow::{Context, Result, bail};
use optc::compare::{Tolerance, compare};
use optc::compile::{Compiled, Options};
use optc::ir::Tensor;
use optc_runtime::{Artifact, HostTensor, Manifest, Target};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The bound a compiled fp32 model must meet against expected outputs: wider when its GEMMs
/// may run in tf32.
pub fn device_tolerance(o: &Options) -> Tolerance {
    if o.allow_tf32 {
        Tolerance::TF32_MODEL
    } else {
        Tolerance::DEVICE_MODEL
    }
}

/// True if `path` is an optc artifact (by its magic bytes).
pub fn is_artifact(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == b"OPTCART\0"
}

/// Which executor the command line asked for (`--backend`); `Any` lets the target decide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// Whatever runs the target (`wgsl` → wgpu, `sm_XX` → CUDA).
    Any,
    /// `--backend wgpu`.
    Wgpu,
    /// `--backend cuda`.
    Cuda,
}

/// The target to compile a model for: `--target`, else `wgsl`; `None` with `--backend cuda` and
/// no `--target` (the CUDA device's own). A target the backend cannot run is exit code 2.
fn model_target(want: Want, target: Option<&str>) -> Result<Option<Target>> {
    let t = target.map(parse_target).transpose()?;
    match (want, t) {
        (Want::Wgpu, Some(t)) if t.is_cuda() => bail!(Exit(
            EXIT_INPUT,
            format!("--backend wgpu runs wgsl, not --target {t} (use --backend cuda)")
        )),
        (Want::Cuda, Some(t)) if !t.is_cuda() => bail!(Exit(
            EXIT_INPUT,
            format!("--backend cuda runs the sm_XX targets, not --target {t}")
        )),
        (Want::Cuda, None) => Ok(None),
        (_, Some(t)) => Ok(Some(t)),
        (_, None) => Ok(Some(Target::Wgsl)),
    }
}

/// Errors (exit code 2) when `--backend` cannot run an artifact of this target.
fn check_artifact_backend(want: Want, a: &Artifact, path: &Path) -> Result<()> {
    let t = a.manifest.target;
    let refused = match want {
        Want::Wgpu => t.is_cuda().then_some("wgpu"),
        Want::Cuda => (!t.is_cuda()).then_some("cuda"),
        Want::Any => None,
    };
    if let Some(b) = refused {
        bail!(Exit(
            EXIT_INPUT,
            format!(
                "{} is a {t} artifact; --backend {b} cannot run it",
                path.display()
            )
        ));
    }
    Ok(())
}

/// For a model: the device when the target is CUDA (opened before compiling, so that a machine
/// without a GPU fails fast) and the target to compile for.
fn early_device(
    path: &Path,
    want: Want,
    target: Option<&str>,
    selector: Option<&str>,
) -> Result<(Option<Dev>, Target)> {
    Ok(match model_target(want, target)? {
        Some(t) if !t.is_cuda() => (None, t),
        Some(t) => {
            let what = format!("{} for {t}", path.display());
            (Some(open_cuda(selector, &what)?), t)
        }
        None => {
            let what = format!("{} with --backend cuda", path.display());
            let d = open_cuda(selector, &what)?;
            let t = d.target()?;
            (Some(d), t)
        }
    })
}

/// The device that runs an artifact of `target`.
fn artifact_device(path: &Path, target: Target, selector: Option<&str>) -> Result<Dev> {
    Dev::open(
        target,
        selector,
        &format!("{target} artifact {}", path.display()),
    )
}

fn parse_target(s: &str) -> Result<Target> {
    s.parse::<Target>().map_err(|e| Exit(EXIT_INPUT, e).into())
}

static OPT_LEVEL: std::sync::atomic::AtomicU8 =
    std::sync::atomic::AtomicU8::new(optc::compile::DEFAULT_OPT_LEVEL);

/// Sets the optimization level (`-O`) of every compilation this command makes.
pub fn set_opt_level(level: u8) {
    OPT_LEVEL.store(level, std::sync::atomic::Ordering::Relaxed);
}

static ALLOW_TF32: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Lets every compilation of this command run f32 MatMuls on tf32 tensor cores
/// (`--allow-tf32`).
pub fn set_allow_tf32(allow: bool) {
    ALLOW_TF32.store(allow, std::sync::atomic::Ordering::Relaxed);
}

fn options(target: Target, shapes: &BTreeMap<String, usize>) -> Options {
    let mut o = Options::new(target);
    o.shapes = shapes.clone();
    o.opt_level = OPT_LEVEL.load(std::sync::atomic::Ordering::Relaxed);
    o.allow_tf32 = ALLOW_TF32.load(std::sync::atomic::Ordering::Relaxed);
    o
}

fn parse_level(s: &str) -> Result<u8> {
    let d = s.trim_start_matches(['O', 'o', '-']);
    match d.parse::<u8>() {
        Ok(l) if l <= 3 => Ok(l),
        _ => bail!(Exit(
            EXIT_INPUT,
            format!("--compare {s}: expected an optimization level O0..O3")
        )),
    }
}

/// `optc inspect --stage optimized`: the optimized graph, its fusion groups and the e-graph
/// stages.
pub fn inspect_optimized(
    path: &Path,
    shapes: &BTreeMap<String, usize>,
    json_out: bool,
) -> Result<u8> {
    let model = optc::model::load(path)?;
    let o = options(Target::Wgsl, shapes);
    let (g, report) =
        optc::compile::optimized_graph(&model.graph, &o).map_err(optc::Error::from)?;
    if json_out {
        let ops = optc::stats::op_histogram(&g);
        println!(
            "{}",
            json!({"stage": "optimized", "model": path.display().to_string(), "opt_level": o.opt_level,
                   "nodes": g.num_nodes(), "ops": ops,
                   "groups": report.as_ref().map(|r| &r.groups),
                   "egraph": report.as_ref().map(|r| &r.stages),
                   "cost_model": report.as_ref().map(|r| &r.cost_model),
                   "optimize_ms": report.as_ref().map(|r| r.ms)})
        );
    } else {
        print!("{}", optc::ir::print::print(&g, "main"));
        if let Some(r) = &report {
            for s in &r.stages {
                // -O3 also runs the ILP extraction: its status, and which answer was kept.
                let ilp = s.ilp.as_ref().map_or_else(String::new, |st| {
                    format!(
                        ", ILP {st} in {:.1} ms ({} kept; greedy {:.0} µs)",
                        s.ilp_ms, s.extractor, s.greedy_cost_us
                    )
                });
                eprintln!(
                    "stage {}: {} e-nodes, {} classes, {} iterations, stop {}, {:.1} ms (+{:.1} ms extraction), cost {:.0} µs{ilp}",
                    s.name,
                    s.nodes,
                    s.classes,
                    s.iterations,
                    s.stop_reason,
                    s.ms,
                    s.extract_ms,
                    s.cost_us
                );
            }
            eprintln!(
                "-O{}: {} nodes -> {}, {} fused kernels, {:.1} ms",
                r.level,
                r.nodes_before,
                r.nodes_after,
                r.groups.len(),
                r.ms
            );
        }
    }
    Ok(0)
}

fn model_name(path: &Path) -> String {
    let p = if path.is_dir() {
        path.to_path_buf()
    } else {
        path.with_extension("")
    };
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into())
}

fn compile_model(
    path: &Path,
    target: Target,
    shapes: &BTreeMap<String, usize>,
) -> Result<(optc::ir::front::onnx::Model, Compiled, f64)> {
    let model = optc::model::load(path)?;
    for k in optc::model::unused_shapes(&model.graph, shapes) {
        eprintln!("note: --shape {k} sizes no dynamic dim of the model's inputs");
    }
    // A leading dim of 1 is batch 1, as users expect; a later one (a sequence length, an image
    // size) set to 1 compiles a different model than meant, or fails far from the cause.
    for (input, axis, sym) in optc::model::defaulted_dims(&model.graph, shapes) {
        if axis > 0 {
            let what = match sym {
                Some(s) if !s.is_empty() && s != "?" => format!("'{s}'"),
                _ => "unknown".to_string(),
            };
            eprintln!(
                "note: input '{input}' dim {axis} ({what}) is set to 1; give its size with \
                 --shape {input}.{axis}=N"
            );
        }
    }
    let t = Instant::now();
    let compiled =
        optc::compile::compile(&model.graph, &model_name(path), &options(target, shapes))
            .map_err(optc::Error::from)?;
    Ok((model, compiled, t.elapsed().as_secs_f64() * 1e3))
}

/// `optc compile`.
pub fn compile_cmd(
    path: &Path,
    target: &str,
    output: Option<&Path>,
    shapes: &BTreeMap<String, usize>,
    emit_dir: Option<&Path>,
    json_out: bool,
) -> Result<u8> {
    let target = parse_target(target)?;
    let (_, compiled, ms) = compile_model(path, target, shapes)?;
    let out: PathBuf = output
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(format!("{}.optc", model_name(path))));
    let artifact = compiled.to_artifact();
    artifact.write(&out).map_err(optc::Error::from)?;
    let bytes = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    if let Some(dir) = emit_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let ext = if target.is_cuda() { "ptx" } else { "wgsl" };
        for k in &compiled.manifest.kernels {
            let f = dir.join(format!("{}.{ext}", k.name));
            std::fs::write(&f, &compiled.sources[k.source as usize])
                .with_context(|| format!("writing {}", f.display()))?;
        }
        let f = dir.join("manifest.json");
        std::fs::write(&f, serde_json::to_string_pretty(&compiled.manifest)?)
            .with_context(|| format!("writing {}", f.display()))?;
    }
    let m = &compiled.manifest;
    if json_out {
        println!(
            "{}",
            json!({"target": target.name(), "output": out.display().to_string(), "kernels": m.kernels.len(),
                   "launches": m.launches.len(), "artifact_bytes": bytes, "compile_ms": ms,
                   "arena_bytes": m.arena_bytes, "weights_bytes": m.weights_bytes,
                   "live_peak_bytes": m.memory.live_peak_bytes, "intermediates_bytes": m.memory.intermediates_bytes,
                   "passes": compiled.passes, "opt_level": compiled.optimized.as_ref().map_or(0, |r| r.level),
                   "fused_kernels": compiled.optimized.as_ref().map(|r| r.groups.len()),
                   "egraph": compiled.optimized.as_ref().map(|r| &r.stages),
                   "optimize_ms": compiled.optimized.as_ref().map(|r| r.ms)})
        );
    } else {
        eprintln!(
            "compiled {} for {} in {ms:.1} ms: {} kernels, {} launches, arena {:.2} MB (liveness bound {:.2} MB, all intermediates {:.2} MB), weights {:.2} MB",
            path.display(),
            target,
            m.kernels.len(),
            m.launches.len(),
            m.arena_bytes as f64 / 1e6,
            m.memory.live_peak_bytes as f64 / 1e6,
            m.memory.intermediates_bytes as f64 / 1e6,
            m.weights_bytes as f64 / 1e6
        );
        println!("{}", out.display());
    }
    Ok(0)
}

/// Reads inputs for an artifact from a folder (`input_<i>.pb` or .npy), or makes seeded random
/// ones from the manifest.
fn artifact_inputs(m: &Manifest, dir: Option<&Path>, seed: u64) -> Result<Vec<HostTensor>> {
    let tensors = match dir {
        Some(d) => m
            .inputs
            .iter()
            .enumerate()
            .map(|(i, info)| optc::model::read_input(d, i, &info.name))
            .collect::<optc::Result<Vec<_>>>()?,
        None => {
            let specs: Vec<_> = m
                .inputs
                .iter()
                .map(|info| {
                    let shape = info.shape.iter().map(|&d| d as usize).collect();
                    (optc::exec::ir_dtype(info.dtype), shape)
                })
                .collect();
            optc::model::random_tensors(&specs, seed)?
        }
    };
    Ok(tensors
        .iter()
        .map(optc::exec::to_host)
        .collect::<optc::Result<_>>()?)
}

/// `optc run` on a device: an artifact (on the executor of its target), or a model compiled on
/// the fly for `--target` (default `wgsl`; with `--backend cuda`, the CUDA device's target).
#[allow(clippy::too_many_arguments)]
pub fn run_device(
    path: &Path,
    want: Want,
    target: Option<&str>,
    cuda_graph: bool,
    selector: Option<&str>,
    inputs: Option<&Path>,
    out_dir: Option<&Path>,
    npy: bool,
    seed: u64,
    shapes: &BTreeMap<String, usize>,
    json_out: bool,
) -> Result<u8> {
    let (artifact, host, dev) = if is_artifact(path) {
        let a = Artifact::load(path).map_err(optc::Error::from)?;
        check_artifact_backend(want, &a, path)?;
        if let Some(t) = target {
            a.check_target(parse_target(t)?)
                .map_err(optc::Error::from)?;
        }
        let dev = artifact_device(path, a.manifest.target, selector)?;
        let h = artifact_inputs(&a.manifest, inputs, seed)?;
        (a, h, dev)
    } else {
        let (early, target) = early_device(path, want, target, selector)?;
        let model = optc::model::load(path)?;
        let ins = load_inputs(&model, inputs, seed, shapes)?;
        let mut o = options(target, shapes);
        o.input_shapes = Some(ins.iter().map(|t| t.shape().to_vec()).collect());
        let (a, _) = optc::exec::compile_artifact(&model.graph, &model_name(path), &o)?;
        let h = optc::exec::manifest_inputs(&model.graph, &a.manifest, &ins)?;
        let dev = match early {
            Some(d) => d,
            None => Dev::open(target, selector, &path.display().to_string())?,
        };
        (a, h, dev)
    };
    let mut s = dev.session(&artifact, cuda_graph)?;
    let start = Instant::now();
    let outs = s
        .run(&host)
        .map_err(|e| Exit(crate::backend::exit_code(&e), e.to_string()))?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    let tensors: Vec<Tensor> = outs
        .iter()
        .map(optc::exec::from_host)
        .collect::<optc::Result<_>>()?;
    let names: Vec<String> = artifact
        .manifest
        .outputs
        .iter()
        .map(|o| o.name.clone())
        .collect();
    if let Some(dir) = out_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for (i, (t, name)) in tensors.iter().zip(&names).enumerate() {
            optc::io::save_tensor(&dir.join(format!("output_{i}.pb")), name, t)?;
            if npy {
                optc::io::save_tensor(&dir.join(format!("output_{i}.npy")), name, t)?;
            }
        }
    }
    let outputs: Vec<serde_json::Value> = tensors
        .iter()
        .zip(&names)
        .map(|(t, n)| json!({"name": n, "dtype": t.dtype().name(), "shape": t.shape(), "summary": summary(t)}))
        .collect();
    if json_out {
        println!(
            "{}",
            json!({"model": path.display().to_string(), "target": artifact.manifest.target.name(), "backend": dev.backend(),
                   "device": dev.name(), "device_info": dev.facts(), "ms": ms, "cuda_graph": s.cuda_graph(),
                   "jit_ms": s.jit_ms().map(|j| j.0), "outputs": outputs})
        );
    } else {
        for o in &outputs {
            println!(
                "{} {} {} {}",
                o["name"].as_str().unwrap_or(""),
                o["dtype"].as_str().unwrap_or(""),
                o["shape"],
                o["summary"]
            );
        }
        eprintln!("ran in {ms:.2} ms on {} ({})", dev.name(), dev.backend());
    }
    Ok(0)
}

/// `optc verify`.
#[allow(clippy::too_many_arguments)]
pub fn verify_cmd(
    path: &Path,
    target: &str,
    data: Option<&Path>,
    selector: Option<&str>,
    seed: u64,
    shapes: &BTreeMap<String, usize>,
    per_layer: bool,
    json_out: bool,
) -> Result<u8> {
    let (early, target) = early_device(path, Want::Any, Some(target), selector)?;
    let model = optc::model::load(path)?;
    let g = &model.graph;
    let ins = load_inputs(&model, data, seed, shapes)?;
    let expected = match data {
        Some(d) => {
            let n = (0..)
                .take_while(|i| d.join(format!("output_{i}.pb")).is_file())
                .count();
            if n > 0 {
                Some(optc::model::read_outputs(d, n)?)
            } else {
                None
            }
        }
        None => None,
    };
    let mut o = options(target, shapes);
    o.input_shapes = Some(ins.iter().map(|t| t.shape().to_vec()).collect());
    let dev = match early {
        Some(d) => d,
        None => Dev::open(target, selector, &path.display().to_string())?,
    };
    // The graph to compile: with --per-layer, every computed value becomes an output.
    let (graph, n_real) = if per_layer {
        (with_all_outputs(g), g.outputs().len())
    } else {
        (g.clone(), g.outputs().len())
    };
    let (artifact, _) = optc::exec::compile_artifact(&graph, &model_name(path), &o)?;
    let mut s = dev.session(&artifact, false)?;
    let outs = s
        .run(&optc::exec::manifest_inputs(g, &artifact.manifest, &ins)?)
        .map_err(|e| Exit(EXIT_CHECK, e.to_string()))?;
    let device_out: Vec<Tensor> = outs
        .iter()
        .map(optc::exec::from_host)
        .collect::<optc::Result<_>>()?;
    let mut reference: BTreeMap<optc::ir::ValueId, Tensor> = BTreeMap::new();
    let ref_out = optc::ir::interp::run_observed(g, &ins, |v, t| {
        if per_layer {
            reference.insert(v, t.clone());
        }
    })
    .map_err(optc::Error::from)?;
    let tol = device_tolerance(&o);
    let mut ok = true;
    let mut rows = Vec::new();
    for (i, v) in g.outputs().iter().enumerate() {
        let name = &g.value(*v).name;
        let vs_ref = compare(&device_out[i], &ref_out[i], tol)
            .map_err(|e| Exit(EXIT_CHECK, format!("output '{name}': {e}")))?;
        let vs_exp = match &expected {
            Some(e) if i < e.len() => Some(
                compare(&device_out[i], &e[i], tol)
                    .map_err(|e| Exit(EXIT_CHECK, format!("output '{name}' vs expected: {e}")))?,
            ),
            _ => None,
        };
        let good = vs_ref.within(tol) && vs_exp.as_ref().is_none_or(|d| d.within(tol));
        ok &= good;
        let shown = vs_exp.clone().unwrap_or_else(|| vs_ref.clone());
        rows.push(json!({"name": name, "max_abs_err": shown.max_abs_err, "rel_l2_err": shown.rel_l2_err, "cosine": shown.cosine,
                         "vs_reference": vs_ref, "vs_expected": vs_exp, "ok": good}));
    }
    let mut first_bad = serde_json::Value::Null;
    if per_layer {
        // Values in execution order; the first whose relative error exceeds 10x the bound.
        for (k, v) in graph.outputs().iter().enumerate().skip(n_real) {
            let Some(r) = reference.get(v) else { continue };
            let Ok(d) = compare(&device_out[k], r, tol) else {
                continue;
            };
            if !d.within(tol) {
                let name = &graph.value(*v).name;
                let node = graph.value(*v).producer.map(|(n, _)| graph.node(n));
                first_bad = json!({"value": name, "node": node.map(|n| n.name.clone()), "op": node.map(|n| n.op.name()),
                                   "max_abs_err": d.max_abs_err, "rel_l2_err": d.rel_l2_err});
                break;
            }
        }
    }
    if json_out {
        println!(
            "{}",
            json!({"ok": ok, "target": target.name(), "backend": dev.backend(), "device": dev.name(), "outputs": rows, "first_bad_layer": first_bad})
        );
    } else {
        for r in &rows {
            println!(
                "{} {}: max abs err {:.3e}, rel L2 {:.3e}, cosine {:.6}",
                if r["ok"].as_bool() == Some(true) {
                    "ok  "
                } else {
                    "FAIL"
                },
                r["name"].as_str().unwrap_or(""),
                r["max_abs_err"].as_f64().unwrap_or(f64::NAN),
                r["rel_l2_err"].as_f64().unwrap_or(f64::NAN),
                r["cosine"].as_f64().unwrap_or(f64::NAN)
            );
        }
        if per_layer {
            println!("first bad layer: {first_bad}");
        }
        let bound = match tol {
            Tolerance::Norms { max_abs, rel_l2 } => {
                format!("max abs {max_abs:.0e}, rel L2 {rel_l2:.0e}")
            }
            Tolerance::AllClose { rtol, atol } => format!("rtol {rtol:.0e}, atol {atol:.0e}"),
        };
        eprintln!(
            "{} on {} (bound: {bound})",
            if ok { "verified" } else { "MISMATCH" },
            dev.name()
        );
    }
    Ok(if ok { 0 } else { EXIT_CHECK })
}

/// `g` with every value a node computes added to the graph outputs (after the real ones).
fn with_all_outputs(g: &optc::ir::Graph) -> optc::ir::Graph {
    let mut g2 = g.clone();
    let mut outs = g.outputs().to_vec();
    if let Some(order) = g.topo_order() {
        for n in order {
            for v in g.node(n).outputs.iter().flatten() {
                if !outs.contains(v) {
                    outs.push(*v);
                }
            }
        }
    }
    g2.set_outputs(outs);
    g2
}
/// `optc inspect --stage kernels` (a model is compiled first).
pub fn inspect_kernels(
    path: &Path,
    target: &str,
    shapes: &BTreeMap<String, usize>,
    json_out: bool,
) -> Result<u8> {
    let (m, sources) = if is_artifact(path) {
        let a = Artifact::load(path).map_err(optc::Error::from)?;
        (a.manifest.clone(), a.sources.clone())
    } else {
        let (_, c, _) = compile_model(path, parse_target(target)?, shapes)?;
        (c.manifest, c.sources)
    };
    let mut per_kernel: BTreeMap<&str, usize> = BTreeMap::new();
    for l in &m.launches {
        *per_kernel
            .entry(m.kernels[l.kernel as usize].name.as_str())
            .or_default() += 1;
    }
    if json_out {
        println!(
            "{}",
            json!({"stage": "kernels", "target": m.target.name(), "model": m.model, "nodes": null,
                   "kernels": m.kernels.len(), "launches": m.launches.iter().map(|l| json!({"kernel": m.kernels[l.kernel as usize].name, "grid": l.grid, "label": l.label})).collect::<Vec<_>>(),
                   "arena_bytes": m.arena_bytes, "live_peak_bytes": m.memory.live_peak_bytes,
                   "intermediates_bytes": m.memory.intermediates_bytes, "weights_bytes": m.weights_bytes,
                   "source_bytes": sources.iter().map(String::len).sum::<usize>(),
                   "requirements": m.requirements, "egraph": null})
        );
    } else {
        println!(
            "{} for {}: {} kernels, {} launches",
            m.model,
            m.target,
            m.kernels.len(),
            m.launches.len()
        );
        for l in &m.launches {
            let k = &m.kernels[l.kernel as usize];
            println!(
                "  {:<40} grid {:?} wg {:?}  {}",
                k.name, l.grid, k.workgroup, l.label
            );
        }
        println!(
            "arena {} bytes (liveness lower bound {}, sum of intermediates {}), weights {} bytes",
            m.arena_bytes, m.memory.live_peak_bytes, m.memory.intermediates_bytes, m.weights_bytes
        );
    }
    Ok(0)
}

/// `optc bench` extras: a second optimization level to compare with, and a baseline file.
pub struct BenchExtra<'a> {
    /// Level to compare with (`O0`).
    pub compare: Option<&'a str>,
    /// A saved `bench --json` result.
    pub baseline: Option<&'a Path>,
    /// Allowed slowdown against the baseline.
    pub threshold: f64,
}

struct Timing {
    median_ms: f64,
    min_ms: f64,
    upload_us: f64,
    readback_us: f64,
    submit_us: f64,
    load_ms: f64,
    first_run_ms: f64,
    device_ms: Option<f64>,
    launches: usize,
    kernels: Vec<(String, usize, Option<f64>)>,
    /// PTX JIT wall time and the driver's own JIT figure (CUDA).
    jit_ms: Option<(f64, f64)>,
    cuda_graph: bool,
}

/// Times artifacts on one device: each is loaded and warmed up, then their timed runs
/// alternate (run r of every artifact before run r + 1 of any), so that a ratio between them
/// (`--compare`) sees the same machine load on both sides — on a shared machine a slow phase
/// of a few seconds would otherwise land on one side only.
fn time_artifacts(
    dev: &Dev,
    list: &[(&Artifact, &[HostTensor])],
    runs: usize,
    cuda_graph: bool,
) -> Result<Vec<Timing>> {
    let mut sessions = Vec::with_capacity(list.len());
    for (artifact, host) in list {
        let t = Instant::now();
        let mut s: Sess = dev.session(artifact, cuda_graph)?;
        let load_ms = t.elapsed().as_secs_f64() * 1e3;
        // The first run includes the driver's JIT of every kernel.
        let t = Instant::now();
        s.run(host).map_err(|e| Exit(EXIT_CHECK, e.to_string()))?;
        let first_run_ms = t.elapsed().as_secs_f64() * 1e3;
        for _ in 0..2 {
            s.run(host).map_err(|e| Exit(EXIT_CHECK, e.to_string()))?;
        }
        sessions.push((s, load_ms, first_run_ms, Vec::with_capacity(runs)));
    }
    for _ in 0..runs {
        for ((s, _, _, timings), (_, host)) in sessions.iter_mut().zip(list) {
            let (_, t) = s
                .run_timed(host)
                .map_err(|e| Exit(EXIT_CHECK, e.to_string()))?;
            timings.push(t);
        }
    }
    let med = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut out = Vec::with_capacity(list.len());
    for ((mut s, load_ms, first_run_ms, timings), (artifact, host)) in
        sessions.into_iter().zip(list)
    {
        let profile = s
            .profile(host, runs.min(20))
            .map_err(|e| Exit(EXIT_CHECK, e.to_string()))?;
        // Per-kernel table: launches of the same kernel summed per run.
        let mut per_kernel: BTreeMap<String, (usize, f64, bool)> = BTreeMap::new();
        for l in &profile.launches {
            let e = per_kernel.entry(l.kernel.clone()).or_insert((0, 0.0, true));
            e.0 += 1;
            match l.median_us {
                Some(us) => e.1 += us,
                None => e.2 = false,
            }
        }
        let mut kernels: Vec<(String, usize, Option<f64>)> = per_kernel
            .into_iter()
            .map(|(k, (n, us, has))| (k, n, has.then_some(us)))
            .collect();
        kernels.sort_by(|a, b| {
            b.2.unwrap_or(0.0)
                .total_cmp(&a.2.unwrap_or(0.0))
                .then(a.0.cmp(&b.0))
        });
        out.push(Timing {
            median_ms: med(timings.iter().map(|t| t.total_us / 1e3).collect()),
            min_ms: timings
                .iter()
                .map(|t| t.total_us / 1e3)
                .fold(f64::INFINITY, f64::min),
            upload_us: med(timings.iter().map(|t| t.upload_us).collect()),
            readback_us: med(timings.iter().map(|t| t.readback_us).collect()),
            submit_us: med(timings.iter().map(|t| t.submit_wait_us).collect()),
            load_ms,
            first_run_ms,
            device_ms: profile.median_device_us.map(|u| u / 1e3),
            launches: artifact.manifest.launches.len(),
            kernels,
            jit_ms: s.jit_ms(),
            cuda_graph: s.cuda_graph(),
        });
    }
    Ok(out)
}

/// Slowdowns against a saved `bench --json` result: the model's median, and every kernel
/// (by name) that took at least 1% of the baseline's device time.
fn regressions(base: &serde_json::Value, t: &Timing, threshold: f64) -> Vec<String> {
    let mut out = Vec::new();
    let limit = 1.0 + threshold;
    if let Some(b) = base["median_ms"].as_f64() {
        if t.median_ms > b * limit {
            out.push(format!(
                "model median {:.3} ms vs baseline {b:.3} ms (+{:.0}%)",
                t.median_ms,
                (t.median_ms / b - 1.0) * 100.0
            ));
        }
    }
    let total_us = base["device_ms"].as_f64().map_or(0.0, |d| d * 1e3);
    if let Some(ks) = base["kernels"].as_array() {
        for k in ks {
            let (Some(name), Some(bus)) = (k["name"].as_str(), k["median_us"].as_f64()) else {
                continue;
            };
            if bus < 0.01 * total_us {
                continue;
            }
            if let Some((_, _, Some(us))) = t.kernels.iter().find(|(n, _, _)| n == name) {
                if *us > bus * limit {
                    out.push(format!(
                        "kernel {name}: {us:.1} µs vs baseline {bus:.1} µs (+{:.0}%)",
                        (us / bus - 1.0) * 100.0
                    ));
                }
            }
        }
    }
    out
}

/// `optc bench --target T` (or `--backend wgpu|cuda`, or on an artifact).
#[allow(clippy::too_many_arguments)]
pub fn bench_device(
    path: &Path,
    want: Want,
    target: Option<&str>,
    cuda_graph: bool,
    selector: Option<&str>,
    runs: usize,
    inputs: Option<&Path>,
    shapes: &BTreeMap<String, usize>,
    json_out: bool,
    extra: &BenchExtra<'_>,
) -> Result<u8> {
    let base = match extra.baseline {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading baseline {}", p.display()))?;
            Some(
                serde_json::from_str::<serde_json::Value>(&text)
                    .map_err(|e| Exit(EXIT_INPUT, format!("baseline {}: {e}", p.display())))?,
            )
        }
        None => None,
    };
    let compare_level = extra.compare.map(parse_level).transpose()?;
    let mut other: Option<(Artifact, Vec<HostTensor>)> = None;
    let (artifact, host, compile_ms, dev) = if is_artifact(path) {
        if compare_level.is_some() {
            bail!(Exit(
                EXIT_INPUT,
                "--compare needs a model, not an artifact".to_string()
            ));
        }
        let a = Artifact::load(path).map_err(optc::Error::from)?;
        check_artifact_backend(want, &a, path)?;
        if let Some(t) = target {
            a.check_target(parse_target(t)?)
                .map_err(optc::Error::from)?;
        }
        let dev = artifact_device(path, a.manifest.target, selector)?;
        let h = artifact_inputs(&a.manifest, inputs, 0)?;
        (a, h, None, dev)
    } else {
        let (early, target) = early_device(path, want, target, selector)?;
        let model = optc::model::load(path)?;
        let ins = load_inputs(&model, inputs, 0, shapes)?;
        let mut o = options(target, shapes);
        o.input_shapes = Some(ins.iter().map(|t| t.shape().to_vec()).collect());
        let t = Instant::now();
        let (a, _) = optc::exec::compile_artifact(&model.graph, &model_name(path), &o)?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let h = optc::exec::manifest_inputs(&model.graph, &a.manifest, &ins)?;
        if let Some(l) = compare_level {
            o.opt_level = l;
            let (b, _) = optc::exec::compile_artifact(&model.graph, &model_name(path), &o)?;
            let hb = optc::exec::manifest_inputs(&model.graph, &b.manifest, &ins)?;
            other = Some((b, hb));
        }
        let dev = match early {
            Some(d) => d,
            None => Dev::open(target, selector, &path.display().to_string())?,
        };
        (a, h, Some(ms), dev)
    };
    let target = artifact.manifest.target;
    let runs = runs.max(20);
    let mut list: Vec<(&Artifact, &[HostTensor])> = vec![(&artifact, &host)];
    if let Some((b, hb)) = &other {
        list.push((b, hb));
    }
    let mut timed = time_artifacts(&dev, &list, runs, cuda_graph)?.into_iter();
    let t = timed.next().expect("one timing per artifact");
    let cmp = timed.next();
    // An artifact does not record the level it was compiled at.
    let level = compile_ms.map(|_| OPT_LEVEL.load(std::sync::atomic::Ordering::Relaxed));
    let level_s = level.map_or("(artifact)".to_string(), |l| format!("-O{l}"));
    let regressed = base
        .as_ref()
        .map(|b| regressions(b, &t, extra.threshold))
        .unwrap_or_default();
    if json_out {
        let compare = cmp.as_ref().map(|c| {
            json!({"level": compare_level, "median_ms": c.median_ms, "launches": c.launches,
                   "device_ms": c.device_ms, "speedup": c.median_ms / t.median_ms})
        });
        println!(
            "{}",
            json!({"model": path.display().to_string(), "target": target.name(), "backend": dev.backend(), "device": dev.name(),
                   "device_info": dev.facts(), "cuda_graph": t.cuda_graph,
                   "jit_ms": t.jit_ms.map(|j| j.0), "jit_driver_ms": t.jit_ms.map(|j| j.1),
                   "opt_level": level, "launches": t.launches,
                   "median_ms": t.median_ms, "min_ms": t.min_ms, "runs": runs, "compile_ms": compile_ms, "load_ms": t.load_ms,
                   "first_run_ms": t.first_run_ms, "upload_us": t.upload_us, "submit_wait_us": t.submit_us, "readback_us": t.readback_us,
                   "device_ms": t.device_ms, "threads": available_threads(),
                   "kernels": t.kernels.iter().map(|(k, n, us)| json!({"name": k, "launches": n, "median_us": us})).collect::<Vec<_>>(),
                   "compare": compare, "regressions": base.as_ref().map(|_| &regressed)})
        );
    } else {
        println!(
            "{} {level_s}: median {:.3} ms, min {:.3} ms over {runs} runs on {}, {} launches (upload {:.0} µs, submit+wait {:.0} µs, readback {:.0} µs)",
            path.display(),
            t.median_ms,
            t.min_ms,
            dev.name(),
            t.launches,
            t.upload_us,
            t.submit_us,
            t.readback_us
        );
        match t.jit_ms {
            Some((jit, driver)) => println!(
                "compile {} ms, load {:.1} ms (PTX JIT {jit:.1} ms, driver-reported {driver:.1} ms), first run {:.1} ms{}",
                compile_ms.map_or("-".to_string(), |m| format!("{m:.1}")),
                t.load_ms,
                t.first_run_ms,
                if t.cuda_graph {
                    " (with CUDA graph capture; later runs replay it)"
                } else {
                    ""
                }
            ),
            None => println!(
                "compile {} ms, load {:.1} ms (pipelines), first run {:.1} ms (driver JIT)",
                compile_ms.map_or("-".to_string(), |m| format!("{m:.1}")),
                t.load_ms,
                t.first_run_ms
            ),
        }
        if let (Some(c), Some(l)) = (&cmp, compare_level) {
            println!(
                "-O{l}: median {:.3} ms, {} launches (runs interleaved with {level_s}'s) -> speedup of {level_s} over -O{l}: {:.2}x",
                c.median_ms,
                c.launches,
                c.median_ms / t.median_ms
            );
        }
        if let Some(d) = t.device_ms {
            println!("device time {d:.3} ms; slowest kernels:");
        }
        for (k, n, us) in t.kernels.iter().take(15) {
            println!(
                "  {:>10} µs  {:>3}x  {k}",
                us.map_or("-".into(), |u| format!("{u:.1}")),
                n
            );
        }
        for r in &regressed {
            eprintln!("regression: {r}");
        }
    }
    if !regressed.is_empty() {
        return Ok(1);
    }
    Ok(0)
}
