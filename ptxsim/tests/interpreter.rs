//! The interpreter's own checks on hand-written PTX: block-cooperative barriers, warp
//! collectives (including the `mma.sync` m16n8k16 and `ldmatrix` fragment layouts), and every
//! fault it must report instead of computing something.

use optc_ptxsim::{Launch, Memory, Module, SimError, launch};

/// A module with `params` u64 parameters, a block of `block` threads, optional shared memory
/// and `body`.
fn module(params: usize, block: u32, shared: &str, body: &str) -> Module {
    let ps: Vec<String> = (0..params).map(|k| format!("\t.param .u64 p{k}")).collect();
    let text = format!(
        ".version 7.8\n.target sm_89\n.address_size 64\n\n.visible .entry k(\n{}\n)\n.reqntid {block}, 1, 1\n{{\n{shared}\n{body}\n}}\n",
        ps.join(",\n")
    );
    Module::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Runs `m` over `bufs` (bytes, writable); returns the memory and each buffer's base address.
fn run1(
    m: &Module,
    block: u32,
    grid: u32,
    bufs: Vec<(Vec<u8>, bool)>,
) -> Result<(Memory, Vec<u64>), SimError> {
    let mut mem = Memory::new();
    let params: Vec<u64> = bufs
        .into_iter()
        .enumerate()
        .map(|(k, (b, w))| mem.add(&format!("b{k}"), b, w))
        .collect();
    launch(
        m,
        Launch {
            grid: [grid, 1, 1],
            block: [block, 1, 1],
        },
        &params,
        &mut mem,
        1 << 24,
    )?;
    Ok((mem, params))
}

/// Prologue: `%rd1` = buffer 0, `%rd3` = buffer 1, `%r1` = tid.x.
const PROLOGUE: &str = "\tld.param.u64 %rd0, [p0];\n\tcvta.to.global.u64 %rd1, %rd0;\n\tld.param.u64 %rd2, [p1];\n\tcvta.to.global.u64 %rd3, %rd2;\n\tmov.u32 %r1, %tid.x;\n";

#[test]
fn barrier_orders_shared_memory_between_threads() {
    // Each thread writes x[tid] to shared, then reads its neighbour's after bar.sync. Without the
    // barrier, thread 0 (run first) would read a slot thread 1 has not written yet.
    let body = format!(
        "{PROLOGUE}\tmov.u32 %r0, sh$s;\n\tmul.wide.u32 %rd4, %r1, 4;\n\tadd.s64 %rd5, %rd1, %rd4;\n\tld.global.f32 %f0, [%rd5];\n\tmad.lo.u32 %r2, %r1, 4, %r0;\n\tst.shared.f32 [%r2], %f0;\n\tbar.sync 0;\n\tadd.u32 %r3, %r1, 1;\n\tand.b32 %r4, %r3, 63;\n\tmad.lo.u32 %r5, %r4, 4, %r0;\n\tld.shared.f32 %f1, [%r5];\n\tadd.s64 %rd6, %rd3, %rd4;\n\tst.global.f32 [%rd6], %f1;\n\tret;"
    );
    let m = module(2, 64, "\t.shared .align 16 .b8 sh$s[256];", &body);
    let x: Vec<f32> = (0..64).map(|i| i as f32).collect();
    let (mem, bases) = run1(&m, 64, 1, vec![(bytes(&x), false), (vec![0; 256], true)]).unwrap();
    let y = f32s(mem.region(bases[1]));
    let want: Vec<f32> = (0..64).map(|i| ((i + 1) % 64) as f32).collect();
    assert_eq!(y, want);
}

#[test]
fn butterfly_shuffle_reduces_a_warp() {
    // A full-warp sum by shfl.sync.bfly: every lane ends with the total.
    let mut body = format!(
        "{PROLOGUE}\tmul.wide.u32 %rd4, %r1, 4;\n\tadd.s64 %rd5, %rd1, %rd4;\n\tld.global.f32 %f0, [%rd5];\n"
    );
    for (k, off) in [16, 8, 4, 2, 1].iter().enumerate() {
        body += &format!(
            "\tmov.b32 %r{a}, %f{k};\n\tshfl.sync.bfly.b32 %r{b}, %r{a}, {off}, 31, -1;\n\tmov.b32 %f{c}, %r{b};\n\tadd.rn.f32 %f{d}, %f{k}, %f{c};\n",
            a = 10 + 2 * k,
            b = 11 + 2 * k,
            c = 20 + k,
            d = k + 1,
        );
    }
    body += "\tadd.s64 %rd6, %rd3, %rd4;\n\tst.global.f32 [%rd6], %f5;\n\tret;";
    let m = module(2, 32, "", &body);
    let x: Vec<f32> = (0..32).map(|i| (i * i % 7) as f32).collect();
    let total: f32 = x.iter().sum();
    let (mem, bases) = run1(&m, 32, 1, vec![(bytes(&x), false), (vec![0; 128], true)]).unwrap();
    assert_eq!(f32s(mem.region(bases[1])), vec![total; 32]);
}

#[test]
fn mma_m16n8k16_follows_the_ptx_fragment_layout() {
    // Lane l = 4g + q holds A rows g and g+8, columns 2q, 2q+1 (+8); B columns g, rows 2q, 2q+1
    // (+8); C/D rows g and g+8, columns 2q, 2q+1 (PTX ISA, "Matrix Fragments for mma.m16n8k16
    // with floating point type"). Buffer 0 holds A (16×16 f16, row-major) then B (16×8 f16,
    // row-major); buffer 1 receives D (16×8 f32, row-major) = A·B + 1.
    let mut body = String::from(
        "\tld.param.u64 %rd0, [p0];\n\tld.param.u64 %rd2, [p1];\n\tmov.u32 %r1, %laneid;\n\tshr.u32 %r2, %r1, 2;\n\tand.b32 %r3, %r1, 3;\n\tshl.b32 %r4, %r3, 1;\n",
    );
    // A registers: (row, col) = (g + 8·(i odd), 2q + 8·(i ≥ 2)); a .b32 of two adjacent halves.
    for i in 0..4u32 {
        let (dr, dc) = (if i % 2 == 1 { 8 } else { 0 }, if i >= 2 { 8 } else { 0 });
        body += &format!(
            "\tadd.u32 %r{a}, %r2, {dr};\n\tadd.u32 %r{b}, %r4, {dc};\n\tmad.lo.u32 %r{c}, %r{a}, 16, %r{b};\n\tmul.wide.u32 %rd{e}, %r{c}, 2;\n\tadd.s64 %rd{f}, %rd0, %rd{e};\n\tld.global.b16 %h{h0}, [%rd{f}];\n\tld.global.b16 %h{h1}, [%rd{f}+2];\n\tmov.b32 %ra{i}, {{%h{h0}, %h{h1}}};\n",
            a = 10 + 3 * i,
            b = 11 + 3 * i,
            c = 12 + 3 * i,
            e = 10 + 2 * i,
            f = 11 + 2 * i,
            h0 = 2 * i,
            h1 = 2 * i + 1,
        );
    }
    // B registers: rows k = 2q (+8) and 2q+1, column g; B starts after A's 256 halves.
    for i in 0..2u32 {
        let dk = if i == 1 { 8 } else { 0 };
        body += &format!(
            "\tadd.u32 %r{a}, %r4, {dk};\n\tmad.lo.u32 %r{b}, %r{a}, 8, %r2;\n\tadd.u32 %r{b}, %r{b}, 256;\n\tmul.wide.u32 %rd{e}, %r{b}, 2;\n\tadd.s64 %rd{f}, %rd0, %rd{e};\n\tld.global.b16 %hb{h0}, [%rd{f}];\n\tld.global.b16 %hb{h1}, [%rd{f}+16];\n\tmov.b32 %rb{i}, {{%hb{h0}, %hb{h1}}};\n",
            a = 30 + 2 * i,
            b = 31 + 2 * i,
            e = 20 + 2 * i,
            f = 21 + 2 * i,
            h0 = 2 * i,
            h1 = 2 * i + 1,
        );
    }
    body += "\tmov.f32 %fc0, 0f3F800000;\n\tmov.f32 %fc1, 0f3F800000;\n\tmov.f32 %fc2, 0f3F800000;\n\tmov.f32 %fc3, 0f3F800000;\n";
    body += "\tmma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%fc0, %fc1, %fc2, %fc3}, {%ra0, %ra1, %ra2, %ra3}, {%rb0, %rb1}, {%fc0, %fc1, %fc2, %fc3};\n";
    // D: (g + 8·(i ≥ 2), 2q + i%2).
    for i in 0..4u32 {
        let dr = if i >= 2 { 8 } else { 0 };
        body += &format!(
            "\tadd.u32 %r{a}, %r2, {dr};\n\tadd.u32 %r{b}, %r4, {dc};\n\tmad.lo.u32 %r{c}, %r{a}, 8, %r{b};\n\tmul.wide.u32 %rd{e}, %r{c}, 4;\n\tadd.s64 %rd{f}, %rd2, %rd{e};\n\tst.global.f32 [%rd{f}], %fc{i};\n",
            a = 40 + 3 * i,
            b = 41 + 3 * i,
            c = 42 + 3 * i,
            dc = i % 2,
            e = 30 + 2 * i,
            f = 31 + 2 * i,
        );
    }
    body += "\tret;";
    let m = module(2, 32, "", &body);
    let a: Vec<f32> = (0..256)
        .map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.25)
        .collect();
    let b: Vec<f32> = (0..128)
        .map(|i| ((i * 5 % 11) as f32 - 5.0) * 0.5)
        .collect();
    let halves: Vec<u8> = a
        .iter()
        .chain(&b)
        .flat_map(|v| half::f16::from_f32(*v).to_bits().to_le_bytes())
        .collect();
    let (mem, bases) = run1(&m, 32, 1, vec![(halves, false), (vec![0; 512], true)]).unwrap();
    let d = f32s(mem.region(bases[1]));
    for r in 0..16 {
        for c in 0..8 {
            let want: f32 = 1.0 + (0..16).map(|k| a[r * 16 + k] * b[k * 8 + c]).sum::<f32>();
            assert_eq!(d[r * 8 + c], want, "D[{r}][{c}]");
        }
    }
}

#[test]
fn ldmatrix_follows_the_ptx_fragment_layout() {
    // Four 8×8 matrices of halves (element (i, r, c) = 64i + 8r + c) are copied into shared
    // memory by cp.async.cg (16 bytes per lane) and a commit/wait pair; lane 8i + r gives the
    // address of row r of matrix i, stored in reverse row order to show the addresses are
    // used. Lane l must receive, from matrix i, row l/4, columns 2(l%4) and +1 (non-trans) or
    // rows 2(l%4) and +1 of column l/4 (trans).
    for trans in [false, true] {
        let t = if trans { ".trans" } else { "" };
        let body = format!(
            "	ld.param.u64 %rd0, [p0];
	ld.param.u64 %rd2, [p1];
	mov.u32 %r1, %laneid;
	mov.u32 %r2, sh$m;
	mul.wide.u32 %rd4, %r1, 16;
	add.s64 %rd5, %rd0, %rd4;
	mad.lo.s32 %r3, %r1, 16, %r2;
	cp.async.cg.shared.global [%r3], [%rd5], 16;
	cp.async.commit_group;
	cp.async.wait_group 0;
	bar.sync 0;
	and.b32 %r4, %r1, 24;
	and.b32 %r5, %r1, 7;
	sub.u32 %r6, 7, %r5;
	add.u32 %r7, %r4, %r6;
	mad.lo.s32 %r8, %r7, 16, %r2;
	ldmatrix.sync.aligned.m8n8.x4{t}.shared.b16 {{%r10, %r11, %r12, %r13}}, [%r8];
	mul.wide.u32 %rd6, %r1, 16;
	add.s64 %rd7, %rd2, %rd6;
	st.global.v4.u32 [%rd7], {{%r10, %r11, %r12, %r13}};
	ret;"
        );
        let m = module(2, 32, "	.shared .align 16 .b8 sh$m[512];", &body);
        // Row r of matrix i lives at row slot 8i + (7 - r).
        let mut src = vec![0u8; 512];
        for i in 0..4 {
            for r in 0..8 {
                for c in 0..8 {
                    let at = ((8 * i + 7 - r) * 8 + c) * 2;
                    let v = (64 * i + 8 * r + c) as u16;
                    src[at..at + 2].copy_from_slice(&v.to_le_bytes());
                }
            }
        }
        let (mem, bases) = run1(&m, 32, 1, vec![(src, false), (vec![0; 512], true)]).unwrap();
        let out = mem.region(bases[1]);
        for l in 0..32 {
            let (g, q) = (l / 4, l % 4);
            for i in 0..4 {
                let at = (4 * l + i) * 4;
                let w = u32::from_le_bytes(out[at..at + 4].try_into().unwrap());
                let e = |r: usize, c: usize| (64 * i + 8 * r + c) as u32;
                let want = if trans {
                    e(2 * q, g) | e(2 * q + 1, g) << 16
                } else {
                    e(g, 2 * q) | e(g, 2 * q + 1) << 16
                };
                assert_eq!(w, want, "trans {trans}, lane {l}, matrix {i}");
            }
        }
    }
}

fn fault(m: &Module, block: u32, bufs: Vec<(Vec<u8>, bool)>) -> String {
    match run1(m, block, 1, bufs) {
        Ok(_) => panic!("ran without a fault"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn faults_are_reported_not_computed() {
    let st = |idx: &str| {
        format!(
            "{PROLOGUE}\tmul.wide.u32 %rd4, {idx}, 4;\n\tadd.s64 %rd5, %rd3, %rd4;\n\tst.global.f32 [%rd5], 0f00000000;\n\tret;"
        )
    };
    // Out of bounds: thread 4 of 8 stores past a 4-element buffer.
    let m = module(2, 8, "", &st("%r1"));
    let e = fault(&m, 8, vec![(vec![0; 16], false), (vec![0; 16], true)]);
    assert!(
        e.contains("out of bounds") && e.contains("thread [4, 0, 0]"),
        "{e}"
    );
    // A store into the read-only region.
    let e = fault(&m, 8, vec![(vec![0; 32], false), (vec![0; 32], false)]);
    assert!(e.contains("read-only"), "{e}");
    // A register read before it is written.
    let m = module(2, 1, "", &st("%r9"));
    let e = fault(&m, 1, vec![(vec![0; 16], false), (vec![0; 16], true)]);
    assert!(e.contains("%r9 before any write"), "{e}");
    // Misaligned global access.
    let body = format!("{PROLOGUE}\tld.global.f32 %f0, [%rd1+2];\n\tret;");
    let m = module(2, 1, "", &body);
    let e = fault(&m, 1, vec![(vec![0; 16], false), (vec![0; 16], true)]);
    assert!(e.contains("misaligned"), "{e}");
    // A barrier after some threads have exited.
    let body = format!("{PROLOGUE}\tsetp.eq.u32 %p0, %r1, 0;\n\t@%p0 ret;\n\tbar.sync 0;\n\tret;");
    let m = module(2, 4, "", &body);
    let e = fault(&m, 4, vec![(vec![0; 16], false), (vec![0; 16], true)]);
    assert!(
        e.contains("bar.sync reached by 3 threads while 1 have exited"),
        "{e}"
    );
    // A shuffle whose member mask names a lane that waits elsewhere (divergence).
    let body = format!(
        "{PROLOGUE}\tsetp.eq.u32 %p0, %r1, 0;\n\t@%p0 bra $skip;\n\tshfl.sync.idx.b32 %r2, %r1, 0, 31, -1;\n$skip:\n\tshfl.sync.idx.b32 %r3, %r1, 0, 31, -1;\n\tret;"
    );
    let m = module(2, 32, "", &body);
    let e = fault(&m, 32, vec![(vec![0; 16], false), (vec![0; 16], true)]);
    assert!(e.contains("waits at line"), "{e}");
    // Integer division by zero (undefined in PTX).
    let body = format!("{PROLOGUE}\tdiv.u32 %r2, 7, 0;\n\tret;");
    let m = module(2, 1, "", &body);
    let e = fault(&m, 1, vec![(vec![0; 16], false), (vec![0; 16], true)]);
    assert!(e.contains("by zero"), "{e}");
    // A runaway loop hits the step limit.
    let body = format!("{PROLOGUE}$top:\n\tbra $top;\n\tret;");
    let m = module(2, 1, "", &body);
    let e = fault(&m, 1, vec![(vec![0; 16], false), (vec![0; 16], true)]);
    assert!(e.contains("more than"), "{e}");
}

#[test]
fn instructions_outside_the_subset_are_refused() {
    for inst in [
        "add.sat.f32 %f0, %f1, %f2",
        "ld.global.nc.f32 %f0, [%rd1]",
        "atom.global.add.f32 %f0, [%rd1], %f1",
        "tex.2d.v4.f32.f32 {%f0, %f1, %f2, %f3}, [t, {%f4, %f5}]",
        "cvt.rn.relu.bf16.f32 %h0, %f0",
    ] {
        let text = format!(
            ".version 7.8\n.target sm_89\n.address_size 64\n.visible .entry k(\n)\n{{\n\t{inst};\n\tret;\n}}\n"
        );
        match Module::parse(&text) {
            Err(SimError::Unknown { line, .. }) => assert_eq!(line, 7, "{inst}"),
            other => panic!("{inst}: {other:?}"),
        }
    }
    // A launch whose block differs from .reqntid is refused.
    let m = module(0, 64, "", "\tret;");
    let mut mem = Memory::new();
    let e = launch(
        &m,
        Launch {
            grid: [1, 1, 1],
            block: [32, 1, 1],
        },
        &[],
        &mut mem,
        100,
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("requires blocks of [64, 1, 1]"),
        "{e}"
    );
}
