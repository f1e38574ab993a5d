//! A test-only interpreter of the PTX subset optc's printer emits (`codegen/src/ptx.rs`).
//!
//! CI has no GPU, so the emitted PTX itself is executed here: [`Module::parse`] decodes one
//! printed `.entry`, [`exec::launch`] runs it over a grid with the threads of each block executed
//! cooperatively (barrier-correct `bar.sync`, warp-collective `shfl.sync`/`redux.sync`/
//! `mma.sync` (f16, bf16, tf32) and `ldmatrix` with the ISA's fragment layouts, `cp.async`
//! executed at issue, so a missing `cp.async.wait_group` goes unnoticed here), and
//! [`run_artifact`] runs a whole sm_XX artifact the way the CUDA executor does (same arena,
//! weights and binding addresses). An instruction outside the subset is an error
//! ([`SimError::Unknown`]), so printer and interpreter stay in step.
//!
//! Semantics modelled: f32 arithmetic IEEE round-to-nearest (`.rn`), `.approx` functions exact
//! then rounded (the hardware's few-ulp error is not modelled), float → integer conversions
//! saturating with NaN → 0, integer division by zero an error (PTX leaves it undefined), shift
//! amounts clamped at 32. Memory is bounds- and alignment-checked per access; the weights region
//! is read-only.

pub mod exec;
pub mod parse;

pub use exec::{Launch, Memory, launch};
pub use parse::Module;

use optc_runtime::manifest::Region;
use optc_runtime::tensor::{HostTensor, device_to_host, host_to_device};
use optc_runtime::{Artifact, Target};
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

/// Why a module could not be parsed or run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Malformed text.
    #[error("line {line}: {msg}")]
    Parse {
        /// 1-based line.
        line: usize,
        /// What is wrong.
        msg: String,
    },
    /// An instruction outside the interpreted subset.
    #[error("line {line}: instruction '{inst}' is not in the interpreted PTX subset")]
    Unknown {
        /// 1-based line.
        line: usize,
        /// The opcode.
        inst: String,
    },
    /// A launch that does not fit the module.
    #[error("launch: {0}")]
    Launch(String),
    /// A thread faulted (out-of-bounds or misaligned access, undefined register, division by
    /// zero, barrier or warp-collective misuse, runaway loop).
    #[error("{kernel} block {block:?} thread {thread:?}, line {line} `{inst}`: {msg}")]
    Exec {
        /// Kernel name.
        kernel: String,
        /// Block index.
        block: [u32; 3],
        /// Thread index in the block.
        thread: [u32; 3],
        /// 1-based line.
        line: usize,
        /// The instruction text.
        inst: String,
        /// What went wrong.
        msg: String,
    },
    /// The artifact does not fit (wrong target, wrong inputs).
    #[error("{0}")]
    Artifact(String),
}

/// Runs every launch of a PTX artifact on `inputs` (host tensors in manifest order) and returns
/// its outputs, exactly as `runtime::cuda_exec` lays out memory: one zeroed arena, the weights
/// region, a `.param .u64` address per binding.
pub fn run_artifact(
    artifact: &Artifact,
    inputs: &[HostTensor],
) -> Result<Vec<HostTensor>, SimError> {
    let m = &artifact.manifest;
    if m.target == Target::Wgsl {
        return Err(SimError::Artifact(
            "a wgsl artifact: the PTX interpreter runs sm_XX artifacts".into(),
        ));
    }
    if inputs.len() != m.inputs.len() {
        return Err(SimError::Artifact(format!(
            "{} inputs given, the artifact takes {}",
            inputs.len(),
            m.inputs.len()
        )));
    }
    let mut mem = Memory::new();
    let arena = mem.add("arena", vec![0; m.arena_bytes as usize], true);
    let weights = mem.add("weights", artifact.weights.as_bytes().to_vec(), false);
    let base = |r: Region| match r {
        Region::Arena => arena,
        Region::Weights => weights,
    };
    for (info, t) in m.inputs.iter().zip(inputs) {
        let bytes = host_to_device(info, t).map_err(|e| SimError::Artifact(e.to_string()))?;
        if info.location.region != Region::Arena {
            return Err(SimError::Artifact(format!(
                "input '{}' not in the arena",
                info.name
            )));
        }
        let at = info.location.offset as usize;
        mem.region_mut(arena)[at..at + bytes.len()].copy_from_slice(&bytes);
    }
    let mut modules: BTreeMap<u32, Module> = BTreeMap::new();
    for l in &m.launches {
        let k = &m.kernels[l.kernel as usize];
        let module = match modules.entry(l.kernel) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(v) => {
                let src = artifact.sources.get(k.source as usize).ok_or_else(|| {
                    SimError::Artifact(format!("kernel {} has no source", k.name))
                })?;
                v.insert(Module::parse(src)?)
            }
        };
        let params: Vec<u64> = l
            .bindings
            .iter()
            .map(|b| base(b.region) + b.offset)
            .collect();
        launch(
            module,
            Launch {
                grid: l.grid,
                block: k.workgroup,
            },
            &params,
            &mut mem,
            exec::DEFAULT_STEP_LIMIT,
        )?;
    }
    Ok(m.outputs
        .iter()
        .map(|o| {
            let at = o.location.offset as usize;
            let bytes = &mem.region(base(o.location.region))[at..at + o.location.bytes as usize];
            device_to_host(o, bytes)
        })
        .collect())
}
