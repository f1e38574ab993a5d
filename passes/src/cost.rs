//! The target cost model: a roofline per kernel — bytes moved over bandwidth, flops over
//! peak, whichever is larger — plus a fixed launch overhead. Extraction sums it over the
//! chosen DAG, so a fused kernel saves the launch and the write and read-back of every
//! intermediate it keeps in registers, while an intermediate that another consumer still needs
//! is paid for again. A fused attention kernel is one kernel: its bytes are Q, Kt, V, the score
//! program's extras and the output — the scores and probabilities are never written.
//!
//! Constants: `wgsl` is measured on the CI machine (Mesa lavapipe, 2 cores; see
//! `../shared/docs/lavapipe.md`): ~45 µs per extra dispatch in one pass, ~4.2 GB/s for a
//! scalar f32 elementwise kernel, ~60 GFLOP/s for the register-tiled GEMM. The `sm_XX` figures
//! are datasheet numbers (HBM/GDDR bandwidth, dense f32 peak; launch overhead ~4 µs).

use crate::lang::{EG, Node};
use egg::Id;
use optc_ir::Op;
use optc_ir::ops::{ConvAttrs, ConvLayout};
use serde::Serialize;

/// The constants of one target.
#[derive(Clone, Debug, Serialize)]
pub struct CostModel {
    /// Target name.
    pub target: String,
    /// Fixed cost of one kernel launch, µs.
    pub launch_us: f64,
    /// Memory bandwidth, bytes per µs.
    pub bytes_per_us: f64,
    /// Arithmetic peak, flops per µs.
    pub flops_per_us: f64,
    /// Extra cost of an elementwise op per operand that is a reshape or transpose of a
    /// Conv/Gemm/MatMul output (a tenth of it for one of an elementwise output), µs: zero
    /// except in the layout stage, where it breaks the tie between `E(Reshape(x))` and
    /// `Reshape(E(x))` (equal work) towards the form in which `E` can fuse into `x`'s
    /// producer — and, for a residual `Add(Reshape(gemm), y)`, towards sinking onto the GEMM
    /// rather than onto `y`.
    #[serde(skip)]
    pub sink_bias_us: f64,
    /// Arithmetic rate of the fused attention kernel, flops per µs (measured where known), for
    /// the register-tiled kernel `kernels::lower::attention` builds when the head dims and the
    /// key count are multiples of 4...
    pub attention_flops_per_us: f64,
    /// ... and for its workgroup-memory kernel otherwise (one query row per invocation: far
    /// below the GEMM's rate on lavapipe).
    pub attention_fallback_flops_per_us: f64,
    /// Relative speed of a Conv kernel that loads or stores element by element where the
    /// template otherwise moves vec4s ([`conv_vectorized`]), or `None` where that is not
    /// modelled (the sm targets, whose tensor-core and shared-memory paths do not depend on
    /// it). Where it is `Some`, the layout stage offers channels-last convs.
    pub scalar_conv_rate: Option<f64>,
    /// How a Conv's kernel departs from the roofline, from the backend's templates
    /// (`optc_kernels::lower::conv::conv_cost_factors`: this crate does not depend on them):
    /// `(arithmetic, time)` — the GEMM tile's padding scales the conv's flops, a measured
    /// slowdown its whole cost — so that the layout stage sees which conv layouts pad less or
    /// run slower. `None`: not modelled.
    #[serde(skip)]
    pub conv_factors: Option<ConvCostFn>,
}

/// A Conv's `(arithmetic, time)` cost factors from its attributes and stored input, weight and
/// output shapes ([`CostModel::conv_factors`]).
pub type ConvCostFn = fn(&ConvAttrs, &[usize], &[usize], &[usize]) -> (f64, f64);

impl CostModel {
    /// The model for `target` (`wgsl`, `sm_80`, `sm_86`, `sm_89`, `sm_90`, `sm_90a`); unknown
    /// targets get the `wgsl` constants.
    pub fn for_target(target: &str) -> CostModel {
        // Fused attention on lavapipe (benches/fusion.rs attention_fusedop_s128/s512, 4 heads,
        // head dim 64), by `flops` below: the register-tiled kernel ~36 GFLOP/s at S = 128 (its
        // fixed costs weigh more there) and ~50 at S = 512, the workgroup-memory one ~1.2. 50
        // taken: against the GEMM's 60 below (which the decomposed form is priced at, though
        // the template reaches ~35-45 here), it picks the fused kernel at both sizes, as the
        // measurements do (S = 128: 465 µs vs 770; S = 512: 5.4 ms vs 9.8). No measurement on
        // the sm targets yet: their peak.
        let attention_gflops = if target.starts_with("sm_") {
            None
        } else {
            Some((50.0, 1.2))
        };
        let (launch_us, gbps, gflops) = match target {
            // A100: 2.0 TB/s HBM2e, 19.5 TFLOP/s f32.
            "sm_80" => (4.0, 2000.0, 19_500.0),
            // RTX 3090-class: 0.94 TB/s, 35.6 TFLOP/s f32.
            "sm_86" => (4.0, 940.0, 35_600.0),
            // RTX 4090 / L40-class: 1.0 TB/s, 82 TFLOP/s f32.
            "sm_89" => (4.0, 1000.0, 82_000.0),
            // H100/H200 SXM: 3.35–4.8 TB/s, 67 TFLOP/s f32.
            "sm_90" | "sm_90a" => (4.0, 4000.0, 67_000.0),
            // lavapipe on the CI machine (measured).
            _ => (45.0, 4.2, 60.0),
        };
        CostModel {
            target: target.to_string(),
            launch_us,
            bytes_per_us: gbps * 1e3,
            flops_per_us: gflops * 1e3,
            sink_bias_us: 0.0,
            attention_flops_per_us: attention_gflops.map_or(gflops, |a| a.0) * 1e3,
            attention_fallback_flops_per_us: attention_gflops.map_or(gflops, |a| a.1) * 1e3,
            // On lavapipe a load is a loop over the 8 lanes whatever its width, so a scalar
            // operand costs per element what a vec4 costs per 4. From the per-kernel table of
            // `optc bench ../shared/models/mobilenet_v2 -O3 --target wgsl` (all channels-first):
            // the scalar depthwise kernel on 14×14×384 took 0.41 ms, 0.39 of its roofline, the
            // vec4 one on 112×112×32 0.86 ms, 0.9 of it; the 1×1 convs on 7×7 planes (scalar
            // pixel loads) ran at 0.4 of the 60 GFLOP/s roofline, those on 14×14 at ~0.5.
            scalar_conv_rate: (!target.starts_with("sm_")).then_some(0.4),
            conv_factors: None,
        }
    }
}

/// Bytes of class `id`'s value (0 for absent inputs).
pub fn bytes(eg: &EG, id: Id) -> f64 {
    eg[id].data.ty.as_ref().map_or(0.0, |t| {
        let n: usize = t.shape.as_static().map_or(1, |s| s.iter().product());
        (n * t.dtype.size().max(1)) as f64
    })
}

fn numel(eg: &EG, id: Id) -> f64 {
    eg[id]
        .data
        .ty
        .as_ref()
        .and_then(|t| t.shape.as_static())
        .map_or(1.0, |s| s.iter().product::<usize>() as f64)
}

fn dims(eg: &EG, id: Id) -> Vec<usize> {
    eg[id]
        .data
        .ty
        .as_ref()
        .and_then(|t| t.shape.as_static())
        .unwrap_or_default()
}

/// True when class `id` is data movement only: it holds a reshape-like alias or a transpose
/// and no other op (a class that also holds the producing kernel is not).
pub fn is_movement_class(eg: &EG, id: Id) -> bool {
    let mut moved = false;
    for n in &eg[id].nodes {
        match n {
            Node::Op { op, .. } => {
                let op = eg.analysis.ops.get(*op);
                if matches!(op, Op::Transpose { .. })
                    || (is_alias(op) && !matches!(op, Op::Identity))
                {
                    moved = true;
                } else {
                    return false;
                }
            }
            _ => return false,
        }
    }
    moved
}

/// How much an elementwise consumer of class `id` gains from being sunk below its data
/// movement: 1 when `id` is a movement-only class over a Conv/Gemm/MatMul output, 0.1 over an
/// elementwise output, else 0.
fn movement_weight(eg: &EG, id: Id) -> f64 {
    let mut c = eg.find(id);
    for _ in 0..8 {
        if eg[c].data.konst || !is_movement_class(eg, c) {
            return 0.0;
        }
        // Follow the first movement node's data input.
        let Some(next) = eg[c].nodes.iter().find_map(|n| match n {
            Node::Op { args, .. } => args.first().map(|&a| eg.find(a)).filter(|&a| a != c),
            _ => None,
        }) else {
            return 0.0;
        };
        if !is_movement_class(eg, next) {
            let ops = eg[next].nodes.iter().filter_map(|n| match n {
                Node::Op { op, .. } => Some(eg.analysis.ops.get(*op)),
                _ => None,
            });
            let mut w: f64 = 0.0;
            for op in ops {
                if matches!(op, Op::Conv(_) | Op::Gemm { .. } | Op::MatMul) {
                    return 1.0;
                }
                if optc_ir::ops::Program::is_step_op(op) && !matches!(op, Op::Identity) {
                    w = 0.1;
                }
            }
            return if eg[next].data.konst { 0.0 } else { w };
        }
        c = next;
    }
    0.0
}

/// True for ops that lower to an alias of their input (no kernel).
pub fn is_alias(op: &Op) -> bool {
    matches!(
        op,
        Op::Identity | Op::Reshape { .. } | Op::Flatten { .. } | Op::Squeeze | Op::Unsqueeze
    )
}

/// Flops of `op` producing `out` from `args` (multiply-adds count 2).
fn flops(eg: &EG, op: &Op, args: &[Id], out: Id) -> f64 {
    let n = numel(eg, out);
    match op {
        Op::Conv(_) => {
            // Each output element: Cin/group × kernel multiply-adds (the weight's dims 1..).
            let per: usize = dims(eg, args[1]).iter().skip(1).product();
            2.0 * n * per as f64
        }
        Op::MatMul | Op::Gemm { .. } => {
            let a = dims(eg, args[0]);
            let k = match op {
                Op::Gemm { trans_a: true, .. } => a.first().copied().unwrap_or(1),
                _ => a.last().copied().unwrap_or(1),
            };
            2.0 * n * k as f64
        }
        Op::Einsum { equation } => {
            // Multiply-adds per output element: the product of the reduced letters' sizes.
            let Some(c) = crate::rules::einsum::Contraction::parse(equation) else {
                return n;
            };
            let a = dims(eg, args[0]);
            let k: usize = c
                .reduced()
                .iter()
                .filter_map(|l| c.a.iter().position(|x| x == l).and_then(|p| a.get(p)))
                .product();
            2.0 * n * k as f64
        }
        Op::Fused(f) => {
            let anchor = f
                .anchor
                .as_ref()
                .map_or(0.0, |a| flops(eg, a, &args[..f.anchor_inputs], out));
            anchor + n * f.program.steps.len() as f64
        }
        Op::FusedAttention(a) => {
            // Per score: D multiply-adds for Q·Kt, Dv for P·V, the score program, ~4 for the
            // online softmax (max, exp, sum, rescale).
            let (q, vd) = attention_qv(eg, a, args);
            let d = q.last().copied().unwrap_or(1) as f64;
            let t = vd.iter().rev().nth(1).copied().unwrap_or(1) as f64;
            let dv = vd.last().copied().unwrap_or(1).max(1) as f64;
            let steps = a.score.as_ref().map_or(0, |p| p.steps.len()) as f64;
            n / dv * t * (2.0 * d + 2.0 * dv + steps + 4.0)
        }
        _ => n,
    }
}

/// Whether the conv kernel for `a` on these stored shapes (X, W, Y) loads and stores vec4s:
/// a depthwise conv channels-first needs rows a multiple of 4 wide (and stride ≤ 2),
/// channels-last both sides channels-last and channels a multiple of 4; a 1×1 conv needs its
/// pixels (channels-first input) or channels (channels-last) a multiple of 4; every GEMM-based
/// conv stores along its output's contiguous dim (pixels channels-first, channels
/// channels-last), which must then be a multiple of 4. Other shapes: true.
pub fn conv_vectorized(a: &ConvAttrs, xs: &[usize], ws: &[usize], ys: &[usize]) -> bool {
    if xs.len() != 4 || ws.len() != 4 || ys.len() != 4 {
        return true;
    }
    let lay = a.layout;
    let (x, y) = (
        ConvLayout::first_dims(xs, lay.input_last),
        ConvLayout::first_dims(ys, lay.output_last),
    );
    let (c, m, group) = (x[1], ws[0], a.group.max(1));
    let (cg, mg) = (c / group, m / group);
    let (pin, pout) = (x[2] * x[3], y[2] * y[3]);
    let ones = |v: &[usize], want: usize| v.iter().all(|&s| s == want);
    if cg == 1 && group > 1 {
        let sw = a.window.strides.get(1).copied().unwrap_or(1);
        return if lay.is_first() {
            x[3] % 4 == 0 && y[3] % 4 == 0 && sw <= 2
        } else {
            lay.input_last && lay.output_last && mg == 1 && m % 4 == 0
        };
    }
    let pointwise =
        ws[2] == 1 && ws[3] == 1 && ones(&a.window.strides, 1) && ones(&a.window.pads, 0);
    let loads = match (pointwise, lay.input_last) {
        (true, true) => c % 4 == 0 && cg % 4 == 0,
        (true, false) => pin % 4 == 0,
        // The im2col side: vec4 along K only channels-last with tap-major K (4 channels of a
        // tap at a time); otherwise element by element, with a bounds check each.
        (false, _) => {
            let one_tap = ws[2] * ws[3] == 1;
            lay.input_last && (lay.weight_last || one_tap) && c % 4 == 0 && cg % 4 == 0
        }
    };
    let stores = if lay.output_last {
        m % 4 == 0
    } else {
        pout % 4 == 0
    };
    loads && stores
}

/// [`conv_vectorized`] for the Conv `op` (or the fused kernel anchored on one) with arguments
/// `args` and output class `out`; true for other ops.
fn vectorized(eg: &EG, op: &Op, args: &[Id], out: Id) -> bool {
    match conv_attrs(op) {
        Some(a) if args.len() >= 2 => {
            conv_vectorized(a, &dims(eg, args[0]), &dims(eg, args[1]), &dims(eg, out))
        }
        _ => true,
    }
}

/// The Conv of a Conv node or of a fused kernel anchored on one.
fn conv_attrs(op: &Op) -> Option<&ConvAttrs> {
    match op {
        Op::Conv(a) => Some(a),
        Op::Fused(f) => match &f.anchor {
            Some(Op::Conv(a)) => Some(a),
            _ => None,
        },
        _ => None,
    }
}

/// A fused attention's Q `[.., S, D]` and V `[.., T, Dv]` dims in the canonical layout.
fn attention_qv(
    eg: &EG,
    a: &optc_ir::ops::FusedAttention,
    args: &[Id],
) -> (Vec<usize>, Vec<usize>) {
    let canon = |j: usize| {
        let st = dims(eg, args[j]);
        a.input_dims(j, &st).unwrap_or(st)
    };
    (canon(0), canon(2))
}

/// The cost of e-node `node` in class `class`, µs. Leaves, compile-time constants and
/// aliases are free.
pub fn node_cost(model: &CostModel, eg: &EG, class: Id, node: &Node) -> f64 {
    let Node::Op { op, args, .. } = node else {
        return 0.0;
    };
    if eg[class].data.konst {
        return 0.0;
    }
    let op = eg.analysis.ops.get(*op);
    if is_alias(op) {
        return 0.0;
    }
    let mut seen: Vec<Id> = Vec::new();
    let mut b = bytes(eg, class);
    for a in args {
        let a = eg.find(*a);
        if !seen.contains(&a) {
            seen.push(a);
            b += bytes(eg, a);
        }
    }
    let extra = match op {
        // The program-as-kernel form of a single op: a hair dearer than the op itself, so
        // that extraction prefers the plain op when nothing is fused into it.
        Op::Fused(f) if f.program.steps.len() == 1 || f.anchor.is_some() => 1e-3,
        op if model.sink_bias_us > 0.0
            && optc_ir::ops::Program::is_step_op(op)
            && args.iter().any(|&a| is_movement_class(eg, a)) =>
        {
            let w: f64 = args.iter().map(|&a| movement_weight(eg, a)).sum();
            model.sink_bias_us * w
        }
        _ => 0.0,
    };
    // The attention template has its own (measured) arithmetic rates, by the kernel it builds
    // (the register-tiled one needs D, Dv and T multiples of 4: Q [.., S, D], V [.., T, Dv]).
    let rate = match op {
        Op::FusedAttention(a) => {
            let (q, v) = attention_qv(eg, a, args);
            // The kernel `attention::tiled_keys` picks: Q, V and the output keep their last
            // dim innermost; K its keys (Kt's last dim; then T % 4 == 0) or D (K stored as
            // rows, any T).
            let last = |p: &[usize]| p.last().is_some_and(|&x| x + 1 == p.len());
            let rows_ok = a
                .layout
                .as_ref()
                .is_none_or(|l| last(&l.q) && last(&l.v) && last(&l.out));
            let k_rows = a.layout.as_ref().is_some_and(|l| {
                !last(&l.k) && l.k.iter().rev().nth(1).is_some_and(|&x| x + 1 == l.k.len())
            });
            let k_cols = a.layout.as_ref().is_none_or(|l| last(&l.k))
                && v.iter().rev().nth(1).is_some_and(|t| t % 4 == 0);
            let tiled = rows_ok
                && (k_rows || k_cols)
                && q.last().is_some_and(|d| d % 4 == 0)
                && v.last().is_some_and(|dv| dv % 4 == 0);
            if tiled {
                model.attention_flops_per_us
            } else {
                model.attention_fallback_flops_per_us
            }
        }
        _ => model.flops_per_us,
    };
    let (arith, time) = match (model.conv_factors, conv_attrs(op)) {
        (Some(f), Some(a)) if args.len() >= 2 => {
            let (arith, time) = f(a, &dims(eg, args[0]), &dims(eg, args[1]), &dims(eg, class));
            (arith.max(1.0), time.max(1.0))
        }
        _ => (1.0, 1.0),
    };
    let roof = time * (b / model.bytes_per_us).max(flops(eg, op, args, class) * arith / rate);
    let roof = match model.scalar_conv_rate {
        Some(r) if !vectorized(eg, op, args, class) => roof / r,
        _ => roof,
    };
    model.launch_us + roof + extra
}

#[cfg(test)]
mod tests {
    use super::*;
    use optc_ir::ops::Window;

    fn conv(k: usize, stride: usize, group: usize, lay: (bool, bool, bool)) -> ConvAttrs {
        ConvAttrs {
            window: Window {
                kernel_shape: vec![k, k],
                strides: vec![stride, stride],
                pads: vec![k / 2; 4],
                ..Window::default()
            },
            group,
            layout: ConvLayout {
                input_last: lay.0,
                output_last: lay.1,
                weight_last: lay.2,
            },
        }
    }

    const FIRST: (bool, bool, bool) = (false, false, false);
    const LAST: (bool, bool, bool) = (true, true, false);

    #[test]
    fn which_conv_kernels_move_vec4s() {
        // Depthwise: channels-first needs rows a multiple of 4 wide; channels-last, channels.
        let dw = conv(3, 1, 384, FIRST);
        let (x14, w, x28) = ([1, 384, 14, 14], [384, 1, 3, 3], [1, 384, 28, 28]);
        assert!(!conv_vectorized(&dw, &x14, &w, &x14));
        assert!(conv_vectorized(&dw, &x28, &w, &x28));
        let dw_last = conv(3, 1, 384, LAST);
        let nhwc = [1, 14, 14, 384];
        assert!(conv_vectorized(&dw_last, &nhwc, &w, &nhwc));
        let dw_mixed = conv(3, 1, 384, (true, false, false));
        assert!(!conv_vectorized(&dw_mixed, &nhwc, &w, &x14));
        // 1×1: a 7×7 plane (49 pixels) is not vec4-able channels-first; channels-last is.
        let pw = ConvAttrs {
            window: Window::default(),
            ..conv(1, 1, 1, FIRST)
        };
        let w1 = [960, 160, 1, 1];
        assert!(!conv_vectorized(&pw, &[1, 160, 7, 7], &w1, &[1, 960, 7, 7]));
        assert!(conv_vectorized(
            &pw,
            &[1, 160, 14, 14],
            &w1,
            &[1, 960, 14, 14]
        ));
        let pw_last = ConvAttrs {
            window: Window::default(),
            ..conv(1, 1, 1, LAST)
        };
        assert!(conv_vectorized(
            &pw_last,
            &[1, 7, 7, 160],
            &w1,
            &[1, 7, 7, 960]
        ));
        // im2col: vec4 only channels-last with the weight tap-major (or one tap).
        let w3 = [64, 64, 3, 3];
        let (c56, l56) = ([1, 64, 56, 56], [1, 56, 56, 64]);
        assert!(!conv_vectorized(&conv(3, 1, 1, FIRST), &c56, &w3, &c56));
        assert!(!conv_vectorized(&conv(3, 1, 1, LAST), &l56, &w3, &l56));
        let w3_last = [64, 3, 3, 64];
        assert!(conv_vectorized(
            &conv(3, 1, 1, (true, true, true)),
            &l56,
            &w3_last,
            &l56
        ));
        let down = conv(1, 2, 1, LAST);
        assert!(conv_vectorized(
            &down,
            &l56,
            &[128, 64, 1, 1],
            &[1, 28, 28, 128]
        ));
        // Channels-first stores along 49 pixels are scalar.
        assert!(!conv_vectorized(
            &conv(3, 1, 1, (true, false, true)),
            &[1, 7, 7, 64],
            &w3_last,
            &[1, 64, 7, 7]
        ));
    }

    #[test]
    fn only_wgsl_prices_conv_layouts() {
        assert_eq!(CostModel::for_target("wgsl").scalar_conv_rate, Some(0.4));
        for t in ["sm_80", "sm_86", "sm_89", "sm_90", "sm_90a"] {
            assert_eq!(CostModel::for_target(t).scalar_conv_rate, None, "{t}");
        }
    }
}
