//! The ONNX importer against hostile and malformed models (each must be refused with the right
//! error variant and a one-line message naming the problem — never a panic, a hang or an
//! unbounded allocation), plus positive cases that stress its scaling and scoping.

#![cfg(feature = "onnx")]

mod common;

use common::*;
use onnx_protobuf::tensor_shape_proto::dimension;
use onnx_protobuf::{ModelProto, OperatorSetIdProto, StringStringEntryProto};
use optc_ir::front::onnx::{ImportError, load_model, load_model_bytes, load_tensor_pb};
use optc_ir::{DType, Dim, Op, Shape, Tensor, TensorType};
use std::time::Instant;

fn assert_invalid(e: &ImportError, needles: &[&str]) {
    assert!(
        matches!(e, ImportError::Invalid { .. }),
        "expected Invalid, got {e:?}"
    );
    contains_all(e, needles);
}

fn assert_unsupported(e: &ImportError, needles: &[&str]) {
    assert!(
        matches!(e, ImportError::Unsupported { .. }),
        "expected Unsupported, got {e:?}"
    );
    contains_all(e, needles);
}

fn contains_all(e: &ImportError, needles: &[&str]) {
    let s = e.to_string();
    for n in needles {
        assert!(s.contains(n), "'{s}' does not mention '{n}'");
    }
}

/// x: f32[2,3] → Relu → y.
fn relu_model() -> ModelProto {
    model(
        17,
        graph(
            vec![node("Relu", "relu", &["x"], &["y"])],
            vec![vi("x", FLOAT, &[2, 3])],
            &["y"],
            vec![],
        ),
    )
}

/// A single-node model over f32 inputs `x` (and `w`) of the given dims.
fn one_node(n: onnx_protobuf::NodeProto, x: &[i64], w: Option<&[i64]>) -> ModelProto {
    let mut inputs = vec![vi("x", FLOAT, x)];
    if let Some(w) = w {
        inputs.push(vi("w", FLOAT, w));
    }
    model(17, graph(vec![n], inputs, &["y"], vec![]))
}

// ---------------------------------------------------------------- decoding

#[test]
fn empty_file_is_refused() {
    let dir = temp_dir("empty");
    let p = dir.join("model.onnx");
    std::fs::write(&p, b"").unwrap();
    let e = load_model(&p).unwrap_err();
    assert!(matches!(e, ImportError::Decode { .. }), "{e:?}");
    assert!(e.to_string().contains("empty"), "{e}");
    let e = load_model_bytes(&[], None).unwrap_err();
    assert!(matches!(e, ImportError::Decode { .. }), "{e:?}");
}

#[test]
fn missing_file_and_directory_are_io_errors() {
    let dir = temp_dir("io");
    let e = load_model(&dir.join("nope.onnx")).unwrap_err();
    assert!(matches!(e, ImportError::Io { .. }), "{e:?}");
    assert!(e.to_string().contains("nope.onnx"), "{e}");
    let e = load_model(&dir).unwrap_err();
    assert!(matches!(e, ImportError::Io { .. }), "{e:?}");
}

#[test]
fn random_bytes_are_refused() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for len in [1usize, 2, 7, 64, 1000, 100_000] {
        for _ in 0..20 {
            let v: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            match load_model_bytes(&v, None) {
                Ok(_) => panic!("random bytes imported"),
                Err(e) => {
                    let s = e.to_string();
                    assert!(!s.is_empty() && !s.contains('\n'), "{s}");
                }
            }
        }
    }
    // Bytes that are certainly not protobuf: a field with wire type 7.
    let e = load_model_bytes(&[0x0f, 0xff, 0xff], None).unwrap_err();
    assert!(matches!(e, ImportError::Decode { .. }), "{e:?}");
}

#[test]
fn truncated_protobuf_is_a_decode_error() {
    let mut m = relu_model();
    let g = m.graph.as_mut().unwrap();
    g.initializer.push(t_f32("big", &[64], &[1.0; 64]));
    let b = bytes(&m);
    let mut decode_errors = 0;
    for cut in 1..b.len() {
        match load_model_bytes(&b[..cut], None) {
            Ok(_) => {} // a prefix can be a valid (smaller) message
            Err(ImportError::Decode { .. }) => decode_errors += 1,
            Err(e) => assert!(!e.to_string().contains('\n')),
        }
    }
    assert!(
        decode_errors > b.len() / 2,
        "{decode_errors} of {}",
        b.len()
    );
    // Cutting inside the raw_data of the initializer.
    let e = load_model_bytes(&b[..b.len() - 10], None).unwrap_err();
    assert!(matches!(e, ImportError::Decode { .. }), "{e:?}");
}

#[test]
fn deeply_nested_subgraphs_do_not_overflow_the_stack() {
    // 300 nested Ifs: deeper than the protobuf recursion limit, refused as a decode error.
    let mut g = graph(vec![], vec![], &["x"], vec![]);
    for i in 0..300 {
        let n = with(
            with(
                node("If", &format!("if{i}"), &["c"], &[&format!("o{i}")]),
                a_graph("then_branch", g),
            ),
            a_graph("else_branch", graph(vec![], vec![], &["x"], vec![])),
        );
        g = graph(vec![n], vec![], &[&format!("o{i}")], vec![]);
    }
    g.input = vec![vi("c", BOOL, &[]), vi("x", FLOAT, &[1])];
    let e = load_err(&model(17, g));
    assert!(matches!(e, ImportError::Decode { .. }), "{e:?}");
}

#[test]
fn moderately_nested_ifs_import_and_run() {
    // 25 levels (within the protobuf recursion limit): each then-branch nests the next If,
    // every else-branch returns the outer value `b`; the innermost returns `a`.
    let depth = 25;
    let mut g = graph(vec![], vec![], &["a"], vec![]);
    for i in 0..depth {
        let n = with(
            with(
                node("If", &format!("if{i}"), &["c"], &[&format!("o{i}")]),
                a_graph("then_branch", g),
            ),
            a_graph("else_branch", graph(vec![], vec![], &["b"], vec![])),
        );
        g = graph(vec![n], vec![], &[&format!("o{i}")], vec![]);
    }
    g.input = vec![
        vi("c", BOOL, &[]),
        vi("a", FLOAT, &[1]),
        vi("b", FLOAT, &[1]),
    ];
    let model = load(&model(17, g)).unwrap();
    optc_ir::verify::verify(&model.graph).unwrap();
    let a = Tensor::from_vec(vec![1], vec![1.0f32]).unwrap();
    let b = Tensor::from_vec(vec![1], vec![2.0f32]).unwrap();
    let bo = |v: bool| Tensor::scalar(optc_ir::Bool8::from(v));
    let r = |c| optc_ir::run(&model.graph, &[bo(c), a.clone(), b.clone()]).unwrap();
    assert_eq!(r(true)[0], a);
    assert_eq!(r(false)[0], b);
}

// ---------------------------------------------------------------- model level

#[test]
fn missing_graph_is_invalid() {
    let mut m = relu_model();
    m.graph = protobuf::MessageField::none();
    assert_invalid(&load_err(&m), &["no graph"]);
}

#[test]
fn future_and_ancient_opsets_are_unsupported() {
    let mut m = relu_model();
    m.opset_import[0].version = 30;
    assert_unsupported(&load_err(&m), &["opset 30"]);
    m.opset_import[0].version = 6;
    assert_unsupported(&load_err(&m), &["opset 6"]);
    m.opset_import[0].domain = "ai.onnx".into();
    m.opset_import[0].version = 29;
    assert_unsupported(&load_err(&m), &["opset 29"]);
    // Opsets 24..=28 changed Relu not at all: imported with opset-23 semantics.
    m.opset_import[0].version = 28;
    load_model_bytes(&protobuf::Message::write_to_bytes(&m).unwrap(), None).unwrap();
}

#[test]
fn missing_default_opset_and_old_ir_are_refused() {
    let mut m = relu_model();
    m.opset_import.clear();
    assert_invalid(&load_err(&m), &["imports no opset"]);
    m.opset_import.push(OperatorSetIdProto {
        domain: "ai.onnx.ml".into(),
        version: 3,
        ..Default::default()
    });
    assert_unsupported(&load_err(&m), &["ai.onnx.ml"]);
    let mut m = relu_model();
    m.ir_version = 2;
    assert_unsupported(&load_err(&m), &["IR version 2"]);
}

// ---------------------------------------------------------------- structure

#[test]
fn dangling_input_names_the_node_and_the_value() {
    let m = model(
        17,
        graph(
            vec![
                node("Relu", "r1", &["x"], &["a"]),
                node("Add", "add7", &["a", "ghost"], &["y"]),
            ],
            vec![vi("x", FLOAT, &[2])],
            &["y"],
            vec![],
        ),
    );
    assert_invalid(&load_err(&m), &["add7", "ghost"]);
}

#[test]
fn cycles_name_the_nodes_in_them() {
    // x -> r0 -> a; (a, c) -> add1 -> b; b -> r2 -> c: add1 and r2 form a cycle.
    let m = model(
        17,
        graph(
            vec![
                node("Relu", "r0", &["x"], &["a"]),
                node("Add", "add1", &["a", "c"], &["b"]),
                node("Relu", "r2", &["b"], &["c"]),
                node("Relu", "r3", &["c"], &["y"]),
            ],
            vec![vi("x", FLOAT, &[2])],
            &["y"],
            vec![],
        ),
    );
    let e = load_err(&m);
    assert_invalid(&e, &["cycle", "add1", "r2"]);
    let s = e.to_string();
    assert!(!s.contains("'r0'") && !s.contains("'r3'"), "{s}");
    // A node reading its own output.
    let m = model(
        17,
        graph(
            vec![node("Add", "selfish", &["x", "y"], &["y"])],
            vec![vi("x", FLOAT, &[2])],
            &["y"],
            vec![],
        ),
    );
    assert_invalid(&load_err(&m), &["cycle", "selfish"]);
}

#[test]
fn a_value_produced_twice_is_invalid() {
    let m = model(
        17,
        graph(
            vec![
                node("Relu", "first", &["x"], &["y"]),
                node("Neg", "second", &["x"], &["y"]),
            ],
            vec![vi("x", FLOAT, &[2])],
            &["y"],
            vec![],
        ),
    );
    assert_invalid(&load_err(&m), &["'y'", "produced twice", "first", "second"]);
    // A node overwriting a graph input.
    let m = model(
        17,
        graph(
            vec![node("Relu", "clobber", &["x"], &["x"])],
            vec![vi("x", FLOAT, &[2])],
            &["x"],
            vec![],
        ),
    );
    assert_invalid(&load_err(&m), &["clobber", "'x'"]);
    // An initializer and an input... with the same name is fine (a constant), but two
    // initializers with one name are not.
    let m = model(
        17,
        graph(
            vec![],
            vec![],
            &["w"],
            vec![t_f32("w", &[1], &[1.0]), t_f32("w", &[1], &[2.0])],
        ),
    );
    assert_invalid(&load_err(&m), &["'w'", "twice"]);
}

#[test]
fn graph_output_that_nothing_produces_is_invalid() {
    let m = model(
        17,
        graph(vec![], vec![vi("x", FLOAT, &[1])], &["nowhere"], vec![]),
    );
    assert_invalid(&load_err(&m), &["nowhere"]);
}

// ---------------------------------------------------------------- unsupported

#[test]
fn every_unknown_op_is_listed_at_once() {
    let m = model(
        17,
        graph(
            vec![
                node("FooOp", "foo", &["x"], &["a"]),
                node("Relu", "ok", &["a"], &["b"]),
                node("BarOp", "bar", &["b"], &["c"]),
                node("Loop", "", &["c"], &["y"]),
            ],
            vec![vi("x", FLOAT, &[2])],
            &["y"],
            vec![],
        ),
    );
    let e = load_err(&m);
    assert_unsupported(
        &e,
        &[
            "3 nodes",
            "FooOp (node 'foo', #0, opset 17",
            "BarOp (node 'bar', #2",
            "Loop (node '', #3",
        ],
    );
    let ImportError::Unsupported { items } = e else {
        unreachable!()
    };
    assert_eq!(items.len(), 3);
    assert_eq!(items[1].op_type, "BarOp");
    assert_eq!(items[1].index, Some(2));
    assert_eq!(items[1].opset, 17);
}

#[test]
fn unknown_domains_are_unsupported() {
    let mut ms = node("FusedGemm", "fg", &["x"], &["a"]);
    ms.domain = "com.microsoft".into();
    let mut ml = node("LinearClassifier", "lc", &["a"], &["y"]);
    ml.domain = "ai.onnx.ml".into();
    let mut m = model(
        17,
        graph(vec![ms, ml], vec![vi("x", FLOAT, &[2])], &["y"], vec![]),
    );
    m.opset_import.push(OperatorSetIdProto {
        domain: "ai.onnx.ml".into(),
        version: 3,
        ..Default::default()
    });
    let e = load_err(&m);
    assert_unsupported(
        &e,
        &[
            "2 nodes",
            "com.microsoft:FusedGemm",
            "ai.onnx.ml:LinearClassifier",
            "opset 3",
        ],
    );
}

#[test]
fn unsupported_op_inside_an_if_branch_names_the_branch() {
    let then_g = graph(
        vec![node("Weird", "inner", &["x"], &["t"])],
        vec![],
        &["t"],
        vec![],
    );
    let else_g = graph(vec![], vec![], &["x"], vec![]);
    let n = with(
        with(
            node("If", "branchy", &["c"], &["y"]),
            a_graph("then_branch", then_g),
        ),
        a_graph("else_branch", else_g),
    );
    let m = model(
        17,
        graph(
            vec![n],
            vec![vi("c", BOOL, &[]), vi("x", FLOAT, &[2])],
            &["y"],
            vec![],
        ),
    );
    assert_unsupported(&load_err(&m), &["Weird", "branchy/then_branch/inner"]);
}

#[test]
fn ops_newer_than_the_model_opset_are_unsupported() {
    let n = with(
        node("Gelu", "g", &["x"], &["y"]),
        a_str("approximate", "none"),
    );
    let e = load_err(&one_node(n, &[2], None));
    assert_unsupported(&e, &["Gelu", "opset 20"]);
}

#[test]
fn unsupported_attribute_values_and_types() {
    let n = with(
        node("Cast", "to_str", &["x"], &["y"]),
        a_int("to", STRING as i64),
    );
    assert_unsupported(&load_err(&one_node(n, &[2], None)), &["to_str", "STRING"]);
    let n = with(
        node("Resize", "rs", &["x", "", "s"], &["y"]),
        a_str("coordinate_transformation_mode", "tf_half_pixel_for_nn"),
    );
    let mut m = one_node(n, &[1, 1, 2, 2], None);
    m.opset_import[0].version = 11;
    assert_unsupported(&load_err(&m), &["rs", "tf_half_pixel_for_nn"]);
    let n = with(
        node("Constant", "sparse", &[], &["y"]),
        common::a_tensor("sparse_value", Default::default()),
    );
    let mut n = n;
    n.attribute[0].type_ =
        protobuf::EnumOrUnknown::new(onnx_protobuf::attribute_proto::AttributeType::SPARSE_TENSOR);
    assert_unsupported(&load_err(&one_node(n, &[1], None)), &["sparse"]);
}

// ---------------------------------------------------------------- attributes

#[test]
fn bad_attribute_types_name_the_node_and_attribute() {
    let n = with(
        node("Conv", "conv_bad", &["x", "w"], &["y"]),
        a_float("strides", 2.0),
    );
    let e = load_err(&one_node(n, &[1, 1, 4, 4], Some(&[1, 1, 3, 3])));
    assert_invalid(&e, &["conv_bad", "'strides'", "INTS", "FLOAT"]);
    let n = with(node("Softmax", "sm", &["x"], &["y"]), a_str("axis", "1"));
    assert_invalid(&load_err(&one_node(n, &[2], None)), &["sm", "'axis'"]);
    let n = with(
        with(node("Relu", "twice", &["x"], &["y"]), a_int("a", 1)),
        a_int("a", 2),
    );
    assert_invalid(&load_err(&one_node(n, &[2], None)), &["twice", "'a'"]);
}

#[test]
fn out_of_range_attributes_are_invalid() {
    let n = with(
        node("Transpose", "tr", &["x"], &["y"]),
        a_ints("perm", &[0, 0]),
    );
    assert_invalid(&load_err(&one_node(n, &[2, 2], None)), &["tr", "'perm'"]);
    let n = with(
        node("Transpose", "tr", &["x"], &["y"]),
        a_ints("perm", &[0, -1]),
    );
    assert_invalid(&load_err(&one_node(n, &[2, 2], None)), &["tr", "'perm'"]);
    let n = with(node("LpNormalization", "lp", &["x"], &["y"]), a_int("p", 3));
    assert_invalid(&load_err(&one_node(n, &[2, 2], None)), &["lp", "'p'"]);
    let n = with(
        node("ReduceSum", "rs", &["x"], &["y"]),
        a_int("keepdims", 7),
    );
    assert_invalid(
        &load_err(&one_node(n, &[2, 2], None)),
        &["rs", "'keepdims'"],
    );
    let n = with(
        node("Conv", "c", &["x", "w"], &["y"]),
        a_str("auto_pad", "SAME_SIDEWAYS"),
    );
    let e = load_err(&one_node(n, &[1, 1, 4, 4], Some(&[1, 1, 3, 3])));
    assert_invalid(&e, &["'auto_pad'", "SAME_SIDEWAYS"]);
    let n = with(
        node("DepthToSpace", "d2s", &["x"], &["y"]),
        a_int("blocksize", 0),
    );
    assert_invalid(
        &load_err(&one_node(n, &[1, 4, 2, 2], None)),
        &["d2s", "'blocksize'"],
    );
    // Attribute forms used after their opset moved them to inputs.
    let n = with(
        node("ReduceMean", "rm", &["x"], &["y"]),
        a_ints("axes", &[0]),
    );
    let mut m = one_node(n, &[2], None);
    m.opset_import[0].version = 18;
    assert_invalid(&load_err(&m), &["rm", "'axes'", "opset 18"]);
}

#[test]
fn out_of_range_axes_are_invalid() {
    let n = with(
        node("Unsqueeze", "unsq", &["x"], &["y"]),
        a_ints("axes", &[9]),
    );
    let mut m = one_node(n, &[2, 2], None);
    m.opset_import[0].version = 11;
    assert_invalid(&load_err(&m), &["unsq"]);
    let n = with(node("Softmax", "sm", &["x"], &["y"]), a_int("axis", 5));
    assert_invalid(&load_err(&one_node(n, &[2, 2], None)), &["sm", "axis"]);
}

#[test]
fn inconsistent_shapes_are_invalid_and_name_the_node() {
    // Conv: 3 input channels, weight expects 2.
    let n = node("Conv", "conv_mismatch", &["x", "w"], &["y"]);
    let e = load_err(&one_node(n, &[1, 3, 8, 8], Some(&[4, 2, 3, 3])));
    assert_invalid(&e, &["conv_mismatch", "Conv"]);
    let n = node("MatMul", "mm", &["x", "w"], &["y"]);
    let e = load_err(&one_node(n, &[2, 3], Some(&[4, 5])));
    assert_invalid(&e, &["mm", "MatMul"]);
    let m = model(
        17,
        graph(
            vec![node("Reshape", "rsh", &["x", "shape"], &["y"])],
            vec![vi("x", FLOAT, &[2, 3])],
            &["y"],
            vec![t_i64("shape", &[2], &[4, 4])],
        ),
    );
    assert_invalid(&load_err(&m), &["rsh", "Reshape"]);
}

// ---------------------------------------------------------------- tensors

#[test]
fn raw_data_shorter_than_dims_is_invalid() {
    let mut w = t_f32("weights", &[4, 4], &[0.0; 16]);
    w.raw_data.truncate(60);
    let m = model(17, graph(vec![], vec![], &["weights"], vec![w]));
    assert_invalid(&load_err(&m), &["weights", "raw_data", "60"]);
    let mut w = t_f32("longer", &[2], &[0.0; 2]);
    w.raw_data.extend([0; 4]);
    let m = model(17, graph(vec![], vec![], &["longer"], vec![w]));
    assert_invalid(&load_err(&m), &["longer"]);
}

#[test]
fn huge_declared_shapes_are_refused_without_allocating() {
    for dims in [
        vec![1i64 << 30, 1 << 30],
        vec![1 << 60],
        vec![1 << 40, 1 << 40, 1 << 40],
    ] {
        let t = onnx_protobuf::TensorProto {
            name: "huge".into(),
            dims: dims.clone(),
            data_type: FLOAT,
            ..Default::default()
        };
        let m = model(17, graph(vec![], vec![], &["huge"], vec![t.clone()]));
        assert_invalid(&load_err(&m), &["huge", "too many elements"]);
        // The same as a Constant node.
        let n = with(node("Constant", "k", &[], &["y"]), a_tensor("value", t));
        let m = model(17, graph(vec![n], vec![], &["y"], vec![]));
        assert_invalid(&load_err(&m), &["'k'", "too many elements"]);
    }
    // ConstantOfShape with a constant huge shape: inference must refuse it.
    let m = model(
        17,
        graph(
            vec![node("ConstantOfShape", "fill", &["s"], &["y"])],
            vec![],
            &["y"],
            vec![t_i64("s", &[2], &[1 << 30, 1 << 30])],
        ),
    );
    let e = load_err(&m);
    assert!(
        matches!(
            e,
            ImportError::Invalid { .. } | ImportError::Unsupported { .. }
        ),
        "{e:?}"
    );
    contains_all(&e, &["fill"]);
}

#[test]
fn negative_dims_are_invalid() {
    let t = t_f32("neg", &[2, -2], &[]);
    let m = model(17, graph(vec![], vec![], &["neg"], vec![t]));
    assert_invalid(&load_err(&m), &["neg", "negative"]);
    let m = model(
        17,
        graph(vec![], vec![vi("xin", FLOAT, &[1, -3])], &["xin"], vec![]),
    );
    assert_invalid(&load_err(&m), &["xin", "negative"]);
}

#[test]
fn string_tensors_are_refused() {
    let t = onnx_protobuf::TensorProto {
        name: "words".into(),
        dims: vec![1],
        data_type: STRING,
        string_data: vec![b"hi".to_vec()],
        ..Default::default()
    };
    let m = model(17, graph(vec![], vec![], &["words"], vec![t]));
    assert_unsupported(&load_err(&m), &["words", "string"]);
    let m = model(
        17,
        graph(vec![], vec![vi("text", STRING, &[1])], &["text"], vec![]),
    );
    assert_unsupported(&load_err(&m), &["text", "string"]);
    let n = with(
        node("Constant", "cs", &[], &["y"]),
        a_str("value_string", "x"),
    );
    let m = model(17, graph(vec![n], vec![], &["y"], vec![]));
    assert_unsupported(&load_err(&m), &["cs", "string"]);
}

#[test]
fn non_tensor_inputs_and_odd_dtypes_are_unsupported() {
    let mut x = vi("seq", FLOAT, &[1]);
    x.type_.as_mut().unwrap().value = Some(onnx_protobuf::type_proto::Value::SequenceType(
        Default::default(),
    ));
    let m = model(17, graph(vec![], vec![x], &["seq"], vec![]));
    assert_unsupported(&load_err(&m), &["seq", "sequence"]);
    let m = model(
        17,
        graph(vec![], vec![vi("c64", 14, &[1])], &["c64"], vec![]),
    );
    assert_unsupported(&load_err(&m), &["c64", "COMPLEX64"]);
}

// ---------------------------------------------------------------- external data

fn external(
    name: &str,
    location: &str,
    offset: Option<&str>,
    len: Option<&str>,
) -> onnx_protobuf::TensorProto {
    let kv = |k: &str, v: &str| StringStringEntryProto {
        key: k.into(),
        value: v.into(),
        ..Default::default()
    };
    let mut ext = vec![kv("location", location)];
    if let Some(o) = offset {
        ext.push(kv("offset", o));
    }
    if let Some(l) = len {
        ext.push(kv("length", l));
    }
    onnx_protobuf::TensorProto {
        name: name.into(),
        dims: vec![2, 2],
        data_type: FLOAT,
        data_location: protobuf::EnumOrUnknown::new(
            onnx_protobuf::tensor_proto::DataLocation::EXTERNAL,
        ),
        external_data: ext,
        ..Default::default()
    }
}

fn write_model(dir: &std::path::Path, m: &ModelProto) -> std::path::PathBuf {
    let p = dir.join("model.onnx");
    std::fs::write(&p, bytes(m)).unwrap();
    p
}

#[test]
fn external_data_is_memory_mapped() {
    let dir = temp_dir("ext-ok");
    let mut data = vec![0u8; 64];
    data.extend([1.0f32, 2.0, 3.0, 4.0].iter().flat_map(|v| v.to_le_bytes()));
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("sub/w.bin"), &data).unwrap();
    let m = model(
        17,
        graph(
            vec![],
            vec![],
            &["w"],
            vec![external("w", "./sub/../sub/w.bin", Some("64"), Some("16"))],
        ),
    );
    let p = write_model(&dir, &m);
    let model = load_model(&p).unwrap();
    let g = &model.graph;
    let w = g.value_by_name("w").unwrap();
    let t = g.const_value(w).unwrap();
    assert!(t.is_mapped(), "aligned external data is not copied");
    assert_eq!(t.view::<f32>(), &[1.0, 2.0, 3.0, 4.0]);
    assert_eq!(model.path, p);
    // From bytes with the folder.
    assert!(load_model_bytes(&bytes(&m), Some(&dir)).is_ok());
    // From bytes without a folder: refused.
    let e = load_model_bytes(&bytes(&m), None).unwrap_err();
    assert!(matches!(e, ImportError::ExternalData { .. }), "{e:?}");
}

#[test]
fn missing_escaping_and_short_external_data_are_refused() {
    let dir = temp_dir("ext-bad");
    let model_dir = dir.join("model");
    std::fs::create_dir_all(&model_dir).unwrap();
    std::fs::write(dir.join("secret.bin"), [0u8; 16]).unwrap();
    std::fs::write(model_dir.join("short.bin"), [0u8; 12]).unwrap();
    let cases: Vec<(onnx_protobuf::TensorProto, &[&str])> = vec![
        (
            external("w", "missing.bin", None, None),
            &["missing.bin", "cannot open"],
        ),
        (
            external("w", "../secret.bin", None, None),
            &["../secret.bin", "escapes"],
        ),
        (
            external("w", "a/../../secret.bin", None, None),
            &["escapes"],
        ),
        (
            external("w", dir.join("secret.bin").to_str().unwrap(), None, None),
            &["absolute"],
        ),
        (
            external("w", "short.bin", None, None),
            &["short.bin", "past the end"],
        ),
        (
            external("w", "short.bin", Some("8"), Some("16")),
            &["past the end"],
        ),
        (
            external("w", "short.bin", Some("18446744073709551615"), Some("16")),
            &["past the end"],
        ),
        (
            external("w", "short.bin", Some("0"), Some("8")),
            &["length 8"],
        ),
        (external("w", "short.bin", Some("-4"), None), &["offset"]),
    ];
    for (t, needles) in cases {
        let m = model(17, graph(vec![], vec![], &["w"], vec![t]));
        let e = load_model(&write_model(&model_dir, &m)).unwrap_err();
        assert!(matches!(e, ImportError::ExternalData { .. }), "{e:?}");
        contains_all(&e, needles);
    }
}

// ---------------------------------------------------------------- positive cases

#[test]
fn zero_size_tensors_import_and_run() {
    let m = model(
        17,
        graph(
            vec![],
            vec![vi("x", FLOAT, &[0, 4])],
            &["x", "empty"],
            vec![t_f32("empty", &[3, 0], &[])],
        ),
    );
    let model = load(&m).unwrap();
    optc_ir::verify::verify(&model.graph).unwrap();
    let x = Tensor::from_vec(vec![0, 4], Vec::<f32>::new()).unwrap();
    let out = optc_ir::run(&model.graph, std::slice::from_ref(&x)).unwrap();
    assert_eq!(out[0], x);
    assert_eq!(out[1].shape(), &[3, 0]);
}

#[test]
fn initializers_listed_as_inputs_are_constants() {
    // IR 3 style: the initializer also appears in graph.input.
    let mut m = model(
        7,
        graph(
            vec![],
            vec![vi("x", FLOAT, &[2]), vi("w", FLOAT, &[2])],
            &["x", "w"],
            vec![t_f32("w", &[2], &[5.0, 6.0])],
        ),
    );
    m.ir_version = 3;
    let model = load(&m).unwrap();
    let g = &model.graph;
    assert_eq!(g.inputs().len(), 1);
    assert_eq!(g.value(g.inputs()[0]).name, "x");
    assert!(g.const_value(g.value_by_name("w").unwrap()).is_some());
    assert_eq!((model.ir_version, model.opset), (3, 7));
    assert_eq!(model.producer, "optc-tests");
}

#[test]
fn input_types_come_from_value_info() {
    let m = model(
        17,
        graph(
            vec![],
            vec![vi_dims(
                "x",
                FLOAT,
                vec![
                    Some(dimension::Value::DimParam("batch".into())),
                    None,
                    Some(dimension::Value::DimValue(3)),
                ],
            )],
            &["x"],
            vec![],
        ),
    );
    let model = load(&m).unwrap();
    let g = &model.graph;
    assert_eq!(
        g.ty(g.inputs()[0]),
        &TensorType {
            dtype: DType::F32,
            shape: Shape::Ranked(vec![Dim::Sym("batch".into()), Dim::Unknown, Dim::Static(3)]),
        }
    );
}

/// An If node choosing between two outer values captured by its branches.
fn if_node(
    name: &str,
    cond: &str,
    then_out: &str,
    else_out: &str,
    out: &str,
) -> onnx_protobuf::NodeProto {
    with(
        with(
            node("If", name, &[cond], &[out]),
            a_graph("then_branch", graph(vec![], vec![], &[then_out], vec![])),
        ),
        a_graph("else_branch", graph(vec![], vec![], &[else_out], vec![])),
    )
}

#[test]
fn if_branches_capture_outer_values() {
    let m = model(
        17,
        graph(
            vec![if_node("choose", "c", "a", "b", "y")],
            vec![
                vi("c", BOOL, &[]),
                vi("a", FLOAT, &[2]),
                vi("b", FLOAT, &[2]),
            ],
            &["y"],
            vec![],
        ),
    );
    let model = load(&m).unwrap();
    let g = &model.graph;
    optc_ir::verify::verify(g).unwrap();
    let n = g.node(g.node_ids().next().unwrap());
    let Op::If {
        then_branch,
        else_branch,
    } = &n.op
    else {
        panic!("{:?}", n.op)
    };
    // Both branches take the union of the captures, in the same order.
    for br in [then_branch, else_branch] {
        let names: Vec<&str> = br
            .inputs()
            .iter()
            .map(|&v| br.value(v).name.as_str())
            .collect();
        assert_eq!(names, ["a", "b"]);
    }
    assert_eq!(n.inputs.len(), 3);
    let a = Tensor::from_vec(vec![2], vec![1.0f32, 2.0]).unwrap();
    let b = Tensor::from_vec(vec![2], vec![3.0f32, 4.0]).unwrap();
    let t = Tensor::scalar(optc_ir::Bool8(1));
    let f = Tensor::scalar(optc_ir::Bool8(0));
    assert_eq!(optc_ir::run(g, &[t, a.clone(), b.clone()]).unwrap()[0], a);
    assert_eq!(optc_ir::run(g, &[f, a, b.clone()]).unwrap()[0], b);
}

#[test]
fn nested_ifs_propagate_captures_outward_and_constants_inward() {
    // outer If: then → inner If (then → a, else → k (an initializer)); else → b.
    let inner = if_node("inner", "c2", "a", "k", "i_out");
    let then_g = graph(vec![inner], vec![], &["i_out"], vec![]);
    let else_g = graph(vec![], vec![], &["b"], vec![]);
    let outer = with(
        with(
            node("If", "outer", &["c1"], &["y"]),
            a_graph("then_branch", then_g),
        ),
        a_graph("else_branch", else_g),
    );
    let m = model(
        17,
        graph(
            vec![outer],
            vec![
                vi("c1", BOOL, &[]),
                vi("c2", BOOL, &[]),
                vi("a", FLOAT, &[2]),
                vi("b", FLOAT, &[2]),
            ],
            &["y"],
            vec![t_f32("k", &[2], &[9.0, 8.0])],
        ),
    );
    let model = load(&m).unwrap();
    let g = &model.graph;
    optc_ir::verify::verify(g).unwrap();
    let outer = g.node(g.node_ids().next().unwrap());
    let Op::If { then_branch, .. } = &outer.op else {
        panic!()
    };
    // The constant k is copied into the branch, not passed as an input.
    let names: Vec<&str> = then_branch
        .inputs()
        .iter()
        .map(|&v| then_branch.value(v).name.as_str())
        .collect();
    assert_eq!(names, ["c2", "a", "b"]);
    assert!(then_branch.value_by_name("k").is_some());
    let a = Tensor::from_vec(vec![2], vec![1.0f32, 2.0]).unwrap();
    let b = Tensor::from_vec(vec![2], vec![3.0f32, 4.0]).unwrap();
    let k = Tensor::from_vec(vec![2], vec![9.0f32, 8.0]).unwrap();
    let bo = |v: bool| Tensor::scalar(optc_ir::Bool8::from(v));
    let run = |c1, c2| optc_ir::run(g, &[bo(c1), bo(c2), a.clone(), b.clone()]).unwrap()[0].clone();
    assert_eq!(run(true, true), a);
    assert_eq!(run(true, false), k);
    assert_eq!(run(false, true), b);
}

#[test]
fn unsorted_graphs_are_sorted_stably() {
    // Node 0 reads what node 1 produces (through its branch capture).
    let m = model(
        17,
        graph(
            vec![
                if_node("late", "c", "mid", "x", "y"),
                if_node("early", "c", "x", "x", "mid"),
            ],
            vec![vi("c", BOOL, &[]), vi("x", FLOAT, &[3])],
            &["y"],
            vec![],
        ),
    );
    let model = load(&m).unwrap();
    let g = &model.graph;
    optc_ir::verify::verify(g).unwrap();
    let names: Vec<&str> = g.node_ids().map(|n| g.node(n).name.as_str()).collect();
    assert_eq!(names, ["early", "late"]);
}

#[test]
fn dangling_capture_in_a_branch_names_the_inner_user() {
    let m = model(
        17,
        graph(
            vec![if_node("iff", "c", "phantom", "x", "y")],
            vec![vi("c", BOOL, &[]), vi("x", FLOAT, &[3])],
            &["y"],
            vec![],
        ),
    );
    assert_invalid(&load_err(&m), &["phantom", "iff/then_branch"]);
}

#[test]
fn if_branch_dtype_mismatch_is_invalid() {
    let m = model(
        17,
        graph(
            vec![if_node("mixed", "c", "f", "i", "y")],
            vec![
                vi("c", BOOL, &[]),
                vi("f", FLOAT, &[1]),
                vi("i", INT64, &[1]),
            ],
            &["y"],
            vec![],
        ),
    );
    assert_invalid(&load_err(&m), &["mixed", "If"]);
}

#[test]
fn relu_chain_of_20000_nodes_imports_quickly() {
    let n = 20_000;
    let nodes: Vec<_> = (0..n)
        .map(|i| {
            let input = if i == 0 {
                "x".to_string()
            } else {
                format!("v{}", i - 1)
            };
            node("Relu", &format!("relu{i}"), &[&input], &[&format!("v{i}")])
        })
        .collect();
    let last = format!("v{}", n - 1);
    let m = model(
        17,
        graph(nodes, vec![vi("x", FLOAT, &[4])], &[&last], vec![]),
    );
    let b = bytes(&m);
    let start = Instant::now();
    let r = load_model_bytes(&b, None);
    let elapsed = start.elapsed();
    eprintln!("20000-node Relu chain: import {elapsed:?}");
    let model = r.unwrap();
    assert_eq!(model.graph.num_nodes(), n);
    assert!(elapsed.as_secs_f64() < 10.0, "{elapsed:?}");
    optc_ir::verify::verify(&model.graph).unwrap();
    // Reversed node order: the topological sort must restore it without going quadratic.
    let mut m2 = m.clone();
    m2.graph.as_mut().unwrap().node.reverse();
    let start = Instant::now();
    let model = load(&m2).unwrap();
    eprintln!(
        "20000-node Relu chain, reversed: import {:?}",
        start.elapsed()
    );
    assert!(start.elapsed().as_secs_f64() < 10.0);
    let first = model.graph.node_ids().next().unwrap();
    assert_eq!(model.graph.node(first).name, "relu0");
    // And it runs, in seconds.
    let x = Tensor::from_vec(vec![4], vec![1.5f32, -2.0, 3.0, -0.5]).unwrap();
    let start = Instant::now();
    let y = optc_ir::run(&model.graph, &[x]).unwrap();
    eprintln!("20000-node Relu chain: run {:?}", start.elapsed());
    assert!(start.elapsed().as_secs_f64() < 10.0);
    assert_eq!(y[0].view::<f32>(), &[1.5, 0.0, 3.0, 0.0]);
}

#[test]
fn sum_of_2000_inputs_imports() {
    let names: Vec<String> = (0..2000).map(|i| format!("in{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let inputs = names.iter().map(|n| vi(n, FLOAT, &[2])).collect();
    let m = model(
        17,
        graph(
            vec![node("Sum", "big_sum", &refs, &["y"])],
            inputs,
            &["y"],
            vec![],
        ),
    );
    let r = load(&m);
    let model = r.unwrap();
    let g = &model.graph;
    assert_eq!(g.inputs().len(), 2000);
    let n = g.node(g.node_ids().next().unwrap());
    assert_eq!(n.inputs.len(), 2000);
    optc_ir::verify::verify(g).unwrap();
    // Input i holds [i, -2i]: the sum is [Σi, -2Σi] = [1999000, -3998000], exact in f32.
    let xs: Vec<Tensor> = (0..2000)
        .map(|i| Tensor::from_vec(vec![2], vec![i as f32, -2.0 * i as f32]).unwrap())
        .collect();
    let start = Instant::now();
    let y = optc_ir::run(g, &xs).unwrap();
    eprintln!("2000-input Sum: run {:?}", start.elapsed());
    assert!(start.elapsed().as_secs_f64() < 10.0);
    assert_eq!(y[0].view::<f32>(), &[1_999_000.0, -3_998_000.0]);
}

#[test]
fn old_attribute_forms_become_named_constants() {
    // ReduceSum opset 11 with an axes attribute, and Clip opset 10 with min/max.
    let rs = with(
        with(
            node("ReduceSum", "rsum", &["x"], &["s"]),
            a_ints("axes", &[1]),
        ),
        a_int("keepdims", 0),
    );
    let clip = with(node("Clip", "clip", &["s"], &["y"]), a_float("max", 6.0));
    let m = model(
        10,
        graph(
            vec![rs, clip],
            vec![vi("x", FLOAT, &[2, 3])],
            &["y"],
            vec![],
        ),
    );
    let r = load(&m);
    let model = r.unwrap();
    let g = &model.graph;
    let axes = g.value_by_name("rsum__axes").expect("axes constant");
    assert_eq!(g.const_value(axes).unwrap().view::<i64>(), &[1]);
    let max = g.value_by_name("clip__max").expect("max constant");
    assert_eq!(g.const_value(max).unwrap().scalar_f64(), Some(6.0));
    assert_eq!(g.ty(g.outputs()[0]), &f32_ty(&[2]));
}

#[test]
fn tensor_pb_files_round_trip() {
    let dir = temp_dir("pb");
    let t = Tensor::from_vec(vec![2, 2], vec![1i64, -2, 3, -4]).unwrap();
    let p = dir.join("input_0.pb");
    std::fs::write(&p, optc_ir::front::onnx::tensor_to_pb_bytes("input", &t)).unwrap();
    let (name, back) = load_tensor_pb(&p).unwrap();
    assert_eq!(name, "input");
    assert_eq!(back, t);
    std::fs::write(&p, [0xffu8, 0xff, 0xff]).unwrap();
    assert!(matches!(
        load_tensor_pb(&p),
        Err(ImportError::Decode { .. })
    ));
}
