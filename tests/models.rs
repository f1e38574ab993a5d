//! The shared models (../shared/models) run on the reference interpreter and match
//! onnxruntime's outputs within max abs 1e-4 and relative L2 1e-5.

mod common;

use optc::compare::{Tolerance, compare};

#[test]
fn shared_models_match_onnxruntime() {
    let Some(models) = common::shared_models() else {
        return;
    };
    for m in models {
        let name = &m.name;
        let actual =
            optc::ir::run(&m.model.graph, &m.inputs).unwrap_or_else(|e| panic!("{name}: {e}"));
        for (i, (a, e)) in actual.iter().zip(&m.expected).enumerate() {
            let d = compare(a, e, Tolerance::MODEL)
                .unwrap_or_else(|m| panic!("{name} output {i}: {m}"));
            eprintln!(
                "{name} output {i}: max abs {:.2e}, rel l2 {:.2e}",
                d.max_abs_err, d.rel_l2_err
            );
            assert!(
                d.max_abs_err <= 1e-4 && d.rel_l2_err <= 1e-5,
                "{name} output {i}: {d:?}"
            );
        }
    }
}
