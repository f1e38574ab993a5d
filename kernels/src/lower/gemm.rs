//! The GEMM template: `C[b, m, n] = epilogue(Σ_k A(b, m, k) · B(b, n, k))`, and the ops that
//! lower to it — MatMul (numpy batch broadcasting, 1-D operands), Gemm (alpha, beta, transA,
//! transB, broadcast C), and the integer MatMulInteger / QLinearMatMul (a direct dot kernel).
//! Conv (see [`super::conv`]) reuses the same core through the [`Source::Im2col`] operand.
//! A fused elementwise program ([`Problem::epilogue`], see [`super::epilogue`]) runs at every
//! store of the core (per lane of vec4 stores) and of the integer dot kernel.
//!
//! Design (register tiling, see /work/shared/docs/lavapipe.md): every thread computes a
//! `tile_m × tile_n` block of C in vec4 accumulators, stepping K by `k_step` (4 when the
//! operand layouts allow vec4 loads, else 1). An operand that is contiguous along K is read with
//! one vec4 load per row per step; one contiguous along its rows with one vec4 load per four rows
//! per K; otherwise with scalar loads. With `subgroup`, all threads of a workgroup work on one
//! row tile of A (consecutive column tiles): lanes 0–7 of every subgroup each load 1/8 of the A
//! fragment and every lane gets the rest with `subgroupBroadcast` from a constant lane (constant
//! lanes are much cheaper than dynamic shuffles on lavapipe). This needs subgroups of at least 8
//! lanes (lavapipe: 8, NVIDIA: 32, AMD: 32/64), whatever their mapping to local invocations.
//! Stores are vec4 along N where C is row-major; where C is column-major (a conv's NCHW
//! output: rows are pixels) they are vec4 runs of four rows, with a per-column bias loaded once
//! per column. No workgroup memory is used by the register-tiled variant (it gains nothing on
//! lavapipe); the `shared` point (workgroup-memory staging for real GPUs) is part of the space
//! but rejected by [`build`] until written.
//!
//! Tuning space ([`GemmConfig`]): `tile_m` 1–64 rows per thread, `tile_n` 4–32 columns per
//! thread (multiple of 4), `k_step` 1 or 4 (vector width along K), `workgroup` 8–256 threads
//! (multiple of 8), `subgroup` (share A across 8 lanes; needs `tile_m % 8 == 0`), `shared`
//! (workgroup-memory staging). Default ([`GemmConfig::heuristic`]): 32×8 with subgroup sharing,
//! k_step 4, workgroup 64 — the 45 GFLOP/s design on lavapipe — adapted to the shape: one row
//! tile of all rows below 32 (in whole 8-row shares) and for 33–64 rows (× 4 columns), 40-row
//! tiles where they pad the rows less (196 rows), 4 columns per thread where 8 would leave
//! lanes idle or too few threads. [`GemmConfig::paid_work`] counts what a point computes,
//! padding included.

use super::common::{self, flat_index, grid_1d, strides, to_storage, unravel};
use super::epilogue::{Epilogue, finish_launch};
use super::{
    Arg, BuildMode, KernelLaunch, LowerCtx, LowerError, Lowered, compute_scalar, storage_scalar,
};
use crate::builder::{KernelBuilder, f, i, lit, select, u};
use crate::ir::{Access, Builtin, Expr, Scalar, Type};
use optc_ir::dtype::DType;
use optc_ir::ops::Op;

/// Lanes that share one A row tile when `subgroup` is on.
pub const LANES: u32 = 8;

/// A point of the GEMM tuning space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmConfig {
    /// Rows of C per thread.
    pub tile_m: u32,
    /// Columns of C per thread (multiple of 4: accumulators are vec4).
    pub tile_n: u32,
    /// K elements per loop step (1, or 4 for vec4 loads along K).
    pub k_step: u32,
    /// Threads per workgroup at most (fewer where that spreads a small launch over more
    /// workgroups, or leaves fewer lanes idle).
    pub workgroup: u32,
    /// Share A fragments across groups of [`LANES`] lanes with subgroup shuffles.
    pub subgroup: bool,
    /// Use vectorised (vec4) global loads and stores where layouts allow.
    pub vector: bool,
    /// Workgroup-memory tiled variant (for real GPUs).
    pub shared: bool,
}

impl Default for GemmConfig {
    fn default() -> Self {
        GemmConfig {
            tile_m: 32,
            tile_n: 8,
            k_step: 4,
            workgroup: 64,
            subgroup: true,
            vector: true,
            shared: false,
        }
    }
}

impl GemmConfig {
    /// The default point for an `m × n × k` problem with `batch` matrices: the big tile, shrunk
    /// where M or N are small so that few rows/columns are wasted.
    pub fn heuristic(batch: usize, m: usize, n: usize, k: usize) -> GemmConfig {
        let mut c = GemmConfig::default();
        if m < 32 {
            // Small M: one row tile of all rows, rounded up to whole subgroup shares (8 rows);
            // sharing is pointless below 8 rows. Measured on lavapipe (mobilenet_v2, m 24
            // n 3136 k 144 / 96): one 24-row tile 649 / 460 µs, two 16-row tiles (32 rows
            // paid) 915 / 579.
            c.tile_m = if m >= 8 {
                m.next_multiple_of(LANES as usize) as u32
            } else {
                m.max(1) as u32
            };
            c.subgroup = c.tile_m % LANES == 0;
        }
        if n <= 4 {
            c.tile_n = 4;
        }
        if m > 32 && m <= 64 && batch * n.div_ceil(4) >= 64 {
            // 33–64 rows (a 7×7 conv's pixels): one row tile of all of them, 4 columns. The
            // 32 × 8 tile pads 49 rows to 64; measured on lavapipe (resnet18's 7×7 stage,
            // m 49, n 512, k 2304–4608, and mobilenet_v2's m 49 GEMMs) the 56 × 4 tile is
            // 15–25% faster (m 49, n 320 was 20% slower until `build` balanced workgroups).
            c.tile_m = m.next_multiple_of(LANES as usize) as u32;
            c.tile_n = 4;
        }
        if k % 4 != 0 {
            c.k_step = 1;
        }
        // Keep enough threads to fill the device: where there are few, first take 4 columns
        // per thread instead of 8 (a shared row tile costs each lane 1/8 of its A loads, its
        // columns are all its own: 32 × 4 needs 8 loads per 128 accumulator updates, 16 × 8
        // needs 10), then halve the row tile. Measured on lavapipe (mobilenet_v2, channels-last
        // m 196 n 64 k 384: 16 × 8 1207 µs, 32 × 4 1050; m 196 n 64 k 192: 249 → 224).
        let threads =
            |c: &GemmConfig| batch * m.div_ceil(c.tile_m as usize) * n.div_ceil(c.tile_n as usize);
        if threads(&c) < 64 && c.subgroup && c.tile_n == 8 && c.tile_m % LANES == 0 {
            c.tile_n = 4;
        }
        while threads(&c) < 64 && c.tile_m > 8 {
            c.tile_m /= 2;
        }
        c.subgroup = c.subgroup && c.tile_m % LANES == 0;
        // A shared row tile's lanes take consecutive column tiles, in whole subgroups: the
        // columns a row tile pays for are ⌈tiles / 8⌉ · 8 · tile_n. Take 4 columns per thread
        // where that pays for at least 1/8 fewer — fewer than 8 column tiles (mobilenet_v2's
        // stem, n 32: 4 of 8 lanes busy; 4 columns made it 1.6× faster on lavapipe) or a 14×14
        // plane (n 196: 256 columns paid with 8, 224 with 4).
        let paid = |tn: usize| n.div_ceil(tn).div_ceil(LANES as usize) * LANES as usize * tn;
        if c.subgroup && c.tile_n == 8 && paid(4) * 8 <= paid(8) * 7 {
            c.tile_n = 4;
        }
        // 40-row tiles where they pad M less than 32-row ones and still leave 64 threads: a
        // 14×14 plane's 196 rows are 200 in 40s, 224 in 32s. Measured on lavapipe
        // (mobilenet_v2, m 196, 4 columns per thread): n 96 k 576 −12%, n 96 k 384 −11%,
        // n 64 k 384 −10%; 56-row tiles (224 rows) gained nothing. With 8 columns: resnet18's
        // 14² convs (m 196, n 256) −9 to −13%, vit_tiny's 197-token GEMMs −7 to −12%.
        let forty = GemmConfig { tile_m: 40, ..c };
        if c.tile_m == 32
            && m > 64
            && m.next_multiple_of(40) < m.next_multiple_of(32)
            && threads(&forty) >= 64
        {
            c = forty;
        }
        c
    }

    /// [`GemmConfig::heuristic`] for a target with `features`: where the register file is a
    /// GPU's ([`super::Features::small_register_file`]), at most 8 × 4 accumulators per thread
    /// and no subgroup sharing — the CPU-sized 32 × 8 tile (256 accumulators) spills on every
    /// sm target (`ptxas -v`: 255 registers plus 1.5–6 KB of spills per resnet18 conv).
    pub fn heuristic_for(
        features: super::Features,
        batch: usize,
        m: usize,
        n: usize,
        k: usize,
    ) -> GemmConfig {
        let mut c = GemmConfig::heuristic(batch, m, n, k);
        if features.small_register_file {
            c.tile_m = c.tile_m.min(8);
            c.tile_n = 4;
            c.subgroup = false;
            c.workgroup = 128;
        }
        c
    }

    /// The `m × n` elements of C this point computes for an `m × n` problem, padding included:
    /// rows rounded up to whole row tiles, columns to whole column tiles and, with `subgroup`,
    /// to whole subgroups of column tiles (a shared row tile's lanes take consecutive column
    /// tiles; idle lanes still run the loop).
    pub fn paid_work(&self, m: usize, n: usize) -> usize {
        let rows = m.div_ceil(self.tile_m as usize) * self.tile_m as usize;
        let tiles = n.div_ceil(self.tile_n as usize);
        let tiles = if self.subgroup {
            tiles.next_multiple_of(LANES as usize)
        } else {
            tiles
        };
        rows * tiles * self.tile_n as usize
    }

    /// Rejects invalid points.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=64).contains(&self.tile_m) {
            return Err(format!("tile_m {} is not in 1..=64", self.tile_m));
        }
        if self.tile_n == 0 || self.tile_n % 4 != 0 || self.tile_n > 32 {
            return Err(format!(
                "tile_n {} is not a multiple of 4 in 4..=32",
                self.tile_n
            ));
        }
        if self.tile_m * self.tile_n > 512 {
            return Err(format!(
                "register tile {}×{} exceeds 512 accumulators",
                self.tile_m, self.tile_n
            ));
        }
        if self.k_step != 1 && self.k_step != 4 {
            return Err(format!("k_step {} is not 1 or 4", self.k_step));
        }
        if self.workgroup == 0 || self.workgroup % LANES != 0 || self.workgroup > 256 {
            return Err(format!(
                "workgroup {} is not a multiple of {LANES} in 8..=256",
                self.workgroup
            ));
        }
        if self.subgroup && self.tile_m % LANES != 0 {
            return Err(format!(
                "subgroup sharing needs tile_m divisible by {LANES}, got {}",
                self.tile_m
            ));
        }
        if self.shared {
            if self.subgroup {
                return Err("the shared-memory variant does not use subgroups".into());
            }
            let slab = (self.tile_m + self.tile_n) * self.workgroup * 4 * 4;
            if slab > 16 * 1024 {
                return Err(format!("shared-memory slabs of {slab} bytes exceed 16 KiB"));
            }
        }
        Ok(())
    }
}

/// Convolution input read as the implicit im2col matrix: row = output pixel, k = (input
/// channel, kernel taps) flattened. The geometry is the conv template's (3 spatial axes, leading
/// unit axes for 1-D/2-D).
pub type Im2col = super::conv::Geom;

/// How an operand's elements are addressed.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// Element (row, k) at `batch_offset + row * row_stride + k * k_stride`.
    Strided {
        /// Stride of a row.
        row_stride: usize,
        /// Stride along K.
        k_stride: usize,
    },
    /// The im2col matrix of a conv input (see [`Im2col`]); `batch_offset` points at the first
    /// input channel of the image and group.
    Im2col(Im2col),
}

/// One GEMM operand (A: rows are M; B: rows are N).
#[derive(Clone, Debug, PartialEq)]
pub struct Operand {
    /// Binding argument.
    pub arg: Arg,
    /// Graph dtype of the buffer.
    pub dtype: DType,
    /// Number of elements of the buffer.
    pub numel: usize,
    /// Offset per output batch coordinate (0 where broadcast).
    pub batch_strides: Vec<usize>,
    /// Addressing.
    pub source: Source,
}

/// An additive term of the epilogue: `scale * T[m * m_stride + n * n_stride + batch]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Addend {
    /// Binding argument.
    pub arg: Arg,
    /// Graph dtype.
    pub dtype: DType,
    /// Stride per row (0: broadcast).
    pub m_stride: usize,
    /// Stride per column (0: broadcast).
    pub n_stride: usize,
    /// Offset per output batch coordinate.
    pub batch_strides: Vec<usize>,
    /// Multiplier.
    pub scale: f32,
}

/// A batched GEMM over static shapes.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    /// Output batch shape (flattened into the launch).
    pub batch: Vec<usize>,
    /// Rows of C.
    pub m: usize,
    /// Columns of C.
    pub n: usize,
    /// Reduction length.
    pub k: usize,
    /// A(m, k).
    pub a: Operand,
    /// B(n, k).
    pub b: Operand,
    /// Output argument and dtype.
    pub out: (Arg, DType),
    /// Output strides: per batch coordinate, per row, per column.
    pub out_batch_strides: Vec<usize>,
    /// Output row stride.
    pub out_m_stride: usize,
    /// Output column stride.
    pub out_n_stride: usize,
    /// Multiplier of the product.
    pub alpha: f32,
    /// Added after scaling (Gemm's `beta * C`, a bias).
    pub addend: Option<Addend>,
    /// A fused elementwise program applied to each output value (after alpha and the addend)
    /// before it is stored; `out` then has the program's result dtype. Its operands are
    /// addressed by the output's flat index, so the output must be dense in the order of the
    /// op's output shape (true of every op lowered here).
    pub epilogue: Option<Epilogue>,
}

/// How a fragment of one operand is loaded: units of rows, each unit giving packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// vec4 along K: one row per unit, one vec4 packet holding 4 k values.
    KVec,
    /// vec4 along rows: four rows per unit, one packet per k (lane j = row j).
    RowVec,
    /// Scalar loads: one row per unit, one packet (vec4 of the 4 k values when k_step is 4).
    Scalar,
    /// vec4 along K of an im2col matrix over a channels-last input with tap-major K: the 4 k
    /// values are 4 channels of one tap, one vec4 load (one bounds check) per row.
    Im2colVec,
}

impl Mode {
    fn unit_rows(self) -> u32 {
        if self == Mode::RowVec { 4 } else { 1 }
    }
}

fn all_div4(v: &[usize]) -> bool {
    v.iter().all(|s| s % 4 == 0)
}

/// Picks how to load an operand with `rows` rows and `tile` rows per thread.
fn mode_of(op: &Operand, rows: usize, tile: u32, k: usize, cfg: &GemmConfig) -> Mode {
    let vec_ok = cfg.vector && storage_scalar(op.dtype) == Some(Scalar::F32);
    match &op.source {
        Source::Strided {
            row_stride,
            k_stride,
        } if vec_ok && all_div4(&op.batch_strides) && op.numel % 4 == 0 => {
            if *k_stride == 1 && cfg.k_step == 4 && row_stride % 4 == 0 && k % 4 == 0 {
                Mode::KVec
            } else if *row_stride == 1 && tile % 4 == 0 && rows % 4 == 0 && k_stride % 4 == 0 {
                Mode::RowVec
            } else {
                Mode::Scalar
            }
        }
        Source::Im2col(g)
            if vec_ok
                // (With one tap, channel-major K is tap-major.)
                && (g.tap_major || g.kernel.iter().product::<usize>() == 1)
                && g.chan_stride == 1
                && g.pixel_stride % 4 == 0
                && cfg.k_step == 4
                && k % 4 == 0
                && (k / g.kernel.iter().product::<usize>().max(1)) % 4 == 0
                && all_div4(&op.batch_strides)
                && op.numel % 4 == 0 =>
        {
            Mode::Im2colVec
        }
        _ => Mode::Scalar,
    }
}

/// The state of one operand inside a kernel.
struct Side {
    buf: u32,
    mode: Mode,
    op: Operand,
    rows: usize,
    /// The thread's rows (row index expr, after clamping) per unit it loads, with hoisted
    /// per-row values (strided: flat row offset; im2col: (base, in-range spatial starts)).
    units: Vec<RowCtx>,
}

#[derive(Clone)]
enum RowCtx {
    /// Flat offset of the unit's first row (and k = 0).
    Flat(Expr),
    /// Conv pixel: flat offset of the image/group, and `o * stride - pad` per axis.
    Pixel { base: Expr, start: [Expr; 3] },
}

impl Side {
    /// Prepares the loads of unit rows starting at `row0` (dynamic).
    fn row_ctx(&self, b: &mut KernelBuilder, base: &Expr, row0: Expr) -> RowCtx {
        let last = self.rows as i32 - self.mode.unit_rows() as i32;
        let row = b.let_(Type::I32, row0.min(i(last.max(0))));
        match &self.op.source {
            Source::Strided { row_stride, .. } => {
                let off = if *row_stride == 1 {
                    row
                } else {
                    row * i(*row_stride as i32)
                };
                RowCtx::Flat(b.let_(Type::I32, base.clone() + off))
            }
            Source::Im2col(g) => {
                let coords = unravel(b, &row, &g.output);
                let start: Vec<Expr> = (0..3)
                    .map(|a| {
                        if g.input[a] == 1 && g.kernel[a] == 1 && g.pad[a] == 0 {
                            i(0)
                        } else {
                            let e = coords[a].clone() * i(g.stride[a] as i32) - i(g.pad[a] as i32);
                            b.let_(Type::I32, e)
                        }
                    })
                    .collect();
                RowCtx::Pixel {
                    base: base.clone(),
                    start: [start[0].clone(), start[1].clone(), start[2].clone()],
                }
            }
        }
    }

    /// The packets of one unit at K offset `k0` (k values `k0..k0+ks`): values and, per packet,
    /// the (row within unit, kk) each lane holds.
    fn packets(
        &self,
        b: &mut KernelBuilder,
        ctx: &RowCtx,
        k0: &Expr,
        ks: u32,
        kdec: &[KDecomp],
    ) -> Vec<Expr> {
        let cs = compute_scalar(self.op.dtype).unwrap_or(Scalar::F32);
        match (ctx, &self.op.source) {
            (RowCtx::Flat(off), Source::Strided { k_stride, .. }) => match self.mode {
                // (An im2col mode never meets a strided source.)
                Mode::KVec | Mode::Im2colVec => {
                    let idx = (off.clone() + k0.clone()) / i(4);
                    vec![b.let_(Type::vec(Scalar::F32, 4), Expr::load(self.buf, idx))]
                }
                Mode::RowVec => (0..ks)
                    .map(|kk| {
                        let idx = (off.clone() + (k0.clone() + i(kk as i32)) * i(*k_stride as i32))
                            / i(4);
                        b.let_(Type::vec(Scalar::F32, 4), Expr::load(self.buf, idx))
                    })
                    .collect(),
                Mode::Scalar => {
                    let vals: Vec<Expr> = (0..ks)
                        .map(|kk| {
                            let kx = k0.clone() + i(kk as i32);
                            let kx = if *k_stride == 1 {
                                kx
                            } else {
                                kx * i(*k_stride as i32)
                            };
                            common::load(self.buf, off.clone() + kx, self.op.dtype)
                        })
                        .collect();
                    vec![pack(b, vals, cs)]
                }
            },
            (RowCtx::Pixel { base, start }, Source::Im2col(g)) if self.mode == Mode::Im2colVec => {
                // The 4 k values share their tap: one bounds check, one vec4 load.
                let (idx, inb) = im2col_at(b, g, base, start, &kdec[0]);
                let v4 = Type::vec(Scalar::F32, 4);
                let v = match inb {
                    None => Expr::load(self.buf, idx / i(4)),
                    Some(ok) => {
                        let ok = b.let_(Type::BOOL, ok);
                        let safe = select(ok.clone(), idx, i(0)) / i(4);
                        select(
                            ok,
                            Expr::load(self.buf, safe),
                            Expr::Splat(4, Box::new(f(0.0))),
                        )
                    }
                };
                vec![b.let_(v4, v)]
            }
            (RowCtx::Pixel { base, start }, Source::Im2col(g)) => {
                let vals: Vec<Expr> = (0..ks as usize)
                    .map(|kk| {
                        let (idx, inb) = im2col_at(b, g, base, start, &kdec[kk]);
                        match inb {
                            None => common::load(self.buf, idx, self.op.dtype),
                            Some(ok) => {
                                let ok = b.let_(Type::BOOL, ok);
                                let safe = select(ok.clone(), idx, i(0));
                                let v = common::load(self.buf, safe, self.op.dtype);
                                select(ok, v, lit(cs, 0.0))
                            }
                        }
                    })
                    .collect();
                vec![pack(b, vals, cs)]
            }
            _ => unreachable!("row context matches the source"),
        }
    }

    /// (row within unit, kk) for lane `lane` of packet `p` (lane `None`: a scalar packet).
    fn lane_map(&self, p: usize, lane: usize, ks: u32) -> (u32, u32) {
        match self.mode {
            Mode::KVec | Mode::Im2colVec => (0, lane as u32),
            Mode::RowVec => (lane as u32, p as u32),
            Mode::Scalar => (0, if ks == 1 { 0 } else { lane as u32 }),
        }
    }
}

/// The flat input offset of an im2col element (pixel `base`/`start`, K decomposition `d`) and
/// whether it lies inside the input (`None`: no axis can leave it).
fn im2col_at(
    b: &mut KernelBuilder,
    g: &Im2col,
    base: &Expr,
    start: &[Expr; 3],
    d: &KDecomp,
) -> (Expr, Option<Expr>) {
    let mut inb: Option<Expr> = None;
    let mut idx = base.clone() + d.chan_off.clone();
    let st = strides(&g.input);
    for a in 0..3 {
        if g.input[a] == 1 && g.kernel[a] == 1 && g.pad[a] == 0 {
            continue;
        }
        let p = b.let_(Type::I32, start[a].clone() + d.tap[a].clone());
        let ok = p.clone().cast(Scalar::U32).lt(u(g.input[a] as u32));
        inb = Some(match inb {
            None => ok,
            Some(x) => x.and(ok),
        });
        let sa = st[a] * g.pixel_stride;
        idx = idx + if sa == 1 { p } else { p * i(sa as i32) };
    }
    (idx, inb)
}

/// Per-k hoisted values of the im2col decomposition.
#[derive(Clone)]
struct KDecomp {
    chan_off: Expr,
    tap: [Expr; 3],
}

fn pack(b: &mut KernelBuilder, vals: Vec<Expr>, cs: Scalar) -> Expr {
    if vals.len() == 1 {
        let v = vals.into_iter().next().unwrap_or(f(0.0));
        b.let_(Type::scalar(cs), v)
    } else {
        let n = vals.len() as u8;
        b.let_(Type::vec(cs, n), Expr::Vector(vals))
    }
}

/// Component `lane` of a packet (scalar packets have one).
fn comp(p: &Expr, lanes: u32, lane: u32) -> Expr {
    if lanes == 1 {
        p.clone()
    } else {
        p.clone().lane(lane as u8)
    }
}

/// Number of lanes of a packet for `mode`.
fn packet_lanes(mode: Mode, ks: u32) -> u32 {
    match mode {
        Mode::KVec | Mode::RowVec | Mode::Im2colVec => 4,
        Mode::Scalar => ks,
    }
}

/// Builds the kernel launch of a float GEMM problem with `cfg`.
pub fn build(name: String, p: &Problem, cfg: &GemmConfig) -> Result<KernelLaunch, String> {
    cfg.validate()?;
    if cfg.shared {
        return build_shared(name, p, cfg);
    }
    let (tm, tn) = (cfg.tile_m, cfg.tile_n);
    let ks = if p.k % cfg.k_step as usize == 0 {
        cfg.k_step
    } else {
        1
    };
    let cfg = GemmConfig { k_step: ks, ..*cfg };
    let nb: usize = p.batch.iter().product();
    let mt = p.m.div_ceil(tm as usize);
    let nt = p.n.div_ceil(tn as usize);
    let lanes = if cfg.subgroup { LANES } else { 1 };
    // With sharing, a whole workgroup works on one row tile (so that every subgroup, whatever
    // its size ≥ 8 and layout, shares it); its threads take consecutive column tiles. A row
    // tile's column tiles are split into the workgroups that pay for the fewest idle lanes
    // (49 tiles: 1 × 56 or 7 × 8, not 2 × 32; 80: 2 × 40, not 64 + 16), the fewest workgroups
    // of equals, and into at least [`common::MIN_WORKGROUPS`] in all where the columns allow.
    // On lavapipe each workgroup is one core's task: the 64 + 16 split made mobilenet_v2's
    // m 49, n 320 GEMM 20–26% slower, and its m 96, n 196, k 576 GEMM ran as 3 workgroups (one
    // per row tile; on 2 cores, the time of 4) — as 21 workgroups of 8 it is 20% faster, and
    // the model 28.2 → 27.4 ms (best medians of 6 alternating rounds). Without sharing, only
    // the count: [`common::spread_workgroup`].
    let wg = if lanes > 1 {
        let most = nt.div_ceil(LANES as usize);
        let least = nt
            .div_ceil(cfg.workgroup as usize)
            .max(common::MIN_WORKGROUPS.div_ceil(nb * mt).min(most));
        let size = |p: usize| nt.div_ceil(p).next_multiple_of(LANES as usize);
        // The split that pays for the fewest idle lanes (49 column tiles: 7 × 8 or 1 × 56,
        // not 2 × 32), the fewest workgroups of equals.
        let per_row_tile = (least..=most.max(least))
            .min_by_key(|&p| (p * size(p), p))
            .unwrap_or(least);
        (size(per_row_tile) as u32).clamp(8, cfg.workgroup)
    } else {
        common::spread_workgroup(nb * mt * nt, cfg.workgroup)
    };
    let ntw = nt.div_ceil(wg as usize);
    let total = if lanes > 1 {
        nb * mt * ntw * wg as usize
    } else {
        nb * mt * nt
    };
    let grid = grid_1d(total, wg);
    let mut b = KernelBuilder::new(name, [wg, 1, 1]);
    let mut args = Vec::new();
    let mut bind = |b: &mut KernelBuilder, nm: &str, op: &Operand, mode: Mode| {
        let s = storage_scalar(op.dtype).unwrap_or(Scalar::F32);
        let ty = if mode == Mode::Scalar {
            Type::scalar(s)
        } else {
            Type::vec(s, 4)
        };
        args.push(op.arg);
        b.buffer(nm, ty, Access::Read)
    };
    let am = mode_of(&p.a, p.m, tm, p.k, &cfg);
    let bm = mode_of(&p.b, p.n, tn, p.k, &cfg);
    let abuf = bind(&mut b, "a", &p.a, am);
    let bbuf = bind(&mut b, "b", &p.b, bm);
    let cbuf = p.addend.as_ref().map(|c| {
        let s = storage_scalar(c.dtype).unwrap_or(Scalar::F32);
        args.push(c.arg);
        b.buffer("c", Type::scalar(s), Access::Read)
    });
    let ep = p.epilogue.as_ref().map(|e| e.bind(&mut b, &mut args));
    let out_s = storage_scalar(p.out.1).unwrap_or(Scalar::F32);
    let out_vec = cfg.vector
        && out_s == Scalar::F32
        && p.out_n_stride == 1
        && p.n % 4 == 0
        && p.out_m_stride % 4 == 0
        && all_div4(&p.out_batch_strides);
    // Column-major outputs (a conv's NCHW output: rows are pixels, contiguous) store vec4 runs
    // of four rows instead of scalars, and load a per-column bias once per column.
    let out_mvec = !out_vec
        && cfg.vector
        && out_s == Scalar::F32
        && p.out_m_stride == 1
        && p.m % 4 == 0
        && tm % 4 == 0
        && p.out_n_stride % 4 == 0
        && all_div4(&p.out_batch_strides);
    let obuf = b.buffer(
        "out",
        if out_vec || out_mvec {
            Type::vec(out_s, 4)
        } else {
            Type::scalar(out_s)
        },
        Access::ReadWrite,
    );
    args.push(p.out.0);

    // Thread → (batch, row tile, column tile).
    let t = flat_index(&mut b, grid, wg);
    let (ntile, rest, j) = if lanes > 1 {
        let wid = b.let_(Type::I32, t.clone() / i(wg as i32));
        let l = t.clone() % i(wg as i32);
        let ntile = b.let_(Type::I32, (wid.clone() % i(ntw as i32)) * i(wg as i32) + l);
        let rest = b.let_(Type::I32, wid / i(ntw as i32));
        let j = b.let_(
            Type::I32,
            (Expr::Builtin(Builtin::SubgroupLane) % u(LANES)).cast(Scalar::I32),
        );
        (ntile, rest, j)
    } else {
        let ntile = b.let_(Type::I32, t.clone() % i(nt as i32));
        let rest = b.let_(Type::I32, t.clone() / i(nt as i32));
        (ntile, rest, i(0))
    };
    let mtile = b.let_(Type::I32, rest.clone() % i(mt as i32));
    let bi = b.let_(Type::I32, (rest / i(mt as i32)).min(i(nb as i32 - 1)));
    let m0 = b.let_(Type::I32, mtile * i(tm as i32));
    let n0 = b.let_(Type::I32, ntile.clone() * i(tn as i32));
    let bcoords = unravel(&mut b, &bi, &p.batch);
    let a_base = b.let_(Type::I32, common::dot_strides(&bcoords, &p.a.batch_strides));
    let b_base = b.let_(Type::I32, common::dot_strides(&bcoords, &p.b.batch_strides));

    let mut aside = Side {
        buf: abuf,
        mode: am,
        op: p.a.clone(),
        rows: p.m,
        units: Vec::new(),
    };
    let mut bside = Side {
        buf: bbuf,
        mode: bm,
        op: p.b.clone(),
        rows: p.n,
        units: Vec::new(),
    };
    // A units this thread loads (with sharing: units q*LANES + j).
    let a_units = tm / am.unit_rows();
    let a_shared = lanes > 1 && a_units % lanes == 0;
    let a_loaded = if a_shared { a_units / lanes } else { a_units };
    for q in 0..a_loaded {
        let row0 = if a_shared {
            m0.clone() + (i((q * lanes) as i32) + j.clone()) * i(am.unit_rows() as i32)
        } else {
            m0.clone() + i((q * am.unit_rows()) as i32)
        };
        let ctx = aside.row_ctx(&mut b, &a_base, row0);
        aside.units.push(ctx);
    }
    for q in 0..tn / bm.unit_rows() {
        let row0 = n0.clone() + i((q * bm.unit_rows()) as i32);
        let ctx = bside.row_ctx(&mut b, &b_base, row0);
        bside.units.push(ctx);
    }
    let lane_base = if a_shared { Some(()) } else { None };

    let cs = Scalar::F32;
    let acc: Vec<Vec<_>> = (0..tm)
        .map(|_| {
            (0..tn / 4)
                .map(|_| b.var(Type::vec(cs, 4), Expr::Splat(4, Box::new(f(0.0)))))
                .collect()
        })
        .collect();

    b.for_(i(0), i(p.k as i32), ks as i32, false, |b, k0| {
        let kdec = |b: &mut KernelBuilder, op: &Operand| -> Vec<KDecomp> {
            match &op.source {
                Source::Im2col(g) => (0..ks)
                    .map(|kk| {
                        let kx = b.let_(Type::I32, k0.clone() + i(kk as i32));
                        let kk_total: usize = g.kernel.iter().product();
                        let (c, rem) = if kk_total == 1 {
                            (kx.clone(), i(0))
                        } else {
                            g.split_k(b, kx, p.k)
                        };
                        let taps = unravel(b, &rem, &g.kernel);
                        let tap: Vec<Expr> = (0..3)
                            .map(|a| {
                                if g.dilation[a] == 1 {
                                    taps[a].clone()
                                } else {
                                    taps[a].clone() * i(g.dilation[a] as i32)
                                }
                            })
                            .collect();
                        KDecomp {
                            chan_off: if g.chan_stride == 1 {
                                c
                            } else {
                                c * i(g.chan_stride as i32)
                            },
                            tap: [tap[0].clone(), tap[1].clone(), tap[2].clone()],
                        }
                    })
                    .collect(),
                _ => Vec::new(),
            }
        };
        let adec = kdec(b, &aside.op);
        let bdec = kdec(b, &bside.op);
        // B fragment as vec4 rows over 4 columns: bvec[kk][c4].
        let mut bvals: Vec<Vec<Option<Expr>>> = vec![vec![None; tn as usize]; ks as usize];
        let bpl = packet_lanes(bm, ks);
        for (q, ctx) in bside.units.clone().iter().enumerate() {
            let packets = bside.packets(b, ctx, &k0, ks, &bdec);
            for (pi, pk) in packets.iter().enumerate() {
                for l in 0..bpl {
                    let (r, kk) = bside.lane_map(pi, l as usize, ks);
                    let col = q as u32 * bm.unit_rows() + r;
                    bvals[kk as usize][col as usize] = Some(comp(pk, bpl, l));
                }
            }
        }
        let bvec: Vec<Vec<Expr>> = (0..ks as usize)
            .map(|kk| {
                (0..(tn / 4) as usize)
                    .map(|c4| {
                        let lanes: Vec<Expr> = (0..4)
                            .map(|l| bvals[kk][c4 * 4 + l].clone().unwrap_or(f(0.0)))
                            .collect();
                        if bm == Mode::RowVec {
                            // The loaded vec4 itself.
                            match &lanes[0] {
                                Expr::Lane(v, 0) => (**v).clone(),
                                _ => Expr::Vector(lanes),
                            }
                        } else {
                            b.let_(Type::vec(cs, 4), Expr::Vector(lanes))
                        }
                    })
                    .collect()
            })
            .collect();
        // A fragment, unit by unit (shuffled in from the owning lane when shared).
        let apl = packet_lanes(am, ks);
        let mut own: Vec<Vec<Expr>> = Vec::new();
        for ctx in aside.units.clone().iter() {
            own.push(aside.packets(b, ctx, &k0, ks, &adec));
        }
        for unit in 0..a_units {
            let packets: Vec<Expr> = if lane_base.is_some() {
                let q = (unit / lanes) as usize;
                let src = unit % lanes;
                own[q]
                    .iter()
                    .map(|pk| {
                        let ty = if apl == 1 {
                            Type::F32
                        } else {
                            Type::vec(cs, apl as u8)
                        };
                        b.let_(ty, pk.clone().broadcast(src))
                    })
                    .collect()
            } else {
                own[unit as usize].clone()
            };
            for (pi, pk) in packets.iter().enumerate() {
                for l in 0..apl {
                    let (r, kk) = aside.lane_map(pi, l as usize, ks);
                    let row = unit * am.unit_rows() + r;
                    let av = comp(pk, apl, l);
                    for c4 in 0..(tn / 4) as usize {
                        let a_acc = acc[row as usize][c4];
                        b.assign(
                            a_acc,
                            Expr::Splat(4, Box::new(av.clone()))
                                .fma(bvec[kk as usize][c4].clone(), Expr::Var(a_acc)),
                        );
                    }
                }
            }
        }
    });

    // Epilogue.
    let ob_base = b.let_(
        Type::I32,
        common::dot_strides(&bcoords, &p.out_batch_strides),
    );
    let addend = |m: &Expr, n: &Expr| -> Option<Expr> {
        let (c, cb) = (p.addend.as_ref()?, cbuf?);
        let idx = common::dot_strides(&[m.clone(), n.clone()], &[c.m_stride, c.n_stride])
            + common::dot_strides(&bcoords, &c.batch_strides);
        let cv = common::load(cb, idx, c.dtype);
        Some(if c.scale == 1.0 { cv } else { cv * f(c.scale) })
    };
    // The addend's loads are hoisted out of the store loops where it is one value per row (a
    // channels-first conv's bias, rows = output channels; or one value per batch) or per column
    // (a channels-last conv's): tm or tn loads instead of one per output — the channels-last
    // branch below loaded a per-row bias tn times per row, 128–256 loads per thread on
    // mobilenet_v2's 14² and 7² convs. With A shared across the subgroup (every lane on the
    // same row tile), lane j loads rows j, j + 8, … and every lane gets all of them by
    // broadcast: tm/8 loads per lane (on lavapipe a load costs ~12 broadcasts; mobilenet_v2's
    // 112²/56² expand convs, K 16–24, got 8–14% faster). The loads are clamped into range
    // (what lies outside is not stored), and they and the broadcasts sit outside the guards:
    // broadcasts need every lane.
    let clamp_m = |m: Expr| m.min(i(p.m as i32 - 1));
    let row_adds: Option<Vec<Expr>> = match &p.addend {
        Some(c) if c.n_stride == 0 && c.m_stride == 0 => {
            let cv = addend(&i(0), &i(0)).unwrap_or(f(0.0));
            Some(vec![b.let_(Type::scalar(cs), cv); tm as usize])
        }
        Some(c) if c.n_stride == 0 && a_shared => {
            let own: Vec<Expr> = (0..tm / LANES)
                .map(|q| {
                    let m = clamp_m(m0.clone() + i((q * LANES) as i32) + j.clone());
                    let cv = addend(&m, &i(0)).unwrap_or(f(0.0));
                    b.let_(Type::scalar(cs), cv)
                })
                .collect();
            Some(
                (0..tm)
                    .map(|r| {
                        let v = own[(r / LANES) as usize].clone().broadcast(r % LANES);
                        b.let_(Type::scalar(cs), v)
                    })
                    .collect(),
            )
        }
        Some(c) if c.n_stride == 0 => Some(
            (0..tm)
                .map(|r| {
                    let cv = addend(&clamp_m(m0.clone() + i(r as i32)), &i(0)).unwrap_or(f(0.0));
                    b.let_(Type::scalar(cs), cv)
                })
                .collect(),
        ),
        _ => None,
    };
    let col_adds: Option<Vec<Expr>> = match &p.addend {
        Some(c) if c.m_stride == 0 && c.n_stride != 0 => Some(
            (0..tn)
                .map(|col| {
                    let n = (n0.clone() + i(col as i32)).min(i(p.n as i32 - 1));
                    let cv = addend(&i(0), &n).unwrap_or(f(0.0));
                    b.let_(Type::scalar(cs), cv)
                })
                .collect(),
        ),
        _ => None,
    };
    // The addend of output (tile row r, tile column col) at (m, n).
    let add_at = |r: u32, col: u32, m: &Expr, n: &Expr| match (&row_adds, &col_adds) {
        (Some(rows), _) => Some(rows[r as usize].clone()),
        (None, Some(cols)) => Some(cols[col as usize].clone()),
        (None, None) => addend(m, n),
    };
    // Guards known to hold are not emitted: a row tile never passes the rows when they are a
    // multiple of the tile (the row tile index is taken modulo their count); when the columns
    // are a multiple of the tile, one guard on the thread's first column stands for all of its
    // columns, and is needed only where a workgroup has spare threads. (On lavapipe this was
    // within noise — mobilenet_v2's 112² expand GEMM, 32 row guards fewer: 1846 vs 1853 µs,
    // best of 8 rounds — but every target gets shorter kernels.)
    let rows_exact = p.m % tm as usize == 0;
    let cols_exact = p.n % tn as usize == 0;
    let row_guard = |m: &Expr| (!rows_exact).then(|| m.clone().lt(i(p.m as i32)));
    let col_guard = |n: &Expr| (!cols_exact).then(|| n.clone().lt(i(p.n as i32)));
    let spare = lanes > 1 && ntw * wg as usize > nt;
    let outer = (cols_exact && spare).then(|| n0.clone().lt(i(p.n as i32)));
    b.if_some(outer, |b| {
        if out_mvec {
            for col in 0..tn {
                let n = b.let_(Type::I32, n0.clone() + i(col as i32));
                b.if_some(col_guard(&n), |b| {
                    for r4 in 0..tm / 4 {
                        let m = b.let_(Type::I32, m0.clone() + i((r4 * 4) as i32));
                        b.if_some(row_guard(&m), |b| {
                            let vals: Vec<Expr> = (0..4)
                                .map(|l| {
                                    let acc_v =
                                        Expr::Var(acc[(r4 * 4 + l) as usize][(col / 4) as usize]);
                                    let mut v = comp(&acc_v, 4, col % 4);
                                    if p.alpha != 1.0 {
                                        v = v * f(p.alpha);
                                    }
                                    let ml = m.clone() + i(l as i32);
                                    match add_at(r4 * 4 + l, col, &ml, &n) {
                                        Some(cv) => v + cv,
                                        None => v,
                                    }
                                })
                                .collect();
                            let off = b.let_(
                                Type::I32,
                                ob_base.clone() + m.clone() + n.clone() * i(p.out_n_stride as i32),
                            );
                            let vals = match &ep {
                                Some(e) => e.apply_lanes(b, vals, &off),
                                None => vals,
                            };
                            b.store(obuf, off / i(4), Expr::Vector(vals));
                        });
                    }
                });
            }
        } else {
            for r in 0..tm {
                let m = m0.clone() + i(r as i32);
                b.if_some(row_guard(&m), |b| {
                    for c4 in 0..tn / 4 {
                        let n = n0.clone() + i((c4 * 4) as i32);
                        let mut v = Expr::Var(acc[r as usize][c4 as usize]);
                        if p.alpha != 1.0 {
                            v = v * Expr::Splat(4, Box::new(f(p.alpha)));
                        }
                        let v = b.let_(Type::vec(cs, 4), v);
                        let addv = |l: u32| -> Expr {
                            let base = comp(&v, 4, l);
                            match add_at(r, c4 * 4 + l, &m, &(n.clone() + i(l as i32))) {
                                Some(cv) => base + cv,
                                None => base,
                            }
                        };
                        let out_off = |b: &mut KernelBuilder, l: u32| {
                            let e = ob_base.clone()
                                + m.clone() * i(p.out_m_stride as i32)
                                + (n.clone() + i(l as i32)) * i(p.out_n_stride as i32);
                            b.let_(Type::I32, e)
                        };
                        if out_vec {
                            b.if_some(col_guard(&n), |b| {
                                let vals: Vec<Expr> = (0..4).map(addv).collect();
                                let off = out_off(b, 0);
                                // The epilogue per lane (the output is dense: offset = flat index).
                                let vals = match &ep {
                                    Some(e) => e.apply_lanes(b, vals, &off),
                                    None => vals,
                                };
                                b.store(obuf, off / i(4), Expr::Vector(vals));
                            });
                        } else {
                            for l in 0..4 {
                                let nl = n.clone() + i(l as i32);
                                b.if_some(col_guard(&nl), |b| {
                                    let val = addv(l);
                                    let off = out_off(b, l);
                                    let val = match &ep {
                                        Some(e) => e.apply(b, val, &off),
                                        None => val,
                                    };
                                    b.store(obuf, off, to_storage(val, p.out.1));
                                });
                            }
                        }
                    }
                });
            }
        }
    });
    if let Some(e) = ep {
        e.finish().map_err(|e| e.to_string())?;
    }
    Ok(KernelLaunch {
        kernel: b.finish(),
        args,
        grid,
    })
}

/// The workgroup-memory variant: not built for this target yet.
fn build_shared(_name: String, _p: &Problem, _cfg: &GemmConfig) -> Result<KernelLaunch, String> {
    Err("the workgroup-memory GEMM variant is not implemented for this target".into())
}

/// Lowers a float GEMM problem with the heuristic configuration, falling back to smaller
/// configurations if the heuristic point is rejected.
pub fn lower_problem(ctx: &LowerCtx<'_>, p: &Problem) -> Result<KernelLaunch, LowerError> {
    let nb: usize = p.batch.iter().product();
    let cfg = GemmConfig::heuristic_for(ctx.features, nb, p.m, p.n, p.k);
    build(ctx.kname("gemm"), p, &cfg).map_err(|e| ctx.invalid(e))
}

/// `p` with trailing batch dims folded into the rows where that is the same GEMM: B (and the
/// addend's batch stride, if any) broadcast along the dim, and A's rows and the output's rows
/// continuing across it — e.g. a `[197, 1, 192] × [192, 576]` MatMul (ViT's sequence-first
/// projection) is one 197-row GEMM, not 197 one-row GEMMs.
pub(crate) fn fold_batch_into_rows(p: &Problem) -> std::borrow::Cow<'_, Problem> {
    let mut q = std::borrow::Cow::Borrowed(p);
    while let Some(j) = q.batch.len().checked_sub(1) {
        let Source::Strided { row_stride, .. } = q.a.source else {
            break;
        };
        let m = q.m;
        let rows_continue = |stride: usize, row: usize| stride == m * row;
        let foldable = q.batch[j] == 1
            || q.b.batch_strides[j] == 0
                && rows_continue(q.a.batch_strides[j], row_stride)
                && rows_continue(q.out_batch_strides[j], q.out_m_stride)
                && q.addend
                    .as_ref()
                    .is_none_or(|c| rows_continue(c.batch_strides[j], c.m_stride));
        if !foldable {
            break;
        }
        let q = q.to_mut();
        q.m *= q.batch.pop().unwrap_or(1);
        q.a.batch_strides.pop();
        q.b.batch_strides.pop();
        q.out_batch_strides.pop();
        if let Some(c) = q.addend.as_mut() {
            c.batch_strides.pop();
        }
    }
    q
}

/// [`lower_problem`] as a lowering's launches; with [`BuildMode::Check`] only what can make it fail
/// is checked (the bindings and the heuristic configuration), and no kernel is built. Batch
/// dims that are really rows are folded first ([`fold_batch_into_rows`]).
pub(crate) fn problem_launches(
    ctx: &LowerCtx<'_>,
    p: &Problem,
    mode: BuildMode,
) -> Result<Lowered, LowerError> {
    let p = &*fold_batch_into_rows(p);
    if let Some(e) = &p.epilogue {
        e.check_bindings(ctx, 3 + p.addend.is_some() as usize)?;
    }
    let launches = match mode {
        BuildMode::Build => match super::mma::lower_problem(ctx, p)? {
            Some(l) => vec![l],
            None => vec![lower_problem(ctx, p)?],
        },
        BuildMode::Check => {
            let nb: usize = p.batch.iter().product();
            GemmConfig::heuristic_for(ctx.features, nb, p.m, p.n, p.k)
                .validate()
                .map_err(|e| ctx.invalid(e))?;
            Vec::new()
        }
    };
    Ok(Lowered {
        launches,
        ..Lowered::default()
    })
}

/// Row-major strides of `shape` placed against the output batch dims (right-aligned), with 0
/// for broadcast dims.
fn batch_strides(in_batch: &[usize], in_strides: &[usize], out_batch: &[usize]) -> Vec<usize> {
    let off = out_batch.len() - in_batch.len();
    (0..out_batch.len())
        .map(|d| {
            if d < off || in_batch[d - off] == 1 {
                0
            } else {
                in_strides[d - off]
            }
        })
        .collect()
}

/// The shapes of a numpy MatMul: operands padded to rank ≥ 2 (a 1-D A is a row, a 1-D B a
/// column), the broadcast batch dims, and M, K, N.
struct MatMulDims {
    a2: Vec<usize>,
    b2: Vec<usize>,
    batch: Vec<usize>,
    m: usize,
    k: usize,
    n: usize,
}

impl MatMulDims {
    /// The GEMM-core problem of this MatMul: A `[.., M, K]` and B `[.., K, N]` row-major with
    /// numpy batch broadcasting, the output `[batch.., M, N]` row-major.
    fn problem(
        &self,
        a: (Arg, &super::TensorDesc),
        b: (Arg, &super::TensorDesc),
        out: (Arg, DType),
        epilogue: Option<Epilogue>,
    ) -> Problem {
        let MatMulDims {
            a2,
            b2,
            batch,
            m,
            k,
            n,
        } = self;
        let (m, k, n) = (*m, *k, *n);
        let (ra, rb) = (a2.len(), b2.len());
        let (sa, sb) = (strides(a2), strides(b2));
        Problem {
            batch: batch.clone(),
            m,
            n,
            k,
            a: Operand {
                arg: a.0,
                dtype: a.1.dtype,
                numel: a.1.numel(),
                batch_strides: batch_strides(&a2[..ra - 2], &sa[..ra - 2], batch),
                source: Source::Strided {
                    row_stride: k,
                    k_stride: 1,
                },
            },
            b: Operand {
                arg: b.0,
                dtype: b.1.dtype,
                numel: b.1.numel(),
                batch_strides: batch_strides(&b2[..rb - 2], &sb[..rb - 2], batch),
                source: Source::Strided {
                    row_stride: 1,
                    k_stride: n,
                },
            },
            out,
            out_batch_strides: strides(batch).iter().map(|s| s * m * n).collect(),
            out_m_stride: n,
            out_n_stride: 1,
            alpha: 1.0,
            addend: None,
            epilogue,
        }
    }
}

/// Checks and resolves the shapes of a MatMul-like op with operands `a`, `b` and output `out`.
fn matmul_dims(
    ctx: &LowerCtx<'_>,
    a: &[usize],
    b: &[usize],
    out: &[usize],
) -> Result<MatMulDims, LowerError> {
    if a.is_empty() || b.is_empty() {
        return Err(ctx.invalid("MatMul operands must have rank ≥ 1"));
    }
    let a2 = if a.len() == 1 {
        vec![1, a[0]]
    } else {
        a.to_vec()
    };
    let b2 = if b.len() == 1 {
        vec![b[0], 1]
    } else {
        b.to_vec()
    };
    let (ra, rb) = (a2.len(), b2.len());
    let (m, k) = (a2[ra - 2], a2[ra - 1]);
    let (kb, n) = (b2[rb - 2], b2[rb - 1]);
    if k != kb {
        return Err(ctx.invalid(format!("inner dims differ: {a:?} {b:?}")));
    }
    let brank = (ra - 2).max(rb - 2);
    let batch: Vec<usize> = (0..brank)
        .map(|d| {
            let ad = (d + ra - 2).checked_sub(brank).map_or(1, |j| a2[j]);
            let bd = (d + rb - 2).checked_sub(brank).map_or(1, |j| b2[j]);
            ad.max(bd)
        })
        .collect();
    if batch.iter().product::<usize>() * m * n != out.iter().product::<usize>() {
        return Err(ctx.invalid(format!("output {out:?} does not match")));
    }
    Ok(MatMulDims {
        a2,
        b2,
        batch,
        m,
        k,
        n,
    })
}

/// MatMul: numpy batch broadcasting; 1-D operands become a row (A) or column (B).
pub fn lower_matmul(ctx: &LowerCtx<'_>) -> Result<Lowered, LowerError> {
    lower_matmul_with(ctx, None, BuildMode::Build)
}

/// [`lower_matmul`] with an optional fused epilogue (float: the GEMM core; integer: the dot
/// kernel).
pub(crate) fn lower_matmul_with(
    ctx: &LowerCtx<'_>,
    ep: Option<Epilogue>,
    mode: BuildMode,
) -> Result<Lowered, LowerError> {
    let a = ctx.input(0)?;
    let bd = ctx.input(1)?;
    let out = ctx.output(0)?;
    let cs = compute_scalar(out.dtype).unwrap_or(Scalar::F32);
    let out_dt = ep.as_ref().map_or(out.dtype, |e| e.out.dtype);
    let dims = matmul_dims(ctx, &a.shape, &bd.shape, &out.shape)?;
    let (a2, b2, batch) = (&dims.a2, &dims.b2, &dims.batch);
    let (m, k, n) = (dims.m, dims.k, dims.n);
    if out.numel() == 0 {
        return Ok(Lowered::default());
    }
    if cs != Scalar::F32 {
        if out.dtype == DType::I64 {
            return Err(ctx.unsupported("needs int64 arithmetic"));
        }
        if let Some(e) = &ep {
            e.check_bindings(ctx, 3)?;
        }
        let shapes = DotShapes {
            a2,
            b2,
            batch,
            m,
            n,
            k,
        };
        return Ok(Lowered {
            launches: vec![dot_kernel(ctx, &shapes, cs, out.dtype, ep.as_ref())?],
            ..Lowered::default()
        });
    }
    let p = dims.problem(
        (Arg::Input(0), a),
        (Arg::Input(1), bd),
        (Arg::Output(0), out_dt),
        ep,
    );
    problem_launches(ctx, &p, mode)
}

/// The shapes of an integer MatMul's dot kernel (see [`MatMulDims`]).
struct DotShapes<'a> {
    a2: &'a [usize],
    b2: &'a [usize],
    batch: &'a [usize],
    m: usize,
    n: usize,
    k: usize,
}

/// One output element per thread: `out = epilogue(Σ_k a·b)` in integer arithmetic (MatMul on
/// integers); `acc_dt` is the MatMul's output dtype.
fn dot_kernel(
    ctx: &LowerCtx<'_>,
    sh: &DotShapes<'_>,
    cs: Scalar,
    acc_dt: DType,
    ep: Option<&Epilogue>,
) -> Result<KernelLaunch, LowerError> {
    let DotShapes {
        a2,
        b2,
        batch,
        m,
        n,
        k,
    } = *sh;
    let out_dt = ep.map_or(acc_dt, |e| e.out.dtype);
    let a = ctx.inputs[0].as_ref().map(|d| d.dtype).unwrap_or(out_dt);
    let bdt = ctx.inputs[1].as_ref().map(|d| d.dtype).unwrap_or(out_dt);
    let total = batch.iter().product::<usize>() * m * n;
    let wg = 256;
    let grid = grid_1d(total, wg);
    let mut b = KernelBuilder::new(ctx.kname("dot"), [wg, 1, 1]);
    let ab = b.buffer(
        "a",
        Type::scalar(storage_scalar(a).unwrap_or(cs)),
        Access::Read,
    );
    let bb = b.buffer(
        "b",
        Type::scalar(storage_scalar(bdt).unwrap_or(cs)),
        Access::Read,
    );
    let mut args = vec![Arg::Input(0), Arg::Input(1)];
    let ep = ep.map(|e| e.bind(&mut b, &mut args));
    let ob = b.buffer(
        "out",
        Type::scalar(storage_scalar(out_dt).unwrap_or(cs)),
        Access::ReadWrite,
    );
    args.push(Arg::Output(0));
    let t = flat_index(&mut b, grid, wg);
    common::guard(&mut b, &t, total);
    let mut oshape = batch.to_vec();
    oshape.push(m);
    oshape.push(n);
    let c = unravel(&mut b, &t, &oshape);
    let br = batch.len();
    let (ra, rb) = (a2.len(), b2.len());
    let sa = strides(a2);
    let sb = strides(b2);
    let abs = batch_strides(&a2[..ra - 2], &sa[..ra - 2], batch);
    let bbs = batch_strides(&b2[..rb - 2], &sb[..rb - 2], batch);
    let a_off = b.let_(
        Type::I32,
        common::dot_strides(&c[..br], &abs) + c[br].clone() * i(k as i32),
    );
    let b_off = b.let_(
        Type::I32,
        common::dot_strides(&c[..br], &bbs) + c[br + 1].clone(),
    );
    let acc = b.var(Type::scalar(cs), lit(cs, 0.0));
    b.for_(i(0), i(k as i32), 1, false, |b, kk| {
        let av = common::load(ab, a_off.clone() + kk.clone(), a);
        let bv = common::load(bb, b_off.clone() + kk * i(n as i32), bdt);
        b.assign(acc, Expr::Var(acc) + av * bv);
    });
    let v = match &ep {
        Some(e) => e.apply(&mut b, Expr::Var(acc), &t),
        None => Expr::Var(acc),
    };
    b.store(ob, t, to_storage(v, out_dt));
    finish_launch(b, args, ep, grid)
}

/// Gemm: `alpha · op(A) · op(B) + beta · C` with C broadcast to `[M, N]`.
pub fn lower_gemm(ctx: &LowerCtx<'_>) -> Result<Lowered, LowerError> {
    lower_gemm_with(ctx, None, BuildMode::Build)
}

/// [`lower_gemm`] with an optional fused epilogue.
pub(crate) fn lower_gemm_with(
    ctx: &LowerCtx<'_>,
    ep: Option<Epilogue>,
    mode: BuildMode,
) -> Result<Lowered, LowerError> {
    let Op::Gemm {
        alpha,
        beta,
        trans_a,
        trans_b,
    } = ctx.op
    else {
        return Err(ctx.invalid("not a Gemm"));
    };
    let a = ctx.input(0)?;
    let bd = ctx.input(1)?;
    let out = ctx.output(0)?;
    if compute_scalar(out.dtype) != Some(Scalar::F32) {
        return Err(ctx.unsupported(format!("needs {}", out.dtype.name())));
    }
    if a.shape.len() != 2 || bd.shape.len() != 2 {
        return Err(ctx.invalid("Gemm needs 2-D A and B"));
    }
    let (m, k) = if *trans_a {
        (a.shape[1], a.shape[0])
    } else {
        (a.shape[0], a.shape[1])
    };
    let (kb, n) = if *trans_b {
        (bd.shape[1], bd.shape[0])
    } else {
        (bd.shape[0], bd.shape[1])
    };
    if k != kb || out.shape != [m, n] {
        return Err(ctx.invalid("Gemm shapes do not match"));
    }
    if m * n == 0 {
        return Ok(Lowered::default());
    }
    let addend = match ctx.opt_input(2) {
        Some(c) if *beta != 0.0 => {
            if c.shape.len() > 2 {
                return Err(ctx.invalid("Gemm C has rank > 2"));
            }
            let mut cs = vec![1usize; 2 - c.shape.len()];
            cs.extend(&c.shape);
            if (cs[0] != 1 && cs[0] != m) || (cs[1] != 1 && cs[1] != n) {
                return Err(ctx.invalid(format!("C {:?} does not broadcast", c.shape)));
            }
            Some(Addend {
                arg: Arg::Input(2),
                dtype: c.dtype,
                m_stride: if cs[0] == 1 { 0 } else { cs[1] },
                n_stride: if cs[1] == 1 { 0 } else { 1 },
                batch_strides: vec![],
                scale: *beta,
            })
        }
        _ => None,
    };
    let p = Problem {
        batch: vec![],
        m,
        n,
        k,
        a: Operand {
            arg: Arg::Input(0),
            dtype: a.dtype,
            numel: a.numel(),
            batch_strides: vec![],
            source: if *trans_a {
                Source::Strided {
                    row_stride: 1,
                    k_stride: m,
                }
            } else {
                Source::Strided {
                    row_stride: k,
                    k_stride: 1,
                }
            },
        },
        b: Operand {
            arg: Arg::Input(1),
            dtype: bd.dtype,
            numel: bd.numel(),
            batch_strides: vec![],
            source: if *trans_b {
                Source::Strided {
                    row_stride: k,
                    k_stride: 1,
                }
            } else {
                Source::Strided {
                    row_stride: 1,
                    k_stride: n,
                }
            },
        },
        out: (
            Arg::Output(0),
            ep.as_ref().map_or(out.dtype, |e| e.out.dtype),
        ),
        out_batch_strides: vec![],
        out_m_stride: n,
        out_n_stride: 1,
        alpha: *alpha,
        addend,
        epilogue: ep,
    };
    problem_launches(ctx, &p, mode)
}

/// A per-tensor / per-row / per-column quantisation parameter: which binding, and how it is
/// indexed from the output coordinates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamIndex {
    /// One element.
    Scalar,
    /// Indexed by the output row (M).
    Row,
    /// Indexed by the output column (N).
    Col,
}

/// How a quantisation parameter of `numel` elements is indexed, for side `row` (A side: per
/// row) given M and N.
pub fn param_index(
    ctx: &LowerCtx<'_>,
    numel: usize,
    per_row: bool,
    m: usize,
    n: usize,
) -> Result<ParamIndex, LowerError> {
    if numel == 1 {
        Ok(ParamIndex::Scalar)
    } else if per_row && numel == m {
        Ok(ParamIndex::Row)
    } else if !per_row && numel == n {
        Ok(ParamIndex::Col)
    } else {
        Err(ctx.unsupported("with batched quantisation parameters"))
    }
}

/// Loads the parameter bound at `buf` (dtype `dt`) for output row `m`, column `n`, as i32 (zero
/// points) or f32 (scales, when `float`).
pub fn param_load(buf: u32, dt: DType, ix: ParamIndex, m: &Expr, n: &Expr, float: bool) -> Expr {
    let idx = match ix {
        ParamIndex::Scalar => i(0),
        ParamIndex::Row => m.clone(),
        ParamIndex::Col => n.clone(),
    };
    let v = common::load(buf, idx, dt);
    if float { v } else { v.cast(Scalar::I32) }
}

/// A bound quantisation parameter: binding, dtype, indexing, and whether it is a float scale.
type BoundParam = (u32, DType, ParamIndex, bool);

/// Rounds `v` (f32) half to even, adds the zero point and saturates to `dt`'s range.
pub fn requantize(v: Expr, zp: Expr, dt: DType) -> Expr {
    let (lo, hi) = match dt {
        DType::U8 => (0.0, 255.0),
        DType::I8 => (-128.0, 127.0),
        DType::U16 => (0.0, 65535.0),
        DType::I16 => (-32768.0, 32767.0),
        _ => (-2_147_483_648.0, 2_147_483_520.0),
    };
    let r = (v + zp.cast(Scalar::F32)).un(crate::ir::UnOp::Round);
    let r = r.max(f(lo)).min(f(hi));
    let s = storage_scalar(dt).unwrap_or(Scalar::I32);
    if s == Scalar::U32 {
        r.cast(Scalar::I32).cast(Scalar::U32)
    } else {
        r.cast(Scalar::I32)
    }
}

/// MatMulInteger and QLinearMatMul: one output per thread, i32 accumulation of
/// `(a - a_zp)(b - b_zp)`; QLinearMatMul requantizes with `a_scale · b_scale / y_scale`. On
/// tensor-core targets, MatMulInteger of two s8 or two u8 operands with or without zero
/// points — or QLinearMatMul's product — is one `mma.sync` m16n8k32 kernel instead
/// ([`super::mma`]), which subtracts the zero points itself.
pub fn lower_quant_matmul(ctx: &LowerCtx<'_>) -> Result<Lowered, LowerError> {
    let qlinear = matches!(ctx.op, Op::QLinearMatMul);
    let (ai, bi) = if qlinear { (0, 3) } else { (0, 1) };
    let a = ctx.input(ai)?;
    let bd = ctx.input(bi)?;
    let out = ctx.output(0)?;
    let dims = matmul_dims(ctx, &a.shape, &bd.shape, &out.shape)?;
    let (a2, b2, batch) = (&dims.a2, &dims.b2, &dims.batch);
    let (m, k, n) = (dims.m, dims.k, dims.n);
    let (ra, rb) = (a2.len(), b2.len());
    let total = out.numel();
    if total == 0 {
        return Ok(Lowered::default());
    }
    let zps = if qlinear { [2, 5] } else { [2, 3] };
    // Tensor cores (m16n8k32, exact s32 sums) for the product of two s8 or two u8 operands; the
    // kernel subtracts the zero points (scalar, per row of A, per column of B).
    let mut mma_first = None;
    if ctx.features.tensor_cores
        && a.dtype == bd.dtype
        && matches!(a.dtype, DType::I8 | DType::U8)
        && (qlinear || out.dtype == DType::I32)
    {
        let zp_of = |idx: usize, per_row: bool| -> Result<_, LowerError> {
            Ok(match ctx.opt_input(idx) {
                Some(d) if d.numel() > 0 => Some((
                    Arg::Input(idx),
                    d.dtype,
                    param_index(ctx, d.numel(), per_row, m, n)?,
                )),
                _ => None,
            })
        };
        let zp = super::mma::ZeroPoints {
            a: zp_of(zps[0], true)?,
            b: zp_of(zps[1], false)?,
        };
        let zp_dtypes_match = [zp.a, zp.b]
            .iter()
            .flatten()
            .all(|&(_, dt, _)| dt == a.dtype);
        let out_arg = if qlinear {
            Arg::Temp(0)
        } else {
            Arg::Output(0)
        };
        let p = dims.problem(
            (Arg::Input(ai), a),
            (Arg::Input(bi), bd),
            (out_arg, DType::I32),
            None,
        );
        if zp_dtypes_match {
            mma_first = super::mma::lower_problem_zp(ctx, &p, &zp)?;
        }
    }
    let wg = 256;
    let grid = grid_1d(total, wg);
    let mut oshape = batch.clone();
    oshape.push(m);
    oshape.push(n);
    let br = batch.len();
    let bind_params = |b: &mut KernelBuilder,
                       args: &mut Vec<Arg>,
                       list: &[(usize, bool, bool)]|
     -> Result<Vec<Option<BoundParam>>, LowerError> {
        let mut v = Vec::new();
        for &(idx, per_row, float) in list {
            match ctx.opt_input(idx) {
                Some(d) if d.numel() > 0 => {
                    let ix = param_index(ctx, d.numel(), per_row, m, n)?;
                    let s = storage_scalar(d.dtype).unwrap_or(Scalar::I32);
                    let buf = b.buffer(format!("p{idx}"), Type::scalar(s), Access::Read);
                    args.push(Arg::Input(idx));
                    v.push(Some((buf, d.dtype, ix, float)));
                }
                _ => v.push(None),
            }
        }
        Ok(v)
    };
    let load_p =
        |b: &mut KernelBuilder, p: Option<BoundParam>, mc: &Expr, nc: &Expr| -> Option<Expr> {
            p.map(|(buf, dt, ix, float)| {
                let ty = if float { Type::F32 } else { Type::I32 };
                b.let_(ty, param_load(buf, dt, ix, mc, nc, float))
            })
        };
    // Kernel 1: the i32 product (into the output, or a scratch tensor for QLinearMatMul).
    // Built only where the tensor cores do not take the product.
    let qdot = || -> Result<KernelLaunch, LowerError> {
        let mut b = KernelBuilder::new(ctx.kname("qdot"), [wg, 1, 1]);
        let mut args = vec![Arg::Input(ai), Arg::Input(bi)];
        let abuf = b.buffer(
            "a",
            Type::scalar(storage_scalar(a.dtype).unwrap_or(Scalar::I32)),
            Access::Read,
        );
        let bbuf = b.buffer(
            "b",
            Type::scalar(storage_scalar(bd.dtype).unwrap_or(Scalar::I32)),
            Access::Read,
        );
        let zb = bind_params(
            &mut b,
            &mut args,
            &[(zps[0], true, false), (zps[1], false, false)],
        )?;
        let ob = b.buffer("out", Type::scalar(Scalar::I32), Access::ReadWrite);
        args.push(if qlinear {
            Arg::Temp(0)
        } else {
            Arg::Output(0)
        });
        let t = flat_index(&mut b, grid, wg);
        common::guard(&mut b, &t, total);
        let c = unravel(&mut b, &t, &oshape);
        let (mc, nc) = (c[br].clone(), c[br + 1].clone());
        let sa = strides(a2);
        let sb = strides(b2);
        let abs = batch_strides(&a2[..ra - 2], &sa[..ra - 2], batch);
        let bbs = batch_strides(&b2[..rb - 2], &sb[..rb - 2], batch);
        let a_off = b.let_(
            Type::I32,
            common::dot_strides(&c[..br], &abs) + mc.clone() * i(k as i32),
        );
        let b_off = b.let_(Type::I32, common::dot_strides(&c[..br], &bbs) + nc.clone());
        let azp = load_p(&mut b, zb[0], &mc, &nc);
        let bzp = load_p(&mut b, zb[1], &mc, &nc);
        let acc = b.var(Type::I32, i(0));
        b.for_(i(0), i(k as i32), 1, false, |b, kk| {
            let mut av = Expr::load(abuf, a_off.clone() + kk.clone()).cast(Scalar::I32);
            if let Some(z) = &azp {
                av = av - z.clone();
            }
            let mut bv = Expr::load(bbuf, b_off.clone() + kk * i(n as i32)).cast(Scalar::I32);
            if let Some(z) = &bzp {
                bv = bv - z.clone();
            }
            b.assign(acc, Expr::Var(acc) + av * bv);
        });
        b.store(ob, t, Expr::Var(acc));
        Ok(KernelLaunch {
            kernel: b.finish(),
            args,
            grid,
        })
    };
    let mut launches = vec![match mma_first {
        Some(l) => l,
        None => qdot()?,
    }];
    let mut temps = Vec::new();
    if qlinear {
        temps.push(super::TensorDesc::new(DType::I32, oshape.clone()));
        let mut b = KernelBuilder::new(ctx.kname("requant"), [wg, 1, 1]);
        let mut args = vec![Arg::Temp(0)];
        let accb = b.buffer("acc", Type::I32, Access::Read);
        let pb = bind_params(
            &mut b,
            &mut args,
            &[
                (1, true, true),
                (4, false, true),
                (6, true, true),
                (7, true, false),
            ],
        )?;
        let ob = b.buffer(
            "out",
            Type::scalar(storage_scalar(out.dtype).unwrap_or(Scalar::I32)),
            Access::ReadWrite,
        );
        args.push(Arg::Output(0));
        let t = flat_index(&mut b, grid, wg);
        common::guard(&mut b, &t, total);
        let mc = b.let_(Type::I32, (t.clone() / i(n as i32)) % i(m as i32));
        let nc = b.let_(Type::I32, t.clone() % i(n as i32));
        let sa = load_p(&mut b, pb[0], &mc, &nc).unwrap_or(f(1.0));
        let sb = load_p(&mut b, pb[1], &mc, &nc).unwrap_or(f(1.0));
        let sy = load_p(&mut b, pb[2], &mc, &nc).unwrap_or(f(1.0));
        let yzp = load_p(&mut b, pb[3], &mc, &nc).unwrap_or(i(0));
        let sdt = ctx.opt_input(1).map(|d| d.dtype).unwrap_or(DType::F32);
        let mult = common::convert(sa * sb, DType::F32, sdt);
        let mult = common::convert(mult / sy, DType::F32, sdt);
        let v = Expr::load(accb, t.clone()).cast(Scalar::F32) * mult;
        b.store(ob, t, requantize(v, yzp, out.dtype));
        launches.push(KernelLaunch {
            kernel: b.finish(),
            args,
            grid,
        });
    }
    Ok(Lowered {
        launches,
        temps,
        ..Lowered::default()
    })
}

/// Einsum of two float operands whose letters classify as batch (both inputs and the output),
/// M (A and output), N (B and output) and K (both inputs only), with at most one M, N and K
/// letter: one strided GEMM (any letter order: the core takes arbitrary strides). Ellipses,
/// repeated letters (diagonals), letters summed out of one operand, size broadcasting and other
/// operand counts are refused.
pub fn lower_einsum(ctx: &LowerCtx<'_>) -> Result<Lowered, LowerError> {
    lower_einsum_with(ctx, None, BuildMode::Build)
}

/// [`lower_einsum`] with an optional fused epilogue.
pub(crate) fn lower_einsum_with(
    ctx: &LowerCtx<'_>,
    ep: Option<Epilogue>,
    mode: BuildMode,
) -> Result<Lowered, LowerError> {
    let Op::Einsum { equation } = ctx.op else {
        return Err(ctx.invalid("not an Einsum"));
    };
    if ctx.inputs.len() != 2 {
        return Err(ctx.unsupported("with other than two operands"));
    }
    let a = ctx.input(0)?;
    let bd = ctx.input(1)?;
    let out = ctx.output(0)?;
    if compute_scalar(out.dtype) != Some(Scalar::F32) {
        return Err(ctx.unsupported(format!("needs {}", out.dtype.name())));
    }
    let (terms, ol) = match optc_ir::opset::nn::letter_terms(equation, 2) {
        Ok(t) => t,
        Err(e) if e.starts_with("ellipsis") => return Err(ctx.unsupported("with an ellipsis")),
        Err(e) => return Err(ctx.invalid(e)),
    };
    let (al, bl) = (&terms[0], &terms[1]);
    let dup = |v: &[char]| v.iter().enumerate().any(|(i, c)| v[..i].contains(c));
    if dup(al) || dup(bl) || dup(&ol) {
        return Err(ctx.unsupported("with repeated letters in one term"));
    }
    if al.len() != a.shape.len() || bl.len() != bd.shape.len() || ol.len() != out.shape.len() {
        return Err(ctx.invalid("equation ranks do not match the operands"));
    }
    let size = |c: char| -> Option<usize> {
        al.iter()
            .position(|x| *x == c)
            .map(|p| a.shape[p])
            .or_else(|| bl.iter().position(|x| *x == c).map(|p| bd.shape[p]))
    };
    for (p, c) in al.iter().enumerate() {
        if let Some(q) = bl.iter().position(|x| x == c)
            && bd.shape[q] != a.shape[p]
        {
            return Err(ctx.unsupported("with broadcast letter sizes"));
        }
    }
    for (p, c) in ol.iter().enumerate() {
        if size(*c) != Some(out.shape[p]) {
            return Err(ctx.invalid("output letter sizes do not match"));
        }
    }
    let (sa, sb, so) = (strides(&a.shape), strides(&bd.shape), strides(&out.shape));
    let st = |l: &[char], s: &[usize], c: char| l.iter().position(|x| *x == c).map(|p| s[p]);
    let (mut batch, mut abs, mut bbs, mut obs) = (vec![], vec![], vec![], vec![]);
    let (mut mset, mut nset, mut kset, mut bseen) = (vec![], vec![], vec![], vec![]);
    for &c in al.iter().chain(bl.iter()) {
        let (ia, ib, io) = (al.contains(&c), bl.contains(&c), ol.contains(&c));
        match (ia, ib, io) {
            (true, true, true) => {
                if bseen.contains(&c) {
                    continue;
                }
                bseen.push(c);
                batch.push(size(c).unwrap_or(1));
                abs.push(st(al, &sa, c).unwrap_or(0));
                bbs.push(st(bl, &sb, c).unwrap_or(0));
                obs.push(st(&ol, &so, c).unwrap_or(0));
            }
            (true, false, true) if !mset.contains(&c) => mset.push(c),
            (false, true, true) if !nset.contains(&c) => nset.push(c),
            (true, true, false) if !kset.contains(&c) => kset.push(c),
            (_, _, false) if !(ia && ib) => {
                return Err(ctx.unsupported("with a letter summed out of one operand"));
            }
            _ => {}
        }
    }
    if mset.len() > 1 || nset.len() > 1 || kset.len() > 1 {
        return Err(ctx.unsupported("with several letters of one GEMM dimension"));
    }
    if out.numel() == 0 {
        return Ok(Lowered::default());
    }
    let one = |set: &[char]| set.first().copied();
    let (mc, nc, kc) = (one(&mset), one(&nset), one(&kset));
    let dim = |c: Option<char>| c.and_then(size).unwrap_or(1);
    let sst = |l: &[char], s: &[usize], c: Option<char>| c.and_then(|c| st(l, s, c)).unwrap_or(0);
    let p = Problem {
        batch,
        m: dim(mc),
        n: dim(nc),
        k: dim(kc),
        a: Operand {
            arg: Arg::Input(0),
            dtype: a.dtype,
            numel: a.numel(),
            batch_strides: abs,
            source: Source::Strided {
                row_stride: sst(al, &sa, mc),
                k_stride: sst(al, &sa, kc),
            },
        },
        b: Operand {
            arg: Arg::Input(1),
            dtype: bd.dtype,
            numel: bd.numel(),
            batch_strides: bbs,
            source: Source::Strided {
                row_stride: sst(bl, &sb, nc),
                k_stride: sst(bl, &sb, kc),
            },
        },
        out: (
            Arg::Output(0),
            ep.as_ref().map_or(out.dtype, |e| e.out.dtype),
        ),
        out_batch_strides: obs,
        out_m_stride: sst(&ol, &so, mc),
        out_n_stride: sst(&ol, &so, nc),
        alpha: 1.0,
        addend: None,
        epilogue: ep,
    };
    problem_launches(ctx, &p, mode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Stmt;
    use crate::lower::{TensorDesc, lower};

    fn lower_op(op: Op, ins: Vec<Option<TensorDesc>>, out: TensorDesc) -> Lowered {
        let values = vec![None; ins.len()];
        let outs = vec![Some(out)];
        let ctx = LowerCtx {
            op: &op,
            name: "n0",
            inputs: &ins,
            values: &values,
            outputs: &outs,
            features: Default::default(),
        };
        lower(&ctx).expect("lowers")
    }

    fn f32d(shape: &[usize]) -> Option<TensorDesc> {
        Some(TensorDesc::new(DType::F32, shape.to_vec()))
    }

    #[test]
    fn batch_dims_that_continue_the_rows_fold_into_m() {
        // [3, 4, 2, 8] × [8, 12]: B is broadcast and A's rows run on across both batch dims,
        // so the kernel is exactly the [24, 8] × [8, 12] one.
        let out = |s: &[usize]| TensorDesc::new(DType::F32, s.to_vec());
        let folded = lower_op(
            Op::MatMul,
            vec![f32d(&[3, 4, 2, 8]), f32d(&[8, 12])],
            out(&[3, 4, 2, 12]),
        );
        let flat = lower_op(
            Op::MatMul,
            vec![f32d(&[24, 8]), f32d(&[8, 12])],
            out(&[24, 12]),
        );
        assert_eq!(folded.launches[0].kernel.body, flat.launches[0].kernel.body);
        assert_eq!(folded.launches[0].grid, flat.launches[0].grid);
        // A batched B keeps the batch.
        let batched = lower_op(
            Op::MatMul,
            vec![f32d(&[4, 2, 8]), f32d(&[4, 8, 12])],
            out(&[4, 2, 12]),
        );
        let one = lower_op(
            Op::MatMul,
            vec![f32d(&[8, 8]), f32d(&[8, 12])],
            out(&[8, 12]),
        );
        assert_ne!(batched.launches[0].kernel.body, one.launches[0].kernel.body);
        // And the folded kernel computes the MatMul.
        use crate::lower::sim::{assert_close, rand_t, run_op};
        for (a, b) in [
            (vec![3, 4, 2, 8], vec![8, 12]),
            (vec![5, 1, 16], vec![16, 20]),
        ] {
            let ins = [Some(rand_t(&a, 1)), Some(rand_t(&b, 2))];
            let (got, want) = run_op(&Op::MatMul, &ins, &[]);
            assert_close(&got[0], &want[0], &format!("{a:?} x {b:?}"));
        }
    }

    #[test]
    fn config_validation_rejects_invalid_points() {
        assert!(GemmConfig::default().validate().is_ok());
        let bad = [
            GemmConfig {
                tile_n: 6,
                ..Default::default()
            },
            GemmConfig {
                tile_m: 12,
                ..Default::default()
            },
            GemmConfig {
                workgroup: 100,
                ..Default::default()
            },
            GemmConfig {
                k_step: 2,
                ..Default::default()
            },
            GemmConfig {
                tile_m: 64,
                tile_n: 32,
                ..Default::default()
            },
            GemmConfig {
                shared: true,
                ..Default::default()
            },
        ];
        for c in bad {
            assert!(c.validate().is_err(), "{c:?} should be rejected");
        }
    }

    #[test]
    fn heuristic_shrinks_for_small_problems() {
        let big = GemmConfig::heuristic(1, 1024, 1024, 1024);
        assert_eq!((big.tile_m, big.tile_n, big.k_step), (32, 8, 4));
        assert!(big.subgroup);
        let gemv = GemmConfig::heuristic(1, 1, 1000, 512);
        assert_eq!(gemv.tile_m, 1);
        assert!(!gemv.subgroup);
        assert!(gemv.validate().is_ok());
        let odd = GemmConfig::heuristic(1, 100, 3, 7);
        assert_eq!((odd.tile_n, odd.k_step), (4, 1));
        assert!(odd.validate().is_ok());
        // A 7×7 conv's 49 pixels: one 56-row tile, 4 columns, A still shared.
        let seven = GemmConfig::heuristic(1, 49, 512, 4608);
        assert_eq!((seven.tile_m, seven.tile_n), (56, 4));
        assert!(seven.subgroup && seven.validate().is_ok());
        // Too few columns to fill the device with one row tile: 4 columns per thread first,
        // then smaller row tiles (64 threads).
        let narrow = GemmConfig::heuristic(1, 49, 64, 576);
        assert_eq!((narrow.tile_m, narrow.tile_n), (16, 4));
        let c = GemmConfig::heuristic(1, 196, 64, 384);
        assert_eq!((c.tile_m, c.tile_n), (40, 4));
        // Padding paid per orientation (what conv.rs compares for a channels-last 1×1 conv):
        // 160 channels of a 7×7 plane cost 10240 outputs either way; 16 channels of a 112²
        // plane 2× more with the pixels as rows.
        let paid = |m: usize, n: usize| GemmConfig::heuristic(1, m, n, 960).paid_work(m, n);
        assert_eq!((paid(49, 160), paid(160, 49)), (10240, 10240));
        assert_eq!(paid(12544, 16), 2 * paid(16, 12544));
        // 196 rows (a 14×14 plane): 40-row tiles (200 rows paid, 224 with 32); 784 pay 800
        // either way and keep 32.
        assert_eq!(GemmConfig::heuristic(1, 196, 96, 576).tile_m, 40);
        assert_eq!(GemmConfig::heuristic(1, 784, 96, 576).tile_m, 32);
        // Fewer than 32 rows: one row tile of them all, in whole 8-row shares.
        for (m, tm) in [(24, 24), (16, 16), (20, 24), (9, 16), (8, 8), (5, 5)] {
            let c = GemmConfig::heuristic(1, m, 3136, 96);
            assert_eq!(c.tile_m, tm, "m {m}");
            assert_eq!(c.subgroup, tm % LANES == 0, "m {m}");
            assert!(c.validate().is_ok());
        }
        // 32 columns (mobilenet_v2's stem): 8 column tiles of 4, so that 8 lanes share A.
        let stem = GemmConfig::heuristic(1, 12544, 32, 27);
        assert_eq!((stem.tile_m, stem.tile_n, stem.k_step), (32, 4, 1));
        assert!(stem.subgroup);
        // 196 columns: 49 tiles of 4 (56 lanes), not 25 of 8 (32 lanes); 784 keep 8.
        assert_eq!(GemmConfig::heuristic(1, 576, 196, 96).tile_n, 4);
        assert_eq!(GemmConfig::heuristic(1, 192, 784, 32).tile_n, 8);
    }

    #[test]
    fn big_matmul_uses_vec4_loads_and_subgroup_broadcasts() {
        let l = lower_op(
            Op::MatMul,
            vec![f32d(&[1024, 1024]), f32d(&[1024, 1024])],
            TensorDesc::new(DType::F32, vec![1024, 1024]),
        );
        assert_eq!(l.launches.len(), 1);
        let k = &l.launches[0].kernel;
        assert_eq!(
            l.launches[0].args,
            vec![Arg::Input(0), Arg::Input(1), Arg::Output(0)]
        );
        for b in &k.buffers {
            assert_eq!(b.elem, Type::vec(Scalar::F32, 4), "{}", b.name);
        }
        assert!(k.uses_subgroups());
        // 32 rows × 128 column tiles of 8 → 32 row tiles × 2 workgroups of 64.
        assert_eq!(k.workgroup, [64, 1, 1]);
        assert_eq!(l.launches[0].grid, [64, 1, 1]);
        // 64 vec4 accumulators; the K loop steps by 4.
        let accs = k
            .locals
            .iter()
            .filter(|t| **t == Type::vec(Scalar::F32, 4))
            .count();
        assert!(accs >= 64);
        let step = k.body.iter().find_map(|s| match s {
            Stmt::For { step, end, .. } => Some((*step, end.clone())),
            _ => None,
        });
        assert_eq!(step, Some((4, Expr::I32(1024))));
    }

    #[test]
    fn small_launches_spread_over_workgroups() {
        let grid = |a: &[usize], b: &[usize], out: &[usize]| {
            let l = lower_op(
                Op::MatMul,
                vec![f32d(a), f32d(b)],
                TensorDesc::new(DType::F32, out.to_vec()),
            );
            (l.launches[0].kernel.workgroup[0], l.launches[0].grid[0])
        };
        // m 96, n 196, k 576: 3 row tiles of 32 × 49 column tiles of 4. One 56-thread
        // workgroup per row tile would be 3 workgroups; at least MIN_WORKGROUPS with the fewest
        // idle lanes is 7 of 8 per row tile (2 of 32 would leave 15 lanes idle).
        assert_eq!(grid(&[96, 576], &[576, 196], &[96, 196]), (8, 21));
        // 8 row tiles × 80 column tiles of 8: 2 workgroups of 40 per row tile (5 of 16 and
        // 10 of 8 leave no more lanes idle; the fewest workgroups wins).
        assert_eq!(grid(&[256, 64], &[64, 640], &[256, 640]), (40, 16));
        // Enough row tiles: the whole row tile's 128 column tiles in 2 workgroups of 64.
        assert_eq!(grid(&[1024, 64], &[64, 1024], &[1024, 1024]), (64, 64));
        // Without sharing (one row): 125 threads in 16 workgroups of 8, not 2 of 64.
        assert_eq!(grid(&[1, 512], &[512, 1000], &[1, 1000]), (8, 16));
    }

    #[test]
    fn odd_shapes_fall_back_to_scalar_loads() {
        let l = lower_op(
            Op::MatMul,
            vec![f32d(&[2, 33, 13]), f32d(&[13, 7])],
            TensorDesc::new(DType::F32, vec![2, 33, 7]),
        );
        let k = &l.launches[0].kernel;
        assert!(k.buffers.iter().all(|b| b.elem == Type::F32));
    }

    #[test]
    fn gemm_binds_c_and_matmul_integer_is_i32() {
        let l = lower_op(
            Op::Gemm {
                alpha: 1.0,
                beta: 1.0,
                trans_a: false,
                trans_b: true,
            },
            vec![f32d(&[1, 512]), f32d(&[1000, 512]), f32d(&[1000])],
            TensorDesc::new(DType::F32, vec![1, 1000]),
        );
        assert_eq!(
            l.launches[0].args,
            vec![Arg::Input(0), Arg::Input(1), Arg::Input(2), Arg::Output(0)]
        );
        let u8d = |s: &[usize]| Some(TensorDesc::new(DType::U8, s.to_vec()));
        let l = lower_op(
            Op::MatMulInteger,
            vec![u8d(&[4, 3]), u8d(&[3, 2]), u8d(&[1]), u8d(&[1])],
            TensorDesc::new(DType::I32, vec![4, 2]),
        );
        let k = &l.launches[0].kernel;
        assert_eq!(k.buffers.len(), 5);
        assert_eq!(k.buffers[4].elem, Type::I32);
        let q = lower_op(
            Op::QLinearMatMul,
            vec![
                u8d(&[4, 3]),
                f32d(&[]),
                u8d(&[]),
                u8d(&[3, 2]),
                f32d(&[]),
                u8d(&[]),
                f32d(&[]),
                u8d(&[]),
            ],
            TensorDesc::new(DType::U8, vec![4, 2]),
        );
        assert_eq!(q.launches.len(), 2);
        assert_eq!(q.temps.len(), 1);
        assert!(q.launches.iter().all(|l| l.kernel.buffers.len() <= 8));
    }

    #[test]
    fn einsum_lowers_to_one_strided_gemm_or_is_refused() {
        let op = |e: &str| Op::Einsum { equation: e.into() };
        let l = lower_op(
            op("bhqd,bhkd->bhqk"),
            vec![f32d(&[2, 2, 6, 8]), f32d(&[2, 2, 7, 8])],
            TensorDesc::new(DType::F32, vec![2, 2, 6, 7]),
        );
        assert_eq!(l.launches.len(), 1);
        let ins = vec![f32d(&[3, 4]), f32d(&[5])];
        let values = vec![None; 2];
        let outs = vec![Some(TensorDesc::new(DType::F32, vec![5, 4, 3]))];
        let e = op("ij,k->kji");
        let ctx = LowerCtx {
            op: &e,
            name: "n0",
            inputs: &ins,
            values: &values,
            outputs: &outs,
            features: Default::default(),
        };
        assert!(matches!(
            lower_einsum(&ctx),
            Err(LowerError::Unsupported { .. })
        ));
    }
}
