//! Typed access to a node's attributes: each getter checks the declared attribute type and
//! reports a wrong type or an out-of-range value naming the node and the attribute.

use super::error::ImportError;
use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::{AttributeProto, GraphProto, NodeProto, TensorProto};
use std::fmt;

/// Identifies a node in error messages: `node 'conv1' (#4, Conv)`.
#[derive(Clone, Copy)]
pub(crate) struct NodeRef<'a> {
    /// The node.
    pub node: &'a NodeProto,
    /// Its position in its graph.
    pub index: usize,
    /// The branch path of its graph (`""` at the top level, `if1/then_branch/` inside).
    pub path: &'a str,
}

impl NodeRef<'_> {
    /// The node's name with its branch path.
    pub fn full_name(&self) -> String {
        format!("{}{}", self.path, self.node.name)
    }

    /// A name for the node, never empty: its name, else its first output, else `node#i`.
    pub fn base_name(&self) -> String {
        if !self.node.name.is_empty() {
            self.node.name.clone()
        } else if let Some(o) = self.node.output.iter().find(|o| !o.is_empty()) {
            o.clone()
        } else {
            format!("node{}", self.index)
        }
    }

    /// An [`ImportError::Invalid`] about this node.
    pub fn invalid(&self, msg: impl fmt::Display) -> ImportError {
        ImportError::invalid(format!("{self}: {msg}"))
    }
}

impl fmt::Display for NodeRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.node.name.is_empty() {
            write!(
                f,
                "node {}#{} ({}",
                self.path, self.index, self.node.op_type
            )?;
            if let Some(o) = self.node.output.iter().find(|o| !o.is_empty()) {
                write!(f, " -> '{o}'")?;
            }
            f.write_str(")")
        } else {
            write!(
                f,
                "node '{}' (#{}, {})",
                self.full_name(),
                self.index,
                self.node.op_type
            )
        }
    }
}

/// The attributes of one node.
pub(crate) struct Attrs<'a> {
    at: NodeRef<'a>,
}

fn type_name(t: i32) -> &'static str {
    match t {
        1 => "FLOAT",
        2 => "INT",
        3 => "STRING",
        4 => "TENSOR",
        5 => "GRAPH",
        6 => "FLOATS",
        7 => "INTS",
        8 => "STRINGS",
        9 => "TENSORS",
        10 => "GRAPHS",
        11 => "SPARSE_TENSOR",
        12 => "SPARSE_TENSORS",
        13 => "TYPE_PROTO",
        14 => "TYPE_PROTOS",
        _ => "UNDEFINED",
    }
}

impl<'a> Attrs<'a> {
    /// The attributes of `at`'s node; refuses duplicate names and attribute references.
    pub fn new(at: NodeRef<'a>) -> Result<Attrs<'a>, ImportError> {
        let attrs = &at.node.attribute;
        for (i, a) in attrs.iter().enumerate() {
            if !a.ref_attr_name.is_empty() {
                return Err(at.invalid(format_args!(
                    "attribute '{}' refers to a function attribute outside a function",
                    a.name
                )));
            }
            if attrs[..i].iter().any(|b| b.name == a.name) {
                return Err(at.invalid(format_args!("attribute '{}' is given twice", a.name)));
            }
        }
        Ok(Attrs { at })
    }

    /// The node these attributes belong to.
    pub fn at(&self) -> NodeRef<'a> {
        self.at
    }

    /// An invalid-attribute error.
    pub fn err(&self, name: &str, msg: impl fmt::Display) -> ImportError {
        self.at.invalid(format_args!("attribute '{name}' {msg}"))
    }

    /// Whether the attribute is present.
    pub fn has(&self, name: &str) -> bool {
        self.find(name).is_some()
    }

    fn find(&self, name: &str) -> Option<&'a AttributeProto> {
        self.at.node.attribute.iter().find(|a| a.name == name)
    }

    /// The attribute if present, after checking its declared type (`UNDEFINED` is accepted:
    /// the value is then read from the field of the expected type).
    fn typed(
        &self,
        name: &str,
        ty: AttributeType,
    ) -> Result<Option<&'a AttributeProto>, ImportError> {
        let Some(a) = self.find(name) else {
            return Ok(None);
        };
        let t = a.type_.value();
        if t != 0 && t != ty as i32 {
            return Err(self.err(
                name,
                format_args!("must be {} but is {}", type_name(ty as i32), type_name(t)),
            ));
        }
        Ok(Some(a))
    }

    /// An INT attribute.
    pub fn int(&self, name: &str) -> Result<Option<i64>, ImportError> {
        Ok(self.typed(name, AttributeType::INT)?.map(|a| a.i))
    }

    /// An INT attribute with a default.
    pub fn int_or(&self, name: &str, default: i64) -> Result<i64, ImportError> {
        Ok(self.int(name)?.unwrap_or(default))
    }

    /// A required INT attribute.
    pub fn int_req(&self, name: &str) -> Result<i64, ImportError> {
        self.int(name)?
            .ok_or_else(|| self.err(name, "is required but missing"))
    }

    /// A 0/1 INT attribute as a bool.
    pub fn flag(&self, name: &str, default: bool) -> Result<bool, ImportError> {
        match self.int(name)? {
            None => Ok(default),
            Some(0) => Ok(false),
            Some(1) => Ok(true),
            Some(v) => Err(self.err(name, format_args!("must be 0 or 1, got {v}"))),
        }
    }

    /// An INT attribute that must be at least `min`, as usize.
    pub fn usize_or(&self, name: &str, default: usize, min: usize) -> Result<usize, ImportError> {
        match self.int(name)? {
            None => Ok(default),
            Some(v) => self.check_usize(name, v, min),
        }
    }

    /// A required INT attribute that must be at least `min`, as usize.
    pub fn usize_req(&self, name: &str, min: usize) -> Result<usize, ImportError> {
        let v = self.int_req(name)?;
        self.check_usize(name, v, min)
    }

    fn check_usize(&self, name: &str, v: i64, min: usize) -> Result<usize, ImportError> {
        match usize::try_from(v) {
            Ok(u) if u >= min && u <= u32::MAX as usize => Ok(u),
            _ => Err(self.err(name, format_args!("must be at least {min}, got {v}"))),
        }
    }

    /// A FLOAT attribute with a default.
    pub fn float_or(&self, name: &str, default: f32) -> Result<f32, ImportError> {
        Ok(self.float(name)?.unwrap_or(default))
    }

    /// A FLOAT attribute.
    pub fn float(&self, name: &str) -> Result<Option<f32>, ImportError> {
        Ok(self.typed(name, AttributeType::FLOAT)?.map(|a| a.f))
    }

    /// A STRING attribute (UTF-8).
    pub fn string(&self, name: &str) -> Result<Option<&'a str>, ImportError> {
        self.typed(name, AttributeType::STRING)?
            .map(|a| std::str::from_utf8(&a.s).map_err(|_| self.err(name, "is not UTF-8")))
            .transpose()
    }

    /// A STRING attribute with a default.
    pub fn string_or(&self, name: &str, default: &'a str) -> Result<&'a str, ImportError> {
        Ok(self.string(name)?.unwrap_or(default))
    }

    /// An INTS attribute.
    pub fn ints(&self, name: &str) -> Result<Option<&'a [i64]>, ImportError> {
        Ok(self
            .typed(name, AttributeType::INTS)?
            .map(|a| a.ints.as_slice()))
    }

    /// An INTS attribute whose values must all be ≥ `min`, as usizes (empty when absent).
    pub fn usizes(&self, name: &str, min: usize) -> Result<Vec<usize>, ImportError> {
        let Some(v) = self.ints(name)? else {
            return Ok(Vec::new());
        };
        v.iter().map(|&x| self.check_usize(name, x, min)).collect()
    }

    /// A FLOATS attribute.
    pub fn floats(&self, name: &str) -> Result<Option<&'a [f32]>, ImportError> {
        Ok(self
            .typed(name, AttributeType::FLOATS)?
            .map(|a| a.floats.as_slice()))
    }

    /// A TENSOR attribute.
    pub fn tensor(&self, name: &str) -> Result<Option<&'a TensorProto>, ImportError> {
        match self.typed(name, AttributeType::TENSOR)? {
            None => Ok(None),
            Some(a) => {
                a.t.as_ref()
                    .map(Some)
                    .ok_or_else(|| self.err(name, "holds no tensor"))
            }
        }
    }

    /// A GRAPH attribute.
    pub fn graph(&self, name: &str) -> Result<Option<&'a GraphProto>, ImportError> {
        match self.typed(name, AttributeType::GRAPH)? {
            None => Ok(None),
            Some(a) => {
                a.g.as_ref()
                    .map(Some)
                    .ok_or_else(|| self.err(name, "holds no graph"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(name: &str, ty: AttributeType) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            type_: protobuf::EnumOrUnknown::new(ty),
            ..Default::default()
        }
    }

    fn node(attrs: Vec<AttributeProto>) -> NodeProto {
        NodeProto {
            name: "n".into(),
            op_type: "Conv".into(),
            attribute: attrs,
            ..Default::default()
        }
    }

    #[test]
    fn typed_getters_check_types_and_ranges() {
        let mut group = attr("group", AttributeType::INT);
        group.i = 2;
        let mut strides = attr("strides", AttributeType::INTS);
        strides.ints = vec![1, 2];
        let mut alpha = attr("alpha", AttributeType::FLOAT);
        alpha.f = 0.5;
        let mut pad = attr("auto_pad", AttributeType::STRING);
        pad.s = b"SAME_UPPER".to_vec();
        let mut neg = attr("pads", AttributeType::INTS);
        neg.ints = vec![0, -1];
        let mut bad = attr("dilations", AttributeType::FLOAT);
        bad.f = 1.0;
        let mut flag = attr("keepdims", AttributeType::INT);
        flag.i = 2;
        let n = node(vec![group, strides, alpha, pad, neg, bad, flag]);
        let a = Attrs::new(NodeRef {
            node: &n,
            index: 3,
            path: "",
        })
        .unwrap();
        assert_eq!(a.int_or("group", 1).unwrap(), 2);
        assert_eq!(a.int_or("missing", 7).unwrap(), 7);
        assert_eq!(a.usizes("strides", 1).unwrap(), vec![1, 2]);
        assert_eq!(a.float_or("alpha", 1.0).unwrap(), 0.5);
        assert_eq!(a.string_or("auto_pad", "NOTSET").unwrap(), "SAME_UPPER");
        let e = a.usizes("pads", 0).unwrap_err().to_string();
        assert!(
            e.contains("node 'n' (#3, Conv)") && e.contains("'pads'"),
            "{e}"
        );
        let e = a.ints("dilations").unwrap_err().to_string();
        assert!(e.contains("'dilations' must be INTS but is FLOAT"), "{e}");
        let e = a.flag("keepdims", true).unwrap_err().to_string();
        assert!(e.contains("must be 0 or 1, got 2"), "{e}");
        assert!(
            a.int_req("kernel")
                .unwrap_err()
                .to_string()
                .contains("required")
        );
    }

    #[test]
    fn duplicate_attributes_and_missing_payloads_are_refused() {
        let n = node(vec![
            attr("a", AttributeType::INT),
            attr("a", AttributeType::INT),
        ]);
        let at = NodeRef {
            node: &n,
            index: 0,
            path: "",
        };
        assert!(Attrs::new(at).is_err());
        let n = node(vec![attr("value", AttributeType::TENSOR)]);
        let a = Attrs::new(NodeRef {
            node: &n,
            index: 0,
            path: "",
        })
        .unwrap();
        assert!(
            a.tensor("value")
                .unwrap_err()
                .to_string()
                .contains("holds no tensor")
        );
    }

    #[test]
    fn unnamed_nodes_are_named_by_their_output() {
        let n = NodeProto {
            op_type: "Relu".into(),
            output: vec!["y".into()],
            ..Default::default()
        };
        let at = NodeRef {
            node: &n,
            index: 5,
            path: "if/then_branch/",
        };
        assert_eq!(at.to_string(), "node if/then_branch/#5 (Relu -> 'y')");
        assert_eq!(at.base_name(), "y");
    }
}
