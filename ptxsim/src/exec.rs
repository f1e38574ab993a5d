//! Executes a parsed module over a grid: every block on its own, the threads of a block
//! cooperatively.
//!
//! Each thread runs until it reaches a synchronisation point — `bar.sync`, a warp-collective
//! instruction (`shfl.sync`, `redux.sync`, `mma.sync`) or its end. A warp collective executes
//! once every lane of its member mask waits at that same instruction; `bar.sync` releases once
//! every thread of the block waits at a barrier. Anything else — a barrier reached while other
//! threads have exited, lanes of one mask at different instructions, a lane named in a mask that
//! does not exist — is a `SimError` fault, because on hardware it hangs or is undefined.
//!
//! Memory is checked: every global access must fall inside the binding's region and be aligned
//! to its size; the weights region is read-only; shared accesses must fall inside the block's
//! static shared memory; a register read before any write is an error. `.approx` instructions
//! are computed exactly and rounded to f32 (the hardware's error bounds are not modelled).

use crate::SimError;
use crate::parse::{
    Addr, Alu, Cmp, Inst, MmaElem, Module, Op, Operand, Redux, Rnd, Shfl, Space, Special, Ty,
};

/// Global memory: regions addressed as `(index + 1) << 40 | byte offset`.
pub struct Memory {
    regions: Vec<Region>,
}

struct Region {
    name: String,
    bytes: Vec<u8>,
    writable: bool,
}

const REGION_SHIFT: u32 = 40;

impl Default for Memory {
    fn default() -> Self {
        Self::new()
    }
}

impl Memory {
    /// No regions.
    pub fn new() -> Memory {
        Memory {
            regions: Vec::new(),
        }
    }

    /// Adds a region and returns its base address.
    pub fn add(&mut self, name: &str, bytes: Vec<u8>, writable: bool) -> u64 {
        self.regions.push(Region {
            name: name.to_string(),
            bytes,
            writable,
        });
        (self.regions.len() as u64) << REGION_SHIFT
    }

    /// The bytes of the region whose base address is `base`.
    pub fn region(&self, base: u64) -> &[u8] {
        &self.regions[(base >> REGION_SHIFT) as usize - 1].bytes
    }

    /// The bytes of the region whose base address is `base`, writable.
    pub fn region_mut(&mut self, base: u64) -> &mut [u8] {
        &mut self.regions[(base >> REGION_SHIFT) as usize - 1].bytes
    }

    fn locate(&self, addr: u64, len: usize, write: bool) -> Result<(usize, usize), String> {
        let r = (addr >> REGION_SHIFT) as usize;
        let off = (addr & ((1 << REGION_SHIFT) - 1)) as usize;
        let region = r
            .checked_sub(1)
            .and_then(|i| self.regions.get(i))
            .ok_or_else(|| format!("address {addr:#x} is in no buffer"))?;
        if off + len > region.bytes.len() {
            return Err(format!(
                "{len}-byte access at byte {off} of '{}' ({} bytes) is out of bounds",
                region.name,
                region.bytes.len()
            ));
        }
        if write && !region.writable {
            return Err(format!(
                "store to read-only '{}' at byte {off}",
                region.name
            ));
        }
        Ok((r - 1, off))
    }
}

/// How much work one launch may do before it is called a runaway.
pub const DEFAULT_STEP_LIMIT: u64 = 4_000_000_000;

/// Launch geometry.
#[derive(Clone, Copy, Debug)]
pub struct Launch {
    /// Blocks along x, y, z.
    pub grid: [u32; 3],
    /// Threads per block along x, y, z.
    pub block: [u32; 3],
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Running,
    AtBarrier,
    AtWarpOp,
    Done,
}

struct Thread {
    pc: usize,
    state: State,
    regs: Vec<u64>,
    set: Vec<bool>,
    tid: [u32; 3],
    lane: u32,
    /// Issued `cp.async`s not yet landed: (group, shared address, bytes); the open group is
    /// `group`.
    copies: Vec<(u32, u64, Vec<u8>)>,
    group: u32,
}

struct Block<'m> {
    m: &'m Module,
    ctaid: [u32; 3],
    launch: Launch,
    params: &'m [u64],
    shared: Vec<u8>,
    steps: u64,
    limit: u64,
}

fn f(bits: u64) -> f32 {
    f32::from_bits(bits as u32)
}

fn fb(v: f32) -> u64 {
    u64::from(v.to_bits())
}

/// Runs `m` over a whole grid with `params` (one `u64` per `.param`).
pub fn launch(
    m: &Module,
    l: Launch,
    params: &[u64],
    mem: &mut Memory,
    step_limit: u64,
) -> Result<(), SimError> {
    if params.len() != m.params {
        return Err(SimError::Launch(format!(
            "{} takes {} parameters, launched with {}",
            m.name,
            m.params,
            params.len()
        )));
    }
    if let Some(r) = m.reqntid
        && r != l.block
    {
        return Err(SimError::Launch(format!(
            "{} requires blocks of {r:?}, launched with {:?}",
            m.name, l.block
        )));
    }
    let threads = l.block.iter().map(|&d| d as u64).product::<u64>();
    if threads == 0 || threads > 1024 {
        return Err(SimError::Launch(format!(
            "{}: block of {threads} threads",
            m.name
        )));
    }
    let mut steps = 0u64;
    for z in 0..l.grid[2] {
        for y in 0..l.grid[1] {
            for x in 0..l.grid[0] {
                let mut b = Block {
                    m,
                    ctaid: [x, y, z],
                    launch: l,
                    params,
                    shared: vec![0; m.shared_bytes],
                    steps,
                    limit: step_limit,
                };
                b.run(mem)?;
                steps = b.steps;
            }
        }
    }
    Ok(())
}

impl Block<'_> {
    fn fail(&self, t: &Thread, msg: impl Into<String>) -> SimError {
        SimError::Exec {
            kernel: self.m.name.clone(),
            block: self.ctaid,
            thread: t.tid,
            line: self.m.insts.get(t.pc).map_or(0, |i| i.line),
            inst: self.m.line_text(t.pc),
            msg: msg.into(),
        }
    }

    fn run(&mut self, mem: &mut Memory) -> Result<(), SimError> {
        let [bx, by, bz] = self.launch.block;
        let nregs = self.m.reg_names.len();
        let mut threads = Vec::with_capacity((bx * by * bz) as usize);
        for z in 0..bz {
            for y in 0..by {
                for x in 0..bx {
                    let linear = x + bx * (y + by * z);
                    threads.push(Thread {
                        pc: 0,
                        state: State::Running,
                        regs: vec![0; nregs],
                        set: vec![false; nregs],
                        tid: [x, y, z],
                        lane: linear % 32,
                        copies: Vec::new(),
                        group: 0,
                    });
                }
            }
        }
        loop {
            for t in threads.iter_mut() {
                if t.state == State::Running {
                    self.run_thread(t, mem)?;
                }
            }
            // Warp collectives whose whole member mask has arrived.
            let mut progressed = false;
            for w in 0..threads.len().div_ceil(32) {
                let lo = w * 32;
                let hi = (lo + 32).min(threads.len());
                progressed |= self.warp_collectives(&mut threads[lo..hi])?;
            }
            if progressed {
                continue;
            }
            let waiting = threads
                .iter()
                .filter(|t| t.state == State::AtBarrier)
                .count();
            let done = threads.iter().filter(|t| t.state == State::Done).count();
            if done == threads.len() {
                return Ok(());
            }
            if waiting + done == threads.len() && waiting > 0 {
                if done > 0 {
                    let t = threads
                        .iter()
                        .find(|t| t.state == State::AtBarrier)
                        .unwrap();
                    return Err(self.fail(
                        t,
                        format!("bar.sync reached by {waiting} threads while {done} have exited"),
                    ));
                }
                for t in threads.iter_mut() {
                    t.state = State::Running;
                    t.pc += 1;
                }
                continue;
            }
            let t = threads
                .iter()
                .find(|t| t.state == State::AtWarpOp)
                .unwrap_or(&threads[0]);
            return Err(self.fail(
                t,
                format!(
                    "deadlock: {waiting} threads at bar.sync, {} at warp collectives, {done} exited",
                    threads.iter().filter(|t| t.state == State::AtWarpOp).count()
                ),
            ));
        }
    }

    /// Executes the first collective a warp waits at (all of its member lanes must be there);
    /// whether one ran.
    fn warp_collectives(&mut self, warp: &mut [Thread]) -> Result<bool, SimError> {
        if let Some(first) = warp.iter().position(|t| t.state == State::AtWarpOp) {
            let pc = warp[first].pc;
            let inst = &self.m.insts[pc];
            let mask_op = match &inst.op {
                Op::Shfl { mask, .. } | Op::Redux { mask, .. } => Some(*mask),
                _ => None,
            };
            let mask = match mask_op {
                Some(op) => {
                    read(&warp[first], op, self).map_err(|e| self.fail(&warp[first], e))? as u32
                }
                None => u32::MAX,
            };
            // Every lane of the mask must exist and wait here.
            for lane in 0..32u32 {
                if mask & (1 << lane) == 0 {
                    continue;
                }
                match warp.get(lane as usize) {
                    None => {
                        return Err(self.fail(
                            &warp[first],
                            format!(
                                "member mask {mask:#010x} names lane {lane}, which does not exist"
                            ),
                        ));
                    }
                    Some(t) if t.state == State::AtWarpOp && t.pc == pc => {}
                    Some(t) if t.state == State::Running => unreachable!("all threads ran"),
                    Some(t) if t.state == State::AtWarpOp || t.state == State::AtBarrier => {
                        // That lane waits elsewhere: it may come here later only if this
                        // collective is not needed to release it — on hardware, a hang.
                        return Err(self.fail(
                            &warp[first],
                            format!(
                                "lane {lane} of the member mask waits at line {} instead",
                                self.m.insts[t.pc].line
                            ),
                        ));
                    }
                    Some(_) => {
                        return Err(self.fail(
                            &warp[first],
                            format!("lane {lane} of the member mask has exited"),
                        ));
                    }
                }
            }
            // Lanes outside the mask that wait here are a printer bug (a mask that leaves out
            // an active lane).
            if let Some(t) = warp
                .iter()
                .find(|t| t.state == State::AtWarpOp && t.pc == pc && mask & (1 << t.lane) == 0)
            {
                return Err(self.fail(
                    t,
                    format!(
                        "lane {} executes a collective outside its member mask {mask:#010x}",
                        t.lane
                    ),
                ));
            }
            self.collective(warp, pc, mask)?;
            for t in warp.iter_mut() {
                if t.state == State::AtWarpOp && t.pc == pc {
                    t.state = State::Running;
                    t.pc += 1;
                }
            }
            // One collective per round: the released lanes run before the next one.
            return Ok(true);
        }
        Ok(false)
    }

    fn collective(&mut self, warp: &mut [Thread], pc: usize, mask: u32) -> Result<(), SimError> {
        let inst = self.m.insts[pc].op.clone();
        let lanes: Vec<usize> = (0..warp.len()).filter(|&l| mask & (1 << l) != 0).collect();
        match inst {
            Op::Shfl {
                mode, d, a, b, c, ..
            } => {
                let mut vals = vec![0u64; warp.len()];
                for &l in &lanes {
                    vals[l] = read(&warp[l], a, self).map_err(|e| self.fail(&warp[l], e))?;
                }
                let mut out = Vec::with_capacity(lanes.len());
                for &l in &lanes {
                    let t = &warp[l];
                    let bv = read(t, b, self).map_err(|e| self.fail(t, e))? as u32;
                    let cv = read(t, c, self).map_err(|e| self.fail(t, e))? as u32;
                    let lane = l as u32;
                    let clamp = cv & 0x1f;
                    let seg = (cv >> 8) & 0x1f;
                    let min_lane = lane & seg;
                    let max_lane = min_lane | (clamp & !seg);
                    let (j, ok) = match mode {
                        Shfl::Idx => {
                            let j = min_lane | (bv & 0x1f & !seg);
                            (j, j <= max_lane)
                        }
                        Shfl::Bfly => {
                            let j = lane ^ (bv & 0x1f);
                            (j, j <= max_lane)
                        }
                        Shfl::Down => {
                            let j = lane + (bv & 0x1f);
                            (j, j <= max_lane)
                        }
                        Shfl::Up => {
                            let j = lane.wrapping_sub(bv & 0x1f);
                            (j, (j as i32) >= max_lane as i32)
                        }
                    };
                    let src = if ok { j } else { lane };
                    if mask & (1 << src) == 0 || src as usize >= warp.len() {
                        return Err(self.fail(
                            t,
                            format!("shfl reads lane {src}, outside the member mask {mask:#010x}"),
                        ));
                    }
                    out.push(vals[src as usize] & 0xffff_ffff);
                }
                for (&l, v) in lanes.iter().zip(out) {
                    write(&mut warp[l], d, v);
                }
            }
            Op::Redux { op, ty, d, a, .. } => {
                let mut acc: Option<u32> = None;
                for &l in &lanes {
                    let v = read(&warp[l], a, self).map_err(|e| self.fail(&warp[l], e))? as u32;
                    acc = Some(match (acc, op) {
                        (None, _) => v,
                        (Some(x), Redux::Add) => x.wrapping_add(v),
                        (Some(x), Redux::Min) if ty == Ty::S32 => (x as i32).min(v as i32) as u32,
                        (Some(x), Redux::Max) if ty == Ty::S32 => (x as i32).max(v as i32) as u32,
                        (Some(x), Redux::Min) => x.min(v),
                        (Some(x), Redux::Max) => x.max(v),
                    });
                }
                for &l in &lanes {
                    write(&mut warp[l], d, u64::from(acc.unwrap_or(0)));
                }
            }
            Op::Ldmatrix { trans, d, addr } => {
                if warp.len() != 32 {
                    return Err(self.fail(&warp[0], "ldmatrix in a partial warp"));
                }
                // Matrix i, row r: the 8 halves at the address lane 8i + r gives.
                let mut m = vec![[[0u16; 8]; 8]; d.len()];
                for (i, mat) in m.iter_mut().enumerate() {
                    for (r, row) in mat.iter_mut().enumerate() {
                        let t = &warp[8 * i + r];
                        let at = self
                            .address(t, &addr)
                            .and_then(|a| self.shared_range(a, 16))
                            .map_err(|e| self.fail(t, format!("ldmatrix: {e}")))?;
                        for (c, h) in row.iter_mut().enumerate() {
                            *h = u16::from_le_bytes([
                                self.shared[at + 2 * c],
                                self.shared[at + 2 * c + 1],
                            ]);
                        }
                    }
                }
                for (l, t) in warp.iter_mut().enumerate() {
                    let (g, q) = (l / 4, l % 4);
                    for (i, reg) in d.iter().enumerate() {
                        let (lo, hi) = if trans {
                            (m[i][2 * q][g], m[i][2 * q + 1][g])
                        } else {
                            (m[i][g][2 * q], m[i][g][2 * q + 1])
                        };
                        write(t, *reg, u64::from(lo) | u64::from(hi) << 16);
                    }
                }
            }
            Op::Mma { elem, d, a, b, c } => {
                let tf32 = elem == MmaElem::Tf32;
                if warp.len() != 32 {
                    return Err(self.fail(&warp[0], "mma.sync in a partial warp"));
                }
                if matches!(elem, MmaElem::S8 | MmaElem::U8) {
                    return self.mma_int8(warp, elem == MmaElem::S8, &d, &a, &b, &c);
                }
                // Gather the fragments into A (16×K row-major), B (K×8), C (16×8); K = 16 for
                // f16 and bf16 (two values per register), 8 for tf32 (one value per register, its low
                // 13 mantissa bits ignored).
                let h = |bits: u64, hi: bool| {
                    let b = if hi { (bits >> 16) as u16 } else { bits as u16 };
                    if elem == MmaElem::Bf16 {
                        half::bf16::from_bits(b).to_f32()
                    } else {
                        half::f16::from_bits(b).to_f32()
                    }
                };
                let t32 = |bits: u64| f32::from_bits(bits as u32 & !0x1fff);
                let kk = if tf32 { 8 } else { 16 };
                let mut am = [[0f32; 16]; 16];
                let mut bm = [[0f32; 8]; 16];
                let mut cm = [[0f32; 8]; 16];
                for (l, t) in warp.iter().enumerate() {
                    let g = l / 4;
                    let q = l % 4;
                    let r = |op: Operand| read(t, op, self).map_err(|e| self.fail(t, e));
                    for (i, op) in a.iter().enumerate() {
                        let v = r(*op)?;
                        let row = g + if i % 2 == 1 { 8 } else { 0 };
                        if tf32 {
                            am[row][q + if i >= 2 { 4 } else { 0 }] = t32(v);
                        } else {
                            let col = q * 2 + if i >= 2 { 8 } else { 0 };
                            am[row][col] = h(v, false);
                            am[row][col + 1] = h(v, true);
                        }
                    }
                    for (i, op) in b.iter().enumerate() {
                        let v = r(*op)?;
                        if tf32 {
                            bm[q + if i == 1 { 4 } else { 0 }][g] = t32(v);
                        } else {
                            let k = q * 2 + if i == 1 { 8 } else { 0 };
                            bm[k][g] = h(v, false);
                            bm[k + 1][g] = h(v, true);
                        }
                    }
                    for (i, op) in c.iter().enumerate() {
                        let v = r(*op)?;
                        let row = g + if i >= 2 { 8 } else { 0 };
                        cm[row][q * 2 + i % 2] = f(v);
                    }
                }
                for (l, t) in warp.iter_mut().enumerate() {
                    let g = l / 4;
                    let q = l % 4;
                    for (i, reg) in d.iter().enumerate() {
                        let row = g + if i >= 2 { 8 } else { 0 };
                        let col = q * 2 + i % 2;
                        let mut acc = f64::from(cm[row][col]);
                        for (k, arow) in am[row].iter().take(kk).enumerate() {
                            acc += f64::from(*arow) * f64::from(bm[k][col]);
                        }
                        write(t, *reg, fb(acc as f32));
                    }
                }
            }
            _ => unreachable!("not a collective"),
        }
        Ok(())
    }

    /// `mma.sync` m16n8k32 on bytes: register `i` of lane `4g + q` holds, low byte first, A
    /// row `g` (+8 for odd `i`) × columns `4q..4q+4` (+16 for `i ≥ 2`); B columns `g` × rows
    /// `4q..4q+4` (+16 for `b1`); C/D as for f16, in s32. The sum wraps like the hardware's
    /// (no `.satfinite`).
    fn mma_int8(
        &self,
        warp: &mut [Thread],
        signed: bool,
        d: &[u32; 4],
        a: &[Operand; 4],
        b: &[Operand; 2],
        c: &[Operand; 4],
    ) -> Result<(), SimError> {
        let byte = |bits: u64, j: usize| {
            let v = (bits >> (8 * j)) as u8;
            if signed {
                i64::from(v as i8)
            } else {
                i64::from(v)
            }
        };
        let mut am = [[0i64; 32]; 16];
        let mut bm = [[0i64; 8]; 32];
        let mut cm = [[0i64; 8]; 16];
        for (l, t) in warp.iter().enumerate() {
            let (g, q) = (l / 4, l % 4);
            let r = |op: Operand| read(t, op, self).map_err(|e| self.fail(t, e));
            for (i, op) in a.iter().enumerate() {
                let v = r(*op)?;
                let row = g + if i % 2 == 1 { 8 } else { 0 };
                let col = 4 * q + if i >= 2 { 16 } else { 0 };
                for j in 0..4 {
                    am[row][col + j] = byte(v, j);
                }
            }
            for (i, op) in b.iter().enumerate() {
                let v = r(*op)?;
                let k = 4 * q + 16 * i;
                for j in 0..4 {
                    bm[k + j][g] = byte(v, j);
                }
            }
            for (i, op) in c.iter().enumerate() {
                let v = r(*op)?;
                let row = g + if i >= 2 { 8 } else { 0 };
                cm[row][q * 2 + i % 2] = i64::from(v as u32 as i32);
            }
        }
        for (l, t) in warp.iter_mut().enumerate() {
            let (g, q) = (l / 4, l % 4);
            for (i, reg) in d.iter().enumerate() {
                let row = g + if i >= 2 { 8 } else { 0 };
                let col = q * 2 + i % 2;
                let mut acc = cm[row][col];
                for (k, av) in am[row].iter().enumerate() {
                    acc += av * bm[k][col];
                }
                write(t, *reg, u64::from(acc as i32 as u32));
            }
        }
        Ok(())
    }

    fn special(&self, t: &Thread, s: Special) -> u64 {
        u64::from(match s {
            Special::Tid(a) => t.tid[a as usize],
            Special::Ntid(a) => self.launch.block[a as usize],
            Special::Ctaid(a) => self.ctaid[a as usize],
            Special::Nctaid(a) => self.launch.grid[a as usize],
            Special::LaneId => t.lane,
        })
    }

    /// Runs `t` until it reaches a synchronisation point or its end.
    fn run_thread(&mut self, t: &mut Thread, mem: &mut Memory) -> Result<(), SimError> {
        let insts = &self.m.insts;
        loop {
            let Some(inst) = insts.get(t.pc) else {
                t.state = State::Done;
                return Ok(());
            };
            self.steps += 1;
            if self.steps > self.limit {
                return Err(self.fail(t, format!("more than {} instructions", self.limit)));
            }
            let Inst { guard, op, .. } = inst;
            if let Some((p, neg)) = *guard {
                let v = read(t, Operand::Reg(p), self).map_err(|e| self.fail(t, e))?;
                if (v != 0) == neg {
                    t.pc += 1;
                    continue;
                }
            }
            match op {
                Op::Ret => {
                    t.state = State::Done;
                    return Ok(());
                }
                Op::Bar => {
                    t.state = State::AtBarrier;
                    return Ok(());
                }
                op if op.is_warp_collective() => {
                    t.state = State::AtWarpOp;
                    return Ok(());
                }
                Op::Bra(target) => {
                    t.pc = *target;
                    continue;
                }
                _ => {}
            }
            self.step(t, op, mem).map_err(|e| self.fail(t, e))?;
            t.pc += 1;
        }
    }

    fn address(&self, t: &Thread, a: &Addr) -> Result<u64, String> {
        match *a {
            Addr::Param(k) => Err(format!("[p{k}] outside ld.param")),
            Addr::Based(base, off) => Ok(read(t, base, self)?.wrapping_add(off as u64)),
        }
    }

    fn shared_range(&self, addr: u64, len: usize) -> Result<usize, String> {
        let a = addr as usize;
        if addr > u64::from(u32::MAX) || a + len > self.shared.len() {
            return Err(format!(
                "{len}-byte shared access at {addr:#x} outside the block's {} bytes",
                self.shared.len()
            ));
        }
        if a % len.min(16) != 0 {
            return Err(format!("misaligned {len}-byte shared access at {addr:#x}"));
        }
        Ok(a)
    }

    /// The `len` bytes at `addr` (at most 64: a `.v4` of 16-byte lanes).
    fn load<'a>(
        &'a self,
        mem: &'a Memory,
        space: Space,
        addr: u64,
        len: usize,
    ) -> Result<&'a [u8], String> {
        match space {
            Space::Shared => {
                let a = self.shared_range(addr, len)?;
                Ok(&self.shared[a..a + len])
            }
            Space::Global => {
                if addr % len.min(16) as u64 != 0 {
                    return Err(format!("misaligned {len}-byte global access at {addr:#x}"));
                }
                let (r, off) = mem.locate(addr, len, false)?;
                Ok(&mem.regions[r].bytes[off..off + len])
            }
        }
    }

    fn store(
        &mut self,
        mem: &mut Memory,
        space: Space,
        addr: u64,
        data: &[u8],
    ) -> Result<(), String> {
        let len = data.len();
        match space {
            Space::Shared => {
                let a = self.shared_range(addr, len)?;
                self.shared[a..a + len].copy_from_slice(data);
            }
            Space::Global => {
                if addr % len.min(16) as u64 != 0 {
                    return Err(format!("misaligned {len}-byte global access at {addr:#x}"));
                }
                let (r, off) = mem.locate(addr, len, true)?;
                mem.regions[r].bytes[off..off + len].copy_from_slice(data);
            }
        }
        Ok(())
    }

    fn step(&mut self, t: &mut Thread, op: &Op, mem: &mut Memory) -> Result<(), String> {
        match op {
            Op::LdParam { d, k } => {
                let v = *self
                    .params
                    .get(*k as usize)
                    .ok_or_else(|| format!("no parameter {k}"))?;
                write(t, *d, v);
            }
            Op::Ld { space, ty, d, addr } => {
                let a = self.address(t, addr)?;
                let size = ty.bytes();
                let mut vals = [0u64; 4];
                {
                    let bytes = self.load(mem, *space, a, size * d.len())?;
                    for (l, v) in vals.iter_mut().take(d.len()).enumerate() {
                        for (k, b) in bytes[l * size..(l + 1) * size].iter().enumerate() {
                            *v |= u64::from(*b) << (8 * k);
                        }
                    }
                }
                for (reg, v) in d.iter().zip(vals) {
                    write(t, *reg, v);
                }
            }
            Op::St { space, ty, addr, a } => {
                let at = self.address(t, addr)?;
                let size = ty.bytes();
                let mut data = [0u8; 32];
                for (l, v) in a.iter().enumerate() {
                    let v = read(t, *v, self)?;
                    data[l * size..(l + 1) * size].copy_from_slice(&v.to_le_bytes()[..size]);
                }
                self.store(mem, *space, at, &data[..size * a.len()])?;
            }
            Op::Mov { ty, d, a } => {
                let v = read(t, *a, self)? & ty.mask();
                write(t, *d, v);
            }
            Op::Pack { d, lo, hi } => {
                let v = (read(t, *lo, self)? & 0xffff) | ((read(t, *hi, self)? & 0xffff) << 16);
                write(t, *d, v);
            }
            Op::Unpack { lo, hi, a } => {
                let v = read(t, *a, self)?;
                write(t, *lo, v & 0xffff);
                write(t, *hi, (v >> 16) & 0xffff);
            }
            Op::Selp { ty, d, a, b, p } => {
                let v = if read(t, *p, self)? != 0 {
                    read(t, *a, self)?
                } else {
                    read(t, *b, self)?
                };
                write(t, *d, v & ty.mask());
            }
            Op::Setp { cmp, ty, d, a, b } => {
                let v = compare(*cmp, *ty, read(t, *a, self)?, read(t, *b, self)?)?;
                write(t, *d, u64::from(v));
            }
            Op::Cvt {
                rnd,
                dst,
                src,
                d,
                a,
            } => {
                let v = cvt(*rnd, *dst, *src, read(t, *a, self)?)?;
                write(t, *d, v);
            }
            Op::Alu { alu, ty, d, a, n } => {
                let mut s = [0u64; 3];
                for k in 0..*n as usize {
                    s[k] = read(t, a[k], self)?;
                }
                let v = alu_op(*alu, *ty, s)?;
                write(t, *d, v);
            }
            Op::CpAsync { dst, src, bytes } => {
                let s = self.address(t, src)?;
                let dd = self.address(t, dst)?;
                let mut data = [0u8; 16];
                let n = (*bytes as usize).min(16);
                data[..n].copy_from_slice(self.load(mem, Space::Global, s, n)?);
                // Checked now, written when a wait covers it.
                self.shared_range(dd, n)?;
                t.copies.push((t.group, dd, data[..n].to_vec()));
            }
            Op::CpCommit => t.group += 1,
            Op::CpWait(keep) => {
                // Groups below `limit` land; `None` lands the open group too.
                let limit = match keep {
                    None => u32::MAX,
                    Some(k) => t.group.saturating_sub(*k),
                };
                let mut rest = Vec::new();
                for (g, dd, data) in std::mem::take(&mut t.copies) {
                    if g < limit {
                        self.store(mem, Space::Shared, dd, &data)?;
                    } else {
                        rest.push((g, dd, data));
                    }
                }
                t.copies = rest;
            }
            Op::Nop => {}
            Op::Bar
            | Op::Bra(_)
            | Op::Ret
            | Op::Shfl { .. }
            | Op::Redux { .. }
            | Op::Mma { .. }
            | Op::Ldmatrix { .. } => {
                unreachable!("handled by the scheduler")
            }
        }
        Ok(())
    }
}

#[inline(always)]
fn read(t: &Thread, op: Operand, b: &Block<'_>) -> Result<u64, String> {
    match op {
        Operand::Reg(r) if t.set[r as usize] => Ok(t.regs[r as usize]),
        Operand::Imm(v) => Ok(v),
        _ => read_slow(t, op, b),
    }
}

#[cold]
#[inline(never)]
fn read_slow(t: &Thread, op: Operand, b: &Block<'_>) -> Result<u64, String> {
    match op {
        Operand::Reg(r) => {
            if !t.set[r as usize] {
                return Err(format!(
                    "read of {} before any write",
                    b.m.reg_names[r as usize]
                ));
            }
            Ok(t.regs[r as usize])
        }
        Operand::Imm(v) => Ok(v),
        Operand::Special(s) => Ok(b.special(t, s)),
    }
}

#[inline(always)]
fn write(t: &mut Thread, r: u32, v: u64) {
    t.regs[r as usize] = v;
    t.set[r as usize] = true;
}

fn compare(cmp: Cmp, ty: Ty, a: u64, b: u64) -> Result<bool, String> {
    use std::cmp::Ordering::*;
    let ord = match ty {
        Ty::F32 => f(a).partial_cmp(&f(b)),
        Ty::S32 => Some((a as u32 as i32).cmp(&(b as u32 as i32))),
        Ty::U32 | Ty::B32 => Some((a as u32).cmp(&(b as u32))),
        Ty::S64 => Some((a as i64).cmp(&(b as i64))),
        Ty::U64 | Ty::B64 => Some(a.cmp(&b)),
        Ty::B16 => Some((a as u16).cmp(&(b as u16))),
        t => return Err(format!("setp on {t:?}")),
    };
    Ok(match (cmp, ord) {
        (Cmp::Num, o) => o.is_some(),
        (Cmp::Nan, o) => o.is_none(),
        (Cmp::Neu | Cmp::Equ | Cmp::Ltu | Cmp::Leu | Cmp::Gtu | Cmp::Geu, None) => true,
        (_, None) => false,
        (Cmp::Eq | Cmp::Equ, Some(o)) => o == Equal,
        (Cmp::Ne | Cmp::Neu, Some(o)) => o != Equal,
        (Cmp::Lt | Cmp::Ltu, Some(o)) => o == Less,
        (Cmp::Le | Cmp::Leu, Some(o)) => o != Greater,
        (Cmp::Gt | Cmp::Gtu, Some(o)) => o == Greater,
        (Cmp::Ge | Cmp::Geu, Some(o)) => o != Less,
    })
}

fn cvt(rnd: Rnd, dst: Ty, src: Ty, v: u64) -> Result<u64, String> {
    if dst == Ty::Tf32 {
        if src != Ty::F32 || rnd != Rnd::Rna {
            return Err(format!("cvt to tf32 from {src:?} with {rnd:?}"));
        }
        // Round to 10 mantissa bits, ties away from zero (on the magnitude bits); NaN and ±inf
        // kept.
        let bits = v as u32;
        if bits & 0x7f80_0000 == 0x7f80_0000 {
            return Ok(u64::from(bits));
        }
        return Ok(u64::from(bits.wrapping_add(0x1000) & !0x1fff));
    }
    if rnd == Rnd::Rna {
        return Err(format!("cvt.rna to {dst:?} (only tf32 takes .rna)"));
    }
    if dst == Ty::Bf16 {
        if src != Ty::F32 || rnd != Rnd::Rn {
            return Err(format!("cvt to bf16 from {src:?} with {rnd:?}"));
        }
        // Nearest even; NaN becomes the canonical 0x7FFF, as the hardware does.
        let x = f(v);
        if x.is_nan() {
            return Ok(0x7fff);
        }
        return Ok(u64::from(half::bf16::from_f32(x).to_bits()));
    }
    let x = match src {
        Ty::F32 => f64::from(f(v)),
        Ty::F16 => f64::from(half::f16::from_bits(v as u16).to_f32()),
        Ty::S32 => f64::from(v as u32 as i32),
        Ty::U32 => f64::from(v as u32),
        Ty::U64 | Ty::S64 if matches!(dst, Ty::U32 | Ty::S32 | Ty::U64 | Ty::S64) => {
            // Integer narrowing/widening: bits.
            return Ok(match dst {
                Ty::U32 | Ty::S32 => v & 0xffff_ffff,
                _ => v,
            });
        }
        t => return Err(format!("cvt from {t:?}")),
    };
    let float_src = matches!(src, Ty::F32 | Ty::F16);
    let int_round = |x: f64| match rnd {
        Rnd::Rzi | Rnd::None | Rnd::Rz => x.trunc(),
        Rnd::Rmi => x.floor(),
        Rnd::Rpi => x.ceil(),
        Rnd::Rni | Rnd::Rn | Rnd::Rna => x.round_ties_even(),
    };
    Ok(match dst {
        Ty::F32 => {
            let y = match (src, rnd) {
                (Ty::F32, Rnd::Rzi | Rnd::Rmi | Rnd::Rpi | Rnd::Rni) => int_round(x),
                _ => x,
            };
            fb(y as f32)
        }
        // One rounding from the exact source value (nearest even).
        Ty::F16 => u64::from(half::f16::from_f64(x).to_bits()),
        // Float → integer: rounding, then saturation; NaN → 0 (Rust's `as`).
        Ty::S32 => {
            let y = if float_src { int_round(x) } else { x };
            u64::from((y as i32) as u32)
        }
        Ty::U32 => {
            let y = if float_src { int_round(x) } else { x };
            u64::from(y as u32)
        }
        Ty::U64 | Ty::S64 if !float_src => {
            if src == Ty::S32 {
                (v as u32 as i32) as i64 as u64
            } else {
                v & 0xffff_ffff
            }
        }
        d => return Err(format!("cvt to {d:?}")),
    })
}

fn alu_op(alu: Alu, ty: Ty, s: [u64; 3]) -> Result<u64, String> {
    if ty == Ty::F32 {
        let (a, b, c) = (f(s[0]), f(s[1]), f(s[2]));
        let v = match alu {
            Alu::Add => a + b,
            Alu::Sub => a - b,
            Alu::Mul => a * b,
            Alu::Div => a / b,
            Alu::Mad => a.mul_add(b, c),
            Alu::Neg => -a,
            Alu::Abs => a.abs(),
            Alu::Min => a.min(b),
            Alu::Max => a.max(b),
            Alu::Sqrt => a.sqrt(),
            Alu::Rsqrt => (1.0 / f64::from(a).sqrt()) as f32,
            Alu::Rcp => (1.0 / f64::from(a)) as f32,
            Alu::Ex2 => f64::from(a).exp2() as f32,
            Alu::Lg2 => f64::from(a).log2() as f32,
            Alu::Copysign => b.copysign(a),
            o => return Err(format!("{o:?} on f32")),
        };
        return Ok(fb(v));
    }
    if ty == Ty::Pred {
        let (a, b) = (s[0] & 1, s[1] & 1);
        return Ok(match alu {
            Alu::And => a & b,
            Alu::Or => a | b,
            Alu::Xor => a ^ b,
            Alu::Not => a ^ 1,
            o => return Err(format!("{o:?} on pred")),
        });
    }
    if matches!(ty, Ty::S64 | Ty::U64 | Ty::B64) {
        let (a, b) = (s[0], s[1]);
        return Ok(match alu {
            Alu::Add => a.wrapping_add(b),
            Alu::Sub => a.wrapping_sub(b),
            Alu::Mul => a.wrapping_mul(b),
            Alu::Mad => a.wrapping_mul(b).wrapping_add(s[2]),
            Alu::And => a & b,
            Alu::Or => a | b,
            Alu::Xor => a ^ b,
            o => return Err(format!("{o:?} on {ty:?}")),
        });
    }
    let signed = ty == Ty::S32;
    let (a, b, c) = (s[0] as u32, s[1] as u32, s[2] as u32);
    let (sa, sb) = (a as i32, b as i32);
    let v: u64 = match alu {
        Alu::MulWide => {
            if signed {
                (i64::from(sa) * i64::from(sb)) as u64
            } else {
                u64::from(a) * u64::from(b)
            }
        }
        Alu::MulHi => {
            if signed {
                u64::from(((i64::from(sa) * i64::from(sb)) >> 32) as u32)
            } else {
                (u64::from(a) * u64::from(b)) >> 32
            }
        }
        _ => u64::from(match alu {
            Alu::Add => a.wrapping_add(b),
            Alu::Sub => a.wrapping_sub(b),
            Alu::Mul => a.wrapping_mul(b),
            Alu::Mad => a.wrapping_mul(b).wrapping_add(c),
            Alu::Div | Alu::Rem => {
                if b == 0 {
                    return Err(format!("{alu:?} by zero (undefined in PTX)"));
                }
                match (alu, signed) {
                    (Alu::Div, true) => sa.wrapping_div(sb) as u32,
                    (Alu::Div, false) => a / b,
                    (_, true) => sa.wrapping_rem(sb) as u32,
                    _ => a % b,
                }
            }
            Alu::Min if signed => sa.min(sb) as u32,
            Alu::Max if signed => sa.max(sb) as u32,
            Alu::Min => a.min(b),
            Alu::Max => a.max(b),
            Alu::Neg => a.wrapping_neg(),
            Alu::Abs => sa.wrapping_abs() as u32,
            Alu::And => a & b,
            Alu::Or => a | b,
            Alu::Xor => a ^ b,
            Alu::Not => !a,
            // PTX clamps shift amounts at the register width.
            Alu::Shl => {
                if b >= 32 {
                    0
                } else {
                    a << b
                }
            }
            Alu::Shr if signed => (sa >> b.min(31)) as u32,
            Alu::Shr => {
                if b >= 32 {
                    0
                } else {
                    a >> b
                }
            }
            o => return Err(format!("{o:?} on {ty:?}")),
        }),
    };
    Ok(v & if matches!(alu, Alu::MulWide) {
        u64::MAX
    } else {
        0xffff_ffff
    })
}
