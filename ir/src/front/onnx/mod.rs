//! The ONNX importer: `ModelProto` → [`Graph`].
//!
//! Steps, each refusing hostile input with an [`ImportError`] rather than a panic:
//! 1. decode the protobuf (a memory-mapped file for [`load_model`]);
//! 2. check the IR version (≥ 3) and the default-domain opset (7..=23);
//! 3. convert every node (recursively into `If` branches) without building anything, so that
//!    *all* unsupported nodes are reported at once ([`ImportError::Unsupported`]);
//! 4. per graph: add inputs (typed from their value_info) and initializers (every storage
//!    form, external data memory-mapped), sort the nodes topologically (Kahn, stable by
//!    original index; cycles and dangling inputs are named) and add them in that order
//!    through [`Graph::add_node`], which infers every type. `If` branches become their own
//!    graphs whose inputs are the outer values they capture.

mod attrs;
mod error;
mod ops;
mod tensor;

pub use error::{ImportError, Unsupported};
pub use tensor::{onnx_dtype_name, tensor_to_pb_bytes};

use crate::graph::{Graph, GraphError, ValueId};
use crate::infer::InferError;
use crate::ops::{NormOp, Op};
use crate::tensor::Tensor;
use crate::types::{Dim, Shape, TensorType};
use attrs::NodeRef;
use onnx_protobuf::{GraphProto, Message, ModelProto, NodeProto, TensorProto, ValueInfoProto};
use ops::{ConstSrc, In, Lowered, NodeError};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use tensor::{ExternalData, dtype_of, unsupported_item};

/// The oldest default-domain opset optc imports.
pub const MIN_OPSET: i64 = 7;
/// The newest default-domain opset optc imports.
///
/// optc implements the operators as defined up to opset 23. Opsets 24 to 28 changed the ops of
/// optc's set only by admitting new element types (float4/float8/int2 and the like, which optc
/// stores and converts: see [`crate::lowp`]) or by attributes (Cast/CastLike `round_mode`,
/// imported; Range `stash_type`, SpaceToDepth `mode`, checked at conversion); ops introduced
/// after 23 are not in optc's set and are reported as unsupported. So models at those opsets
/// import with opset-23 semantics, and anything newer is refused as a future opset.
pub const MAX_OPSET: i64 = 28;

/// An imported model.
#[derive(Debug)]
pub struct Model {
    /// The main graph.
    pub graph: Graph,
    /// The model's IR version.
    pub ir_version: i64,
    /// The opset version of the default ONNX domain.
    pub opset: i64,
    /// `producer_name producer_version`.
    pub producer: String,
    /// The model file (empty for [`load_model_bytes`]).
    pub path: PathBuf,
}

/// Reads and imports the model file at `path`; external data is resolved relative to its
/// folder.
pub fn load_model(path: &Path) -> Result<Model, ImportError> {
    let map = map_file(path)?;
    let proto = decode_model(map.as_deref().unwrap_or(&[]))?;
    drop(map);
    let dir = folder_of(path);
    import(proto, Some(&dir), path.to_path_buf())
}

/// Imports a model from its serialized bytes; external data is resolved relative to `dir`
/// (and refused when `dir` is `None`).
pub fn load_model_bytes(bytes: &[u8], dir: Option<&Path>) -> Result<Model, ImportError> {
    let proto = decode_model(bytes)?;
    import(proto, dir, PathBuf::new())
}

/// Reads a serialized `TensorProto` (backend test data `input_0.pb`): its name and tensor.
pub fn load_tensor_pb(path: &Path) -> Result<(String, Tensor), ImportError> {
    let map = map_file(path)?;
    let tp = TensorProto::parse_from_bytes(map.as_deref().unwrap_or(&[]))
        .map_err(|e| ImportError::Decode { msg: e.to_string() })?;
    drop(map);
    let dir = folder_of(path);
    let t = tensor::decode(&tp, &mut ExternalData::new(Some(&dir)))?;
    Ok((tp.name, t))
}

fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Memory-maps a file (`None` for an empty file, which cannot be mapped).
fn map_file(path: &Path) -> Result<Option<memmap2::Mmap>, ImportError> {
    let io = |source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if meta.is_dir() {
        return Err(io(std::io::Error::other("is a directory")));
    }
    if meta.len() == 0 {
        return Ok(None);
    }
    // SAFETY: read-only map; the file is assumed not to change while it is being parsed.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
    Ok(Some(map))
}

fn decode_model(bytes: &[u8]) -> Result<ModelProto, ImportError> {
    if bytes.is_empty() {
        return Err(ImportError::Decode {
            msg: "empty input (0 bytes) is not an ONNX model".into(),
        });
    }
    ModelProto::parse_from_bytes(bytes).map_err(|e| ImportError::Decode { msg: e.to_string() })
}

/// Importer state shared by a model's graphs.
struct Ctx {
    /// Default-domain opset.
    opset: i64,
    /// Opset per imported domain (`ai.onnx` stored as `""`).
    opsets: HashMap<String, i64>,
    ext: ExternalData,
    /// Every value name of the model (all scopes) plus the fresh names made so far.
    names: HashSet<String>,
}

fn import(mut proto: ModelProto, dir: Option<&Path>, path: PathBuf) -> Result<Model, ImportError> {
    if proto.ir_version < 3 {
        return Err(unsupported_item(
            "ir_version",
            format!(
                "IR version {} is older than 3, the oldest optc imports",
                proto.ir_version
            ),
        ));
    }
    let mut opsets: HashMap<String, i64> = HashMap::new();
    for o in &proto.opset_import {
        let domain = if o.domain == "ai.onnx" { "" } else { &o.domain };
        if let Some(v) = opsets.insert(domain.to_string(), o.version) {
            if v != o.version {
                return Err(ImportError::invalid(format!(
                    "opset of domain '{}' is imported twice ({v} and {})",
                    o.domain, o.version
                )));
            }
        }
    }
    let Some(&opset) = opsets.get("") else {
        if opsets.is_empty() {
            return Err(ImportError::invalid("the model imports no opset"));
        }
        // A valid model of other domains only (ai.onnx.ml, training, custom ops).
        let domains: Vec<&str> = opsets
            .keys()
            .map(String::as_str)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        return Err(tensor::unsupported_item(
            "domain",
            format!("the model uses only the domains {domains:?}, which optc does not support"),
        ));
    };
    if !(MIN_OPSET..=MAX_OPSET).contains(&opset) {
        return Err(ImportError::Unsupported {
            items: vec![Unsupported {
                op_type: "opset".into(),
                domain: String::new(),
                node: String::new(),
                index: None,
                opset,
                reason: format!(
                    "default-domain opset {opset} is outside the supported range \
                     {MIN_OPSET}..={MAX_OPSET}"
                ),
            }],
        });
    }
    let Some(mut gp) = proto.graph.take() else {
        return Err(ImportError::invalid("the model has no graph"));
    };
    let mut ctx = Ctx {
        opset,
        opsets,
        ext: ExternalData::new(dir),
        names: HashSet::new(),
    };
    let mut items = Vec::new();
    check_support(&mut ctx, &gp, "", &mut items)?;
    if !items.is_empty() {
        return Err(ImportError::Unsupported { items });
    }
    let inits = std::mem::take(&mut gp.initializer);
    let graph = build_graph(&mut ctx, &gp, inits, "", Vec::new())?;
    let producer = format!("{} {}", proto.producer_name, proto.producer_version)
        .trim()
        .to_string();
    Ok(Model {
        graph,
        ir_version: proto.ir_version,
        opset,
        producer,
        path,
    })
}

fn is_default_domain(d: &str) -> bool {
    d.is_empty() || d == "ai.onnx"
}

/// An unsupported item for a node.
fn item(ctx: &Ctx, at: NodeRef<'_>, reason: String) -> Unsupported {
    let domain = if is_default_domain(&at.node.domain) {
        ""
    } else {
        &at.node.domain
    };
    Unsupported {
        op_type: at.node.op_type.clone(),
        domain: domain.to_string(),
        node: at.full_name(),
        index: Some(at.index),
        opset: ctx.opsets.get(domain).copied().unwrap_or(0),
        reason,
    }
}

/// The path of an `If` branch of the node `at`.
fn branch_path(at: NodeRef<'_>, branch: &str) -> String {
    format!("{}{}/{branch}/", at.path, at.base_name())
}

/// First pass: converts every node, collecting unsupported ones; records every value name.
fn check_support(
    ctx: &mut Ctx,
    gp: &GraphProto,
    path: &str,
    items: &mut Vec<Unsupported>,
) -> Result<(), ImportError> {
    for vi in gp.input.iter().chain(&gp.output).chain(&gp.value_info) {
        ctx.names.insert(vi.name.clone());
    }
    for t in &gp.initializer {
        ctx.names.insert(t.name.clone());
    }
    if !gp.sparse_initializer.is_empty() {
        return Err(unsupported_item(
            "sparse_initializer",
            format!(
                "sparse initializers are not supported ({} in graph '{}')",
                gp.sparse_initializer.len(),
                gp.name
            ),
        ));
    }
    for (index, node) in gp.node.iter().enumerate() {
        let at = NodeRef { node, index, path };
        for o in &node.output {
            ctx.names.insert(o.clone());
        }
        if !is_default_domain(&node.domain) {
            let reason = if ctx.opsets.contains_key(&node.domain) {
                format!("domain '{}' is not supported", node.domain)
            } else {
                format!(
                    "domain '{}' is not supported (and not imported by the model)",
                    node.domain
                )
            };
            items.push(item(ctx, at, reason));
            continue;
        }
        match ops::convert(at, ctx.opset, &mut ctx.ext) {
            Ok(Lowered::If {
                then_branch,
                else_branch,
            }) => {
                check_support(ctx, then_branch, &branch_path(at, "then_branch"), items)?;
                check_support(ctx, else_branch, &branch_path(at, "else_branch"), items)?;
            }
            Ok(_) => {}
            Err(NodeError::Unsupported(reason)) => items.push(item(ctx, at, reason)),
            Err(NodeError::Fatal(e)) => return Err(e),
        }
    }
    Ok(())
}

/// The names a graph reads from enclosing scopes, in order of first use, each with a
/// description of its first reader (for error messages).
fn free_vars(gp: &GraphProto, path: &str) -> Vec<(String, String)> {
    let mut defined: HashSet<&str> = HashSet::new();
    defined.extend(gp.input.iter().map(|v| v.name.as_str()));
    defined.extend(gp.initializer.iter().map(|t| t.name.as_str()));
    for n in &gp.node {
        defined.extend(n.output.iter().map(String::as_str));
    }
    let mut seen: HashSet<String> = HashSet::new();
    let mut out = Vec::new();
    let mut push = |name: &str, user: &dyn Fn() -> String, out: &mut Vec<(String, String)>| {
        if !name.is_empty() && !defined.contains(name) && seen.insert(name.to_string()) {
            out.push((name.to_string(), user()));
        }
    };
    for (index, node) in gp.node.iter().enumerate() {
        let at = NodeRef { node, index, path };
        for i in &node.input {
            push(i, &|| at.to_string(), &mut out);
        }
        for a in &node.attribute {
            if let Some(sub) = a.g.as_ref() {
                for (name, user) in free_vars(sub, &branch_path(at, &a.name)) {
                    push(&name, &|| user.clone(), &mut out);
                }
            }
        }
    }
    for o in &gp.output {
        push(
            &o.name,
            &|| format!("the output list of graph '{path}'"),
            &mut out,
        );
    }
    out
}

/// A value an `If` branch captures from the enclosing graph.
enum Capture {
    /// A runtime value: a branch input of this type.
    Input(TensorType),
    /// A value known at build time: a branch constant.
    Const(Tensor),
}

/// Builds one graph (the main graph or an `If` branch with its captures).
fn build_graph(
    ctx: &mut Ctx,
    gp: &GraphProto,
    inits: Vec<TensorProto>,
    path: &str,
    captures: Vec<(String, Capture)>,
) -> Result<Graph, ImportError> {
    let mut g = Graph::new();
    let dup = |e: GraphError| match e {
        GraphError::DuplicateName(n) => {
            ImportError::invalid(format!("value '{n}' is defined twice{}", in_graph(path)))
        }
        e => ImportError::invalid(e.to_string()),
    };
    for (name, c) in captures {
        match c {
            Capture::Input(ty) => g.add_input(name, ty).map_err(dup)?,
            Capture::Const(t) => g.add_const(name, t).map_err(dup)?,
        };
    }
    let branch = !path.is_empty();
    if branch && !gp.input.is_empty() {
        return Err(ImportError::invalid(format!(
            "If branch {} declares {} inputs; If branches take none",
            path.trim_end_matches('/'),
            gp.input.len()
        )));
    }
    let init_names: HashSet<&str> = inits
        .iter()
        .chain(&gp.initializer)
        .map(|t| t.name.as_str())
        .collect();
    for vi in &gp.input {
        // Initializers listed as inputs (IR < 4, or overridable defaults) are constants.
        if init_names.contains(vi.name.as_str()) {
            continue;
        }
        let ty = value_type(vi, "graph input")?;
        g.add_input(vi.name.clone(), ty).map_err(dup)?;
    }
    let mut add_init = |g: &mut Graph, tp: &TensorProto| -> Result<(), ImportError> {
        if tp.name.is_empty() {
            return Err(ImportError::invalid(format!(
                "an initializer has no name{}",
                in_graph(path)
            )));
        }
        let t = tensor::decode(tp, &mut ctx.ext)?;
        g.add_const(tp.name.clone(), t).map_err(dup)?;
        Ok(())
    };
    for tp in inits {
        // Owned: each proto (and its raw bytes) is freed as soon as it is decoded.
        add_init(&mut g, &tp)?;
    }
    for tp in &gp.initializer {
        add_init(&mut g, tp)?;
    }
    let order = topo_sort(gp, path, &g)?;
    for i in order {
        let at = NodeRef {
            node: &gp.node[i],
            index: i,
            path,
        };
        add_node(ctx, &mut g, at)?;
    }
    let mut outputs = Vec::with_capacity(gp.output.len());
    for o in &gp.output {
        let v = g.value_by_name(&o.name).ok_or_else(|| {
            ImportError::invalid(format!(
                "graph output '{}' is not produced by any node, input or initializer{}",
                o.name,
                in_graph(path)
            ))
        })?;
        outputs.push(v);
    }
    g.set_outputs(outputs);
    Ok(g)
}

fn in_graph(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!(" (in {})", path.trim_end_matches('/'))
    }
}

/// The tensor type declared by a value_info.
fn value_type(vi: &ValueInfoProto, what: &str) -> Result<TensorType, ImportError> {
    use onnx_protobuf::tensor_shape_proto::dimension::Value as D;
    use onnx_protobuf::type_proto::Value as T;
    let what = format!("{what} '{}'", vi.name);
    if vi.name.is_empty() {
        return Err(ImportError::invalid(format!("a {what} has no name")));
    }
    let tt = match vi.type_.as_ref().and_then(|t| t.value.as_ref()) {
        Some(T::TensorType(tt)) => tt,
        Some(other) => {
            let kind = match other {
                T::SequenceType(_) => "a sequence",
                T::MapType(_) => "a map",
                T::OptionalType(_) => "an optional",
                T::SparseTensorType(_) => "a sparse tensor",
                _ => "not a tensor",
            };
            return Err(unsupported_item(
                "type",
                format!("{what} is {kind}; optc supports dense tensors only"),
            ));
        }
        None => return Err(ImportError::invalid(format!("{what} has no tensor type"))),
    };
    let dtype = dtype_of(tt.elem_type, &what)?;
    let shape = match tt.shape.as_ref() {
        None => Shape::Unranked,
        Some(s) => Shape::Ranked(
            s.dim
                .iter()
                .map(|d| match &d.value {
                    // -1 is a common (paddle2onnx, tf2onnx) spelling of a dynamic dim.
                    Some(D::DimValue(-1)) => Ok(Dim::Unknown),
                    Some(D::DimValue(v)) => usize::try_from(*v).map(Dim::Static).map_err(|_| {
                        ImportError::invalid(format!("{what} has a negative dim {v}"))
                    }),
                    Some(D::DimParam(p)) if !p.is_empty() => Ok(Dim::Sym(p.clone())),
                    _ => Ok(Dim::Unknown),
                })
                .collect::<Result<_, _>>()?,
        ),
    };
    Ok(TensorType { dtype, shape })
}

/// The nodes of `gp` in a topological order (Kahn's algorithm, smallest original index
/// first, so a sorted graph keeps its order). Values already in `g` (inputs, initializers,
/// captures) are available from the start.
fn topo_sort(gp: &GraphProto, path: &str, g: &Graph) -> Result<Vec<usize>, ImportError> {
    let nodes = &gp.node;
    let at = |index: usize| NodeRef {
        node: &nodes[index],
        index,
        path,
    };
    let mut producer: HashMap<&str, usize> = HashMap::with_capacity(nodes.len());
    for (i, n) in nodes.iter().enumerate() {
        for o in n.output.iter().filter(|o| !o.is_empty()) {
            if g.value_by_name(o).is_some() {
                return Err(at(i).invalid(format_args!(
                    "writes '{o}', which is already a graph input, initializer or outer value"
                )));
            }
            if let Some(j) = producer.insert(o, i) {
                return Err(ImportError::invalid(format!(
                    "value '{o}' is produced twice: by {} and by {}",
                    at(j),
                    at(i)
                )));
            }
        }
    }
    let mut preds: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    let mut succs: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    let mut dep = |i: usize, name: &str, user: &dyn Fn() -> String| -> Result<(), ImportError> {
        if let Some(&j) = producer.get(name) {
            preds[i].push(j);
            succs[j].push(i);
            Ok(())
        } else if g.value_by_name(name).is_some() {
            Ok(())
        } else {
            Err(ImportError::invalid(format!(
                "{} reads '{name}', which no node, graph input or initializer defines",
                user()
            )))
        }
    };
    for (i, n) in nodes.iter().enumerate() {
        for name in n.input.iter().filter(|s| !s.is_empty()) {
            dep(i, name, &|| at(i).to_string())?;
        }
        for a in &n.attribute {
            if let Some(sub) = a.g.as_ref() {
                for (name, user) in free_vars(sub, &branch_path(at(i), &a.name)) {
                    dep(i, &name, &|| user.clone())?;
                }
            }
        }
    }
    let mut indeg: Vec<usize> = preds.iter().map(Vec::len).collect();
    let mut ready: BinaryHeap<Reverse<usize>> = indeg
        .iter()
        .enumerate()
        .filter(|(_, d)| **d == 0)
        .map(|(i, _)| Reverse(i))
        .collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &s in &succs[i] {
            indeg[s] -= 1;
            if indeg[s] == 0 {
                ready.push(Reverse(s));
            }
        }
    }
    if order.len() == nodes.len() {
        return Ok(order);
    }
    // Every node left has a predecessor that is also left: walk predecessors until a node
    // repeats; the walk from its first visit is a cycle.
    let start = (0..nodes.len()).find(|&i| indeg[i] > 0).unwrap_or(0);
    let mut pos: HashMap<usize, usize> = HashMap::new();
    let mut walk = vec![start];
    pos.insert(start, 0);
    let cycle = loop {
        let cur = walk[walk.len() - 1];
        let Some(&p) = preds[cur].iter().find(|&&p| indeg[p] > 0) else {
            break walk.clone(); // cannot happen; report the walk
        };
        if let Some(&k) = pos.get(&p) {
            break walk[k..].to_vec();
        }
        pos.insert(p, walk.len());
        walk.push(p);
    };
    // The walk followed producers; print in data-flow order.
    let names: Vec<String> = cycle.iter().rev().map(|&i| at(i).to_string()).collect();
    Err(ImportError::invalid(format!(
        "the graph has a cycle{}: {} -> back to the first",
        in_graph(path),
        names.join(" -> ")
    )))
}

/// Wraps an [`Graph::add_node`] error with the node.
fn node_error(ctx: &Ctx, at: NodeRef<'_>, e: GraphError) -> ImportError {
    match e {
        GraphError::Infer {
            source: InferError::Unsupported(m),
            ..
        } => ImportError::Unsupported {
            items: vec![item(ctx, at, m)],
        },
        GraphError::Infer { source, .. } => at.invalid(source),
        GraphError::DanglingInput { index, .. } => {
            at.invalid(format_args!("input {index} is not a value of this graph"))
        }
        GraphError::DuplicateName(n) => at.invalid(format_args!("value '{n}' is defined twice")),
    }
}

/// The value named by a node input (`None` for `""`).
fn value(g: &Graph, at: NodeRef<'_>, name: &str) -> Result<Option<ValueId>, ImportError> {
    if name.is_empty() {
        return Ok(None);
    }
    g.value_by_name(name)
        .map(Some)
        .ok_or_else(|| at.invalid(format_args!("reads '{name}', which is not defined")))
}

/// A required node input.
fn required(g: &Graph, at: NodeRef<'_>, i: usize) -> Result<ValueId, ImportError> {
    let name = at.node.input.get(i).map_or("", String::as_str);
    value(g, at, name)?.ok_or_else(|| at.invalid(format_args!("input {i} is required")))
}

impl Ctx {
    /// A fresh value name `{base}__{suffix}` not used anywhere in the model.
    fn fresh(&mut self, g: &Graph, base: &str, suffix: &str) -> String {
        let mut name = format!("{base}__{suffix}");
        let mut k = 1;
        while self.names.contains(&name) || g.value_by_name(&name).is_some() {
            name = format!("{base}__{suffix}{k}");
            k += 1;
        }
        self.names.insert(name.clone());
        name
    }

    /// Adds a constant under a fresh name.
    fn add_const(
        &mut self,
        g: &mut Graph,
        at: NodeRef<'_>,
        suffix: &str,
        t: Tensor,
    ) -> Result<ValueId, ImportError> {
        let name = self.fresh(g, &at.base_name(), suffix);
        g.add_const(name, t).map_err(|e| node_error(self, at, e))
    }

    /// Adds a helper node (for rewrites) with one fresh output.
    fn add_helper(
        &mut self,
        g: &mut Graph,
        at: NodeRef<'_>,
        suffix: &str,
        op: Op,
        inputs: Vec<Option<ValueId>>,
    ) -> Result<ValueId, ImportError> {
        let name = self.fresh(g, &at.base_name(), suffix);
        let (_, outs) = g
            .add_node(name.clone(), op, inputs, vec![Some(name)])
            .map_err(|e| node_error(self, at, e))?;
        outs.first()
            .copied()
            .flatten()
            .ok_or_else(|| at.invalid("helper node produced no value"))
    }
}

/// The node's first `n` output slots (`""` = unused); the others must be unused.
fn outputs(at: NodeRef<'_>, n: usize) -> Result<Vec<Option<String>>, ImportError> {
    let outs = &at.node.output;
    if let Some(extra) = outs.iter().skip(n).find(|o| !o.is_empty()) {
        return Err(at.invalid(format_args!(
            "has {} outputs but the op has {n} (output '{extra}')",
            outs.len()
        )));
    }
    Ok(outs
        .iter()
        .take(n)
        .map(|o| (!o.is_empty()).then(|| o.clone()))
        .collect())
}

/// Converts and adds one node.
fn add_node(ctx: &mut Ctx, g: &mut Graph, at: NodeRef<'_>) -> Result<(), ImportError> {
    let lowered = match ops::convert(at, ctx.opset, &mut ctx.ext) {
        Ok(l) => l,
        Err(NodeError::Unsupported(r)) => {
            return Err(ImportError::Unsupported {
                items: vec![item(ctx, at, r)],
            });
        }
        Err(NodeError::Fatal(e)) => return Err(e),
    };
    let node: &NodeProto = at.node;
    let (op, inputs, outs) = match lowered {
        Lowered::Node {
            op,
            inputs,
            outputs: n,
        } => {
            let mut ids = Vec::with_capacity(inputs.len());
            // Values first: ConstLike inputs take the dtype of a value input.
            for i in &inputs {
                ids.push(match i {
                    In::Value(name) => value(g, at, name)?,
                    _ => None,
                });
            }
            for (k, i) in inputs.into_iter().enumerate() {
                match i {
                    In::Value(_) => {}
                    In::Const(t, suffix) => ids[k] = Some(ctx.add_const(g, at, suffix, t)?),
                    In::ConstLike(t, like, suffix) => {
                        let v =
                            ids.get(like).copied().flatten().ok_or_else(|| {
                                at.invalid(format_args!("input {like} is required"))
                            })?;
                        let t = t.cast(g.ty(v).dtype);
                        ids[k] = Some(ctx.add_const(g, at, suffix, t)?);
                    }
                }
            }
            (op, ids, outputs(at, n)?)
        }
        Lowered::Constant(src) => {
            let t = match src {
                ConstSrc::Tensor(t) => t,
                ConstSrc::Proto(tp) => tensor::decode(tp, &mut ctx.ext).map_err(|e| match e {
                    ImportError::Invalid { msg } => at.invalid(msg),
                    e => e,
                })?,
            };
            g.add_const(node.output[0].clone(), t)
                .map_err(|e| node_error(ctx, at, e))?;
            return Ok(());
        }
        Lowered::CastLike {
            saturate,
            round_mode,
        } => {
            let x = required(g, at, 0)?;
            let like = required(g, at, 1)?;
            let to = g.ty(like).dtype;
            let op = ops::cast_op(to, saturate, round_mode);
            (op, vec![Some(x)], outputs(at, 1)?)
        }
        Lowered::GroupNormPerGroup {
            num_groups,
            epsilon,
        } => {
            let x = required(g, at, 0)?;
            let c = g
                .ty(x)
                .shape
                .dims()
                .and_then(|d| d.get(1))
                .and_then(Dim::as_static);
            let Some(c) = c else {
                return Err(ImportError::Unsupported {
                    items: vec![item(
                        ctx,
                        at,
                        "opset-18 GroupNormalization needs a static channel dim to expand \
                         its per-group scale and bias"
                            .into(),
                    )],
                });
            };
            if c % num_groups != 0 {
                return Err(at.invalid(format_args!(
                    "{c} channels are not divisible by num_groups {num_groups}"
                )));
            }
            let scale = per_channel(ctx, g, at, 1, c, num_groups)?;
            let bias = per_channel(ctx, g, at, 2, c, num_groups)?;
            let op = Op::Norm {
                op: NormOp::GroupNormalization { num_groups },
                epsilon,
            };
            (op, vec![Some(x), Some(scale), Some(bias)], outputs(at, 1)?)
        }
        Lowered::If {
            then_branch,
            else_branch,
        } => {
            if node.input.len() != 1 {
                return Err(at.invalid(format_args!(
                    "If takes one input (the condition), has {}",
                    node.input.len()
                )));
            }
            let cond = required(g, at, 0)?;
            let (tp, ep) = (
                branch_path(at, "then_branch"),
                branch_path(at, "else_branch"),
            );
            let mut names: Vec<String> = Vec::new();
            let mut seen = HashSet::new();
            for (name, _) in free_vars(then_branch, &tp)
                .into_iter()
                .chain(free_vars(else_branch, &ep))
            {
                if seen.insert(name.clone()) {
                    names.push(name);
                }
            }
            let mut inputs = vec![Some(cond)];
            let mut captures = Vec::with_capacity(names.len());
            for name in names {
                let v = value(g, at, &name)?
                    .ok_or_else(|| at.invalid("a branch reads an unnamed value"))?;
                let c = match g.value_of(v) {
                    Some(t) => Capture::Const(t.clone()),
                    None => {
                        inputs.push(Some(v));
                        Capture::Input(g.ty(v).clone())
                    }
                };
                captures.push((name, c));
            }
            let dup: Vec<(String, Capture)> = captures
                .iter()
                .map(|(n, c)| {
                    let c = match c {
                        Capture::Input(t) => Capture::Input(t.clone()),
                        Capture::Const(t) => Capture::Const(t.clone()),
                    };
                    (n.clone(), c)
                })
                .collect();
            let then_g = build_graph(ctx, then_branch, Vec::new(), &tp, captures)?;
            let else_g = build_graph(ctx, else_branch, Vec::new(), &ep, dup)?;
            let op = Op::If {
                then_branch: Box::new(then_g),
                else_branch: Box::new(else_g),
            };
            (op, inputs, outputs(at, node.output.len())?)
        }
    };
    g.add_node(node.name.clone(), op, inputs, outs)
        .map_err(|e| node_error(ctx, at, e))?;
    Ok(())
}

/// Expands the per-group scale or bias at input `i` of an opset-18 GroupNormalization to
/// per-channel: each group's value repeated `c / groups` times.
fn per_channel(
    ctx: &mut Ctx,
    g: &mut Graph,
    at: NodeRef<'_>,
    i: usize,
    c: usize,
    groups: usize,
) -> Result<ValueId, ImportError> {
    let v = required(g, at, i)?;
    let what = if i == 1 { "scale" } else { "bias" };
    let per = c / groups;
    if let Some(t) = g.value_of(v) {
        if t.numel() != groups {
            return Err(at.invalid(format_args!(
                "{what} has {} elements; opset-18 GroupNormalization needs one per group ({groups})",
                t.numel()
            )));
        }
        let out = crate::dispatch!(t.dtype(), T => {
            let src = t.view::<T>();
            let v: Vec<T> = (0..c).map(|k| src[k / per]).collect();
            Tensor::from_vec(vec![c], v)
        })
        .map_err(|e| at.invalid(e))?;
        return ctx.add_const(g, at, what, out);
    }
    // A runtime value: Reshape [G, 1] → Expand [G, C/G] → Reshape [C].
    let shape = |dims: &[usize]| {
        let v: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
        Tensor::from_vec(vec![v.len()], v).map_err(|e| at.invalid(e))
    };
    let s1 = ctx.add_const(g, at, "group_shape", shape(&[groups, 1])?)?;
    let s2 = ctx.add_const(g, at, "expand_shape", shape(&[groups, per])?)?;
    let s3 = ctx.add_const(g, at, "channel_shape", shape(&[c])?)?;
    let reshape = Op::Reshape { allowzero: false };
    let a = ctx.add_helper(g, at, what, reshape.clone(), vec![Some(v), Some(s1)])?;
    let b = ctx.add_helper(g, at, what, Op::Expand, vec![Some(a), Some(s2)])?;
    ctx.add_helper(g, at, what, reshape, vec![Some(b), Some(s3)])
}
