//! ONNX op type + attributes (per opset) → [`Op`] with the inputs of the newest opset form.
//!
//! Older attribute forms become constant inputs ([`In::Const`]); the graph builder adds those
//! constants with fresh names. Conversion needs no input types, so the importer runs it over
//! every node first to list all unsupported nodes at once; the few rewrites that need types
//! (CastLike, opset-18 GroupNormalization) are left to the builder as [`Lowered`] variants.

use super::attrs::{Attrs, NodeRef};
use super::error::ImportError;
use super::tensor::{ExternalData, decode, onnx_dtype_name};
use crate::dtype::DType;
use crate::lowp::E8m0Round;
use crate::ops::*;
use crate::tensor::Tensor;
use onnx_protobuf::{GraphProto, TensorProto};

/// Why a node cannot be converted.
pub(crate) enum NodeError {
    /// A valid node that optc does not support (the reason).
    Unsupported(String),
    /// The node is invalid.
    Fatal(ImportError),
}

impl From<ImportError> for NodeError {
    fn from(e: ImportError) -> NodeError {
        NodeError::Fatal(e)
    }
}

type Res<T> = Result<T, NodeError>;

fn unsupported<T>(reason: impl Into<String>) -> Res<T> {
    Err(NodeError::Unsupported(reason.into()))
}

/// One input of a converted node.
pub(crate) enum In<'a> {
    /// A value by name (`""` = absent optional input).
    Value(&'a str),
    /// A constant made from an older attribute form; `suffix` names it (`{node}__{suffix}`).
    Const(Tensor, &'static str),
    /// Like [`In::Const`], cast to the dtype of input `like` (a value) at build time.
    ConstLike(Tensor, usize, &'static str),
}

/// The value of a Constant node.
pub(crate) enum ConstSrc<'a> {
    /// A tensor attribute, decoded at build time.
    Proto(&'a TensorProto),
    /// A value built from `value_float(s)` / `value_int(s)`.
    Tensor(Tensor),
}

/// A converted node.
pub(crate) enum Lowered<'a> {
    /// An op over `inputs`, using the first `outputs` of the node's outputs (the others must
    /// be unused).
    Node {
        /// The op.
        op: Op,
        /// Its inputs.
        inputs: Vec<In<'a>>,
        /// How many of the node's output slots the op has.
        outputs: usize,
    },
    /// A Constant node: its single output becomes a graph constant.
    Constant(ConstSrc<'a>),
    /// CastLike: `Cast` of input 0 to the dtype of input 1 (see [`cast_op`]).
    CastLike {
        /// The `saturate` attribute.
        saturate: bool,
        /// The `round_mode` attribute.
        round_mode: E8m0Round,
    },
    /// Opset-18 GroupNormalization: per-group scale/bias, expanded to per-channel.
    GroupNormPerGroup {
        /// Number of groups.
        num_groups: usize,
        /// Epsilon.
        epsilon: f32,
    },
    /// If with its branches.
    If {
        /// then_branch.
        then_branch: &'a GraphProto,
        /// else_branch.
        else_branch: &'a GraphProto,
    },
}

/// The first opset where `op_type` exists (for op types newer than opset 7) and the last
/// one for deprecated ones.
fn available(op_type: &str) -> (i64, i64) {
    match op_type {
        "Expand" => (8, i64::MAX),
        "Acosh" | "Asinh" | "Atanh" | "Cosh" | "Sinh" | "Erf" | "IsNaN" | "Sign" | "NonZero"
        | "OneHot" | "Where" | "EyeLike" | "ConstantOfShape" => (9, i64::MAX),
        "Scatter" => (9, 10),
        "Upsample" => (7, 9),
        "IsInf" | "Mod" | "Resize" | "ThresholdedRelu" | "QuantizeLinear" | "DequantizeLinear"
        | "QLinearConv" | "QLinearMatMul" | "MatMulInteger" | "ConvInteger" => (10, i64::MAX),
        "BitShift"
        | "CumSum"
        | "DynamicQuantizeLinear"
        | "GatherElements"
        | "GatherND"
        | "Round"
        | "ScatterElements"
        | "ScatterND"
        | "Range" => (11, i64::MAX),
        "Celu" | "Einsum" | "GreaterOrEqual" | "LessOrEqual" => (12, i64::MAX),
        "NegativeLogLikelihoodLoss" | "SoftmaxCrossEntropyLoss" => (12, i64::MAX),
        "HardSwish" | "Trilu" => (14, i64::MAX),
        "CastLike" => (15, i64::MAX),
        "LayerNormalization" => (17, i64::MAX),
        "GroupNormalization" | "Mish" => (18, i64::MAX),
        "Gelu" => (20, i64::MAX),
        "RMSNormalization" => (23, i64::MAX),
        "BitwiseAnd" | "BitwiseOr" | "BitwiseXor" | "BitwiseNot" | "CenterCropPad" => {
            (18, i64::MAX)
        }
        "HannWindow" | "HammingWindow" | "BlackmanWindow" => (17, i64::MAX),
        "Compress" | "Shrink" | "MeanVarianceNormalization" => (9, i64::MAX),
        "ReverseSequence" => (10, i64::MAX),
        "Swish" => (24, i64::MAX),
        "AffineGrid" => (20, i64::MAX),
        "Col2Im" => (18, i64::MAX),
        "GridSample" => (16, i64::MAX),
        "CumProd" => (26, i64::MAX),
        _ => (1, i64::MAX),
    }
}

fn unary(op_type: &str) -> Option<UnaryOp> {
    use UnaryOp::*;
    Some(match op_type {
        "Abs" => Abs,
        "Neg" => Neg,
        "Exp" => Exp,
        "Log" => Log,
        "Sqrt" => Sqrt,
        "Reciprocal" => Reciprocal,
        "Sin" => Sin,
        "Cos" => Cos,
        "Tan" => Tan,
        "Asin" => Asin,
        "Acos" => Acos,
        "Atan" => Atan,
        "Sinh" => Sinh,
        "Cosh" => Cosh,
        "Asinh" => Asinh,
        "Acosh" => Acosh,
        "Atanh" => Atanh,
        "Tanh" => Tanh,
        "Sigmoid" => Sigmoid,
        "Erf" => Erf,
        "Floor" => Floor,
        "Ceil" => Ceil,
        "Round" => Round,
        "Sign" => Sign,
        "Not" => Not,
        "IsNaN" => IsNaN,
        "Relu" => Relu,
        "Softplus" => Softplus,
        "Softsign" => Softsign,
        "Mish" => Mish,
        "HardSwish" => HardSwish,
        _ => return None,
    })
}

fn binary(op_type: &str) -> Option<BinaryOp> {
    use BinaryOp::*;
    Some(match op_type {
        "Add" => Add,
        "Sub" => Sub,
        "Mul" => Mul,
        "Div" => Div,
        "Pow" => Pow,
        "And" => And,
        "Or" => Or,
        "Xor" => Xor,
        "Equal" => Equal,
        "Less" => Less,
        "LessOrEqual" => LessOrEqual,
        "Greater" => Greater,
        "GreaterOrEqual" => GreaterOrEqual,
        "PRelu" => PRelu,
        _ => return None,
    })
}

fn reduce(op_type: &str) -> Option<ReduceOp> {
    use ReduceOp::*;
    Some(match op_type {
        "ReduceSum" => Sum,
        "ReduceMean" => Mean,
        "ReduceMax" => Max,
        "ReduceMin" => Min,
        "ReduceProd" => Prod,
        "ReduceL1" => L1,
        "ReduceL2" => L2,
        "ReduceSumSquare" => SumSquare,
        "ReduceLogSum" => LogSum,
        "ReduceLogSumExp" => LogSumExp,
        _ => return None,
    })
}

/// A 1-D i64 tensor.
fn i64s(v: &[i64]) -> Tensor {
    Tensor::from_vec(vec![v.len()], v.to_vec()).unwrap_or_else(|_| Tensor::scalar(0i64))
}

/// The dtype of an ONNX type code given as attribute `name`.
fn dtype_attr(a: &Attrs<'_>, name: &str, code: i64) -> Res<DType> {
    let c =
        i32::try_from(code).map_err(|_| a.err(name, format_args!("is not a data type: {code}")))?;
    match DType::from_onnx_code(c) {
        Some(d) => Ok(d),
        None if c <= 0 || onnx_dtype_name(c).starts_with("data type") => Err(a
            .err(name, format_args!("is not a data type: {code}"))
            .into()),
        None => unsupported(format!(
            "{} with {name}={} is not supported",
            a.at().node.op_type,
            onnx_dtype_name(c)
        )),
    }
}

/// Cast to `to`: [`Op::Cast`] unless a float8 target has `saturate = 0` or a FLOAT8E8M0
/// target a `round_mode` other than `up` (the attributes only apply to those targets).
pub(crate) fn cast_op(to: DType, saturate: bool, round_mode: E8m0Round) -> Op {
    let default = (!to.is_float8() || saturate)
        && (to != DType::F8E8M0 || (saturate && round_mode == E8m0Round::Up));
    if default {
        Op::Cast { to }
    } else {
        Op::CastExt {
            to,
            saturate,
            round_mode,
        }
    }
}

/// The `round_mode` attribute of Cast/CastLike (opset 25).
fn round_mode(a: &Attrs<'_>) -> Res<E8m0Round> {
    Ok(match a.string_or("round_mode", "up")? {
        "up" => E8m0Round::Up,
        "down" => E8m0Round::Down,
        "nearest" => E8m0Round::Nearest,
        s => {
            return Err(a
                .err("round_mode", format_args!("has unknown value '{s}'"))
                .into());
        }
    })
}

fn auto_pad(a: &Attrs<'_>) -> Res<AutoPad> {
    Ok(match a.string_or("auto_pad", "NOTSET")? {
        "NOTSET" | "" => AutoPad::NotSet,
        "SAME_UPPER" => AutoPad::SameUpper,
        "SAME_LOWER" => AutoPad::SameLower,
        "VALID" => AutoPad::Valid,
        s => {
            return Err(a
                .err("auto_pad", format_args!("has unknown value '{s}'"))
                .into());
        }
    })
}

fn window(a: &Attrs<'_>, pool: bool) -> Res<Window> {
    let kernel_shape = a.usizes("kernel_shape", 1)?;
    if pool && kernel_shape.is_empty() {
        return Err(a.err("kernel_shape", "is required but missing").into());
    }
    let w = Window {
        kernel_shape,
        strides: a.usizes("strides", 1)?,
        dilations: a.usizes("dilations", 1)?,
        pads: a.usizes("pads", 0)?,
        auto_pad: auto_pad(a)?,
    };
    let k = w.kernel_shape.len();
    if !w.pads.is_empty() && w.pads.len() % 2 != 0 {
        return Err(a
            .err("pads", format_args!("has odd length {}", w.pads.len()))
            .into());
    }
    if k > 0 {
        for (name, len) in [
            ("strides", w.strides.len()),
            ("dilations", w.dilations.len()),
            ("pads", w.pads.len() / 2),
        ] {
            if len != 0 && len != k {
                return Err(a
                    .err(
                        name,
                        format_args!("has {len} spatial entries but kernel_shape has {k}"),
                    )
                    .into());
            }
        }
    }
    Ok(w)
}

fn conv_attrs(a: &Attrs<'_>) -> Res<ConvAttrs> {
    Ok(ConvAttrs {
        window: window(a, false)?,
        group: a.usize_or("group", 1, 1)?,
        layout: Default::default(),
    })
}

fn softmax_axis(a: &Attrs<'_>, opset: i64) -> Res<i64> {
    Ok(a.int_or("axis", if opset < 13 { 1 } else { -1 })?)
}

fn scatter_reduction(a: &Attrs<'_>) -> Res<ScatterReduction> {
    Ok(match a.string_or("reduction", "none")? {
        "none" => ScatterReduction::None,
        "add" => ScatterReduction::Add,
        "mul" => ScatterReduction::Mul,
        "max" => ScatterReduction::Max,
        "min" => ScatterReduction::Min,
        s => {
            return Err(a
                .err("reduction", format_args!("has unknown value '{s}'"))
                .into());
        }
    })
}

fn loss_reduction(a: &Attrs<'_>) -> Res<LossReduction> {
    Ok(match a.string_or("reduction", "mean")? {
        "none" => LossReduction::None,
        "sum" => LossReduction::Sum,
        "mean" => LossReduction::Mean,
        s => {
            return Err(a
                .err("reduction", format_args!("has unknown value '{s}'"))
                .into());
        }
    })
}

/// Refuses an attribute that a newer opset turned into an input.
fn no_attr(a: &Attrs<'_>, name: &str, opset: i64, moved_at: i64) -> Res<()> {
    if a.has(name) {
        return Err(a
            .err(
                name,
                format_args!("is an input since opset {moved_at} (the model has opset {opset})"),
            )
            .into());
    }
    Ok(())
}

/// Resize attributes of the opset 7-10 Upsample/Resize form (asymmetric coordinates,
/// nearest rounding down, as onnxruntime does).
fn legacy_resize(a: &Attrs<'_>) -> Res<Box<ResizeAttrs>> {
    let mode = match a.string_or("mode", "nearest")? {
        "nearest" => ResizeMode::Nearest,
        "linear" | "bilinear" => ResizeMode::Linear,
        s => {
            return Err(a
                .err("mode", format_args!("has unknown value '{s}'"))
                .into());
        }
    };
    Ok(Box::new(ResizeAttrs {
        mode,
        coord: CoordTransform::Asymmetric,
        nearest: NearestMode::Floor,
        cubic_coeff_a: -0.75,
        exclude_outside: false,
        extrapolation_value: 0.0,
        antialias: false,
        axes: Vec::new(),
        aspect: AspectPolicy::Stretch,
    }))
}

fn resize(a: &Attrs<'_>) -> Res<Box<ResizeAttrs>> {
    let bad = |name: &str, s: &str| -> NodeError {
        a.err(name, format_args!("has unknown value '{s}'")).into()
    };
    let mode = match a.string_or("mode", "nearest")? {
        "nearest" => ResizeMode::Nearest,
        "linear" => ResizeMode::Linear,
        "cubic" => ResizeMode::Cubic,
        s => return Err(bad("mode", s)),
    };
    let coord = match a.string_or("coordinate_transformation_mode", "half_pixel")? {
        "half_pixel" => CoordTransform::HalfPixel,
        "half_pixel_symmetric" => CoordTransform::HalfPixelSymmetric,
        "pytorch_half_pixel" => CoordTransform::PytorchHalfPixel,
        "align_corners" => CoordTransform::AlignCorners,
        "asymmetric" => CoordTransform::Asymmetric,
        "tf_crop_and_resize" => CoordTransform::TfCropAndResize,
        "tf_half_pixel_for_nn" => {
            return unsupported(
                "Resize coordinate_transformation_mode 'tf_half_pixel_for_nn' is not supported",
            );
        }
        s => return Err(bad("coordinate_transformation_mode", s)),
    };
    let nearest = match a.string_or("nearest_mode", "round_prefer_floor")? {
        "round_prefer_floor" => NearestMode::RoundPreferFloor,
        "round_prefer_ceil" => NearestMode::RoundPreferCeil,
        "floor" => NearestMode::Floor,
        "ceil" => NearestMode::Ceil,
        s => return Err(bad("nearest_mode", s)),
    };
    let aspect = match a.string_or("keep_aspect_ratio_policy", "stretch")? {
        "stretch" => AspectPolicy::Stretch,
        "not_larger" => AspectPolicy::NotLarger,
        "not_smaller" => AspectPolicy::NotSmaller,
        s => return Err(bad("keep_aspect_ratio_policy", s)),
    };
    Ok(Box::new(ResizeAttrs {
        mode,
        coord,
        nearest,
        cubic_coeff_a: a.float_or("cubic_coeff_a", -0.75)?,
        exclude_outside: a.flag("exclude_outside", false)?,
        extrapolation_value: a.float_or("extrapolation_value", 0.0)?,
        antialias: a.flag("antialias", false)?,
        axes: a.ints("axes")?.map(<[i64]>::to_vec).unwrap_or_default(),
        aspect,
    }))
}

/// The value of a Constant node.
fn constant<'a>(a: &Attrs<'a>) -> Res<ConstSrc<'a>> {
    let present: Vec<&str> = [
        "value",
        "value_float",
        "value_floats",
        "value_int",
        "value_ints",
        "value_string",
        "value_strings",
        "sparse_value",
    ]
    .into_iter()
    .filter(|n| a.has(n))
    .collect();
    if present.len() != 1 {
        return Err(a
            .at()
            .invalid(format_args!(
                "Constant needs exactly one value attribute, has {present:?}"
            ))
            .into());
    }
    let v = match present[0] {
        "value" => return Ok(ConstSrc::Proto(a.tensor("value")?.unwrap_or_default())),
        "value_float" => Tensor::scalar(a.float("value_float")?.unwrap_or_default()),
        "value_int" => Tensor::scalar(a.int("value_int")?.unwrap_or_default()),
        "value_floats" => {
            let v = a.floats("value_floats")?.unwrap_or_default().to_vec();
            Tensor::from_vec(vec![v.len()], v).map_err(|e| a.err("value_floats", e))?
        }
        "value_ints" => i64s(a.ints("value_ints")?.unwrap_or_default()),
        "sparse_value" => return unsupported("Constant sparse_value is not supported"),
        s => {
            return unsupported(format!(
                "Constant {s} is a string tensor; optc has no string tensors"
            ));
        }
    };
    Ok(ConstSrc::Tensor(v))
}

/// Converts one node of the default domain at `opset`.
///
/// `ext` decodes small tensor attributes (ConstantOfShape's value); Constant values are
/// decoded later by the builder.
pub(crate) fn convert<'a>(at: NodeRef<'a>, opset: i64, ext: &mut ExternalData) -> Res<Lowered<'a>> {
    let node = at.node;
    let t = node.op_type.as_str();
    let (from, until) = available(t);
    if opset < from {
        return unsupported(format!("{t} does not exist before opset {from}"));
    }
    if opset > until {
        return unsupported(format!("{t} was removed after opset {until}"));
    }
    let a = Attrs::new(at)?;
    let ins = || -> Vec<In<'a>> { node.input.iter().map(|s| In::Value(s.as_str())).collect() };
    let nout = node.output.len();
    let simple = |op: Op| Lowered::Node {
        op,
        inputs: node.input.iter().map(|s| In::Value(s.as_str())).collect(),
        outputs: node.output.len(),
    };
    let input = |i: usize| -> In<'a> { In::Value(node.input.get(i).map_or("", String::as_str)) };

    if let Some(u) = unary(t) {
        return Ok(simple(Op::Unary(u)));
    }
    if let Some(b) = binary(t) {
        return Ok(simple(Op::Binary(b)));
    }
    if let Some(r) = reduce(t) {
        let moved = if r == ReduceOp::Sum { 13 } else { 18 };
        let op = Op::Reduce {
            op: r,
            keepdims: a.flag("keepdims", true)?,
            noop_with_empty_axes: a.flag("noop_with_empty_axes", false)?,
        };
        if opset >= moved {
            no_attr(&a, "axes", opset, moved)?;
            return Ok(simple(op));
        }
        let mut inputs = vec![input(0)];
        if let Some(axes) = a.ints("axes")? {
            inputs.push(In::Const(i64s(axes), "axes"));
        }
        if node.input.len() > 1 {
            return Err(at
                .invalid(format_args!("{t} has one input before opset {moved}"))
                .into());
        }
        return Ok(Lowered::Node {
            op,
            inputs,
            outputs: nout,
        });
    }
    let act = |x: ActivationOp| Ok(simple(Op::Activation(x)));
    match t {
        "Identity" => Ok(simple(Op::Identity)),
        "LeakyRelu" => act(ActivationOp::LeakyRelu {
            alpha: a.float_or("alpha", 0.01)?,
        }),
        "Elu" => act(ActivationOp::Elu {
            alpha: a.float_or("alpha", 1.0)?,
        }),
        "Selu" => act(ActivationOp::Selu {
            alpha: a.float_or("alpha", 1.673_263_2)?,
            gamma: a.float_or("gamma", 1.050_701)?,
        }),
        "Celu" => act(ActivationOp::Celu {
            alpha: a.float_or("alpha", 1.0)?,
        }),
        "HardSigmoid" => act(ActivationOp::HardSigmoid {
            alpha: a.float_or("alpha", 0.2)?,
            beta: a.float_or("beta", 0.5)?,
        }),
        "ThresholdedRelu" => act(ActivationOp::ThresholdedRelu {
            alpha: a.float_or("alpha", 1.0)?,
        }),
        "Gelu" => act(ActivationOp::Gelu {
            tanh: match a.string_or("approximate", "none")? {
                "none" => false,
                "tanh" => true,
                s => {
                    return Err(a
                        .err("approximate", format_args!("has unknown value '{s}'"))
                        .into());
                }
            },
        }),
        "IsInf" => act(ActivationOp::IsInf {
            detect_negative: a.flag("detect_negative", true)?,
            detect_positive: a.flag("detect_positive", true)?,
        }),
        "Mod" => Ok(simple(Op::Binary(BinaryOp::Mod {
            fmod: a.flag("fmod", false)?,
        }))),
        "BitShift" => Ok(simple(Op::Binary(match a.string("direction")? {
            Some("LEFT") => BinaryOp::BitShiftLeft,
            Some("RIGHT") => BinaryOp::BitShiftRight,
            Some(s) => {
                return Err(a
                    .err(
                        "direction",
                        format_args!("must be LEFT or RIGHT, got '{s}'"),
                    )
                    .into());
            }
            None => return Err(a.err("direction", "is required but missing").into()),
        }))),
        "Sum" => Ok(simple(Op::Variadic(VariadicOp::Sum))),
        "Mean" => Ok(simple(Op::Variadic(VariadicOp::Mean))),
        "Max" => Ok(simple(Op::Variadic(VariadicOp::Max))),
        "Min" => Ok(simple(Op::Variadic(VariadicOp::Min))),
        "Clip" => {
            if opset >= 11 {
                no_attr(&a, "min", opset, 11)?;
                no_attr(&a, "max", opset, 11)?;
                return Ok(simple(Op::Clip));
            }
            let bound = |name: &'static str| -> Res<In<'a>> {
                Ok(match a.float(name)? {
                    Some(v) => In::ConstLike(Tensor::scalar(v), 0, name),
                    None => In::Value(""),
                })
            };
            Ok(Lowered::Node {
                op: Op::Clip,
                inputs: vec![input(0), bound("min")?, bound("max")?],
                outputs: nout,
            })
        }
        "Where" => Ok(simple(Op::Where)),
        "Cast" => Ok(simple(cast_op(
            dtype_attr(&a, "to", a.int_req("to")?)?,
            a.flag("saturate", true)?,
            round_mode(&a)?,
        ))),
        "CastLike" => Ok(Lowered::CastLike {
            saturate: a.flag("saturate", true)?,
            round_mode: round_mode(&a)?,
        }),
        "Dropout" => {
            if opset >= 12 {
                return Ok(simple(Op::Dropout));
            }
            let ratio = a.float_or("ratio", 0.5)?;
            Ok(Lowered::Node {
                op: Op::Dropout,
                inputs: vec![input(0), In::Const(Tensor::scalar(ratio), "ratio")],
                outputs: nout,
            })
        }
        "Softmax" => Ok(simple(Op::Softmax {
            axis: softmax_axis(&a, opset)?,
            legacy: opset < 13,
        })),
        "LogSoftmax" => Ok(simple(Op::LogSoftmax {
            axis: softmax_axis(&a, opset)?,
            legacy: opset < 13,
        })),
        "Hardmax" => Ok(simple(Op::Hardmax {
            axis: softmax_axis(&a, opset)?,
            legacy: opset < 13,
        })),
        "ArgMax" | "ArgMin" => {
            let (axis, keepdims, select_last_index) = (
                a.int_or("axis", 0)?,
                a.flag("keepdims", true)?,
                a.flag("select_last_index", false)?,
            );
            Ok(simple(if t == "ArgMax" {
                Op::ArgMax {
                    axis,
                    keepdims,
                    select_last_index,
                }
            } else {
                Op::ArgMin {
                    axis,
                    keepdims,
                    select_last_index,
                }
            }))
        }
        "CumSum" => Ok(simple(Op::CumSum {
            exclusive: a.flag("exclusive", false)?,
            reverse: a.flag("reverse", false)?,
        })),
        "TopK" => {
            let op = Op::TopK {
                axis: a.int_or("axis", -1)?,
                largest: a.flag("largest", true)?,
                sorted: a.flag("sorted", true)?,
            };
            if opset >= 10 {
                no_attr(&a, "k", opset, 10)?;
                return Ok(simple(op));
            }
            let k = a.int_req("k")?;
            if k < 0 {
                return Err(a
                    .err("k", format_args!("must be non-negative, got {k}"))
                    .into());
            }
            Ok(Lowered::Node {
                op,
                inputs: vec![input(0), In::Const(i64s(&[k]), "k")],
                outputs: nout,
            })
        }
        "Conv" => Ok(simple(Op::Conv(conv_attrs(&a)?))),
        "ConvTranspose" => Ok(simple(Op::ConvTranspose {
            conv: conv_attrs(&a)?,
            output_padding: a.usizes("output_padding", 0)?,
            output_shape: a.usizes("output_shape", 0)?,
        })),
        "MaxPool" => {
            let storage_order = a.usize_or("storage_order", 0, 0)?;
            if storage_order > 1 {
                return Err(a
                    .err(
                        "storage_order",
                        format_args!("must be 0 or 1, got {storage_order}"),
                    )
                    .into());
            }
            Ok(simple(Op::MaxPool {
                window: window(&a, true)?,
                ceil_mode: a.flag("ceil_mode", false)?,
                storage_order: storage_order as u8,
            }))
        }
        "AveragePool" => Ok(simple(Op::AveragePool {
            window: window(&a, true)?,
            ceil_mode: a.flag("ceil_mode", false)?,
            count_include_pad: a.flag("count_include_pad", false)?,
        })),
        "GlobalAveragePool" => Ok(simple(Op::GlobalAveragePool)),
        "GlobalMaxPool" => Ok(simple(Op::GlobalMaxPool)),
        "LpNormalization" => {
            let p = a.int_or("p", 2)?;
            if p != 1 && p != 2 {
                return Err(a.err("p", format_args!("must be 1 or 2, got {p}")).into());
            }
            Ok(simple(Op::LpNormalization {
                axis: a.int_or("axis", -1)?,
                p: p as u8,
            }))
        }
        "BatchNormalization" => {
            if a.flag("training_mode", false)? {
                return unsupported("BatchNormalization training_mode=1 is not supported");
            }
            if opset < 9 && !a.flag("spatial", true)? {
                return unsupported("BatchNormalization spatial=0 is not supported");
            }
            if node.output.iter().skip(1).any(|o| !o.is_empty()) {
                return unsupported(
                    "BatchNormalization training outputs (running mean/var) are not supported",
                );
            }
            Ok(Lowered::Node {
                op: Op::Norm {
                    op: NormOp::BatchNormalization,
                    epsilon: a.float_or("epsilon", 1e-5)?,
                },
                inputs: ins(),
                outputs: 1,
            })
        }
        "InstanceNormalization" => Ok(simple(Op::Norm {
            op: NormOp::InstanceNormalization,
            epsilon: a.float_or("epsilon", 1e-5)?,
        })),
        "LayerNormalization" => Ok(simple(Op::Norm {
            op: NormOp::LayerNormalization {
                axis: a.int_or("axis", -1)?,
            },
            epsilon: a.float_or("epsilon", 1e-5)?,
        })),
        "GroupNormalization" => {
            let num_groups = a.usize_req("num_groups", 1)?;
            let epsilon = a.float_or("epsilon", 1e-5)?;
            if opset < 21 {
                return Ok(Lowered::GroupNormPerGroup {
                    num_groups,
                    epsilon,
                });
            }
            Ok(simple(Op::Norm {
                op: NormOp::GroupNormalization { num_groups },
                epsilon,
            }))
        }
        "RMSNormalization" => Ok(simple(Op::Norm {
            op: NormOp::RmsNormalization {
                axis: a.int_or("axis", -1)?,
            },
            epsilon: a.float_or("epsilon", 1e-5)?,
        })),
        "LRN" => Ok(simple(Op::Lrn {
            alpha: a.float_or("alpha", 1e-4)?,
            beta: a.float_or("beta", 0.75)?,
            bias: a.float_or("bias", 1.0)?,
            size: a.usize_req("size", 1)?,
        })),
        "Gemm" => Ok(simple(Op::Gemm {
            alpha: a.float_or("alpha", 1.0)?,
            beta: a.float_or("beta", 1.0)?,
            trans_a: a.flag("transA", false)?,
            trans_b: a.flag("transB", false)?,
        })),
        "MatMul" => Ok(simple(Op::MatMul)),
        "Einsum" => Ok(simple(Op::Einsum {
            equation: a
                .string("equation")?
                .ok_or_else(|| a.err("equation", "is required but missing"))?
                .to_string(),
        })),
        "Resize" if opset < 11 => Ok(Lowered::Node {
            op: Op::Resize(legacy_resize(&a)?),
            inputs: vec![input(0), In::Value(""), input(1)],
            outputs: nout,
        }),
        "Resize" => Ok(simple(Op::Resize(resize(&a)?))),
        "Upsample" => {
            let op = Op::Resize(legacy_resize(&a)?);
            let scales = if opset >= 9 {
                no_attr(&a, "scales", opset, 9)?;
                input(1)
            } else {
                let s = a
                    .floats("scales")?
                    .ok_or_else(|| a.err("scales", "is required but missing"))?
                    .to_vec();
                let t = Tensor::from_vec(vec![s.len()], s).map_err(|e| a.err("scales", e))?;
                In::Const(t, "scales")
            };
            Ok(Lowered::Node {
                op,
                inputs: vec![input(0), In::Value(""), scales],
                outputs: nout,
            })
        }
        "DepthToSpace" => Ok(simple(Op::DepthToSpace {
            blocksize: a.usize_req("blocksize", 1)?,
            crd: match a.string_or("mode", "DCR")? {
                "DCR" => false,
                "CRD" => true,
                s => {
                    return Err(a
                        .err("mode", format_args!("has unknown value '{s}'"))
                        .into());
                }
            },
        })),
        "SpaceToDepth" => {
            // Opset 28 added `mode`; optc implements the original (DCR) ordering.
            if a.string_or("mode", "DCR")? != "DCR" {
                return unsupported("SpaceToDepth mode 'CRD'");
            }
            Ok(simple(Op::SpaceToDepth {
                blocksize: a.usize_req("blocksize", 1)?,
            }))
        }
        "Pad" => {
            let mode = match a.string_or("mode", "constant")? {
                "constant" => PadMode::Constant,
                "reflect" => PadMode::Reflect,
                "edge" => PadMode::Edge,
                "wrap" if opset >= 19 => PadMode::Wrap,
                s => {
                    return Err(a
                        .err("mode", format_args!("has unknown value '{s}'"))
                        .into());
                }
            };
            if opset >= 11 {
                no_attr(&a, "pads", opset, 11)?;
                return Ok(simple(Op::Pad { mode }));
            }
            let pads = a
                .ints("pads")?
                .ok_or_else(|| a.err("pads", "is required but missing"))?;
            let mut inputs = vec![input(0), In::Const(i64s(pads), "pads")];
            if let Some(v) = a.float("value")? {
                inputs.push(In::ConstLike(Tensor::scalar(v), 0, "value"));
            }
            Ok(Lowered::Node {
                op: Op::Pad { mode },
                inputs,
                outputs: nout,
            })
        }
        "Trilu" => Ok(simple(Op::Trilu {
            upper: a.flag("upper", true)?,
        })),
        "Reshape" => Ok(simple(Op::Reshape {
            allowzero: a.flag("allowzero", false)?,
        })),
        "Flatten" => Ok(simple(Op::Flatten {
            axis: a.int_or("axis", 1)?,
        })),
        "Squeeze" | "Unsqueeze" => {
            let op = if t == "Squeeze" {
                Op::Squeeze
            } else {
                Op::Unsqueeze
            };
            if opset >= 13 {
                no_attr(&a, "axes", opset, 13)?;
                return Ok(simple(op));
            }
            let mut inputs = vec![input(0)];
            match a.ints("axes")? {
                Some(axes) => inputs.push(In::Const(i64s(axes), "axes")),
                None if t == "Unsqueeze" => {
                    return Err(a.err("axes", "is required but missing").into());
                }
                None => {}
            }
            Ok(Lowered::Node {
                op,
                inputs,
                outputs: nout,
            })
        }
        "Transpose" => {
            let perm = match a.ints("perm")? {
                None => None,
                Some(p) => {
                    let mut seen = vec![false; p.len()];
                    for &x in p {
                        match usize::try_from(x).ok().filter(|&x| x < p.len()) {
                            Some(x) if !seen[x] => seen[x] = true,
                            _ => {
                                return Err(a
                                    .err("perm", format_args!("{p:?} is not a permutation"))
                                    .into());
                            }
                        }
                    }
                    Some(p.iter().map(|&x| x as usize).collect())
                }
            };
            Ok(simple(Op::Transpose { perm }))
        }
        "Concat" => Ok(simple(Op::Concat {
            axis: a.int_req("axis")?,
        })),
        "Split" => {
            let num_outputs = match a.int("num_outputs")? {
                None => None,
                Some(_) => Some(a.usize_req("num_outputs", 1)?),
            };
            let op = Op::Split {
                axis: a.int_or("axis", 0)?,
                num_outputs,
            };
            if opset >= 13 {
                no_attr(&a, "split", opset, 13)?;
                return Ok(simple(op));
            }
            let mut inputs = vec![input(0)];
            if let Some(split) = a.ints("split")? {
                inputs.push(In::Const(i64s(split), "split"));
            } else if node.input.len() > 1 {
                // Split-2 had no split input; some exporters still pass one.
                inputs.push(input(1));
            }
            Ok(Lowered::Node {
                op,
                inputs,
                outputs: nout,
            })
        }
        "Slice" => {
            if opset >= 10 {
                for n in ["starts", "ends", "axes"] {
                    no_attr(&a, n, opset, 10)?;
                }
                return Ok(simple(Op::Slice));
            }
            let req = |n: &'static str| {
                a.ints(n)?
                    .ok_or_else(|| a.err(n, "is required but missing"))
            };
            let mut inputs = vec![
                input(0),
                In::Const(i64s(req("starts")?), "starts"),
                In::Const(i64s(req("ends")?), "ends"),
            ];
            if let Some(axes) = a.ints("axes")? {
                inputs.push(In::Const(i64s(axes), "axes"));
            }
            Ok(Lowered::Node {
                op: Op::Slice,
                inputs,
                outputs: nout,
            })
        }
        "Gather" => Ok(simple(Op::Gather {
            axis: a.int_or("axis", 0)?,
        })),
        "GatherElements" => Ok(simple(Op::GatherElements {
            axis: a.int_or("axis", 0)?,
        })),
        "GatherND" => Ok(simple(Op::GatherNd {
            batch_dims: a.usize_or("batch_dims", 0, 0)?,
        })),
        "Scatter" => Ok(simple(Op::ScatterElements {
            axis: a.int_or("axis", 0)?,
            reduction: ScatterReduction::None,
        })),
        "ScatterElements" => Ok(simple(Op::ScatterElements {
            axis: a.int_or("axis", 0)?,
            reduction: scatter_reduction(&a)?,
        })),
        "ScatterND" => Ok(simple(Op::ScatterNd {
            reduction: scatter_reduction(&a)?,
        })),
        "Expand" => Ok(simple(Op::Expand)),
        "Tile" => Ok(simple(Op::Tile)),
        "Shape" => Ok(simple(Op::Shape {
            start: a.int_or("start", 0)?,
            end: a.int("end")?,
        })),
        "Size" => Ok(simple(Op::Size)),
        "ConstantOfShape" => {
            let value = match a.tensor("value")? {
                None => Tensor::scalar(0f32),
                Some(tp) => {
                    let v = decode(tp, ext)?;
                    if v.numel() != 1 {
                        return Err(a
                            .err(
                                "value",
                                format_args!("must have one element, has {}", v.numel()),
                            )
                            .into());
                    }
                    v
                }
            };
            Ok(simple(Op::ConstantOfShape { value }))
        }
        "Range" => Ok(simple(Op::Range)),
        "OneHot" => Ok(simple(Op::OneHot {
            axis: a.int_or("axis", -1)?,
        })),
        "NonZero" => Ok(simple(Op::NonZero)),
        "EyeLike" => Ok(simple(Op::EyeLike {
            dtype: a
                .int("dtype")?
                .map(|c| dtype_attr(&a, "dtype", c))
                .transpose()?,
            k: a.int_or("k", 0)?,
        })),
        "QuantizeLinear" => Ok(simple(Op::QuantizeLinear {
            axis: a.int_or("axis", 1)?,
            block_size: a.usize_or("block_size", 0, 0)?,
            output_dtype: match a.int_or("output_dtype", 0)? {
                0 => None,
                c => Some(dtype_attr(&a, "output_dtype", c)?),
            },
            saturate: a.flag("saturate", true)?,
        })),
        "DequantizeLinear" => Ok(simple(Op::DequantizeLinear {
            axis: a.int_or("axis", 1)?,
            block_size: a.usize_or("block_size", 0, 0)?,
        })),
        "DynamicQuantizeLinear" => Ok(simple(Op::DynamicQuantizeLinear)),
        "QLinearConv" => Ok(simple(Op::QLinearConv(conv_attrs(&a)?))),
        "QLinearMatMul" => Ok(simple(Op::QLinearMatMul)),
        "MatMulInteger" => Ok(simple(Op::MatMulInteger)),
        "ConvInteger" => Ok(simple(Op::ConvInteger(conv_attrs(&a)?))),
        "NegativeLogLikelihoodLoss" => Ok(simple(Op::NegativeLogLikelihoodLoss {
            reduction: loss_reduction(&a)?,
            ignore_index: a.int("ignore_index")?,
        })),
        "SoftmaxCrossEntropyLoss" => Ok(simple(Op::SoftmaxCrossEntropyLoss {
            reduction: loss_reduction(&a)?,
            ignore_index: a.int("ignore_index")?,
        })),
        "BitwiseAnd" => Ok(simple(Op::Bitwise(BitwiseOp::And))),
        "BitwiseOr" => Ok(simple(Op::Bitwise(BitwiseOp::Or))),
        "BitwiseXor" => Ok(simple(Op::Bitwise(BitwiseOp::Xor))),
        "BitwiseNot" => Ok(simple(Op::Bitwise(BitwiseOp::Not))),
        "CumProd" => Ok(simple(Op::CumProd {
            exclusive: a.flag("exclusive", false)?,
            reverse: a.flag("reverse", false)?,
        })),
        "LpPool" => Ok(simple(Op::LpPool {
            window: window(&a, true)?,
            ceil_mode: a.flag("ceil_mode", false)?,
            p: a.int_or("p", 2)?,
        })),
        "Swish" => Ok(simple(Op::Swish {
            alpha: a.float_or("alpha", 1.0)?,
        })),
        "Compress" => Ok(simple(Op::Compress {
            axis: a.int("axis")?,
        })),
        "CenterCropPad" => Ok(simple(Op::CenterCropPad {
            axes: a.ints("axes")?.map(<[i64]>::to_vec).unwrap_or_default(),
        })),
        "ReverseSequence" => Ok(simple(Op::ReverseSequence {
            batch_axis: a.int_or("batch_axis", 1)?,
            time_axis: a.int_or("time_axis", 0)?,
        })),
        "Shrink" => Ok(simple(Op::Shrink {
            bias: a.float_or("bias", 0.0)?,
            lambd: a.float_or("lambd", 0.5)?,
        })),
        "MeanVarianceNormalization" => Ok(simple(Op::MeanVarianceNormalization {
            axes: a
                .ints("axes")?
                .map_or_else(|| vec![0, 2, 3], <[i64]>::to_vec),
        })),
        "HannWindow" | "HammingWindow" | "BlackmanWindow" => {
            let code = a.int_or("output_datatype", 1)?;
            let output_datatype = i32::try_from(code)
                .ok()
                .and_then(DType::from_onnx_code)
                .ok_or_else(|| {
                    a.err(
                        "output_datatype",
                        format_args!("{code} is not a supported dtype"),
                    )
                })?;
            Ok(simple(Op::SignalWindow {
                kind: match t {
                    "HannWindow" => WindowKind::Hann,
                    "HammingWindow" => WindowKind::Hamming,
                    _ => WindowKind::Blackman,
                },
                periodic: a.flag("periodic", true)?,
                output_datatype,
            }))
        }
        "AffineGrid" => Ok(simple(Op::AffineGrid {
            align_corners: a.flag("align_corners", false)?,
        })),
        "Col2Im" => Ok(simple(Op::Col2Im {
            dilations: a.usizes("dilations", 1)?,
            pads: a.usizes("pads", 0)?,
            strides: a.usizes("strides", 1)?,
        })),
        "GridSample" => {
            let mode = match a.string_or("mode", if opset >= 20 { "linear" } else { "bilinear" })? {
                "linear" | "bilinear" => GridSampleMode::Linear,
                "nearest" => GridSampleMode::Nearest,
                "cubic" | "bicubic" => GridSampleMode::Cubic,
                s => {
                    return Err(a
                        .err("mode", format_args!("has unknown value '{s}'"))
                        .into());
                }
            };
            let padding_mode = match a.string_or("padding_mode", "zeros")? {
                "zeros" => GridPadding::Zeros,
                "border" => GridPadding::Border,
                "reflection" => GridPadding::Reflection,
                s => {
                    return Err(a
                        .err("padding_mode", format_args!("has unknown value '{s}'"))
                        .into());
                }
            };
            Ok(simple(Op::GridSample {
                mode,
                padding_mode,
                align_corners: a.flag("align_corners", false)?,
            }))
        }
        "Constant" => {
            if node.output.len() != 1 || node.output[0].is_empty() {
                return Err(at
                    .invalid("Constant must have exactly one named output")
                    .into());
            }
            Ok(Lowered::Constant(constant(&a)?))
        }
        "If" => {
            let get = |n: &str| {
                a.graph(n)?
                    .ok_or_else(|| a.err(n, "is required but missing"))
            };
            Ok(Lowered::If {
                then_branch: get("then_branch")?,
                else_branch: get("else_branch")?,
            })
        }
        _ => unsupported("no such operator in optc"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onnx_protobuf::attribute_proto::AttributeType;
    use onnx_protobuf::{AttributeProto, NodeProto};

    fn ints(name: &str, v: &[i64]) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            type_: protobuf::EnumOrUnknown::new(AttributeType::INTS),
            ints: v.to_vec(),
            ..Default::default()
        }
    }
    fn int(name: &str, v: i64) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            type_: protobuf::EnumOrUnknown::new(AttributeType::INT),
            i: v,
            ..Default::default()
        }
    }
    fn float(name: &str, v: f32) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            type_: protobuf::EnumOrUnknown::new(AttributeType::FLOAT),
            f: v,
            ..Default::default()
        }
    }
    fn string(name: &str, v: &str) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            type_: protobuf::EnumOrUnknown::new(AttributeType::STRING),
            s: v.as_bytes().to_vec(),
            ..Default::default()
        }
    }
    fn node(op: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> NodeProto {
        NodeProto {
            name: "n".into(),
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec!["y".into()],
            attribute: attrs,
            ..Default::default()
        }
    }

    fn conv(n: &NodeProto, opset: i64) -> Res<Lowered<'_>> {
        convert(
            NodeRef {
                node: n,
                index: 0,
                path: "",
            },
            opset,
            &mut ExternalData::new(None),
        )
    }

    fn op_of(n: &NodeProto, opset: i64) -> (Op, Vec<Option<Tensor>>) {
        match conv(n, opset) {
            Ok(Lowered::Node { op, inputs, .. }) => (
                op,
                inputs
                    .into_iter()
                    .map(|i| match i {
                        In::Value(_) => None,
                        In::Const(t, _) | In::ConstLike(t, _, _) => Some(t),
                    })
                    .collect(),
            ),
            _ => panic!("not a plain node"),
        }
    }

    fn err(n: &NodeProto, opset: i64) -> String {
        match conv(n, opset) {
            Err(NodeError::Fatal(e)) => e.to_string(),
            Err(NodeError::Unsupported(r)) => format!("unsupported: {r}"),
            Ok(_) => panic!("converted"),
        }
    }

    #[test]
    fn reduce_axes_attribute_becomes_an_input_by_opset() {
        let n = node(
            "ReduceMean",
            &["x"],
            vec![ints("axes", &[1, -1]), int("keepdims", 0)],
        );
        let (op, consts) = op_of(&n, 17);
        assert_eq!(
            op,
            Op::Reduce {
                op: ReduceOp::Mean,
                keepdims: false,
                noop_with_empty_axes: false
            }
        );
        assert_eq!(consts[1].as_ref().unwrap().view::<i64>(), &[1, -1]);
        // At 18 the attribute is gone.
        assert!(err(&n, 18).contains("'axes' is an input since opset 18"));
        // ReduceSum moved at 13.
        let n = node("ReduceSum", &["x"], vec![ints("axes", &[0])]);
        assert_eq!(op_of(&n, 12).1.len(), 2);
        assert!(err(&n, 13).contains("since opset 13"));
        let n = node("ReduceSum", &["x", "axes"], vec![]);
        assert_eq!(op_of(&n, 13).1.len(), 2);
    }

    #[test]
    fn old_slice_pad_clip_split_topk_forms() {
        let n = node(
            "Slice",
            &["x"],
            vec![ints("starts", &[1]), ints("ends", &[3]), ints("axes", &[0])],
        );
        let (op, c) = op_of(&n, 9);
        assert_eq!(op, Op::Slice);
        assert_eq!(c[1].as_ref().unwrap().view::<i64>(), &[1]);
        assert_eq!(c[2].as_ref().unwrap().view::<i64>(), &[3]);
        assert_eq!(c[3].as_ref().unwrap().view::<i64>(), &[0]);

        let n = node(
            "Pad",
            &["x"],
            vec![
                ints("pads", &[0, 1, 0, 1]),
                float("value", 2.5),
                string("mode", "constant"),
            ],
        );
        let (op, c) = op_of(&n, 10);
        assert_eq!(
            op,
            Op::Pad {
                mode: PadMode::Constant
            }
        );
        assert_eq!(c[1].as_ref().unwrap().view::<i64>(), &[0, 1, 0, 1]);
        assert_eq!(c[2].as_ref().unwrap().scalar_f64(), Some(2.5));
        let n = node("Pad", &["x", "p"], vec![string("mode", "wrap")]);
        assert!(err(&n, 18).contains("'mode' has unknown value 'wrap'"));
        assert_eq!(
            op_of(&n, 19).0,
            Op::Pad {
                mode: PadMode::Wrap
            }
        );

        let n = node("Clip", &["x"], vec![float("max", 6.0)]);
        let (op, c) = op_of(&n, 7);
        assert_eq!(op, Op::Clip);
        assert!(c[1].is_none(), "no min: absent input");
        assert_eq!(c[2].as_ref().unwrap().scalar_f64(), Some(6.0));

        let mut n = node(
            "Split",
            &["x"],
            vec![ints("split", &[2, 3]), int("axis", 1)],
        );
        n.output = vec!["a".into(), "b".into()];
        let (op, c) = op_of(&n, 11);
        assert_eq!(
            op,
            Op::Split {
                axis: 1,
                num_outputs: None
            }
        );
        assert_eq!(c[1].as_ref().unwrap().view::<i64>(), &[2, 3]);

        let n = node("TopK", &["x"], vec![int("k", 3)]);
        let (_, c) = op_of(&n, 9);
        assert_eq!(c[1].as_ref().unwrap().view::<i64>(), &[3]);
        let n = node("Unsqueeze", &["x"], vec![]);
        assert!(err(&n, 11).contains("'axes' is required"));
        let n = node("Squeeze", &["x"], vec![]);
        assert_eq!(op_of(&n, 11).1.len(), 1);
    }

    #[test]
    fn softmax_legacy_and_default_axis_follow_the_opset() {
        let n = node("Softmax", &["x"], vec![]);
        assert_eq!(
            op_of(&n, 11).0,
            Op::Softmax {
                axis: 1,
                legacy: true
            }
        );
        assert_eq!(
            op_of(&n, 13).0,
            Op::Softmax {
                axis: -1,
                legacy: false
            }
        );
    }

    #[test]
    fn attribute_values_are_checked() {
        let n = node(
            "Conv",
            &["x", "w"],
            vec![string("auto_pad", "SAME_WHATEVER")],
        );
        let e = err(&n, 17);
        assert!(
            e.contains("node 'n' (#0, Conv)") && e.contains("'auto_pad'"),
            "{e}"
        );
        let n = node("Conv", &["x", "w"], vec![int("group", 0)]);
        assert!(err(&n, 17).contains("'group' must be at least 1"));
        let n = node("Conv", &["x", "w"], vec![ints("strides", &[1, 0])]);
        assert!(err(&n, 17).contains("'strides'"));
        let n = node(
            "Conv",
            &["x", "w"],
            vec![ints("kernel_shape", &[3, 3]), ints("strides", &[1, 1, 1])],
        );
        assert!(err(&n, 17).contains("3 spatial entries"));
        let n = node("Transpose", &["x"], vec![ints("perm", &[0, 2, 2])]);
        assert!(err(&n, 17).contains("not a permutation"));
        let n = node("Transpose", &["x"], vec![ints("perm", &[1, 0])]);
        assert_eq!(
            op_of(&n, 17).0,
            Op::Transpose {
                perm: Some(vec![1, 0])
            }
        );
        let n = node("MaxPool", &["x"], vec![]);
        assert!(err(&n, 17).contains("'kernel_shape' is required"));
        let n = node("Resize", &["x", "", "s"], vec![string("mode", "bicubic")]);
        assert!(err(&n, 17).contains("'mode' has unknown value 'bicubic'"));
        let n = node("Cast", &["x"], vec![int("to", 8)]);
        assert!(err(&n, 17).starts_with("unsupported: Cast with to=STRING"));
        let n = node("Cast", &["x"], vec![int("to", 10)]);
        assert_eq!(op_of(&n, 17).0, Op::Cast { to: DType::F16 });
        let n = node("Cast", &["x"], vec![float("to", 1.0)]);
        assert!(err(&n, 17).contains("'to' must be INT but is FLOAT"));
        let n = node("BitShift", &["a", "b"], vec![string("direction", "UP")]);
        assert!(err(&n, 17).contains("'direction'"));
        let n = node("BitShift", &["a", "b"], vec![string("direction", "RIGHT")]);
        assert_eq!(op_of(&n, 17).0, Op::Binary(BinaryOp::BitShiftRight));
        let n = node("Mod", &["a", "b"], vec![int("fmod", 1)]);
        assert_eq!(op_of(&n, 17).0, Op::Binary(BinaryOp::Mod { fmod: true }));
    }

    #[test]
    fn ops_newer_than_the_opset_and_unknown_ops_are_unsupported() {
        let n = node("Gelu", &["x"], vec![string("approximate", "tanh")]);
        assert!(err(&n, 17).contains("does not exist before opset 20"));
        assert_eq!(
            op_of(&n, 20).0,
            Op::Activation(ActivationOp::Gelu { tanh: true })
        );
        let n = node("Upsample", &["x", "s"], vec![]);
        assert!(err(&n, 11).contains("removed after opset 9"));
        let n = node("FooBar", &["x"], vec![]);
        assert!(err(&n, 17).contains("no such operator"));
    }

    #[test]
    fn upsample_and_old_resize_become_resize() {
        let n = node(
            "Upsample",
            &["x"],
            vec![
                AttributeProto {
                    name: "scales".into(),
                    type_: protobuf::EnumOrUnknown::new(AttributeType::FLOATS),
                    floats: vec![1.0, 1.0, 2.0, 2.0],
                    ..Default::default()
                },
                string("mode", "nearest"),
            ],
        );
        let (op, c) = op_of(&n, 7);
        let Op::Resize(r) = op else { panic!() };
        assert_eq!(r.coord, CoordTransform::Asymmetric);
        assert_eq!(r.nearest, NearestMode::Floor);
        assert!(c[1].is_none());
        assert_eq!(c[2].as_ref().unwrap().view::<f32>(), &[1.0, 1.0, 2.0, 2.0]);
        let n = node("Resize", &["x", "scales"], vec![string("mode", "linear")]);
        match conv(&n, 10) {
            Ok(Lowered::Node {
                op: Op::Resize(r),
                inputs,
                ..
            }) => {
                assert_eq!(r.mode, ResizeMode::Linear);
                assert!(matches!(inputs[1], In::Value("")));
                assert!(matches!(inputs[2], In::Value("scales")));
            }
            _ => panic!(),
        }
    }

    #[test]
    fn constants_from_every_attribute_form() {
        let n = node("Constant", &[], vec![float("value_float", 1.5)]);
        assert!(
            matches!(conv(&n, 17), Ok(Lowered::Constant(ConstSrc::Tensor(t))) if t.scalar_f64() == Some(1.5))
        );
        let n = node("Constant", &[], vec![ints("value_ints", &[1, 2])]);
        assert!(
            matches!(conv(&n, 17), Ok(Lowered::Constant(ConstSrc::Tensor(t))) if t.view::<i64>() == [1, 2])
        );
        let n = node("Constant", &[], vec![string("value_string", "hi")]);
        assert!(err(&n, 17).contains("string tensor"));
        let n = node("Constant", &[], vec![]);
        assert!(err(&n, 17).contains("exactly one value attribute"));
        let n = node(
            "Constant",
            &[],
            vec![AttributeProto {
                name: "sparse_value".into(),
                type_: protobuf::EnumOrUnknown::new(AttributeType::SPARSE_TENSOR),
                ..Default::default()
            }],
        );
        assert!(err(&n, 17).contains("sparse_value"));
    }

    #[test]
    fn constant_of_shape_value_defaults_to_f32_zero() {
        let n = node("ConstantOfShape", &["s"], vec![]);
        assert_eq!(
            op_of(&n, 17).0,
            Op::ConstantOfShape {
                value: Tensor::scalar(0f32)
            }
        );
        let n = node(
            "ConstantOfShape",
            &["s"],
            vec![AttributeProto {
                name: "value".into(),
                type_: protobuf::EnumOrUnknown::new(AttributeType::TENSOR),
                t: protobuf::MessageField::some(TensorProto {
                    dims: vec![1],
                    data_type: 7,
                    int64_data: vec![3],
                    ..Default::default()
                }),
                ..Default::default()
            }],
        );
        let Op::ConstantOfShape { value } = op_of(&n, 17).0 else {
            panic!()
        };
        assert_eq!(value.view::<i64>(), &[3]);
    }

    #[test]
    fn batchnorm_and_group_norm_forms() {
        let n = node(
            "BatchNormalization",
            &["x", "s", "b", "m", "v"],
            vec![int("spatial", 0)],
        );
        assert!(err(&n, 7).contains("spatial=0"));
        let n = node(
            "BatchNormalization",
            &["x", "s", "b", "m", "v"],
            vec![int("spatial", 1)],
        );
        assert!(matches!(conv(&n, 7), Ok(Lowered::Node { outputs: 1, .. })));
        let n = node(
            "BatchNormalization",
            &["x", "s", "b", "m", "v"],
            vec![int("training_mode", 1)],
        );
        assert!(err(&n, 15).contains("training_mode"));
        let n = node(
            "GroupNormalization",
            &["x", "s", "b"],
            vec![int("num_groups", 2)],
        );
        assert!(matches!(
            conv(&n, 18),
            Ok(Lowered::GroupNormPerGroup { num_groups: 2, .. })
        ));
        assert_eq!(
            op_of(&n, 21).0,
            Op::Norm {
                op: NormOp::GroupNormalization { num_groups: 2 },
                epsilon: 1e-5
            }
        );
    }
}
