//! The optimizer preserves semantics on the shared models: each model, specialised, folded and
//! optimized at every level (fusion legality unrestricted, so every fusion rule fires), runs on
//! the reference interpreter and matches the expected outputs; the e-graph stages stay within
//! their limits and report sizes and stop reasons.

mod common;

use optc::compare::{Tolerance, compare};
use std::collections::BTreeMap;

#[test]
fn optimized_shared_models_match_the_expected_outputs() {
    let Some(dir) = common::models_dir() else {
        return;
    };
    let tests = optc::conformance::discover(&dir).unwrap();
    assert_eq!(
        tests.len(),
        7,
        "expected the 7 shared models under {}",
        dir.display()
    );
    for t in tests {
        let name = t.file_name().unwrap().to_string_lossy().into_owned();
        let model = optc::model::load(&t.join("model.onnx")).unwrap();
        let set = t.join("test_data_set_0");
        let inputs = optc::model::read_inputs(&model.graph, &set).unwrap();
        let expected = optc::model::read_outputs(&set, model.graph.outputs().len()).unwrap();
        let shapes: Vec<Vec<usize>> = inputs.iter().map(|t| t.shape().to_vec()).collect();
        let g = optc::compile::specialize(
            &model.graph,
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
            let actual = optc::ir::run(&o.graph, &inputs)
                .unwrap_or_else(|e| panic!("{name} -O{level}: {e}"));
            for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
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
