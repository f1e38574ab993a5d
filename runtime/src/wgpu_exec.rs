//! The wgpu executor: runs a `wgsl` artifact on any Vulkan, Metal or DX12 adapter (on CI: Mesa
//! lavapipe, a CPU pretending to be a GPU).
//!
//! [`Session::new`] compiles every kernel once (one shader module per source, one compute
//! pipeline per kernel with the layout wgpu derives from the WGSL), uploads the weights once,
//! allocates the arena and builds every launch's bind group. [`Session::run`] then writes the
//! inputs into the arena, encodes all launches in one compute pass and one submission, and reads
//! the outputs back through one staging buffer.
//!
//! Contract with the WGSL printer: binding `i` of group 0 of a kernel is `bindings[i]` of its
//! launches, every declared binding is used by the entry point (the layout is derived from the
//! shader), and bindings into the arena are declared `var<storage, read_write>` even when only
//! read — the arena is one buffer, and wgpu refuses a buffer bound both read-only and
//! read-write in one dispatch. Weights bindings may be `read`.

use crate::artifact::Artifact;
use crate::error::RuntimeError;
use crate::manifest::{DeviceType, Manifest, Region, Target};
use crate::tensor::{HostTensor, device_to_host, host_to_device};
use crate::timing::Samples;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// What an adapter is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Adapter name (`llvmpipe (LLVM 15.0.6, 256 bits)`).
    pub name: String,
    /// Graphics API (`vulkan`, `metal`, `dx12`).
    pub backend: String,
    /// `discrete-gpu`, `integrated-gpu`, `virtual-gpu`, `cpu` or `other`.
    pub device_type: String,
    /// Driver name.
    pub driver: String,
    /// Driver details (version).
    pub driver_info: String,
    /// The adapter supports f16 in shaders.
    pub f16: bool,
    /// The adapter supports subgroup operations.
    pub subgroups: bool,
    /// The adapter supports timestamp queries.
    pub timestamps: bool,
}

impl DeviceInfo {
    fn of(adapter: &wgpu::Adapter) -> DeviceInfo {
        let i = adapter.get_info();
        let f = adapter.features();
        DeviceInfo {
            name: i.name,
            backend: i.backend.to_str().to_string(),
            device_type: match i.device_type {
                wgpu::DeviceType::DiscreteGpu => "discrete-gpu",
                wgpu::DeviceType::IntegratedGpu => "integrated-gpu",
                wgpu::DeviceType::VirtualGpu => "virtual-gpu",
                wgpu::DeviceType::Cpu => "cpu",
                wgpu::DeviceType::Other => "other",
            }
            .to_string(),
            driver: i.driver,
            driver_info: i.driver_info,
            f16: f.contains(wgpu::Features::SHADER_F16),
            subgroups: f.contains(wgpu::Features::SUBGROUP),
            timestamps: f.contains(wgpu::Features::TIMESTAMP_QUERY),
        }
    }

    fn preference(&self) -> u8 {
        match self.device_type.as_str() {
            "discrete-gpu" => 0,
            "integrated-gpu" => 1,
            "virtual-gpu" => 2,
            "other" => 3,
            _ => 4,
        }
    }
}

fn adapters() -> Vec<wgpu::Adapter> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
}

/// An opened device (adapter, logical device and queue).
pub struct Device {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: DeviceInfo,
    errors: Arc<Mutex<Vec<String>>>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device").field("info", &self.info).finish()
    }
}

impl Device {
    /// Every adapter wgpu finds, in enumeration order (the order `Device::open(Some("N"))`
    /// indexes).
    pub fn list() -> Vec<DeviceInfo> {
        adapters().iter().map(DeviceInfo::of).collect()
    }

    /// Opens a device. `selector` is an adapter index (`"0"`) or a case-insensitive substring of
    /// its name; without one, the `OPTC_DEVICE` environment variable is used the same way; without
    /// that, the first GPU (discrete, then integrated, then virtual), else the first adapter.
    pub fn open(selector: Option<&str>) -> Result<Device, RuntimeError> {
        let (selector, source) = match selector {
            Some(s) => (Some(s.to_string()), "the device selector"),
            None => (
                std::env::var("OPTC_DEVICE").ok().filter(|s| !s.is_empty()),
                "OPTC_DEVICE",
            ),
        };
        let list = adapters();
        if list.is_empty() {
            return Err(RuntimeError::NoDevice(
                "wgpu found no Vulkan, Metal or DX12 adapter (on Linux without a GPU, install \
                 Mesa lavapipe: scripts/setup-vulkan.sh)"
                    .into(),
            ));
        }
        let infos: Vec<DeviceInfo> = list.iter().map(DeviceInfo::of).collect();
        let chosen = match &selector {
            Some(s) => {
                let found = match s.trim().parse::<usize>() {
                    Ok(i) => (i < list.len()).then_some(i),
                    Err(_) => {
                        let needle = s.to_lowercase();
                        infos
                            .iter()
                            .position(|i| i.name.to_lowercase().contains(&needle))
                    }
                };
                found.ok_or_else(|| {
                    let names: Vec<String> = infos
                        .iter()
                        .enumerate()
                        .map(|(k, i)| format!("{k}: {} ({})", i.name, i.backend))
                        .collect();
                    RuntimeError::NoDevice(format!(
                        "no adapter matches '{s}' (from {source}); available: {}",
                        names.join("; ")
                    ))
                })?
            }
            None => (0..infos.len())
                .min_by_key(|&k| infos[k].preference())
                .expect("non-empty"),
        };
        let adapter = &list[chosen];
        let info = infos[chosen].clone();
        let wanted = wgpu::Features::SHADER_F16
            | wgpu::Features::SUBGROUP
            | wgpu::Features::TIMESTAMP_QUERY
            | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES
            | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS;
        let desc = wgpu::DeviceDescriptor {
            label: Some("optc"),
            required_features: wanted & adapter.features(),
            required_limits: adapter.limits(),
            ..Default::default()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc)).map_err(|e| {
            RuntimeError::NoDevice(format!("adapter '{}' refused to open: {e}", info.name))
        })?;
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut v) = sink.lock() {
                v.push(e.to_string());
            }
        }));
        Ok(Device {
            device,
            queue,
            info,
            errors,
        })
    }

    /// What the device is.
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// The wgpu device.
    pub fn wgpu_device(&self) -> &wgpu::Device {
        &self.device
    }

    /// The wgpu queue.
    pub fn wgpu_queue(&self) -> &wgpu::Queue {
        &self.queue
    }
}

pub use crate::timing::{LaunchProfile, Profile, RunTiming};

#[derive(Clone, Copy, Debug, PartialEq)]
enum TimestampMode {
    None,
    /// `write_timestamp` between dispatches of the one pass.
    InsidePasses,
    /// One pass per launch with timestamp writes at its start and end.
    PerPass,
}

struct TimestampBuffers {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
    count: u32,
}

/// Outputs, timing and (when timestamped) the raw timestamp ticks of one run.
type RunResult = (Vec<HostTensor>, RunTiming, Option<Vec<u64>>);

struct LaunchState {
    pipeline: usize,
    bind_group: Option<wgpu::BindGroup>,
    grid: [u32; 3],
}

/// A loaded artifact on a device, ready to run.
pub struct Session {
    device: wgpu::Device,
    queue: wgpu::Queue,
    errors: Arc<Mutex<Vec<String>>>,
    manifest: Manifest,
    pipelines: Vec<wgpu::ComputePipeline>,
    launches: Vec<LaunchState>,
    arena: wgpu::Buffer,
    _weights: wgpu::Buffer,
    staging: wgpu::Buffer,
    staging_bytes: u64,
    /// Per output: `Ok(offset in staging)` or `Err(bytes read from the weights on the host)`.
    output_sources: Vec<Result<u64, Vec<u8>>>,
    timestamp_mode: TimestampMode,
    timestamps: Option<TimestampBuffers>,
    period_ns: f64,
    load_time: Duration,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("model", &self.manifest.model)
            .field("kernels", &self.pipelines.len())
            .field("launches", &self.launches.len())
            .finish()
    }
}

fn align_up(x: u64, a: u64) -> u64 {
    x.div_ceil(a) * a
}

fn error_text(e: wgpu::Error) -> String {
    match e {
        wgpu::Error::Validation { description, .. } | wgpu::Error::Internal { description, .. } => {
            description
        }
        other => other.to_string(),
    }
}

/// Runs `f` inside validation, internal and out-of-memory error scopes and returns the first
/// error they caught.
fn scoped<T>(device: &wgpu::Device, f: impl FnOnce() -> T) -> (T, Option<String>) {
    let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let internal = device.push_error_scope(wgpu::ErrorFilter::Internal);
    let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let value = f();
    let errors = [validation.pop(), internal.pop(), oom.pop()]
        .into_iter()
        .filter_map(pollster::block_on)
        .map(error_text)
        .next();
    (value, errors)
}

impl Session {
    /// Compiles the artifact's kernels on `device`, uploads its weights and prepares every launch.
    pub fn new(device: &Device, artifact: &Artifact) -> Result<Session, RuntimeError> {
        artifact.check_target(Target::Wgsl)?;
        artifact.validate()?;
        let m = &artifact.manifest;
        let dev = &device.device;
        let features = dev.features();
        let limits = dev.limits();
        let unsupported = |message: String| RuntimeError::Unsupported {
            device: device.info.name.clone(),
            message,
        };
        let uses_f16 = m.requirements.f16
            || m.inputs
                .iter()
                .chain(&m.outputs)
                .any(|t| t.device == DeviceType::F16);
        if uses_f16 && !features.contains(wgpu::Features::SHADER_F16) {
            return Err(unsupported("the artifact needs shader-f16".into()));
        }
        if m.requirements.subgroups && !features.contains(wgpu::Features::SUBGROUP) {
            return Err(unsupported(
                "the artifact needs subgroup operations (SUBGROUP)".into(),
            ));
        }
        let limit = |what: &str, need: u64, have: u64| {
            if need > have {
                Err(unsupported(format!(
                    "{what}: the artifact needs {need}, the device allows {have}"
                )))
            } else {
                Ok(())
            }
        };
        let most_bindings = m.launches.iter().map(|l| l.bindings.len()).max();
        limit(
            "storage buffers per kernel",
            (m.requirements.max_storage_buffers as u64).max(most_bindings.unwrap_or(0) as u64),
            limits.max_storage_buffers_per_shader_stage as u64,
        )?;
        limit(
            "workgroup memory bytes",
            m.requirements.max_workgroup_bytes as u64,
            limits.max_compute_workgroup_storage_size as u64,
        )?;
        limit(
            "workgroup threads",
            m.requirements.max_workgroup_threads as u64,
            limits.max_compute_invocations_per_workgroup as u64,
        )?;
        let biggest_binding = m
            .launches
            .iter()
            .flat_map(|l| l.bindings.iter().map(|b| b.bytes))
            .max()
            .unwrap_or(0);
        limit(
            "storage buffer binding bytes",
            m.requirements.max_binding_bytes.max(biggest_binding),
            limits.max_storage_buffer_binding_size,
        )?;
        limit("arena bytes", m.arena_bytes, limits.max_buffer_size)?;
        limit("weights bytes", m.weights_bytes, limits.max_buffer_size)?;
        let biggest_grid = m.launches.iter().flat_map(|l| l.grid).max().unwrap_or(0);
        limit(
            "workgroups per dimension",
            biggest_grid as u64,
            limits.max_compute_workgroups_per_dimension as u64,
        )?;

        // Kernels.
        let started = Instant::now();
        let mut modules = Vec::with_capacity(artifact.sources.len());
        for (i, src) in artifact.sources.iter().enumerate() {
            let (module, err) = scoped(dev, || {
                dev.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(&format!("source {i}")),
                    source: wgpu::ShaderSource::Wgsl(src.as_str().into()),
                })
            });
            if let Some(message) = err {
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
                return Err(RuntimeError::Shader { kernel, message });
            }
            modules.push(module);
        }
        let mut pipelines = Vec::with_capacity(m.kernels.len());
        for k in &m.kernels {
            let (p, err) = scoped(dev, || {
                dev.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(&k.name),
                    layout: None,
                    module: &modules[k.source as usize],
                    entry_point: Some(&k.name),
                    compilation_options: Default::default(),
                    cache: None,
                })
            });
            if let Some(message) = err {
                return Err(RuntimeError::Shader {
                    kernel: k.name.clone(),
                    message,
                });
            }
            pipelines.push(p);
        }
        let load_time = started.elapsed();

        // Memory.
        let ((arena, weights, staging, output_sources, staging_bytes), err) = scoped(dev, || {
            let arena = dev.create_buffer(&wgpu::BufferDescriptor {
                label: Some("arena"),
                size: align_up(m.arena_bytes, 4).max(4),
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_DST
                    | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            let w = artifact.weights.as_bytes();
            let weights = dev.create_buffer(&wgpu::BufferDescriptor {
                label: Some("weights"),
                size: align_up(w.len() as u64, 4).max(4),
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: true,
            });
            if let Ok(mut view) = weights.get_mapped_range_mut(..) {
                view.slice(..w.len()).copy_from_slice(w);
            }
            weights.unmap();
            let mut at = 0u64;
            let output_sources: Vec<Result<u64, Vec<u8>>> = m
                .outputs
                .iter()
                .map(|o| match o.location.region {
                    Region::Arena => {
                        let off = at;
                        at = align_up(at + o.location.bytes, 256);
                        Ok(off)
                    }
                    Region::Weights => {
                        let start = o.location.offset as usize;
                        Err(w[start..start + o.location.bytes as usize].to_vec())
                    }
                })
                .collect();
            let staging = dev.create_buffer(&wgpu::BufferDescriptor {
                label: Some("staging"),
                size: at.max(4),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            (arena, weights, staging, output_sources, at)
        });
        if let Some(e) = err {
            return Err(RuntimeError::Device(format!(
                "allocating the arena ({} bytes) and weights ({} bytes): {e}",
                m.arena_bytes, m.weights_bytes
            )));
        }

        // Bind groups.
        let mut launches = Vec::with_capacity(m.launches.len());
        for (i, l) in m.launches.iter().enumerate() {
            let pipeline = l.kernel as usize;
            let bind_group = if l.bindings.is_empty() {
                None
            } else {
                let (bg, err) = scoped(dev, || {
                    let layout = pipelines[pipeline].get_bind_group_layout(0);
                    let entries: Vec<wgpu::BindGroupEntry> = l
                        .bindings
                        .iter()
                        .enumerate()
                        .map(|(b, loc)| wgpu::BindGroupEntry {
                            binding: b as u32,
                            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                                buffer: match loc.region {
                                    Region::Arena => &arena,
                                    Region::Weights => &weights,
                                },
                                offset: loc.offset,
                                size: wgpu::BufferSize::new(loc.bytes),
                            }),
                        })
                        .collect();
                    dev.create_bind_group(&wgpu::BindGroupDescriptor {
                        label: Some(&l.label),
                        layout: &layout,
                        entries: &entries,
                    })
                });
                if let Some(message) = err {
                    return Err(RuntimeError::Shader {
                        kernel: m.kernels[pipeline].name.clone(),
                        message: format!(
                            "launch {i} ({}): its bindings do not match the kernel's: {message}",
                            l.label
                        ),
                    });
                }
                Some(bg)
            };
            launches.push(LaunchState {
                pipeline,
                bind_group,
                grid: l.grid,
            });
        }

        let timestamp_mode = if features.contains(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES) {
            TimestampMode::InsidePasses
        } else if features.contains(wgpu::Features::TIMESTAMP_QUERY) {
            TimestampMode::PerPass
        } else {
            TimestampMode::None
        };
        Ok(Session {
            device: dev.clone(),
            queue: device.queue.clone(),
            errors: device.errors.clone(),
            manifest: m.clone(),
            pipelines,
            launches,
            arena,
            _weights: weights,
            staging,
            staging_bytes,
            output_sources,
            timestamp_mode,
            timestamps: None,
            period_ns: device.queue.get_timestamp_period() as f64,
            load_time,
        })
    }

    /// Time spent creating shader modules and pipelines in [`Session::new`]. (On lavapipe the
    /// LLVM JIT runs later, at the first dispatch: time the first run separately.)
    pub fn load_time(&self) -> Duration {
        self.load_time
    }

    /// The manifest of the loaded artifact.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// True when [`Session::profile`] can time each launch on the device.
    pub fn has_timestamps(&self) -> bool {
        self.timestamp_mode != TimestampMode::None
    }

    /// Runs the model once: `inputs` in manifest order, outputs in manifest order.
    pub fn run(&mut self, inputs: &[HostTensor]) -> Result<Vec<HostTensor>, RuntimeError> {
        Ok(self.run_inner(inputs, false)?.0)
    }

    /// Like [`Session::run`], also returning the wall time split by phase.
    pub fn run_timed(
        &mut self,
        inputs: &[HostTensor],
    ) -> Result<(Vec<HostTensor>, RunTiming), RuntimeError> {
        let (out, timing, _) = self.run_inner(inputs, false)?;
        Ok((out, timing))
    }

    /// Runs once to warm up, then `runs` times (at least once), timing every launch with
    /// timestamp queries where the device has them.
    pub fn profile(&mut self, inputs: &[HostTensor], runs: usize) -> Result<Profile, RuntimeError> {
        let stamped = self.timestamp_mode != TimestampMode::None;
        self.run_inner(inputs, stamped)?;
        let n = self.launches.len();
        let mut samples = Samples::new(n);
        for _ in 0..runs.max(1) {
            let (_, timing, ticks) = self.run_inner(inputs, stamped)?;
            let device = ticks.map(|t| {
                let us = |a: u64, b: u64| b.saturating_sub(a) as f64 * self.period_ns / 1000.0;
                let each = (0..n)
                    .map(|i| match self.timestamp_mode {
                        TimestampMode::InsidePasses => us(t[i], t[i + 1]),
                        _ => us(t[2 * i], t[2 * i + 1]),
                    })
                    .collect();
                let total = if n > 0 { us(t[0], t[t.len() - 1]) } else { 0.0 };
                (each, total)
            });
            samples.push(timing, device);
        }
        Ok(samples.finish(&self.manifest))
    }

    fn timestamp_buffers(&mut self) -> Option<&TimestampBuffers> {
        let n = self.launches.len() as u32;
        let count = match self.timestamp_mode {
            TimestampMode::None => return None,
            TimestampMode::InsidePasses => n + 1,
            TimestampMode::PerPass => 2 * n,
        };
        if n == 0 || count > wgpu::QUERY_SET_MAX_QUERIES {
            return None;
        }
        if self.timestamps.is_none() {
            let set = self.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("optc timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count,
            });
            let bytes = count as u64 * 8;
            let resolve = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamp resolve"),
                size: bytes,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            let readback = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamp readback"),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            self.timestamps = Some(TimestampBuffers {
                set,
                resolve,
                readback,
                count,
            });
        }
        self.timestamps.as_ref()
    }

    fn wait(&self) -> Result<(), RuntimeError> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| RuntimeError::Device(e.to_string()))
    }

    fn map_read(&self, buffer: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>, RuntimeError> {
        let (tx, rx) = mpsc::channel();
        buffer.map_async(wgpu::MapMode::Read, ..bytes, move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        rx.recv()
            .map_err(|_| RuntimeError::Device("buffer mapping was dropped".into()))?
            .map_err(|e| RuntimeError::Device(format!("mapping a readback buffer: {e}")))?;
        let data = buffer
            .get_mapped_range(..bytes)
            .map_err(|e| RuntimeError::Device(format!("reading a readback buffer: {e}")))?
            .to_vec();
        buffer.unmap();
        Ok(data)
    }

    fn take_uncaptured(&self) -> Option<String> {
        let mut v = self.errors.lock().ok()?;
        (!v.is_empty()).then(|| v.drain(..).collect::<Vec<_>>().join("; "))
    }

    fn run_inner(
        &mut self,
        inputs: &[HostTensor],
        stamped: bool,
    ) -> Result<RunResult, RuntimeError> {
        let t0 = Instant::now();
        if inputs.len() != self.manifest.inputs.len() {
            return Err(RuntimeError::InputCount {
                expected: self.manifest.inputs.len(),
                got: inputs.len(),
            });
        }
        for (info, t) in self.manifest.inputs.iter().zip(inputs) {
            let mut bytes = host_to_device(info, t)?;
            if bytes.is_empty() {
                continue;
            }
            // write_buffer needs a multiple of 4 bytes; the arena buffer is padded to 4 and the
            // next location starts at a multiple of 256, so the pad bytes are free.
            bytes.resize(align_up(bytes.len() as u64, 4) as usize, 0);
            self.queue
                .write_buffer(&self.arena, info.location.offset, &bytes);
        }
        let t1 = Instant::now();

        let stamps = if stamped {
            self.timestamp_buffers();
            self.timestamps.as_ref()
        } else {
            None
        };
        let mode = self.timestamp_mode;
        let (submitted, err) = scoped(&self.device, || {
            let mut enc = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("optc run"),
                });
            let dispatch = |pass: &mut wgpu::ComputePass, l: &LaunchState| {
                pass.set_pipeline(&self.pipelines[l.pipeline]);
                if let Some(bg) = &l.bind_group {
                    pass.set_bind_group(0, bg, &[]);
                }
                if l.grid.iter().all(|&g| g > 0) {
                    pass.dispatch_workgroups(l.grid[0], l.grid[1], l.grid[2]);
                }
            };
            match (stamps, mode) {
                (Some(ts), TimestampMode::PerPass) => {
                    for (i, l) in self.launches.iter().enumerate() {
                        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                            label: Some("optc launch"),
                            timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                                query_set: &ts.set,
                                beginning_of_pass_write_index: Some(2 * i as u32),
                                end_of_pass_write_index: Some(2 * i as u32 + 1),
                            }),
                        });
                        dispatch(&mut pass, l);
                    }
                }
                _ => {
                    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some("optc launches"),
                        timestamp_writes: None,
                    });
                    for (i, l) in self.launches.iter().enumerate() {
                        if let Some(ts) = stamps {
                            pass.write_timestamp(&ts.set, i as u32);
                        }
                        dispatch(&mut pass, l);
                    }
                    if let Some(ts) = stamps {
                        pass.write_timestamp(&ts.set, self.launches.len() as u32);
                    }
                }
            }
            for (o, src) in self.manifest.outputs.iter().zip(&self.output_sources) {
                match src {
                    Ok(at) if o.location.bytes > 0 => enc.copy_buffer_to_buffer(
                        &self.arena,
                        o.location.offset,
                        &self.staging,
                        *at,
                        align_up(o.location.bytes, 4),
                    ),
                    _ => {}
                }
            }
            if let Some(ts) = stamps {
                enc.resolve_query_set(&ts.set, 0..ts.count, &ts.resolve, 0);
                enc.copy_buffer_to_buffer(&ts.resolve, 0, &ts.readback, 0, ts.count as u64 * 8);
            }
            self.queue.submit([enc.finish()])
        });
        let _ = submitted;
        if let Some(e) = err.or_else(|| self.take_uncaptured()) {
            return Err(RuntimeError::Device(e));
        }
        self.wait()?;
        let t2 = Instant::now();

        let staged = if self.staging_bytes > 0 {
            self.map_read(&self.staging, self.staging_bytes)?
        } else {
            Vec::new()
        };
        let ticks = match stamps {
            Some(ts) => Some(
                self.map_read(&ts.readback, ts.count as u64 * 8)?
                    .chunks_exact(8)
                    .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
                    .collect(),
            ),
            None => None,
        };
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
        if let Some(e) = self.take_uncaptured() {
            return Err(RuntimeError::Device(e));
        }
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
            ticks,
        ))
    }
}
