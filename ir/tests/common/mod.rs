//! Helpers to build ONNX models programmatically with `onnx-protobuf` for the importer tests.

#![allow(dead_code)]

use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_shape_proto::{Dimension, dimension};
use onnx_protobuf::type_proto::{self, Value as TypeValue};
use onnx_protobuf::{
    AttributeProto, GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use optc_ir::front::onnx::{ImportError, Model, load_model_bytes};
use optc_ir::{DType, TensorType};
use std::path::PathBuf;

/// ONNX element type codes.
pub const FLOAT: i32 = 1;
pub const INT64: i32 = 7;
pub const STRING: i32 = 8;
pub const BOOL: i32 = 9;

/// A node with a name.
pub fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        name: name.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// Adds an attribute to a node.
pub fn with(mut n: NodeProto, a: AttributeProto) -> NodeProto {
    n.attribute.push(a);
    n
}

fn attr(name: &str, ty: AttributeType) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: protobuf::EnumOrUnknown::new(ty),
        ..Default::default()
    }
}

pub fn a_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        i: v,
        ..attr(name, AttributeType::INT)
    }
}
pub fn a_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        ints: v.to_vec(),
        ..attr(name, AttributeType::INTS)
    }
}
pub fn a_float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        f: v,
        ..attr(name, AttributeType::FLOAT)
    }
}
pub fn a_floats(name: &str, v: &[f32]) -> AttributeProto {
    AttributeProto {
        floats: v.to_vec(),
        ..attr(name, AttributeType::FLOATS)
    }
}
pub fn a_str(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        s: v.as_bytes().to_vec(),
        ..attr(name, AttributeType::STRING)
    }
}
pub fn a_tensor(name: &str, t: TensorProto) -> AttributeProto {
    AttributeProto {
        t: protobuf::MessageField::some(t),
        ..attr(name, AttributeType::TENSOR)
    }
}
pub fn a_graph(name: &str, g: GraphProto) -> AttributeProto {
    AttributeProto {
        g: protobuf::MessageField::some(g),
        ..attr(name, AttributeType::GRAPH)
    }
}

/// A tensor value_info; a negative dim in `dims` is written as is, `Some("n")` names a dim.
pub fn vi(name: &str, elem: i32, dims: &[i64]) -> ValueInfoProto {
    vi_dims(
        name,
        elem,
        dims.iter()
            .map(|&d| Some(dimension::Value::DimValue(d)))
            .collect(),
    )
}

/// A tensor value_info with symbolic (`DimParam`) or unknown (`None`) dims.
pub fn vi_dims(name: &str, elem: i32, dims: Vec<Option<dimension::Value>>) -> ValueInfoProto {
    let shape = TensorShapeProto {
        dim: dims
            .into_iter()
            .map(|value| Dimension {
                value,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    ValueInfoProto {
        name: name.into(),
        type_: protobuf::MessageField::some(TypeProto {
            value: Some(TypeValue::TensorType(type_proto::Tensor {
                elem_type: elem,
                shape: protobuf::MessageField::some(shape),
                ..Default::default()
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// An output value_info (the importer only needs the name).
pub fn out(name: &str) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        ..Default::default()
    }
}

/// An f32 tensor with raw_data.
pub fn t_f32(name: &str, dims: &[i64], v: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: FLOAT,
        raw_data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// An i64 tensor in int64_data.
pub fn t_i64(name: &str, dims: &[i64], v: &[i64]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: INT64,
        int64_data: v.to_vec(),
        ..Default::default()
    }
}

/// A bool tensor in int32_data.
pub fn t_bool(name: &str, dims: &[i64], v: &[bool]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: BOOL,
        int32_data: v.iter().map(|&b| b as i32).collect(),
        ..Default::default()
    }
}

/// A graph.
pub fn graph(
    nodes: Vec<NodeProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: &[&str],
    inits: Vec<TensorProto>,
) -> GraphProto {
    GraphProto {
        name: "g".into(),
        node: nodes,
        input: inputs,
        output: outputs.iter().map(|s| out(s)).collect(),
        initializer: inits,
        ..Default::default()
    }
}

/// A model of `g` at the default-domain `opset` (IR version 8).
pub fn model(opset: i64, g: GraphProto) -> ModelProto {
    ModelProto {
        ir_version: 8,
        producer_name: "optc-tests".into(),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: opset,
            ..Default::default()
        }],
        graph: protobuf::MessageField::some(g),
        ..Default::default()
    }
}

pub fn bytes(m: &ModelProto) -> Vec<u8> {
    m.write_to_bytes().expect("serializable")
}

/// Imports a model from bytes without a folder.
pub fn load(m: &ModelProto) -> Result<Model, ImportError> {
    load_model_bytes(&bytes(m), None)
}

/// The import error of a model that must fail.
pub fn load_err(m: &ModelProto) -> ImportError {
    match load(m) {
        Ok(_) => panic!("the model was imported but should have been refused"),
        Err(e) => {
            let s = e.to_string();
            assert!(!s.contains('\n'), "error message is not one line: {s}");
            e
        }
    }
}

/// A fresh empty temp folder.
pub fn temp_dir(tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "optc-import-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// f32 type of static dims.
pub fn f32_ty(dims: &[usize]) -> TensorType {
    TensorType::fixed(DType::F32, dims)
}
