//! The `optc` command-line tool: `compile`, `run`, `verify`, `bench`, `inspect` and
//! `conformance`, on the reference interpreter or compiled to WGSL and run through wgpu. See
//! `../shared/docs/design.md` §2 for the CLI contract and exit codes.

mod backend;
mod device;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use optc::conformance::{self, Backend};
use optc::ir::Tensor;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// Exit code: a check failed.
pub(crate) const EXIT_CHECK: u8 = 1;
/// Exit code: bad input or unsupported model.
pub(crate) const EXIT_INPUT: u8 = 2;
/// Exit code: no usable device.
pub(crate) const EXIT_DEVICE: u8 = 3;

#[derive(Parser)]
#[command(
    name = "optc",
    version,
    about = "Ahead-of-time GPU kernel compiler for ONNX models"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum BackendArg {
    /// The CPU reference interpreter.
    Reference,
    /// Compiled to WGSL, run through wgpu (Vulkan/Metal/DX12; lavapipe on CPU machines).
    Wgpu,
    /// Compiled to PTX, run by the CUDA driver (needs an NVIDIA GPU and driver).
    Cuda,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Stage {
    /// The imported graph.
    Import,
    /// After the optimizer (`-O`): the graph, fusion groups and e-graph stages.
    Optimized,
    /// Generated kernels and launches (compiles for --target).
    Kernels,
}

#[derive(Subcommand)]
enum Cmd {
    /// Compile a model into one artifact file.
    Compile {
        /// Optimization level: 0 one kernel per op, 1 canonicalize, 2 (default) and 3 fuse.
        #[arg(short = 'O', default_value_t = optc::compile::DEFAULT_OPT_LEVEL, value_parser = clap::value_parser!(u8).range(0..=3))]
        opt_level: u8,
        /// PTX targets: run f32 MatMuls on tf32 tensor cores (~1e-3 relative error).
        #[arg(long)]
        allow_tf32: bool,
        /// An ONNX model (or a folder holding model.onnx).
        model: PathBuf,
        /// Target: wgsl, sm_80, sm_86, sm_89, sm_90, sm_90a.
        #[arg(long)]
        target: String,
        /// Output artifact (default: the model's file stem + .optc in the current folder).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Dim sizes: a symbolic dim by name (`--shape batch=4`) or any dim of an input by
        /// position (`--shape x.2=48`); unlisted ones are 1.
        #[arg(long, value_parser = parse_dim)]
        shape: Vec<(String, usize)>,
        /// Also write every kernel source (`<kernel>.wgsl` or `<kernel>.ptx`) and the manifest
        /// into this folder.
        #[arg(long)]
        emit_dir: Option<PathBuf>,
        /// One JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Compile a model and compare the device's results with the reference interpreter and
    /// with expected outputs.
    Verify {
        /// Optimization level: 0 one kernel per op, 1 canonicalize, 2 (default) and 3 fuse.
        #[arg(short = 'O', default_value_t = optc::compile::DEFAULT_OPT_LEVEL, value_parser = clap::value_parser!(u8).range(0..=3))]
        opt_level: u8,
        /// PTX targets: run f32 MatMuls on tf32 tensor cores (~1e-3 relative error).
        #[arg(long)]
        allow_tf32: bool,
        /// An ONNX model (or a folder holding model.onnx).
        model: PathBuf,
        /// Target: wgsl (wgpu) or sm_80/sm_86/sm_89/sm_90/sm_90a (CUDA).
        #[arg(long)]
        target: String,
        /// Folder with `input_<i>.pb` (and `output_<i>.pb` expected outputs); default random inputs.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Device: an index or a name substring (default: $OPTC_DEVICE on wgpu,
        /// $OPTC_CUDA_DEVICE on CUDA, else the first).
        #[arg(long)]
        device: Option<String>,
        /// Seed for random inputs.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Dim sizes: by symbol (`batch=4`) or by input and position (`x.2=48`).
        #[arg(long, value_parser = parse_dim)]
        shape: Vec<(String, usize)>,
        /// Also compare every intermediate tensor and report the first whose error jumps.
        #[arg(long)]
        per_layer: bool,
        /// One JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Show a model's graph, op counts, parameters and FLOPs, or an artifact's kernels.
    Inspect {
        /// Optimization level: 0 one kernel per op, 1 canonicalize, 2 (default) and 3 fuse.
        #[arg(short = 'O', default_value_t = optc::compile::DEFAULT_OPT_LEVEL, value_parser = clap::value_parser!(u8).range(0..=3))]
        opt_level: u8,
        /// An ONNX model or an artifact.
        model: PathBuf,
        /// Which stage to show.
        #[arg(long, value_enum, default_value = "import")]
        stage: Stage,
        /// Target for `--stage kernels` on a model.
        #[arg(long, default_value = "wgsl")]
        target: String,
        /// Dim sizes: by symbol (`batch=4`) or by input and position (`x.2=48`).
        #[arg(long, value_parser = parse_dim)]
        shape: Vec<(String, usize)>,
        /// One JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Run a model or an artifact on inputs (from a folder, or seeded random ones).
    Run {
        /// Optimization level: 0 one kernel per op, 1 canonicalize, 2 (default) and 3 fuse.
        #[arg(short = 'O', default_value_t = optc::compile::DEFAULT_OPT_LEVEL, value_parser = clap::value_parser!(u8).range(0..=3))]
        opt_level: u8,
        /// PTX targets: run f32 MatMuls on tf32 tensor cores (~1e-3 relative error).
        #[arg(long)]
        allow_tf32: bool,
        /// An ONNX model or an artifact (wgsl artifacts run on wgpu, sm_XX ones on CUDA).
        model: PathBuf,
        /// Executor.
        #[arg(long, value_enum, default_value = "reference")]
        backend: BackendArg,
        /// Compile the model for this target and run it on its device (wgsl: wgpu; sm_XX: CUDA).
        #[arg(long)]
        target: Option<String>,
        /// CUDA: capture the whole run into a CUDA graph and replay it.
        #[arg(long)]
        cuda_graph: bool,
        /// Device: an index or a name substring (default: $OPTC_DEVICE on wgpu,
        /// $OPTC_CUDA_DEVICE on CUDA, else the first).
        #[arg(long)]
        device: Option<String>,
        /// Folder with `input_<i>.pb` / `input_<i>.npy` / `<name>.npy` files.
        #[arg(long)]
        inputs: Option<PathBuf>,
        /// Write outputs here as `output_<i>.pb` (and `.npy` with --npy).
        #[arg(long)]
        output_dir: Option<PathBuf>,
        /// Also write outputs as .npy.
        #[arg(long)]
        npy: bool,
        /// Seed for random inputs.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Dim sizes: a symbolic dim by name (`--shape batch=4`) or any dim of an input by
        /// position (`--shape x.2=48`); unlisted ones are 1.
        #[arg(long, value_parser = parse_dim)]
        shape: Vec<(String, usize)>,
        /// One JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Run every ONNX backend-test folder under DIR and compare with the expected outputs.
    Conformance {
        /// Folder of test folders (each with model.onnx and test_data_set_*).
        dir: PathBuf,
        /// Executor.
        #[arg(long, value_enum, default_value = "reference")]
        backend: BackendArg,
        /// Device for --backend wgpu|cuda: an index or a name substring.
        #[arg(long)]
        device: Option<String>,
        /// Only tests whose folder name contains this.
        #[arg(long)]
        filter: Option<String>,
        /// Compare statuses with this expectations file; exit 1 on any difference.
        #[arg(long)]
        expect: Option<PathBuf>,
        /// Write the statuses to this expectations file (and the per-op table beside it).
        #[arg(long)]
        bless: Option<PathBuf>,
        /// Print each failing test with its reason.
        #[arg(long, short)]
        verbose: bool,
        /// One JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Time a model: warm-up, then the median of several runs (and a per-kernel table on a
    /// device).
    Bench {
        /// Optimization level: 0 one kernel per op, 1 canonicalize, 2 (default) and 3 fuse.
        #[arg(short = 'O', default_value_t = optc::compile::DEFAULT_OPT_LEVEL, value_parser = clap::value_parser!(u8).range(0..=3))]
        opt_level: u8,
        /// PTX targets: run f32 MatMuls on tf32 tensor cores (~1e-3 relative error).
        #[arg(long)]
        allow_tf32: bool,
        /// Also compile at this level (e.g. `O0`) and report the speedup, measured in the same run
        /// with the two levels' timed runs interleaved.
        #[arg(long)]
        compare: Option<String>,
        /// A saved `bench --json` result: exit 1 when the median or any kernel got slower than
        /// it by more than --threshold.
        #[arg(long)]
        baseline: Option<PathBuf>,
        /// Allowed slowdown against --baseline (0.10 = 10%).
        #[arg(long, default_value_t = 0.10)]
        threshold: f64,
        /// An ONNX model or an artifact.
        model: PathBuf,
        /// Executor (`--target wgsl` implies wgpu, `--target sm_XX` CUDA).
        #[arg(long, value_enum, default_value = "reference")]
        backend: BackendArg,
        /// Compile for this target and run on its device.
        #[arg(long)]
        target: Option<String>,
        /// CUDA: capture the whole run into a CUDA graph once and time its replays.
        #[arg(long)]
        cuda_graph: bool,
        /// Device: an index or a name substring.
        #[arg(long)]
        device: Option<String>,
        /// Timed runs.
        #[arg(long, default_value_t = 20)]
        runs: usize,
        /// Folder with inputs (default: seeded random inputs).
        #[arg(long)]
        inputs: Option<PathBuf>,
        /// Dim sizes: by symbol (`batch=4`) or by input and position (`x.2=48`).
        #[arg(long, value_parser = parse_dim)]
        shape: Vec<(String, usize)>,
        /// One JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
}

fn parse_dim(s: &str) -> Result<(String, usize), String> {
    let (k, v) = s.split_once('=').ok_or("expected NAME=SIZE")?;
    Ok((k.to_string(), v.parse().map_err(|e| format!("{e}"))?))
}

/// An error with the exit code it maps to.
#[derive(Debug)]
pub(crate) struct Exit(pub(crate) u8, pub(crate) String);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.1)
    }
}
impl std::error::Error for Exit {}

fn want(b: BackendArg) -> device::Want {
    match b {
        BackendArg::Reference => device::Want::Any,
        BackendArg::Wgpu => device::Want::Wgpu,
        BackendArg::Cuda => device::Want::Cuda,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.cmd) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let code = if let Some(Exit(c, _)) = e.downcast_ref::<Exit>() {
                *c
            } else if let Some(oe) = e.downcast_ref::<optc::Error>() {
                oe.exit_code() as u8
            } else {
                EXIT_INPUT
            };
            eprintln!("error: {}", one_line(&e));
            ExitCode::from(code)
        }
    }
}

/// The error and its causes on one line, skipping causes whose text the message already holds
/// (library errors print their source inline).
fn one_line(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg = format!("{msg}: {c}");
        }
    }
    msg.replace('\n', " ")
}

fn dispatch(cmd: Cmd) -> Result<u8> {
    match cmd {
        Cmd::Compile {
            opt_level,
            allow_tf32,
            model,
            target,
            output,
            shape,
            emit_dir,
            json,
        } => {
            device::set_opt_level(opt_level);
            device::set_allow_tf32(allow_tf32);
            device::compile_cmd(
                &model,
                &target,
                output.as_deref(),
                &shape.into_iter().collect(),
                emit_dir.as_deref(),
                json,
            )
        }
        Cmd::Verify {
            opt_level,
            allow_tf32,
            model,
            target,
            data,
            device,
            seed,
            shape,
            per_layer,
            json,
        } => {
            device::set_opt_level(opt_level);
            device::set_allow_tf32(allow_tf32);
            device::verify_cmd(
                &model,
                &target,
                data.as_deref(),
                device.as_deref(),
                seed,
                &shape.into_iter().collect(),
                per_layer,
                json,
            )
        }
        Cmd::Inspect {
            opt_level,
            model,
            stage,
            target,
            shape,
            json,
        } => {
            device::set_opt_level(opt_level);
            if stage == Stage::Optimized && !device::is_artifact(&model) {
                device::inspect_optimized(&model, &shape.into_iter().collect(), json)
            } else if stage == Stage::Kernels || device::is_artifact(&model) {
                device::inspect_kernels(&model, &target, &shape.into_iter().collect(), json)
            } else {
                inspect(&model, stage, json)
            }
        }
        Cmd::Run {
            opt_level,
            allow_tf32,
            model,
            backend,
            target,
            cuda_graph,
            device,
            inputs,
            output_dir,
            npy,
            seed,
            shape,
            json,
        } => {
            let shapes = shape.into_iter().collect();
            device::set_opt_level(opt_level);
            device::set_allow_tf32(allow_tf32);
            if backend != BackendArg::Reference || target.is_some() || device::is_artifact(&model) {
                device::run_device(
                    &model,
                    want(backend),
                    target.as_deref(),
                    cuda_graph,
                    device.as_deref(),
                    inputs.as_deref(),
                    output_dir.as_deref(),
                    npy,
                    seed,
                    &shapes,
                    json,
                )
            } else {
                if cuda_graph {
                    bail!(Exit(
                        EXIT_INPUT,
                        "--cuda-graph needs a CUDA (sm_XX) target".to_string()
                    ));
                }
                run(
                    &model,
                    inputs.as_deref(),
                    output_dir.as_deref(),
                    npy,
                    seed,
                    &shapes,
                    json,
                )
            }
        }
        Cmd::Conformance {
            dir,
            backend,
            device,
            filter,
            expect,
            bless,
            verbose,
            json,
        } => {
            let dev = match backend {
                BackendArg::Reference => None,
                BackendArg::Wgpu => Some(backend::open_wgpu(device.as_deref())?),
                BackendArg::Cuda => Some(backend::open_cuda(
                    device.as_deref(),
                    &format!("conformance tests in {}", dir.display()),
                )?),
            };
            let backend = match &dev {
                None => Backend::Reference,
                Some(backend::Dev::Wgpu(d)) => Backend::Wgpu(d),
                #[cfg(feature = "cuda")]
                Some(backend::Dev::Cuda(d)) => Backend::Cuda(d),
            };
            conformance_cmd(
                &dir,
                backend,
                filter.as_deref(),
                expect.as_deref(),
                bless.as_deref(),
                verbose,
                json,
            )
        }
        Cmd::Bench {
            opt_level,
            allow_tf32,
            compare,
            baseline,
            threshold,
            model,
            backend,
            target,
            cuda_graph,
            device,
            runs,
            inputs,
            shape,
            json,
        } => {
            let shapes = shape.into_iter().collect();
            device::set_opt_level(opt_level);
            device::set_allow_tf32(allow_tf32);
            if target.is_some()
                || compare.is_some()
                || backend != BackendArg::Reference
                || device::is_artifact(&model)
            {
                device::bench_device(
                    &model,
                    want(backend),
                    target.as_deref(),
                    cuda_graph,
                    device.as_deref(),
                    runs,
                    inputs.as_deref(),
                    &shapes,
                    json,
                    &device::BenchExtra {
                        compare: compare.as_deref(),
                        baseline: baseline.as_deref(),
                        threshold,
                    },
                )
            } else {
                if cuda_graph {
                    bail!(Exit(
                        EXIT_INPUT,
                        "--cuda-graph needs a CUDA (sm_XX) target".to_string()
                    ));
                }
                bench(&model, runs, inputs.as_deref(), &shapes, json)
            }
        }
    }
}

fn type_json(g: &optc::ir::Graph, v: optc::ir::ValueId) -> serde_json::Value {
    let ty = g.ty(v);
    json!({"name": g.value(v).name, "dtype": ty.dtype.name(), "shape": ty.shape.to_string()})
}

fn inspect(path: &Path, stage: Stage, json_out: bool) -> Result<u8> {
    if stage != Stage::Import {
        bail!(Exit(
            EXIT_INPUT,
            format!("--stage {stage:?} is not available yet: only 'import' is").to_lowercase()
        ));
    }
    let model = optc::model::load(path)?;
    let g = &model.graph;
    let ops = optc::stats::op_histogram(g);
    if json_out {
        let v = json!({
            "stage": "import",
            "model": path.display().to_string(),
            "ir_version": model.ir_version,
            "opset": model.opset,
            "producer": model.producer,
            "nodes": ops.values().sum::<usize>(),
            "ops": ops,
            "params": optc::stats::params(g),
            "param_bytes": optc::stats::param_bytes(g),
            "flops": optc::stats::flops(g),
            "inputs": g.inputs().iter().map(|&v| type_json(g, v)).collect::<Vec<_>>(),
            "outputs": g.outputs().iter().map(|&v| type_json(g, v)).collect::<Vec<_>>(),
            "kernels": null,
            "egraph": null,
        });
        println!("{v}");
    } else {
        print!("{}", optc::ir::print::print(g, "main"));
        eprintln!(
            "{} nodes, {} params ({:.2} MB), {:.3} GFLOPs; opset {}, IR v{}",
            g.num_nodes(),
            optc::stats::params(g),
            optc::stats::param_bytes(g) as f64 / 1e6,
            optc::stats::flops(g) as f64 / 1e9,
            model.opset,
            model.ir_version
        );
    }
    Ok(0)
}

pub(crate) fn load_inputs(
    model: &optc::ir::front::onnx::Model,
    dir: Option<&Path>,
    seed: u64,
    shapes: &BTreeMap<String, usize>,
) -> Result<Vec<Tensor>> {
    Ok(match dir {
        Some(d) => optc::model::read_inputs(&model.graph, d)?,
        None => optc::model::random_inputs(&model.graph, seed, shapes)?,
    })
}

pub(crate) fn summary(t: &Tensor) -> serde_json::Value {
    let v = t.to_f64_vec();
    let finite: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    let (mn, mx) = finite
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        });
    let mean = if finite.is_empty() {
        0.0
    } else {
        finite.iter().sum::<f64>() / finite.len() as f64
    };
    json!({"min": mn, "max": mx, "mean": mean, "first": &v[..v.len().min(6)]})
}

fn run(
    path: &Path,
    inputs: Option<&Path>,
    out_dir: Option<&Path>,
    npy: bool,
    seed: u64,
    shapes: &BTreeMap<String, usize>,
    json_out: bool,
) -> Result<u8> {
    let model = optc::model::load(path)?;
    let ins = load_inputs(&model, inputs, seed, shapes)?;
    let start = Instant::now();
    let outs = optc::ir::run(&model.graph, &ins).map_err(optc::Error::from)?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    let g = &model.graph;
    if let Some(dir) = out_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for (i, (t, &v)) in outs.iter().zip(g.outputs()).enumerate() {
            let name = &g.value(v).name;
            optc::io::save_tensor(&dir.join(format!("output_{i}.pb")), name, t)?;
            if npy {
                optc::io::save_tensor(&dir.join(format!("output_{i}.npy")), name, t)?;
            }
        }
    }
    let outputs: Vec<serde_json::Value> = outs
        .iter()
        .zip(g.outputs())
        .map(|(t, &v)| {
            json!({"name": g.value(v).name, "dtype": t.dtype().name(), "shape": t.shape(), "summary": summary(t)})
        })
        .collect();
    if json_out {
        println!(
            "{}",
            json!({"model": path.display().to_string(), "backend": "reference", "ms": ms, "outputs": outputs})
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
        eprintln!("ran in {ms:.1} ms on the reference interpreter");
    }
    Ok(0)
}

fn conformance_cmd(
    dir: &Path,
    backend: Backend<'_>,
    filter: Option<&str>,
    expect: Option<&Path>,
    bless: Option<&Path>,
    verbose: bool,
    json_out: bool,
) -> Result<u8> {
    if !dir.is_dir() {
        bail!(Exit(EXIT_INPUT, format!("{}: not a folder", dir.display())));
    }
    let total = conformance::discover(dir)?.len() as u64;
    let bar = if json_out {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(total)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let results = conformance::run_all(dir, backend, filter, &|r| {
        bar.inc(1);
        bar.set_message(r.name.clone());
    })?;
    bar.finish_and_clear();
    let (p, f, s) = conformance::totals(&results);
    if let Some(path) = bless {
        std::fs::write(path, conformance::expectations(&results))
            .with_context(|| format!("writing {}", path.display()))?;
        let table = path.with_extension("md");
        std::fs::write(&table, conformance::per_op_markdown(&results))
            .with_context(|| format!("writing {}", table.display()))?;
        eprintln!("wrote {} and {}", path.display(), table.display());
    }
    let mut code = if f > 0 { EXIT_CHECK } else { 0 };
    let mut diffs = Vec::new();
    if let Some(path) = expect {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut exp = conformance::parse_expectations(&text);
        if let Some(f) = filter {
            exp.retain(|k, _| k.contains(f));
        }
        diffs = conformance::regressions(&results, &exp);
        code = if diffs.is_empty() { 0 } else { EXIT_CHECK };
    }
    if json_out {
        let v = json!({
            "passed": p, "failed": f, "skipped": s,
            "tests": results,
            "per_op": conformance::per_op(&results),
            "expectation_diffs": diffs.iter().map(|(n, e, a)| json!({"name": n, "expected": e.map(|x| x.as_str()), "actual": a.map(|x| x.as_str())})).collect::<Vec<_>>(),
        });
        println!("{v}");
    } else {
        print!("{}", conformance::per_op_markdown(&results));
        if verbose {
            for r in results
                .iter()
                .filter(|r| r.status != conformance::Status::Passed)
            {
                println!(
                    "{} {}: {}",
                    r.status.as_str(),
                    r.name,
                    r.reason.as_deref().unwrap_or("")
                );
            }
        }
        for (n, e, a) in &diffs {
            println!(
                "EXPECTATION CHANGED: {n}: expected {}, got {}",
                e.map_or("(absent)", |x| x.as_str()),
                a.map_or("(absent)", |x| x.as_str())
            );
        }
        println!("{p} passed, {f} failed, {s} skipped");
    }
    Ok(code)
}

fn bench(
    path: &Path,
    runs: usize,
    inputs: Option<&Path>,
    shapes: &BTreeMap<String, usize>,
    json_out: bool,
) -> Result<u8> {
    let t0 = Instant::now();
    let model = optc::model::load(path)?;
    let import_ms = t0.elapsed().as_secs_f64() * 1e3;
    let ins = load_inputs(&model, inputs, 0, shapes)?;
    let runs = runs.max(1);
    // Warm-up.
    for _ in 0..2 {
        optc::ir::run(&model.graph, &ins).map_err(optc::Error::from)?;
    }
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        optc::ir::run(&model.graph, &ins).map_err(optc::Error::from)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    if json_out {
        println!(
            "{}",
            json!({"model": path.display().to_string(), "target": null, "backend": "reference", "device": "cpu",
                   "median_ms": median, "min_ms": times[0], "runs": runs, "import_ms": import_ms,
                   "threads": available_threads(), "kernels": [], "compare": null})
        );
    } else {
        println!(
            "{}: median {median:.2} ms, min {:.2} ms over {runs} runs (import {import_ms:.1} ms)",
            path.display(),
            times[0]
        );
    }
    Ok(0)
}

pub(crate) fn available_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
