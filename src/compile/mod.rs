//! The compiler: graph → artifact.
//!
//! Stages, each timed for `optc compile --json`:
//! 1. **specialise**: rebuild the graph with static input shapes (symbolic dims from `--shape`,
//!    or 1), so that inference makes every shape static;
//! 2. **fold**: evaluate on the reference interpreter every node whose inputs are all known at
//!    compile time (shape arithmetic, weight preprocessing) — those values become weights;
//! 3. **lower**: every remaining node becomes kernels through the templates of `optc-kernels`
//!    (or an alias of its input's buffer, for reshapes);
//! 4. **plan**: activation buffers get arena offsets by lifetime ([`plan`]);
//! 5. **codegen**: kernels are printed (WGSL, validated with naga; or PTX for the `sm_*`
//!    targets) and deduplicated by text.
//!
//! Lowering is target-neutral: the same templates feed both printers (a subgroup is a warp of
//! 32 lanes on CUDA, which satisfies every template's subgroup-size assumption).

pub mod plan;

use crate::model;
use optc_codegen::ptx::PtxTarget;
use optc_ir::{DType, Graph, Op, Tensor, TensorType, ValueId};
use optc_kernels::ir::{Access, Kernel};
use optc_kernels::lower::{self, Arg, LowerCtx, LowerError, TensorDesc};
use optc_runtime::manifest::{
    DeviceType, HostType, KernelInfo, Launch, Location, Manifest, MemoryStats, Region,
    Requirements, Target, TensorInfo,
};
use std::collections::BTreeMap;
use std::time::Instant;

/// Largest folded value (elements) the compiler evaluates at compile time.
pub const MAX_FOLD_ELEMENTS: usize = 1 << 26;

/// The default optimization level.
pub const DEFAULT_OPT_LEVEL: u8 = 2;

/// Compiler options.
#[derive(Clone, Debug)]
pub struct Options {
    /// The target.
    pub target: Target,
    /// Sizes of symbolic dims (`batch` → 1); unlisted symbolic dims are 1.
    pub shapes: BTreeMap<String, usize>,
    /// Exact shapes of the graph inputs (e.g. from test data), overriding `shapes`.
    pub input_shapes: Option<Vec<Vec<usize>>>,
    /// Graph inputs whose values are fixed at compile time ("shape tensors", as TensorRT
    /// calls them: axes, pads, target shapes, sizes…); they become constants and leave the
    /// artifact's inputs.
    pub const_inputs: BTreeMap<String, Tensor>,
    /// Optimization level: 0 lowers one kernel per op; 1 canonicalizes; 2 and 3 also fuse
    /// (`optc-passes`).
    pub opt_level: u8,
    /// PTX targets: f32 MatMuls may run on tensor cores in tf32 (operands rounded to 10
    /// mantissa bits, ~1e-3 relative error; `--allow-tf32`). Off by default; refused for wgsl.
    pub allow_tf32: bool,
}

impl Options {
    /// Options for `target` with default shapes.
    pub fn new(target: Target) -> Options {
        Options {
            target,
            shapes: BTreeMap::new(),
            input_shapes: None,
            const_inputs: BTreeMap::new(),
            opt_level: DEFAULT_OPT_LEVEL,
            allow_tf32: false,
        }
    }
}

/// Why compilation failed.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// Ops (or forms of ops) the target cannot compute; every such node is listed.
    #[error("{}", unsupported_message(.0))]
    Unsupported(Vec<String>),
    /// The target exists in the CLI but has no backend yet.
    #[error("target {0}: {1}")]
    Target(Target, String),
    /// A shape stays dynamic after specialisation.
    #[error("{0}")]
    Dynamic(String),
    /// Specialising or folding the graph failed (bad model or an inference gap).
    #[error("{0}")]
    Graph(String),
    /// Generated code failed validation or the compiler broke an invariant: an optc bug.
    #[error("internal error: {0}")]
    Internal(String),
}

fn unsupported_message(nodes: &[String]) -> String {
    let shown: Vec<&str> = nodes.iter().take(8).map(String::as_str).collect();
    let more = if nodes.len() > 8 {
        format!("; and {} more", nodes.len() - 8)
    } else {
        String::new()
    };
    format!(
        "{} node{} cannot be compiled: {}{more}",
        nodes.len(),
        if nodes.len() == 1 { "" } else { "s" },
        shown.join("; ")
    )
}

/// Timing of one compiler stage.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PassTime {
    /// Stage name.
    pub name: &'static str,
    /// Milliseconds.
    pub ms: f64,
}

/// A compiled model: the artifact's parts and compile statistics.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The manifest.
    pub manifest: Manifest,
    /// Kernel sources (index = `KernelInfo::source`).
    pub sources: Vec<String>,
    /// The weights section.
    pub weights: Vec<u8>,
    /// Stage timings.
    pub passes: Vec<PassTime>,
    /// What the optimizer did (`None` at `-O0`).
    pub optimized: Option<optc_passes::Report>,
}

/// Rebuilds `g` with static input shapes so that inference makes every shape static.
pub fn specialize(
    g: &Graph,
    shapes: &BTreeMap<String, usize>,
    input_shapes: Option<&[Vec<usize>]>,
    const_inputs: &BTreeMap<String, Tensor>,
) -> Result<Graph, CompileError> {
    let gerr = |e: optc_ir::GraphError| CompileError::Graph(e.to_string());
    let mut ng = Graph::new();
    let mut map: BTreeMap<ValueId, ValueId> = BTreeMap::new();
    if let Some(s) = input_shapes {
        if s.len() != g.inputs().len() {
            return Err(CompileError::Dynamic(format!(
                "{} input shapes given for {} graph inputs",
                s.len(),
                g.inputs().len()
            )));
        }
    }
    for (k, &v) in g.inputs().iter().enumerate() {
        if let Some(t) = const_inputs.get(&g.value(v).name) {
            if t.dtype() != g.ty(v).dtype {
                return Err(CompileError::Dynamic(format!(
                    "input '{}' is {} but its fixed value is {}",
                    g.value(v).name,
                    g.ty(v).dtype.name(),
                    t.dtype().name()
                )));
            }
            let nv = ng
                .add_const(g.value(v).name.clone(), t.clone())
                .map_err(gerr)?;
            map.insert(v, nv);
            continue;
        }
        let shape = match input_shapes {
            Some(s) => s[k].clone(),
            None => model::input_shape(g, v, shapes)
                .map_err(|e| CompileError::Dynamic(e.to_string()))?,
        };
        let nv = ng
            .add_input(
                g.value(v).name.clone(),
                TensorType::fixed(g.ty(v).dtype, &shape),
            )
            .map_err(gerr)?;
        map.insert(v, nv);
    }
    for (&v, t) in g.consts() {
        let nv = ng
            .add_const(g.value(v).name.clone(), t.clone())
            .map_err(gerr)?;
        map.insert(v, nv);
    }
    let order = g
        .topo_order()
        .ok_or_else(|| CompileError::Graph("the graph has a cycle".into()))?;
    for n in order {
        let node = g.node(n);
        let inputs = node
            .inputs
            .iter()
            .map(|v| {
                v.map(|v| {
                    map.get(&v).copied().ok_or_else(|| {
                        CompileError::Internal(format!("value {} has no producer", g.value(v).name))
                    })
                })
                .transpose()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let outs = node
            .outputs
            .iter()
            .map(|o| o.map(|v| g.value(v).name.clone()))
            .collect();
        let (_, new_outs) = ng
            .add_node(node.name.clone(), node.op.clone(), inputs, outs)
            .map_err(gerr)?;
        for (o, no) in node.outputs.iter().zip(new_outs) {
            if let (Some(o), Some(no)) = (o, no) {
                map.insert(*o, no);
            }
        }
    }
    let outs = g
        .outputs()
        .iter()
        .map(|v| {
            map.get(v)
                .copied()
                .ok_or_else(|| CompileError::Internal("graph output not rebuilt".into()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    ng.set_outputs(outs);
    Ok(ng)
}

/// The runtime's host type of an IR dtype.
pub fn host_type(dt: DType) -> HostType {
    match dt {
        DType::F32 => HostType::F32,
        DType::F16 => HostType::F16,
        DType::BF16 => HostType::Bf16,
        DType::F64 => HostType::F64,
        DType::I8 => HostType::I8,
        DType::U8 => HostType::U8,
        DType::I16 => HostType::I16,
        DType::U16 => HostType::U16,
        DType::I32 => HostType::I32,
        DType::U32 => HostType::U32,
        DType::I64 => HostType::I64,
        DType::U64 => HostType::U64,
        DType::Bool => HostType::Bool,
        DType::F8E4M3FN => HostType::F8e4m3fn,
        DType::F8E4M3FNUZ => HostType::F8e4m3fnuz,
        DType::F8E5M2 => HostType::F8e5m2,
        DType::F8E5M2FNUZ => HostType::F8e5m2fnuz,
        DType::F8E8M0 => HostType::F8e8m0,
        DType::F4E2M1 => HostType::F4e2m1,
        DType::I4 => HostType::I4,
        DType::U4 => HostType::U4,
        DType::I2 => HostType::I2,
        DType::U2 => HostType::U2,
    }
}

/// How a tensor of `dt` is stored on the device: bf16 as 16 bits where the lowering marks its
/// buffers so (`features.bf16_storage`), otherwise as [`lower::storage_scalar`] says.
fn device_type(dt: DType, features: lower::Features) -> Option<DeviceType> {
    use optc_kernels::ir::Scalar;
    if dt == DType::BF16 && features.bf16_storage {
        return Some(DeviceType::Bf16);
    }
    Some(match lower::storage_scalar(dt)? {
        Scalar::F32 => DeviceType::F32,
        Scalar::F16 => DeviceType::F16,
        Scalar::I32 => DeviceType::I32,
        Scalar::U32 | Scalar::Bool => DeviceType::U32,
    })
}

/// A constant's bytes in its device storage type.
fn storage_bytes(
    name: &str,
    t: &Tensor,
    features: lower::Features,
) -> Result<Vec<u8>, CompileError> {
    let dev = device_type(t.dtype(), features).ok_or_else(|| {
        CompileError::Unsupported(vec![format!(
            "constant '{name}' has dtype {}",
            t.dtype().name()
        )])
    })?;
    if t.dtype() == DType::I64 {
        let v = t.to_i64_vec();
        if let Some(x) = v.iter().find(|&&x| i32::try_from(x).is_err()) {
            return Err(CompileError::Unsupported(vec![format!(
                "constant '{name}' holds int64 value {x}, which does not fit the device's int32"
            )]));
        }
    }
    let target = match dev {
        DeviceType::F32 => DType::F32,
        DeviceType::F16 => DType::F16,
        DeviceType::Bf16 => DType::BF16,
        DeviceType::I32 => DType::I32,
        DeviceType::U32 => DType::U32,
    };
    if t.dtype().is_lowp() {
        // One code per byte in the IR, one per u32 on the device (see optc_kernels::lower::lowp).
        return Ok(t
            .bytes()
            .iter()
            .flat_map(|&c| u32::from(c).to_le_bytes())
            .collect());
    }
    Ok(if t.dtype() == target {
        t.bytes().to_vec()
    } else {
        t.cast(target).bytes().to_vec()
    })
}

fn static_desc(g: &Graph, v: ValueId) -> Result<TensorDesc, CompileError> {
    let ty = g.ty(v);
    let shape = ty.shape.as_static().ok_or_else(|| {
        CompileError::Dynamic(format!(
            "value '{}' has shape {} after specialisation (data-dependent); optc compiles static shapes only",
            g.value(v).name,
            ty
        ))
    })?;
    Ok(TensorDesc::new(ty.dtype, shape))
}

/// Where a value lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Home {
    /// A weights-section entry.
    Weight(usize),
    /// An arena buffer.
    Buf(usize),
}

/// Compiles a verified graph for `opts.target`.
pub fn compile(g: &Graph, model_name: &str, opts: &Options) -> Result<Compiled, CompileError> {
    if opts.allow_tf32 && !opts.target.is_cuda() {
        return Err(CompileError::Target(
            opts.target,
            "--allow-tf32 applies to PTX targets (sm_80 and newer), which have tf32 tensor cores"
                .into(),
        ));
    }
    let mut passes = Vec::new();
    let mut t0 = Instant::now();
    let mut lap = |name: &'static str, passes: &mut Vec<PassTime>| {
        passes.push(PassTime {
            name,
            ms: t0.elapsed().as_secs_f64() * 1e3,
        });
        t0 = Instant::now();
    };

    // 1. Specialise.
    let g = specialize(
        g,
        &opts.shapes,
        opts.input_shapes.as_deref(),
        &opts.const_inputs,
    )?;
    lap("specialize", &mut passes);

    // 2. Fold everything computable at compile time.
    let (mut folded, mut run_nodes) = fold(&g)?;
    lap("fold", &mut passes);

    // 3. Optimize (e-graph stages and extraction), then fold the weight arithmetic the
    //    rewrites wrote (BatchNorm folded into Conv weights, reshaped scales).
    let mut g = g;
    let mut optimized = None;
    if opts.opt_level >= 1 {
        let o = run_optimizer(&g, &folded, opts)?;
        g = o.graph;
        optimized = Some(o.report);
        lap("optimize", &mut passes);
        (folded, run_nodes) = fold(&g)?;
        lap("fold", &mut passes);
    }
    let const_of = |v: ValueId| g.value_of(v).or_else(|| folded.get(&v));
    lap("fold", &mut passes);

    // 3. Lower.
    let mut homes: BTreeMap<ValueId, Home> = BTreeMap::new();
    let mut weights_vals: Vec<ValueId> = Vec::new();
    let mut bufs: Vec<plan::Interval> = Vec::new();
    // PTX targets have tensor cores (sm_80 and newer), a GPU's register file and 16-bit bf16;
    // tf32 only when the user allows it.
    let features = lower::Features {
        tensor_cores: opts.target.is_cuda(),
        allow_tf32: opts.allow_tf32,
        small_register_file: opts.target.is_cuda(),
        bf16_storage: opts.target.is_cuda(),
    };
    let bytes_of = |d: &TensorDesc| -> u64 {
        d.numel() as u64 * device_type(d.dtype, features).map_or(4, |t| t.size() as u64)
    };
    for &v in g.inputs() {
        if const_of(v).is_some() {
            continue;
        }
        let d = static_desc(&g, v)?;
        if device_type(d.dtype, features).is_none() {
            return Err(CompileError::Unsupported(vec![format!(
                "graph input '{}' has dtype {}, which {} cannot hold",
                g.value(v).name,
                d.dtype.name(),
                opts.target
            )]));
        }
        homes.insert(v, Home::Buf(bufs.len()));
        bufs.push(plan::Interval {
            bytes: bytes_of(&d),
            first: 0,
            last: 0,
        });
    }
    struct Pending {
        node_label: String,
        launch: optc_kernels::lower::KernelLaunch,
        args: Vec<Home>,
    }
    let mut pending: Vec<Pending> = Vec::new();
    let mut unsupported = Vec::new();
    let home_of = |v: ValueId,
                   homes: &mut BTreeMap<ValueId, Home>,
                   weights_vals: &mut Vec<ValueId>|
     -> Home {
        if let Some(h) = homes.get(&v) {
            return *h;
        }
        let h = Home::Weight(weights_vals.len());
        weights_vals.push(v);
        homes.insert(v, h);
        h
    };
    for (step, &n) in run_nodes.iter().enumerate() {
        let step = step + 1;
        let node = g.node(n);
        let label = format!(
            "{} ({})",
            if node.name.is_empty() {
                "#"
            } else {
                &node.name
            },
            node.op.name()
        );
        let descs = |vs: &[Option<ValueId>]| -> Result<Vec<Option<TensorDesc>>, CompileError> {
            vs.iter()
                .map(|v| v.map(|v| static_desc(&g, v)).transpose())
                .collect()
        };
        let (inputs, outputs) = match (descs(&node.inputs), descs(&node.outputs)) {
            (Ok(i), Ok(o)) => (i, o),
            (Err(e), _) | (_, Err(e)) => {
                unsupported.push(format!("{} (node '{}'): {e}", node.op.name(), node.name));
                continue;
            }
        };
        let values: Vec<Option<&Tensor>> =
            node.inputs.iter().map(|v| v.and_then(&const_of)).collect();
        let name = format!("n{}_{}", n.index(), node.op.name().to_ascii_lowercase());
        let ctx = LowerCtx {
            op: &node.op,
            name: &name,
            inputs: &inputs,
            values: &values,
            outputs: &outputs,
            features,
        };
        let lowered = match lower::lower(&ctx) {
            Ok(l) => l,
            Err(e @ LowerError::Unsupported { .. }) => {
                let e = e.for_target(opts.target.name());
                unsupported.push(format!("{e} (node '{}')", node.name));
                continue;
            }
            Err(e) => return Err(CompileError::Internal(format!("node '{}': {e}", node.name))),
        };
        // Homes of outputs: aliases share their input's home; others get new buffers.
        for (slot, o) in node.outputs.iter().enumerate() {
            let Some(o) = o else { continue };
            if let Some(&(_, inp)) = lowered.aliases.iter().find(|(out, _)| *out == slot) {
                let iv = node
                    .inputs
                    .get(inp)
                    .copied()
                    .flatten()
                    .ok_or_else(|| CompileError::Internal("alias of a missing input".into()))?;
                let h = home_of(iv, &mut homes, &mut weights_vals);
                homes.insert(*o, h);
            } else {
                let d = outputs[slot].as_ref().expect("described above");
                homes.insert(*o, Home::Buf(bufs.len()));
                bufs.push(plan::Interval {
                    bytes: bytes_of(d),
                    first: step,
                    last: step,
                });
            }
        }
        let temp_base = bufs.len();
        for t in &lowered.temps {
            bufs.push(plan::Interval {
                bytes: bytes_of(t),
                first: step,
                last: step,
            });
        }
        for launch in lowered.launches {
            let mut args = Vec::new();
            for a in &launch.args {
                let h = match *a {
                    Arg::Input(k) => {
                        let v = node.inputs.get(k).copied().flatten().ok_or_else(|| {
                            CompileError::Internal(format!(
                                "{label}: kernel binds missing input {k}"
                            ))
                        })?;
                        home_of(v, &mut homes, &mut weights_vals)
                    }
                    Arg::Output(k) => {
                        let v = node.outputs.get(k).copied().flatten().ok_or_else(|| {
                            CompileError::Internal(format!(
                                "{label}: kernel binds unused output {k}"
                            ))
                        })?;
                        homes[&v]
                    }
                    Arg::Temp(k) => Home::Buf(temp_base + k),
                };
                if let Home::Buf(b) = h {
                    bufs[b].last = bufs[b].last.max(step);
                    bufs[b].first = bufs[b].first.min(step);
                }
                args.push(h);
            }
            pending.push(Pending {
                node_label: label.clone(),
                launch,
                args,
            });
        }
    }
    if !unsupported.is_empty() {
        return Err(CompileError::Unsupported(unsupported));
    }
    let last_step = run_nodes.len() + 1;
    for &v in g.outputs() {
        match homes.get(&v) {
            Some(Home::Buf(b)) => bufs[*b].last = last_step,
            Some(Home::Weight(_)) => {}
            None => {
                // A constant (or folded) graph output.
                home_of(v, &mut homes, &mut weights_vals);
            }
        }
    }
    lap("lower", &mut passes);

    // 4. Plan memory.
    let arena = plan::plan(&bufs);
    let mut weights = Vec::new();
    let mut weight_locs = Vec::new();
    for &v in &weights_vals {
        let t = const_of(v).ok_or_else(|| {
            CompileError::Internal(format!(
                "'{}' is neither computed nor constant",
                g.value(v).name
            ))
        })?;
        let bytes = storage_bytes(&g.value(v).name, t, features)?;
        let off = weights.len() as u64;
        weight_locs.push(Location {
            region: Region::Weights,
            offset: off,
            bytes: bytes.len() as u64,
        });
        weights.extend_from_slice(&bytes);
        weights.resize(plan::align(weights.len() as u64) as usize, 0);
    }
    let loc_of = |h: Home| -> Location {
        match h {
            Home::Weight(w) => weight_locs[w],
            Home::Buf(b) => Location {
                region: Region::Arena,
                offset: arena.offsets[b],
                bytes: bufs[b].bytes,
            },
        }
    };
    lap("plan", &mut passes);

    // 5. Codegen.
    let mut sources: Vec<String> = Vec::new();
    let mut kernels: Vec<KernelInfo> = Vec::new();
    let mut by_text: BTreeMap<String, u32> = BTreeMap::new();
    let mut launches = Vec::new();
    let mut req = Requirements::default();
    for p in pending {
        let mut k: Kernel = p.launch.kernel;
        let mut bindings = Vec::new();
        for (bi, h) in p.args.iter().enumerate() {
            let mut loc = loc_of(*h);
            if loc.region == Region::Arena {
                // One arena buffer is bound many times per dispatch: every binding must be
                // read_write, or the device sees conflicting usages of one buffer.
                k.buffers[bi].access = Access::ReadWrite;
            }
            // Bindings are at least 4 bytes and a multiple of 4.
            loc.bytes = loc.bytes.max(4).div_ceil(4) * 4;
            req.max_binding_bytes = req.max_binding_bytes.max(loc.bytes);
            bindings.push(loc);
        }
        req.f16 |= k.uses_f16();
        req.subgroups |= k.uses_subgroups();
        req.max_storage_buffers = req.max_storage_buffers.max(k.buffers.len() as u32);
        req.max_workgroup_threads = req.max_workgroup_threads.max(k.workgroup.iter().product());
        req.max_workgroup_bytes = req.max_workgroup_bytes.max(
            k.shared
                .iter()
                .map(|s| s.len * s.elem.scalar.size() * s.elem.lanes as u32)
                .sum(),
        );
        let stem = std::mem::replace(&mut k.name, "main".into());
        let canon = emit(&k, opts.target)?;
        let kid = match by_text.get(&canon) {
            Some(&id) => id,
            None => {
                let id = kernels.len() as u32;
                k.name = format!("k{id}_{stem}");
                let src = emit(&k, opts.target)?;
                if opts.target == Target::Wgsl {
                    optc_codegen::wgsl::validate_wgsl(&src).map_err(|e| {
                        CompileError::Internal(format!("kernel {} failed validation: {e}", k.name))
                    })?;
                }
                sources.push(src);
                kernels.push(KernelInfo {
                    name: k.name.clone(),
                    source: id,
                    workgroup: k.workgroup,
                });
                by_text.insert(canon, id);
                id
            }
        };
        launches.push(Launch {
            kernel: kid,
            bindings,
            grid: p.launch.grid,
            label: p.node_label,
        });
    }
    let mut tensor_info = |v: ValueId| -> Result<TensorInfo, CompileError> {
        let d = static_desc(&g, v)?;
        let name = g.value(v).name.clone();
        let dtype = host_type(d.dtype);
        let device = device_type(d.dtype, features).ok_or_else(|| {
            CompileError::Unsupported(vec![format!("'{name}' has dtype {}", d.dtype.name())])
        })?;
        let mut location = loc_of(homes[&v]);
        location.bytes = d.numel() as u64 * device.size() as u64;
        req.f16 |= device == DeviceType::F16;
        Ok(TensorInfo {
            name,
            dtype,
            shape: d.shape.iter().map(|&x| x as u64).collect(),
            device,
            location,
        })
    };
    let inputs = g
        .inputs()
        .iter()
        .filter(|v| const_of(**v).is_none())
        .map(|&v| tensor_info(v))
        .collect::<Result<Vec<_>, _>>()?;
    let outputs = g
        .outputs()
        .iter()
        .map(|&v| tensor_info(v))
        .collect::<Result<Vec<_>, _>>()?;
    lap("codegen", &mut passes);

    let manifest = Manifest {
        producer: format!("optc {}", env!("CARGO_PKG_VERSION")),
        model: model_name.to_string(),
        target: opts.target,
        requirements: req,
        inputs,
        outputs,
        kernels,
        launches,
        arena_bytes: arena.arena_bytes.max(4),
        weights_bytes: weights.len() as u64,
        memory: MemoryStats {
            intermediates_bytes: arena.total_bytes,
            live_peak_bytes: arena.live_peak_bytes,
        },
    };
    Ok(Compiled {
        manifest,
        sources,
        weights,
        passes,
        optimized,
    })
}

fn run_optimizer(
    g: &Graph,
    folded: &BTreeMap<ValueId, Tensor>,
    opts: &Options,
) -> Result<optc_passes::Optimized, CompileError> {
    let mut po = optc_passes::Options::new(opts.opt_level, opts.target.name());
    po.legal = Some(std::sync::Arc::new(fused_legal));
    // The conv kernels' tile padding and measured slowdowns, for the layout stage.
    po.conv_factors = Some(lower::conv::conv_cost_factors);
    optc_passes::optimize(g, folded, &po).map_err(|e| match e {
        optc_passes::PassError::Graph(m) => CompileError::Graph(m),
        optc_passes::PassError::Internal(m) => CompileError::Internal(m),
    })
}

/// The graph the compiler lowers: `g` specialised, folded and optimized at `opts.opt_level`,
/// with the optimizer's report (`None` at `-O0`). `optc inspect --stage optimized` shows it,
/// and tests run it on the reference interpreter against the original.
pub fn optimized_graph(
    g: &Graph,
    opts: &Options,
) -> Result<(Graph, Option<optc_passes::Report>), CompileError> {
    let g = specialize(
        g,
        &opts.shapes,
        opts.input_shapes.as_deref(),
        &opts.const_inputs,
    )?;
    if opts.opt_level == 0 {
        return Ok((g, None));
    }
    let (folded, _) = fold(&g)?;
    let o = run_optimizer(&g, &folded, opts)?;
    Ok((o.graph, Some(o.report)))
}

/// Whether the kernel templates compile fused op `op` (an `Op::Fused` or `Op::FusedAttention`;
/// input types `tys`, output type `out`, inferred by the fusion rule) as one kernel.
fn fused_legal(op: &optc_ir::Op, tys: &[Option<TensorType>], out: &TensorType) -> bool {
    let desc = |t: &TensorType| t.shape.as_static().map(|s| TensorDesc::new(t.dtype, s));
    let mut inputs = Vec::with_capacity(tys.len());
    for t in tys {
        match t {
            None => inputs.push(None),
            Some(t) => match desc(t) {
                Some(d) => inputs.push(Some(d)),
                None => return false,
            },
        }
    }
    desc(out).is_some_and(|o| optc_kernels::lower::fused::supports_fused_op(op, &inputs, &[], &o))
}

/// Evaluates on the reference interpreter every node whose inputs are all known at compile
/// time; returns those values and the nodes left to run, in order.
#[allow(clippy::type_complexity)]
pub fn fold(g: &Graph) -> Result<(BTreeMap<ValueId, Tensor>, Vec<optc_ir::NodeId>), CompileError> {
    let order = g
        .topo_order()
        .ok_or_else(|| CompileError::Graph("the graph has a cycle".into()))?;
    let mut folded: BTreeMap<ValueId, Tensor> = BTreeMap::new();
    let mut run_nodes = Vec::new();
    for &n in &order {
        let node = g.node(n);
        let known = |v: &ValueId| g.value_of(*v).is_some() || folded.contains_key(v);
        let all_known =
            node.inputs.iter().flatten().all(known) && !matches!(node.op, Op::If { .. });
        let outs_known = node
            .outputs
            .iter()
            .flatten()
            .all(|v| g.value_of(*v).is_some());
        if outs_known {
            continue;
        }
        let small = node.outputs.iter().flatten().all(|v| {
            g.ty(*v)
                .shape
                .as_static()
                .is_some_and(|s| s.iter().product::<usize>() <= MAX_FOLD_ELEMENTS)
        });
        if all_known && small {
            let args: Vec<Option<Tensor>> = node
                .inputs
                .iter()
                .map(|v| {
                    v.map(|v| {
                        g.value_of(v)
                            .cloned()
                            .or_else(|| folded.get(&v).cloned())
                            .expect("known")
                    })
                })
                .collect();
            match optc_ir::interp::eval_op(&node.op, &args, node.outputs.len()) {
                Ok(outs) => {
                    for (o, t) in node.outputs.iter().zip(outs) {
                        if let Some(o) = o {
                            folded.insert(*o, t);
                        }
                    }
                    continue;
                }
                Err(e) => {
                    return Err(CompileError::Graph(format!(
                        "node '{}' ({}): folding failed: {e}",
                        node.name,
                        node.op.name()
                    )));
                }
            }
        }
        run_nodes.push(n);
    }
    Ok((folded, run_nodes))
}

/// The PTX target of a CUDA target (`None` for WGSL).
pub fn ptx_target(t: Target) -> Option<PtxTarget> {
    Some(match t {
        Target::Wgsl => return None,
        Target::Sm80 => PtxTarget::Sm80,
        Target::Sm86 => PtxTarget::Sm86,
        Target::Sm89 => PtxTarget::Sm89,
        Target::Sm90 => PtxTarget::Sm90,
        Target::Sm90a => PtxTarget::Sm90a,
    })
}

/// Prints one kernel for `target` (WGSL, or PTX for the sm targets). A printer refusal is an
/// optc bug (templates only emit what every printer can express), hence `Internal`.
fn emit(k: &Kernel, target: Target) -> Result<String, CompileError> {
    match ptx_target(target) {
        None => optc_codegen::wgsl::emit_wgsl(k).map_err(|e| CompileError::Internal(e.to_string())),
        Some(t) => optc_codegen::ptx::emit_ptx(k, t)
            .map_err(|e| CompileError::Internal(format!("{target}: {e}"))),
    }
}

/// True when input `index` of `op` determines the shape of its outputs (axes, pads, target
/// shapes, sizes, repeats, k, split sizes…): a graph input feeding it must be fixed at compile
/// time (see [`Options::const_inputs`]) for the graph to have static shapes.
pub fn is_shape_operand(op: &Op, index: usize) -> bool {
    match op {
        Op::Reduce { .. }
        | Op::Squeeze
        | Op::Unsqueeze
        | Op::Reshape { .. }
        | Op::Expand
        | Op::Tile
        | Op::Split { .. }
        | Op::TopK { .. }
        | Op::CenterCropPad { .. }
        | Op::AffineGrid { .. }
        | Op::MeanVarianceNormalization { .. }
        | Op::Trilu { .. }
        | Op::CumSum { .. }
        | Op::CumProd { .. } => index == 1,
        Op::Slice => (1..=4).contains(&index),
        Op::Pad { .. } => index == 1 || index == 3,
        Op::Resize(_) => (1..=3).contains(&index),
        Op::OneHot { .. } => index == 1,
        Op::ConstantOfShape { .. } | Op::SignalWindow { .. } => index == 0,
        Op::Range => index <= 2,
        Op::Col2Im { .. } => index == 1 || index == 2,
        _ => false,
    }
}

/// The graph inputs that feed a shape operand of some node (see [`is_shape_operand`]), in
/// graph order.
pub fn shape_inputs(g: &Graph) -> Vec<ValueId> {
    g.inputs()
        .iter()
        .copied()
        .filter(|&v| {
            g.consumers(v)
                .iter()
                .any(|&(n, slot)| is_shape_operand(&g.node(n).op, slot))
        })
        .collect()
}
