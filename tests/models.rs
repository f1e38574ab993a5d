//! The shared models (../shared/models) run on the reference interpreter and match
//! onnxruntime's outputs within max abs 1e-4 and relative L2 1e-5.

mod common;

use optc::compare::{Tolerance, compare};

#[test]
fn shared_models_match_onnxruntime() {
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
        let model =
            optc::model::load(&t.join("model.onnx")).unwrap_or_else(|e| panic!("{name}: {e}"));
        let set = t.join("test_data_set_0");
        let inputs = optc::model::read_inputs(&model.graph, &set).unwrap();
        let expected = optc::model::read_outputs(&set, model.graph.outputs().len()).unwrap();
        let actual = optc::ir::run(&model.graph, &inputs).unwrap_or_else(|e| panic!("{name}: {e}"));
        for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
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
