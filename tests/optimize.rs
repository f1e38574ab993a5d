//! The optimizer preserves semantics on the shared models: each model, specialised, folded and
//! optimized at every level (fusion legality unrestricted, so every fusion rule fires), runs on
//! the reference interpreter and matches the expected outputs; the e-graph stages stay within
//! their limits and report sizes and stop reasons.

mod common;

use optc::compare::{Tolerance, compare};
use std::collections::BTreeMap;

#[test]
fn optimized_shared_models_match_the_expected_outputs() {
    let Some(models) = common::shared_models() else {
        return;
    };
    for m in models {
        let name = &m.name;
        let shapes: Vec<Vec<usize>> = m.inputs.iter().map(|t| t.shape().to_vec()).collect();
        let g = optc::compile::specialize(
            &m.model.graph,
            &BTreeMap::new(),
            Some(&shapes),
            &BTreeMap::new(),
        )
        .unwrap();
        let (folded, _) = optc::compile::fold(&g).unwrap();
        for level in [1u8, 3] {
            let opts = optc::passes::Options::new(level, "wgsl");
            let o = optc::passes::optimize(&g, &folded, &opts)
                .unwrap_or_else(|e| panic!("{name} -O{level}: {e}"));
            for s in &o.report.stages {
                eprintln!(
                    "{name} -O{level} {}: {} nodes, {} classes, {} iterations, {} ({:.1} ms + extract {:.1} ms), cost {:.0} us, {:?}",
                    s.name,
                    s.nodes,
                    s.classes,
                    s.iterations,
                    s.stop_reason,
                    s.ms,
                    s.extract_ms,
                    s.cost_us,
                    s.applied
                );
                assert_eq!(
                    s.stop_reason, "saturated",
                    "{name} -O{level} {}: hit a limit",
                    s.name
                );
                assert!(s.nodes <= opts.limits.nodes, "{name}: node limit overrun");
            }
            eprintln!(
                "{name} -O{level}: {} nodes -> {}, {} fused kernels, {:.1} ms",
                o.report.nodes_before,
                o.report.nodes_after,
                o.report.groups.len(),
                o.report.ms
            );
            optc::ir::verify::verify(&o.graph)
                .unwrap_or_else(|e| panic!("{name} -O{level}: {e:?}"));
            let actual = optc::ir::run(&o.graph, &m.inputs)
                .unwrap_or_else(|e| panic!("{name} -O{level}: {e}"));
            for (i, (a, e)) in actual.iter().zip(&m.expected).enumerate() {
                let d = compare(a, e, Tolerance::MODEL)
                    .unwrap_or_else(|m| panic!("{name} -O{level} output {i}: {m}"));
                assert!(
                    d.max_abs_err <= 1e-4 && d.rel_l2_err <= 1e-5,
                    "{name} -O{level} output {i}: {d:?}"
                );
            }
        }
    }
}

#[test]
fn compiling_twice_gives_byte_identical_artifacts() {
    // -O3 runs every e-graph stage and the integer-program extraction (budgeted in
    // branch-and-bound nodes, not time): the same model must give the same bytes.
    let Some(models) = common::shared_models() else {
        return;
    };
    for m in models {
        for target in [optc_runtime::Target::Wgsl, optc_runtime::Target::Sm89] {
            let bytes = || {
                optc::compile::compile(&m.model.graph, &m.name, &m.options(target, 3))
                    .unwrap_or_else(|e| panic!("{} {target}: {e}", m.name))
                    .to_artifact()
                    .to_bytes()
            };
            assert!(bytes() == bytes(), "{} {target}: artifacts differ", m.name);
        }
    }
}
