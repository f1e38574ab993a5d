//! The CUDA executor: runs an `sm_XX` (PTX) artifact on an NVIDIA GPU through the CUDA driver
//! API (cudarc's `driver::result`/`driver::sys` layers).
//!
//! The driver library is loaded at run time (cudarc's `dynamic-loading`), so optc builds with no
//! CUDA toolkit and starts on machines with no driver: [`CudaDevice::open`] first checks that
//! `libcuda.so` can be loaded (`is_culib_present`; cudarc panics on the first driver call
//! otherwise) and that the driver speaks CUDA 12.0 or newer, and returns
//! [`RuntimeError::NoDriver`] / [`RuntimeError::NoDevice`] instead. Every block of driver calls
//! also runs under `catch_unwind`, so a driver that lacks an entry point cudarc expects is an
//! error, not a crash.
//!
//! [`CudaSession::new`] mirrors the wgpu executor:
//! - refuses an artifact whose target the device cannot run (`sm_89` on a compute capability 8.0
//!   device; `sm_90a` anywhere but 9.0) and launches beyond the device's limits;
//! - JIT-compiles every PTX module with `cuModuleLoadDataEx` (error log captured, the driver's
//!   own wall time recorded; [`CudaSession::jit_time`]) and looks up one function per kernel;
//! - allocates the weights once and uploads them from the (memory-mapped) weights section, and
//!   allocates the activation arena as one block: every input, output and intermediate lives at
//!   the offset the compiler's lifetime plan gave it (`Location::offset`);
//! - allocates pinned (page-locked) host staging for the inputs and the outputs.
//!
//! [`CudaSession::run`] converts the inputs into the pinned staging, then on one stream: copies
//! them into the arena, launches every kernel in manifest order (block = `KernelInfo::workgroup`,
//! grid = `Launch::grid`, one `u64` device address per binding — the PTX ABI of
//! `codegen/src/ptx.rs`), copies the outputs back into pinned staging, and synchronises once.
//! With [`CudaSession::set_cuda_graph`] that whole sequence is captured into a CUDA graph on the
//! first run and replayed by later runs (the staging and arena addresses never change).
//! [`CudaSession::profile`] times every launch with CUDA events (eagerly, not through the graph).

use crate::artifact::Artifact;
use crate::error::RuntimeError;
use crate::manifest::{Region, Target};
use crate::tensor::{HostTensor, device_to_host, host_to_device};
use crate::timing::{Profile, RunTiming, Samples};
use cudarc::driver::result::{self as cu, DriverError};
use cudarc::driver::sys;
use std::ffi::{CString, c_void};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The oldest driver API the executor accepts, as `cuDriverGetVersion` reports it (12.0: PTX
/// ISA 8.0, which `sm_90a` modules declare; also the headers of the bindings optc is built
/// with — newer drivers keep every older entry point).
pub const MIN_DRIVER_VERSION: i32 = 12000;

/// The environment variable that selects the CUDA device when no selector is given.
pub const DEVICE_ENV: &str = "OPTC_CUDA_DEVICE";

/// Alignment of every tensor in the pinned staging buffers.
const STAGING_ALIGN: u64 = 256;

/// Size of the JIT error log buffer.
const JIT_LOG_BYTES: usize = 16 * 1024;

fn describe(e: DriverError) -> String {
    let name = e
        .error_name()
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_else(|_| format!("{:?}", e.0));
    match e.error_string() {
        Ok(text) => format!("{name}: {}", text.to_string_lossy()),
        Err(_) => name,
    }
}

fn device_err(what: impl std::fmt::Display) -> impl FnOnce(DriverError) -> RuntimeError {
    move |e| RuntimeError::Device(format!("{what}: {}", describe(e)))
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

/// Runs driver calls, turning a panic inside cudarc (a missing driver entry point) into an error.
fn guard<T>(what: &str, f: impl FnOnce() -> Result<T, RuntimeError>) -> Result<T, RuntimeError> {
    std::panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| {
        Err(RuntimeError::NoDriver(format!(
            "the CUDA driver library failed while {what}: {}",
            panic_text(&*p)
        )))
    })
}

/// Runs a cleanup call, ignoring its result and any panic.
fn quietly(f: impl FnOnce()) {
    let _ = std::panic::catch_unwind(AssertUnwindSafe(f));
}

/// The compute capability an artifact for `target` needs (`None` for `wgsl`).
pub fn required_capability(target: Target) -> Option<(i32, i32)> {
    match target {
        Target::Wgsl => None,
        Target::Sm80 => Some((8, 0)),
        Target::Sm86 => Some((8, 6)),
        Target::Sm89 => Some((8, 9)),
        Target::Sm90 | Target::Sm90a => Some((9, 0)),
    }
}

/// Errors unless a device of compute capability `cc` named `device` can run an artifact for
/// `target`: PTX runs on its own compute capability and every newer one (the driver JIT
/// compiles it forward), except `sm_90a` code, which runs only on 9.0.
pub fn check_capability(target: Target, device: &str, cc: (i32, i32)) -> Result<(), RuntimeError> {
    let unsupported = |message: String| RuntimeError::Unsupported {
        device: device.to_string(),
        message,
    };
    let Some(need) = required_capability(target) else {
        return Err(unsupported(format!(
            "the artifact is for {target}; the CUDA executor runs sm_XX (PTX) artifacts"
        )));
    };
    if target == Target::Sm90a && cc != need {
        return Err(unsupported(format!(
            "the device has compute capability {}.{}; {target} code (wgmma, TMA) runs only on \
             compute capability 9.0",
            cc.0, cc.1
        )));
    }
    if cc < need {
        return Err(unsupported(format!(
            "the device has compute capability {}.{}, lower than the artifact's target {target} \
             (needs {}.{} or newer)",
            cc.0, cc.1, need.0, need.1
        )));
    }
    Ok(())
}

/// The target to compile a model for to run on a device of compute capability `cc`: the newest
/// one the device can run (`sm_90` rather than `sm_90a`, which only 9.0 runs); `None` below 8.0.
pub fn target_for_capability(cc: (i32, i32)) -> Option<Target> {
    match cc {
        (major, _) if major >= 9 => Some(Target::Sm90),
        (8, minor) if minor >= 9 => Some(Target::Sm89),
        (8, minor) if minor >= 6 => Some(Target::Sm86),
        (8, _) => Some(Target::Sm80),
        _ => None,
    }
}

/// Picks a device: `selector` is an index (`"1"`) or a case-insensitive substring of the name.
/// Errors with the list of devices when nothing matches.
fn choose(selector: &str, source: &str, names: &[String]) -> Result<usize, RuntimeError> {
    let found = match selector.trim().parse::<usize>() {
        Ok(i) => (i < names.len()).then_some(i),
        Err(_) => {
            let needle = selector.to_lowercase();
            names
                .iter()
                .position(|n| n.to_lowercase().contains(&needle))
        }
    };
    found.ok_or_else(|| {
        let list: Vec<String> = names
            .iter()
            .enumerate()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect();
        RuntimeError::NoDevice(format!(
            "no CUDA device matches '{selector}' (from {source}); available: {}",
            if list.is_empty() {
                "none".to_string()
            } else {
                list.join("; ")
            }
        ))
    })
}

/// Counts the `.param` declarations of a PTX module (optc's modules hold one entry each).
fn ptx_param_count(ptx: &str) -> usize {
    ptx.matches(".param ").count()
}

/// Decodes the float the driver writes over a `CU_JIT_WALL_TIME` option value.
fn jit_wall_ms(slot: *mut c_void) -> f32 {
    f32::from_bits(slot.addr() as u32)
}

/// What a CUDA device is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CudaDeviceInfo {
    /// Device ordinal (the index `--device` takes).
    pub ordinal: usize,
    /// Device name (`NVIDIA H200`).
    pub name: String,
    /// Compute capability (major, minor).
    pub compute_capability: (i32, i32),
    /// Number of streaming multiprocessors.
    pub multiprocessors: i32,
    /// Device memory, bytes.
    pub total_memory: u64,
    /// The driver's CUDA version (`12080` = 12.8).
    pub driver_version: i32,
}

impl CudaDeviceInfo {
    /// `sm_90`-style name of the compute capability.
    pub fn sm(&self) -> String {
        format!(
            "sm_{}{}",
            self.compute_capability.0, self.compute_capability.1
        )
    }

    /// The driver version as `12.8`.
    pub fn driver(&self) -> String {
        format!(
            "{}.{}",
            self.driver_version / 1000,
            (self.driver_version % 1000) / 10
        )
    }
}

/// Loads the driver library, checks its version and runs `cuInit`. Returns the driver version.
fn init_driver() -> Result<i32, RuntimeError> {
    // SAFETY: only tries to open the library; no driver call.
    if !unsafe { sys::is_culib_present() } {
        return Err(RuntimeError::NoDriver("libcuda.so not found".into()));
    }
    guard("initialising", || {
        let mut version = 0i32;
        // SAFETY: writes one int.
        unsafe { sys::cuDriverGetVersion(&mut version) }
            .result()
            .map_err(|e| {
                RuntimeError::NoDriver(format!("cuDriverGetVersion failed: {}", describe(e)))
            })?;
        if version < MIN_DRIVER_VERSION {
            return Err(RuntimeError::NoDriver(format!(
                "the driver supports CUDA {}.{}; optc needs 12.0 or newer",
                version / 1000,
                (version % 1000) / 10
            )));
        }
        cu::init().map_err(|e| {
            RuntimeError::NoDevice(format!(
                "the CUDA driver found no usable GPU (cuInit: {}; check nvidia-smi and \
                 CUDA_VISIBLE_DEVICES)",
                describe(e)
            ))
        })?;
        Ok(version)
    })
}

fn device_info(ordinal: usize, driver_version: i32) -> Result<CudaDeviceInfo, RuntimeError> {
    let what = || format!("querying CUDA device {ordinal}");
    let dev = cu::device::get(ordinal as i32).map_err(device_err(what()))?;
    let name = cu::device::get_name(dev).map_err(device_err(what()))?;
    let attr = |a: sys::CUdevice_attribute| {
        // SAFETY: `dev` came from cuDeviceGet.
        unsafe { cu::device::get_attribute(dev, a) }.map_err(device_err(what()))
    };
    use sys::CUdevice_attribute::*;
    let compute_capability = (
        attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?,
        attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?,
    );
    let multiprocessors = attr(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?;
    // SAFETY: as above.
    let total_memory = unsafe { cu::device::total_mem(dev) }.map_err(device_err(what()))? as u64;
    Ok(CudaDeviceInfo {
        ordinal,
        name,
        compute_capability,
        multiprocessors,
        total_memory,
        driver_version,
    })
}

/// A retained primary context; released when the last device handle or session goes.
struct Context {
    dev: sys::CUdevice,
    ctx: sys::CUcontext,
}

// SAFETY: a CUDA context handle is valid on every thread of the process (the driver API is
// thread-safe); every use here first makes it current on the calling thread. Sessions, which own
// streams and memory, stay single-threaded (`CudaSession` is neither Send nor Sync).
unsafe impl Send for Context {}
// SAFETY: as above; `Context` has no interior mutability.
unsafe impl Sync for Context {}

impl Context {
    fn make_current(&self) -> Result<(), RuntimeError> {
        // SAFETY: `ctx` is the retained primary context of `dev`.
        guard("selecting the context", || {
            unsafe { cu::ctx::set_current(self.ctx) }
                .map_err(device_err("making the CUDA context current"))
        })
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: `dev` was retained in `CudaDevice::open`.
        quietly(|| {
            let _ = unsafe { cu::primary_ctx::release(self.dev) };
        });
    }
}

/// An opened CUDA device (its retained primary context).
pub struct CudaDevice {
    ctx: Arc<Context>,
    info: CudaDeviceInfo,
}

impl std::fmt::Debug for CudaDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaDevice")
            .field("info", &self.info)
            .finish()
    }
}

impl CudaDevice {
    /// Every CUDA device, by ordinal. Errors when there is no driver.
    pub fn list() -> Result<Vec<CudaDeviceInfo>, RuntimeError> {
        let version = init_driver()?;
        guard("listing devices", || {
            let n = cu::device::get_count().map_err(device_err("counting CUDA devices"))?;
            (0..n.max(0) as usize)
                .map(|i| device_info(i, version))
                .collect()
        })
    }

    /// Opens a device. `selector` is a device ordinal (`"0"`) or a case-insensitive substring of
    /// its name; without one, `$OPTC_CUDA_DEVICE` is used the same way; without that, device 0.
    /// No driver library → [`RuntimeError::NoDriver`]; no device or no match →
    /// [`RuntimeError::NoDevice`].
    pub fn open(selector: Option<&str>) -> Result<CudaDevice, RuntimeError> {
        let (selector, source) = match selector {
            Some(s) => (Some(s.to_string()), "the device selector"),
            None => (
                std::env::var(DEVICE_ENV).ok().filter(|s| !s.is_empty()),
                DEVICE_ENV,
            ),
        };
        let infos = CudaDevice::list()?;
        if infos.is_empty() {
            return Err(RuntimeError::NoDevice(
                "the CUDA driver reports no GPU (check nvidia-smi and CUDA_VISIBLE_DEVICES)".into(),
            ));
        }
        let names: Vec<String> = infos.iter().map(|i| i.name.clone()).collect();
        let chosen = match &selector {
            Some(s) => choose(s, source, &names)?,
            None => 0,
        };
        let info = infos[chosen].clone();
        guard("opening the device", || {
            let what = || format!("opening CUDA device {chosen} ({})", info.name);
            let dev = cu::device::get(chosen as i32).map_err(device_err(what()))?;
            // SAFETY: `dev` came from cuDeviceGet; released by `Context::drop`.
            let ctx = unsafe { cu::primary_ctx::retain(dev) }.map_err(device_err(what()))?;
            let ctx = Arc::new(Context { dev, ctx });
            ctx.make_current()?;
            Ok(CudaDevice { ctx, info })
        })
    }

    /// What the device is.
    pub fn info(&self) -> &CudaDeviceInfo {
        &self.info
    }

    /// The target a model should be compiled for to run here (see [`target_for_capability`]).
    pub fn target(&self) -> Result<Target, RuntimeError> {
        target_for_capability(self.info.compute_capability).ok_or_else(|| {
            RuntimeError::Unsupported {
                device: self.info.name.clone(),
                message: format!(
                    "compute capability {}.{}: optc's PTX targets start at sm_80",
                    self.info.compute_capability.0, self.info.compute_capability.1
                ),
            }
        })
    }
}

/// A device allocation, freed on drop (the owning session makes its context current first).
struct DeviceMemory {
    ptr: sys::CUdeviceptr,
}

impl DeviceMemory {
    fn alloc(bytes: u64, what: &str) -> Result<DeviceMemory, RuntimeError> {
        // cuMemAlloc refuses 0 bytes; every allocation is at least 256-byte aligned.
        let size = usize::try_from(bytes.max(STAGING_ALIGN))
            .map_err(|_| RuntimeError::Device(format!("{what}: {bytes} bytes")))?;
        // SAFETY: plain allocation in the current context.
        let ptr = unsafe { cu::malloc_sync(size) }
            .map_err(device_err(format!("allocating the {what} ({bytes} bytes)")))?;
        Ok(DeviceMemory { ptr })
    }
}

impl Drop for DeviceMemory {
    fn drop(&mut self) {
        // SAFETY: allocated by cuMemAlloc, freed once.
        quietly(|| {
            let _ = unsafe { cu::free_sync(self.ptr) };
        });
    }
}

/// Page-locked host memory, freed on drop; empty when `bytes` is 0.
struct Pinned {
    ptr: *mut u8,
    bytes: usize,
}

impl Pinned {
    fn alloc(bytes: u64, what: &str) -> Result<Pinned, RuntimeError> {
        let bytes = usize::try_from(bytes)
            .map_err(|_| RuntimeError::Device(format!("{what}: {bytes} bytes")))?;
        if bytes == 0 {
            return Ok(Pinned {
                ptr: std::ptr::null_mut(),
                bytes: 0,
            });
        }
        // SAFETY: plain allocation in the current context.
        let ptr = unsafe { cu::malloc_host(bytes, 0) }.map_err(device_err(format!(
            "allocating pinned host memory for the {what} ({bytes} bytes)"
        )))?;
        Ok(Pinned {
            ptr: ptr.cast(),
            bytes,
        })
    }

    fn slice(&self) -> &[u8] {
        if self.bytes == 0 {
            return &[];
        }
        // SAFETY: `ptr` holds `bytes` bytes owned by `self`.
        unsafe { std::slice::from_raw_parts(self.ptr, self.bytes) }
    }

    fn slice_mut(&mut self) -> &mut [u8] {
        if self.bytes == 0 {
            return &mut [];
        }
        // SAFETY: as above, borrowed mutably.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.bytes) }
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        if !self.ptr.is_null() {
            // SAFETY: allocated by cuMemHostAlloc, freed once.
            quietly(|| {
                let _ = unsafe { cu::free_host(self.ptr.cast()) };
            });
        }
    }
}

struct LaunchState {
    kernel: usize,
    function: sys::CUfunction,
    grid: [u32; 3],
    block: [u32; 3],
    /// One device address per binding (the kernel's `.param .u64` values).
    params: Vec<u64>,
    /// `cuLaunchKernel`'s argument array: a pointer to each of `params` (its heap buffer never
    /// moves or changes after load).
    param_ptrs: Vec<*mut c_void>,
}

/// Outputs, timing and (when profiled) per-launch and whole-run device times in µs.
type RunResult = (Vec<HostTensor>, RunTiming, Option<(Vec<f64>, f64)>);

/// A loaded artifact on a CUDA device, ready to run.
pub struct CudaSession {
    manifest: crate::manifest::Manifest,
    device_name: String,
    modules: Vec<sys::CUmodule>,
    launches: Vec<LaunchState>,
    stream: sys::CUstream,
    events: Vec<sys::CUevent>,
    graph: Option<sys::CUgraphExec>,
    use_graph: bool,
    /// Per input: offset in `input_staging` (and its bytes).
    input_staging: Pinned,
    input_offsets: Vec<u64>,
    output_staging: Pinned,
    /// Per output: `Ok(offset in output staging)` or `Err(bytes read from the weights)`.
    output_sources: Vec<Result<u64, Vec<u8>>>,
    arena: Option<DeviceMemory>,
    weights: Option<DeviceMemory>,
    jit_time: Duration,
    jit_driver_ms: f64,
    load_time: Duration,
    /// Last, so that it is dropped (and the context released) after everything above.
    ctx: Arc<Context>,
}

impl std::fmt::Debug for CudaSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaSession")
            .field("model", &self.manifest.model)
            .field("target", &self.manifest.target)
            .field("modules", &self.modules.len())
            .field("launches", &self.launches.len())
            .field("cuda_graph", &self.use_graph)
            .finish()
    }
}

impl Drop for CudaSession {
    fn drop(&mut self) {
        quietly(|| {
            let _ = self.ctx.make_current();
            // SAFETY: every handle below was created by this session and is destroyed once.
            unsafe {
                if !self.stream.is_null() {
                    let _ = cu::stream::synchronize(self.stream);
                }
                if let Some(g) = self.graph.take() {
                    let _ = cu::graph::exec_destroy(g);
                }
                for e in self.events.drain(..) {
                    let _ = cu::event::destroy(e);
                }
                if !self.stream.is_null() {
                    let _ = cu::stream::destroy(self.stream);
                    self.stream = std::ptr::null_mut();
                }
                for m in self.modules.drain(..) {
                    let _ = cu::module::unload(m);
                }
            }
            // Device and pinned memory are freed by their fields' drops, in this context.
        });
    }
}

/// JIT-compiles one PTX module; returns it and the driver's JIT wall time in ms, or the error
/// with the JIT log.
fn load_ptx(src: &str) -> Result<(sys::CUmodule, f32), String> {
    let image = CString::new(src).map_err(|_| "the PTX text contains a NUL byte".to_string())?;
    let mut log = vec![0u8; JIT_LOG_BYTES];
    let mut options = [
        sys::CUjit_option::CU_JIT_ERROR_LOG_BUFFER,
        sys::CUjit_option::CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES,
        sys::CUjit_option::CU_JIT_WALL_TIME,
    ];
    let mut values: [*mut c_void; 3] = [
        log.as_mut_ptr().cast(),
        std::ptr::without_provenance_mut(JIT_LOG_BYTES),
        std::ptr::null_mut(),
    ];
    let mut module: sys::CUmodule = std::ptr::null_mut();
    // SAFETY: `image` is a NUL-terminated PTX text; the options and their values match in number
    // and type; `log` outlives the call.
    let r = unsafe {
        sys::cuModuleLoadDataEx(
            &mut module,
            image.as_ptr().cast(),
            options.len() as u32,
            options.as_mut_ptr(),
            values.as_mut_ptr(),
        )
    };
    match r.result() {
        Ok(()) => Ok((module, jit_wall_ms(values[2]))),
        Err(e) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end])
                .trim()
                .replace('\n', "; ");
            Err(if text.is_empty() {
                describe(e)
            } else {
                format!("{}: {text}", describe(e))
            })
        }
    }
}

fn align_up(x: u64, a: u64) -> u64 {
    x.div_ceil(a) * a
}

impl CudaSession {
    /// JIT-compiles the artifact's PTX on `device`, uploads its weights, allocates the arena and
    /// the pinned staging, and prepares every launch.
    pub fn new(device: &CudaDevice, artifact: &Artifact) -> Result<CudaSession, RuntimeError> {
        artifact.validate()?;
        let info = &device.info;
        check_capability(
            artifact.manifest.target,
            &info.name,
            info.compute_capability,
        )?;
        guard("loading the artifact", || {
            CudaSession::load(device, artifact)
        })
    }

    fn load(device: &CudaDevice, artifact: &Artifact) -> Result<CudaSession, RuntimeError> {
        let started = Instant::now();
        let m = &artifact.manifest;
        let info = &device.info;
        device.ctx.make_current()?;
        let unsupported = |message: String| RuntimeError::Unsupported {
            device: info.name.clone(),
            message,
        };

        // Limits.
        let dev = device.ctx.dev;
        let attr = |a: sys::CUdevice_attribute| {
            // SAFETY: `dev` came from cuDeviceGet.
            unsafe { cu::device::get_attribute(dev, a) }
                .map_err(device_err("querying device limits"))
                .map(|v| v.max(0) as u64)
        };
        use sys::CUdevice_attribute::*;
        let max_threads = attr(CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK)?;
        let max_block = [
            attr(CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X)?,
            attr(CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y)?,
            attr(CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z)?,
        ];
        let max_grid = [
            attr(CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X)?,
            attr(CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y)?,
            attr(CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z)?,
        ];
        let max_shared = attr(CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK)?;
        if m.requirements.max_workgroup_bytes as u64 > max_shared {
            return Err(unsupported(format!(
                "shared memory per block: the artifact needs {}, the device allows {max_shared}",
                m.requirements.max_workgroup_bytes
            )));
        }
        for k in &m.kernels {
            let threads: u64 = k.workgroup.iter().map(|&d| d as u64).product();
            if threads > max_threads || (0..3).any(|a| k.workgroup[a] as u64 > max_block[a]) {
                return Err(unsupported(format!(
                    "kernel {}: block {:?} exceeds the device's limits ({max_threads} threads, \
                     {max_block:?})",
                    k.name, k.workgroup
                )));
            }
        }
        for (i, l) in m.launches.iter().enumerate() {
            if (0..3).any(|a| l.grid[a] as u64 > max_grid[a]) {
                return Err(unsupported(format!(
                    "launch {i} ({}): grid {:?} exceeds the device's {max_grid:?}",
                    l.label, l.grid
                )));
            }
        }

        // The session owns every handle from here on: an error drops it, which frees them.
        let stream = cu::stream::create(cu::stream::StreamKind::NonBlocking)
            .map_err(device_err("creating a stream"))?;
        let mut s = CudaSession {
            manifest: m.clone(),
            device_name: info.name.clone(),
            modules: Vec::with_capacity(artifact.sources.len()),
            launches: Vec::with_capacity(m.launches.len()),
            stream,
            events: Vec::new(),
            graph: None,
            use_graph: false,
            input_staging: Pinned::alloc(0, "")?,
            input_offsets: Vec::new(),
            output_staging: Pinned::alloc(0, "")?,
            output_sources: Vec::new(),
            arena: None,
            weights: None,
            jit_time: Duration::ZERO,
            jit_driver_ms: 0.0,
            load_time: Duration::ZERO,
            ctx: device.ctx.clone(),
        };

        // Kernels: the binding count each kernel is launched with must match its PTX entry.
        let mut bindings: Vec<Option<usize>> = vec![None; m.kernels.len()];
        for l in &m.launches {
            bindings[l.kernel as usize] = Some(l.bindings.len());
        }
        for (k, n) in m.kernels.iter().zip(&bindings) {
            let params = ptx_param_count(&artifact.sources[k.source as usize]);
            if let Some(n) = n {
                if *n != params {
                    return Err(RuntimeError::Shader {
                        kernel: k.name.clone(),
                        message: format!(
                            "its PTX entry takes {params} parameters but its launches bind {n} \
                             buffers"
                        ),
                    });
                }
            }
        }
        let jit_started = Instant::now();
        for (i, src) in artifact.sources.iter().enumerate() {
            match load_ptx(src) {
                Ok((module, ms)) => {
                    s.modules.push(module);
                    s.jit_driver_ms += ms as f64;
                }
                Err(message) => {
                    let users: Vec<&str> = m
                        .kernels
                        .iter()
                        .filter(|k| k.source as usize == i)
                        .map(|k| k.name.as_str())
                        .collect();
                    let kernel = if users.is_empty() {
                        format!("<source {i}>")
                    } else {
                        users.join(", ")
                    };
                    return Err(RuntimeError::Shader {
                        kernel,
                        message: format!("the driver's PTX JIT refused it: {message}"),
                    });
                }
            }
        }
        let mut functions = Vec::with_capacity(m.kernels.len());
        for k in &m.kernels {
            let name = CString::new(k.name.as_str()).map_err(|_| RuntimeError::Shader {
                kernel: k.name.clone(),
                message: "the kernel name contains a NUL byte".into(),
            })?;
            // SAFETY: the module was loaded above and is alive.
            let f = unsafe { cu::module::get_function(s.modules[k.source as usize], name) }
                .map_err(|e| RuntimeError::Shader {
                    kernel: k.name.clone(),
                    message: format!("no such entry in its PTX module: {}", describe(e)),
                })?;
            functions.push(f);
        }
        s.jit_time = jit_started.elapsed();

        // Memory: weights uploaded once, the arena zeroed once (like wgpu's buffers).
        let w = artifact.weights.as_bytes();
        s.weights = Some(DeviceMemory::alloc(w.len() as u64, "weights")?);
        let weights_ptr = s.weights.as_ref().map_or(0, |d| d.ptr);
        if !w.is_empty() {
            // SAFETY: the allocation holds at least `w.len()` bytes.
            unsafe { cu::memcpy_htod_sync(weights_ptr, w) }.map_err(device_err(format!(
                "uploading the weights ({} bytes)",
                w.len()
            )))?;
        }
        s.arena = Some(DeviceMemory::alloc(m.arena_bytes, "arena")?);
        let arena_ptr = s.arena.as_ref().map_or(0, |d| d.ptr);
        if m.arena_bytes > 0 {
            // SAFETY: the allocation holds `arena_bytes` bytes.
            unsafe { cu::memset_d8_sync(arena_ptr, 0, m.arena_bytes as usize) }
                .map_err(device_err("clearing the arena"))?;
        }

        // Pinned staging.
        let mut at = 0u64;
        for i in &m.inputs {
            s.input_offsets.push(at);
            at = align_up(at + i.location.bytes, STAGING_ALIGN);
        }
        s.input_staging = Pinned::alloc(at, "inputs")?;
        let mut at = 0u64;
        for o in &m.outputs {
            s.output_sources.push(match o.location.region {
                Region::Arena => {
                    let off = at;
                    at = align_up(at + o.location.bytes, STAGING_ALIGN);
                    Ok(off)
                }
                Region::Weights => {
                    let start = o.location.offset as usize;
                    Err(w[start..start + o.location.bytes as usize].to_vec())
                }
            });
        }
        s.output_staging = Pinned::alloc(at, "outputs")?;

        // Launches.
        for l in &m.launches {
            let k = &m.kernels[l.kernel as usize];
            let params: Vec<u64> = l
                .bindings
                .iter()
                .map(|b| match b.region {
                    Region::Arena => arena_ptr + b.offset,
                    Region::Weights => weights_ptr + b.offset,
                })
                .collect();
            let param_ptrs = params
                .iter()
                .map(|p| (p as *const u64).cast_mut().cast())
                .collect();
            s.launches.push(LaunchState {
                kernel: l.kernel as usize,
                function: functions[l.kernel as usize],
                grid: l.grid,
                block: k.workgroup,
                params,
                param_ptrs,
            });
        }
        s.load_time = started.elapsed();
        Ok(s)
    }

    /// Wall time of JIT-compiling every PTX module and looking up its functions (part of
    /// [`CudaSession::new`]).
    pub fn jit_time(&self) -> Duration {
        self.jit_time
    }

    /// The JIT time the driver itself reports (`CU_JIT_WALL_TIME`, summed over modules), ms.
    pub fn jit_driver_ms(&self) -> f64 {
        self.jit_driver_ms
    }

    /// Time spent in [`CudaSession::new`] (JIT, allocation, weight upload).
    pub fn load_time(&self) -> Duration {
        self.load_time
    }

    /// The manifest of the loaded artifact.
    pub fn manifest(&self) -> &crate::manifest::Manifest {
        &self.manifest
    }

    /// The device's name.
    pub fn device_name(&self) -> &str {
        &self.device_name
    }

    /// CUDA events time every launch: always true.
    pub fn has_timestamps(&self) -> bool {
        true
    }

    /// Turns CUDA-graph replay on or off. When on, the next run captures the whole run (input
    /// copies, every launch, output copies) into a graph, and later runs replay it.
    pub fn set_cuda_graph(&mut self, on: bool) {
        self.use_graph = on;
    }

    /// True when runs replay a CUDA graph.
    pub fn cuda_graph(&self) -> bool {
        self.use_graph
    }

    /// Runs the model once: `inputs` in manifest order, outputs in manifest order.
    pub fn run(&mut self, inputs: &[HostTensor]) -> Result<Vec<HostTensor>, RuntimeError> {
        Ok(self.run_guarded(inputs, false)?.0)
    }

    /// Like [`CudaSession::run`], also returning the wall time split by phase.
    pub fn run_timed(
        &mut self,
        inputs: &[HostTensor],
    ) -> Result<(Vec<HostTensor>, RunTiming), RuntimeError> {
        let (out, timing, _) = self.run_guarded(inputs, false)?;
        Ok((out, timing))
    }

    /// Runs once to warm up, then `runs` times (at least once), timing every launch with CUDA
    /// events. Profiled runs launch eagerly, also when CUDA-graph replay is on.
    pub fn profile(&mut self, inputs: &[HostTensor], runs: usize) -> Result<Profile, RuntimeError> {
        self.run_guarded(inputs, true)?;
        let mut samples = Samples::new(self.launches.len());
        for _ in 0..runs.max(1) {
            let (_, timing, stamps) = self.run_guarded(inputs, true)?;
            samples.push(timing, stamps);
        }
        Ok(samples.finish(&self.manifest))
    }

    fn run_guarded(
        &mut self,
        inputs: &[HostTensor],
        stamped: bool,
    ) -> Result<RunResult, RuntimeError> {
        guard("running the model", || self.run_inner(inputs, stamped))
    }

    /// Enqueues one whole run on the stream: input copies, launches (with an event before each
    /// and after the last when `events` is given), output copies.
    fn enqueue(&self, events: Option<&[sys::CUevent]>) -> Result<(), RuntimeError> {
        let arena = self.arena.as_ref().map_or(0, |d| d.ptr);
        let staged_in = self.input_staging.slice();
        for (info, off) in self.manifest.inputs.iter().zip(&self.input_offsets) {
            if info.location.bytes == 0 {
                continue;
            }
            let src = &staged_in[*off as usize..(*off + info.location.bytes) as usize];
            // SAFETY: pinned source of `bytes` bytes; the arena holds the destination range
            // (checked by `Manifest::check`).
            unsafe { cu::memcpy_htod_async(arena + info.location.offset, src, self.stream) }
                .map_err(device_err(format!(
                    "copying input '{}' to the device",
                    info.name
                )))?;
        }
        let record = |i: usize| -> Result<(), RuntimeError> {
            if let Some(ev) = events {
                // SAFETY: events and stream belong to this session.
                unsafe { cu::event::record(ev[i], self.stream) }
                    .map_err(device_err("recording a CUDA event"))?;
            }
            Ok(())
        };
        for (i, l) in self.launches.iter().enumerate() {
            record(i)?;
            if l.grid.contains(&0) {
                continue;
            }
            debug_assert_eq!(l.param_ptrs.len(), l.params.len());
            // SAFETY: the function takes exactly `params.len()` `.param .u64` values (checked at
            // load); `param_ptrs` points at them, alive in `self`, and the driver only reads them
            // (copying at launch); the block matches the entry's `.reqntid`.
            unsafe {
                sys::cuLaunchKernel(
                    l.function,
                    l.grid[0],
                    l.grid[1],
                    l.grid[2],
                    l.block[0],
                    l.block[1],
                    l.block[2],
                    0,
                    self.stream,
                    l.param_ptrs.as_ptr().cast_mut(),
                    std::ptr::null_mut(),
                )
            }
            .result()
            .map_err(|e| {
                let m = &self.manifest;
                RuntimeError::Device(format!(
                    "launch {i} ({}) of kernel {} with grid {:?}, block {:?}: {}",
                    m.launches[i].label,
                    m.kernels[l.kernel].name,
                    l.grid,
                    l.block,
                    describe(e)
                ))
            })?;
        }
        record(self.launches.len())?;
        for (o, src) in self.manifest.outputs.iter().zip(&self.output_sources) {
            if let Ok(at) = src {
                if o.location.bytes == 0 {
                    continue;
                }
                let at = *at as usize;
                let dst = self.output_staging.ptr.wrapping_add(at);
                // SAFETY: pinned destination of `bytes` bytes inside the output staging; the
                // source range lies in the arena.
                unsafe {
                    sys::cuMemcpyDtoHAsync_v2(
                        dst.cast(),
                        arena + o.location.offset,
                        o.location.bytes as usize,
                        self.stream,
                    )
                }
                .result()
                .map_err(device_err(format!(
                    "copying output '{}' to the host",
                    o.name
                )))?;
            }
        }
        Ok(())
    }

    /// Captures one whole run into a CUDA graph and instantiates it.
    fn capture(&self) -> Result<sys::CUgraphExec, RuntimeError> {
        // SAFETY: the stream belongs to this session; capture is ended on every path.
        unsafe {
            cu::stream::begin_capture(
                self.stream,
                sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL,
            )
        }
        .map_err(device_err("starting CUDA graph capture"))?;
        let enqueued = self.enqueue(None);
        // SAFETY: ends the capture begun above.
        let graph = unsafe { cu::stream::end_capture(self.stream) };
        enqueued?;
        let graph = graph.map_err(device_err("ending CUDA graph capture"))?;
        // SAFETY: `graph` is the captured graph; destroyed after instantiation.
        let exec = unsafe { cu::graph::instantiate(graph, sys::CUgraphInstantiate_flags(0)) };
        // SAFETY: as above.
        unsafe {
            let _ = cu::graph::destroy(graph);
        }
        exec.map_err(device_err("instantiating the CUDA graph"))
    }

    fn ensure_events(&mut self) -> Result<(), RuntimeError> {
        let n = self.launches.len() + 1;
        while self.events.len() < n {
            let e = cu::event::create(sys::CUevent_flags::CU_EVENT_DEFAULT)
                .map_err(device_err("creating a CUDA event"))?;
            self.events.push(e);
        }
        Ok(())
    }

    fn run_inner(
        &mut self,
        inputs: &[HostTensor],
        stamped: bool,
    ) -> Result<RunResult, RuntimeError> {
        let t0 = Instant::now();
        self.ctx.make_current()?;
        if inputs.len() != self.manifest.inputs.len() {
            return Err(RuntimeError::InputCount {
                expected: self.manifest.inputs.len(),
                got: inputs.len(),
            });
        }
        for (k, (info, t)) in self.manifest.inputs.iter().zip(inputs).enumerate() {
            let bytes = host_to_device(info, t)?;
            if bytes.len() as u64 != info.location.bytes {
                return Err(RuntimeError::Input {
                    name: info.name.clone(),
                    message: format!(
                        "{} device bytes, the artifact expects {}",
                        bytes.len(),
                        info.location.bytes
                    ),
                });
            }
            let off = self.input_offsets[k] as usize;
            self.input_staging.slice_mut()[off..off + bytes.len()].copy_from_slice(&bytes);
        }
        let t1 = Instant::now();

        if stamped {
            self.ensure_events()?;
            self.enqueue(Some(&self.events))?;
        } else if self.use_graph {
            if self.graph.is_none() {
                self.graph = Some(self.capture()?);
            }
            let g = self.graph.expect("captured above");
            // SAFETY: the graph was instantiated from this session's stream work.
            unsafe { cu::graph::launch(g, self.stream) }
                .map_err(device_err("launching the CUDA graph"))?;
        } else {
            self.enqueue(None)?;
        }
        // SAFETY: the stream belongs to this session.
        unsafe { cu::stream::synchronize(self.stream) }.map_err(|e| {
            RuntimeError::Device(format!(
                "running {} on {}: {} (a kernel faulted; rerun with CUDA_LAUNCH_BLOCKING=1 and \
                 compute-sanitizer to find which)",
                self.manifest.model,
                self.device_name,
                describe(e)
            ))
        })?;
        let t2 = Instant::now();

        let stamps = if stamped {
            let ev = &self.events;
            let ms = |a: usize, b: usize| -> Result<f64, RuntimeError> {
                // SAFETY: both events were recorded on this stream, which has finished.
                unsafe { cu::event::elapsed(ev[a], ev[b]) }
                    .map(|ms| ms as f64 * 1000.0)
                    .map_err(device_err("reading CUDA event times"))
            };
            let n = self.launches.len();
            let each = (0..n)
                .map(|i| ms(i, i + 1))
                .collect::<Result<Vec<_>, _>>()?;
            Some((each, ms(0, n)?))
        } else {
            None
        };
        let staged = self.output_staging.slice();
        let outputs = self
            .manifest
            .outputs
            .iter()
            .zip(&self.output_sources)
            .map(|(o, src)| match src {
                Ok(at) => device_to_host(o, &staged[*at as usize..]),
                Err(bytes) => device_to_host(o, bytes),
            })
            .collect();
        let t3 = Instant::now();
        let us = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e6;
        Ok((
            outputs,
            RunTiming {
                upload_us: us(t0, t1),
                submit_wait_us: us(t1, t2),
                readback_us: us(t2, t3),
                total_us: us(t0, t3),
            },
            stamps,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_checks_name_the_device_and_both_capabilities() {
        assert!(check_capability(Target::Sm80, "A100", (8, 0)).is_ok());
        assert!(check_capability(Target::Sm80, "H200", (9, 0)).is_ok());
        assert!(check_capability(Target::Sm89, "B200", (10, 0)).is_ok());
        let e = check_capability(Target::Sm89, "NVIDIA A100", (8, 0))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("NVIDIA A100")
                && e.contains("8.0")
                && e.contains("sm_89")
                && e.contains("8.9"),
            "{e}"
        );
        assert!(matches!(
            check_capability(Target::Sm86, "x", (8, 0)),
            Err(RuntimeError::Unsupported { .. })
        ));
        assert!(check_capability(Target::Sm90a, "H100", (9, 0)).is_ok());
        let e = check_capability(Target::Sm90a, "B200", (10, 0))
            .unwrap_err()
            .to_string();
        assert!(e.contains("sm_90a") && e.contains("10.0"), "{e}");
        assert!(check_capability(Target::Wgsl, "H100", (9, 0)).is_err());
    }

    #[test]
    fn models_compile_for_the_newest_target_the_device_runs() {
        assert_eq!(target_for_capability((7, 5)), None);
        assert_eq!(target_for_capability((8, 0)), Some(Target::Sm80));
        assert_eq!(target_for_capability((8, 6)), Some(Target::Sm86));
        assert_eq!(target_for_capability((8, 7)), Some(Target::Sm86));
        assert_eq!(target_for_capability((8, 9)), Some(Target::Sm89));
        assert_eq!(target_for_capability((9, 0)), Some(Target::Sm90));
        assert_eq!(target_for_capability((12, 0)), Some(Target::Sm90));
        for cc in [(8, 0), (8, 6), (8, 7), (8, 9), (9, 0), (10, 0)] {
            let t = target_for_capability(cc).unwrap();
            assert!(check_capability(t, "d", cc).is_ok(), "{cc:?} {t}");
        }
    }

    #[test]
    fn devices_are_chosen_by_index_or_name() {
        let names = vec![
            "NVIDIA H200".to_string(),
            "NVIDIA A100-SXM4-80GB".to_string(),
        ];
        assert_eq!(choose("1", "x", &names).unwrap(), 1);
        assert_eq!(choose(" 0 ", "x", &names).unwrap(), 0);
        assert_eq!(choose("a100", "x", &names).unwrap(), 1);
        let e = choose("7", "OPTC_CUDA_DEVICE", &names)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'7'") && e.contains("OPTC_CUDA_DEVICE") && e.contains("1: NVIDIA A100"),
            "{e}"
        );
        assert!(matches!(
            choose("v100", "x", &[]),
            Err(RuntimeError::NoDevice(m)) if m.contains("none")
        ));
    }

    #[test]
    fn ptx_params_are_counted_and_jit_wall_time_decoded() {
        let ptx = ".visible .entry k(\n\t.param .u64 p0,\n\t.param .u64 p1\n)\n.reqntid 64, 1, 1\n{\n\tld.param.u64 %rd0, [p0];\n}\n";
        assert_eq!(ptx_param_count(ptx), 2);
        assert_eq!(ptx_param_count(".visible .entry k()\n{\n}\n"), 0);
        // The driver overwrites the option slot with the float's bits.
        let slot = std::ptr::without_provenance_mut(1.5f32.to_bits() as usize);
        assert_eq!(jit_wall_ms(slot), 1.5);
    }

    #[test]
    fn opening_without_a_driver_is_an_error_not_a_panic() {
        // On a machine with a GPU this opens it; without libcuda.so it must say so (exit code 3
        // in the CLI), whatever the selector.
        match CudaDevice::open(Some("0")) {
            Ok(d) => {
                assert!(d.info().compute_capability.0 > 0);
                assert!(d.info().driver_version >= MIN_DRIVER_VERSION);
            }
            Err(RuntimeError::NoDriver(m)) => assert!(!m.is_empty()),
            Err(RuntimeError::NoDevice(m)) => {
                assert!(m.contains("CUDA") || m.contains("GPU"), "{m}")
            }
            Err(e) => panic!("unexpected error kind: {e}"),
        }
    }
}
