//! Errors of the ONNX importer: one variant per kind of problem, each displayed as one line
//! that names the node, value, attribute or file involved.

use std::fmt;
use std::path::PathBuf;

/// Why a model (or tensor file) could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a well-formed protobuf message of the expected type.
    #[error("malformed protobuf: {msg}")]
    Decode {
        /// What the decoder reported.
        msg: String,
    },
    /// The model breaks the ONNX rules (missing graph, dangling input, cycle, bad attribute,
    /// inconsistent shapes, bad tensor data...).
    #[error("invalid model: {msg}")]
    Invalid {
        /// What is wrong, naming the node / value / attribute.
        msg: String,
    },
    /// A valid model that uses operators (or opsets, dtypes, attribute values) optc does not
    /// support. Lists every unsupported node of the model at once.
    #[error("{}", fmt_unsupported(items))]
    Unsupported {
        /// The unsupported nodes (or model-level features).
        items: Vec<Unsupported>,
    },
    /// A tensor's external data cannot be used.
    #[error("external data '{}': {msg}", path.display())]
    ExternalData {
        /// The `location` as written in the model (or resolved against the model folder).
        path: PathBuf,
        /// What is wrong (missing file, path escaping the model folder, range out of bounds).
        msg: String,
    },
}

impl ImportError {
    /// An [`ImportError::Invalid`] with `msg`.
    pub fn invalid(msg: impl Into<String>) -> ImportError {
        ImportError::Invalid { msg: msg.into() }
    }
}

/// One unsupported node (or model-level feature, when `index` is `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// The node's op type (for model-level items: what is unsupported, e.g. `opset`).
    pub op_type: String,
    /// The node's domain (`""` for the default ONNX domain).
    pub domain: String,
    /// The node's name; inside `If` branches prefixed by the branch path
    /// (`if_node/then_branch/name`).
    pub node: String,
    /// The node's position in its graph (`None` for model-level items).
    pub index: Option<usize>,
    /// The opset version of the node's domain (0 when the domain is not imported).
    pub opset: i64,
    /// Why it is not supported.
    pub reason: String,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(index) = self.index else {
            return f.write_str(&self.reason);
        };
        if self.domain.is_empty() || self.domain == "ai.onnx" {
            write!(f, "{}", self.op_type)?;
        } else {
            write!(f, "{}:{}", self.domain, self.op_type)?;
        }
        write!(
            f,
            " (node '{}', #{index}, opset {}: {})",
            self.node, self.opset, self.reason
        )
    }
}

fn fmt_unsupported(items: &[Unsupported]) -> String {
    let nodes = items.iter().filter(|i| i.index.is_some()).count();
    let list = items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if nodes == items.len() {
        let s = if nodes == 1 { "" } else { "s" };
        format!("unsupported: {nodes} node{s}: {list}")
    } else {
        format!("unsupported: {list}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(op: &str, node: &str, index: usize) -> Unsupported {
        Unsupported {
            op_type: op.into(),
            domain: String::new(),
            node: node.into(),
            index: Some(index),
            opset: 17,
            reason: "unknown operator".into(),
        }
    }

    #[test]
    fn unsupported_lists_every_node_on_one_line() {
        let e = ImportError::Unsupported {
            items: vec![item("Foo", "x", 4), item("Bar", "y", 7)],
        };
        assert_eq!(
            e.to_string(),
            "unsupported: 2 nodes: Foo (node 'x', #4, opset 17: unknown operator), \
             Bar (node 'y', #7, opset 17: unknown operator)"
        );
        let mut ms = item("FusedGemm", "g", 0);
        ms.domain = "com.microsoft".into();
        ms.opset = 1;
        let e = ImportError::Unsupported { items: vec![ms] };
        assert!(
            e.to_string()
                .starts_with("unsupported: 1 node: com.microsoft:FusedGemm")
        );
        let model = Unsupported {
            op_type: "opset".into(),
            domain: String::new(),
            node: String::new(),
            index: None,
            opset: 30,
            reason: "default-domain opset 30 is outside 7..=23".into(),
        };
        let e = ImportError::Unsupported { items: vec![model] };
        assert_eq!(
            e.to_string(),
            "unsupported: default-domain opset 30 is outside 7..=23"
        );
        assert!(!e.to_string().contains('\n'));
    }
}
