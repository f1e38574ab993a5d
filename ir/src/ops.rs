//! The closed set of operators of the graph IR.
//!
//! Every op takes the inputs of the *newest* ONNX opset form of its operator: attributes that
//! later opsets turned into inputs (Reduce* `axes`, Slice `starts`/`ends`, Pad `pads`, Clip
//! `min`/`max`, Split `split`, Squeeze/Unsqueeze `axes`, TopK `k`, Resize `scales`...) are
//! inputs here, and the importer turns the older attribute forms into constant inputs. Optional
//! inputs that are absent are `None` in [`crate::graph::Node::inputs`]. Input and output lists
//! are documented on each variant; "(opt)" marks an optional input.
//!
//! Attributes are typed; there are no op-type strings past the importer.

use crate::dtype::DType;
use crate::graph::Graph;
use crate::tensor::Tensor;

/// Elementwise ops of one input with no parameters (or a fixed one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)]
pub enum UnaryOp {
    Abs,
    Neg,
    Exp,
    Log,
    Sqrt,
    Reciprocal,
    Sin,
    Cos,
    Tan,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Asinh,
    Acosh,
    Atanh,
    Tanh,
    Sigmoid,
    Erf,
    Floor,
    Ceil,
    /// Round half to even.
    Round,
    Sign,
    /// Logical not (bool only).
    Not,
    /// Output bool.
    IsNaN,
    Relu,
    Softplus,
    Softsign,
    Mish,
    HardSwish,
}

/// How a loss op reduces its per-element losses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LossReduction {
    /// Per-element losses, shape `[N, d1..dk]`.
    None,
    /// Their sum (a scalar).
    Sum,
    /// Their weighted mean (a scalar): the sum divided by the sum of the applied weights.
    Mean,
}

/// Elementwise ops of one input with float parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ActivationOp {
    /// `x < 0 ? alpha * x : x`
    LeakyRelu {
        /// Slope for negative inputs.
        alpha: f32,
    },
    /// `x < 0 ? alpha * (exp(x) - 1) : x`
    Elu {
        /// Scale for negative inputs.
        alpha: f32,
    },
    /// `gamma * (x <= 0 ? alpha * (exp(x) - 1) : x)`
    Selu {
        /// alpha
        alpha: f32,
        /// gamma
        gamma: f32,
    },
    /// `max(0, x) + min(0, alpha * (exp(x / alpha) - 1))`
    Celu {
        /// alpha
        alpha: f32,
    },
    /// `max(0, min(1, alpha * x + beta))`
    HardSigmoid {
        /// alpha
        alpha: f32,
        /// beta
        beta: f32,
    },
    /// `x > alpha ? x : 0`
    ThresholdedRelu {
        /// alpha
        alpha: f32,
    },
    /// Gelu, exact (erf) or with the tanh approximation.
    Gelu {
        /// Use the tanh approximation.
        tanh: bool,
    },
    /// Output bool: `x` is +inf (when `detect_positive`) or -inf (when `detect_negative`).
    IsInf {
        /// Detect -inf.
        detect_negative: bool,
        /// Detect +inf.
        detect_positive: bool,
    },
}

/// Elementwise ops of two broadcast inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    /// Integer division truncates toward zero.
    Div,
    /// The exponent may have another dtype than the base; the output has the base's dtype.
    Pow,
    /// Integer mod takes the sign of the divisor (Python); `fmod` (C) when `Mod { fmod: true }`.
    Mod {
        fmod: bool,
    },
    /// Bool inputs and output.
    And,
    Or,
    Xor,
    /// Output bool.
    Equal,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    /// Unsigned integers only.
    BitShiftLeft,
    BitShiftRight,
    /// `x < 0 ? slope * x : x` with `slope` (input 1) broadcast to `x` (unidirectional).
    PRelu,
}

/// Ops over any number (≥ 1) of broadcast inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)]
pub enum VariadicOp {
    Sum,
    Mean,
    /// NaN propagates.
    Max,
    Min,
}

/// Reductions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)]
pub enum ReduceOp {
    Sum,
    Mean,
    Max,
    Min,
    Prod,
    L1,
    L2,
    SumSquare,
    LogSum,
    LogSumExp,
}

/// `auto_pad` of Conv-like and pooling ops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum AutoPad {
    /// Explicit `pads`.
    #[default]
    NotSet,
    /// Pad so that `out = ceil(in / stride)`, extra padding at the end.
    SameUpper,
    /// Same, extra padding at the beginning.
    SameLower,
    /// No padding.
    Valid,
}

/// Bitwise integer ops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)]
pub enum BitwiseOp {
    And,
    Or,
    Xor,
    Not,
}

/// The signal windows (HannWindow, HammingWindow, BlackmanWindow).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)]
pub enum WindowKind {
    Hann,
    Hamming,
    Blackman,
}

/// GridSample interpolation modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)]
pub enum GridSampleMode {
    Linear,
    Nearest,
    Cubic,
}

/// GridSample padding modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)]
pub enum GridPadding {
    Zeros,
    Border,
    Reflection,
}

/// Window attributes shared by Conv, ConvTranspose, pooling and the integer convs.
///
/// Empty vectors mean "not given": the defaults (kernel from the weight, strides and
/// dilations 1, pads 0) are resolved against the input rank at inference and evaluation.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Window {
    /// Kernel spatial shape (pooling: required; conv: from the weight when empty).
    pub kernel_shape: Vec<usize>,
    /// Strides per spatial axis.
    pub strides: Vec<usize>,
    /// Dilations per spatial axis.
    pub dilations: Vec<usize>,
    /// `[x1_begin, x2_begin, ..., x1_end, x2_end, ...]`.
    pub pads: Vec<usize>,
    /// Automatic padding.
    pub auto_pad: AutoPad,
}

/// Attributes of Conv-like ops.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct ConvAttrs {
    /// Window.
    pub window: Window,
    /// Number of groups.
    pub group: usize,
    /// Where the channels of X and Y live (Conv only; the other Conv-like ops are always
    /// channels-first).
    pub layout: ConvLayout,
}

/// Where a Conv's channel axis lives in its input and its output.
///
/// ONNX's layout is channels-first (`[N, C, spatial...]`). The optimizer's layout stage may
/// store either side channels-last (`[N, spatial..., C]`): the conv kernels read and write
/// both through strides, and channels-last lets them load and store vec4s along the channels
/// where a channels-first plane is not a multiple of 4 wide. The weight is `[M, C/group,
/// kernel...]`, or `[M, kernel..., C/group]` with `weight_last` (then an im2col row's K runs
/// tap-major, each tap's channels contiguous, as they are in a channels-last input).
/// Reference semantics: transpose X and W to channels-first, convolve, transpose Y to the
/// stored layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ConvLayout {
    /// X is stored `[N, spatial..., C]`.
    pub input_last: bool,
    /// Y is stored `[N, spatial..., M]`.
    pub output_last: bool,
    /// W is stored `[M, kernel..., C/group]`.
    pub weight_last: bool,
}

impl ConvLayout {
    /// Every operand channels-first (ONNX's layout).
    pub fn is_first(self) -> bool {
        !self.input_last && !self.output_last && !self.weight_last
    }

    /// The permutation taking a channels-last tensor of rank `rank` to channels-first:
    /// `[0, rank - 1, 1, .., rank - 2]`.
    pub fn to_first(rank: usize) -> Vec<usize> {
        let mut p = vec![0];
        if rank > 1 {
            p.push(rank - 1);
            p.extend(1..rank - 1);
        }
        p
    }

    /// The dims of a side stored channels-last (when `last`; rank ≥ 3) in channels-first
    /// order; other dims unchanged.
    pub fn first_dims(dims: &[usize], last: bool) -> Vec<usize> {
        match last && dims.len() >= 3 {
            true => permute(dims, &ConvLayout::to_first(dims.len())).unwrap_or_default(),
            false => dims.to_vec(),
        }
    }

    /// The permutation taking a channels-first tensor of rank `rank` to channels-last:
    /// `[0, 2, .., rank - 1, 1]`.
    pub fn to_last(rank: usize) -> Vec<usize> {
        let mut p = vec![0];
        if rank > 1 {
            p.extend(2..rank);
            p.push(1);
        }
        p
    }
}

/// Normalisation ops with an epsilon.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NormOp {
    /// Inputs: X, scale, B, input_mean, input_var. Outputs: Y (inference mode only).
    BatchNormalization,
    /// Inputs: X, scale, B. Outputs: Y.
    InstanceNormalization,
    /// Inputs: X, Scale, B (opt). Outputs: Y, Mean (opt), InvStdDev (opt).
    LayerNormalization {
        /// First normalised axis (negative counts from the end).
        axis: i64,
    },
    /// Inputs: X, scale, bias (per channel since opset 21; per group before — the importer
    /// expands opset-18 per-group scale/bias to per-channel). Outputs: Y.
    GroupNormalization {
        /// Number of groups.
        num_groups: usize,
    },
    /// Inputs: X, scale. Outputs: Y.
    RmsNormalization {
        /// First normalised axis.
        axis: i64,
    },
}

/// `mode` of Resize.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum ResizeMode {
    Nearest,
    Linear,
    Cubic,
}

/// `coordinate_transformation_mode` of Resize.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum CoordTransform {
    HalfPixel,
    HalfPixelSymmetric,
    PytorchHalfPixel,
    AlignCorners,
    Asymmetric,
    TfCropAndResize,
}

/// `nearest_mode` of Resize.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum NearestMode {
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
}

/// `keep_aspect_ratio_policy` of Resize.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum AspectPolicy {
    Stretch,
    NotLarger,
    NotSmaller,
}

/// Attributes of Resize.
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)]
pub struct ResizeAttrs {
    pub mode: ResizeMode,
    pub coord: CoordTransform,
    pub nearest: NearestMode,
    pub cubic_coeff_a: f32,
    pub exclude_outside: bool,
    pub extrapolation_value: f32,
    pub antialias: bool,
    /// Axes that `roi`/`scales`/`sizes` refer to; empty = all.
    pub axes: Vec<i64>,
    pub aspect: AspectPolicy,
}

/// `reduction` of ScatterElements/ScatterND.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum ScatterReduction {
    None,
    Add,
    Mul,
    Max,
    Min,
}

/// `mode` of Pad.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum PadMode {
    Constant,
    Reflect,
    Edge,
    Wrap,
}

/// An operator with its typed attributes.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Inputs: X. Outputs: Y (same value).
    Identity,
    /// Inputs: X. Outputs: Y.
    Unary(UnaryOp),
    /// Inputs: X. Outputs: Y.
    Activation(ActivationOp),
    /// Inputs: A, B. Outputs: C.
    Binary(BinaryOp),
    /// Inputs: X1..Xn. Outputs: Y.
    Variadic(VariadicOp),
    /// Inputs: X, min (opt), max (opt). Outputs: Y.
    Clip,
    /// Inputs: condition, X, Y. Outputs: Z.
    Where,
    /// Inputs: X. Outputs: Y of `to`, with ONNX's default `saturate = 1` (float8 targets) and
    /// `round_mode = "up"` (FLOAT8E8M0 targets); see [`Op::CastExt`] for other values. (CastLike
    /// becomes Cast at import.)
    Cast {
        /// Target dtype.
        to: DType,
    },
    /// Inputs: X, ratio (opt), training_mode (opt). Outputs: Y, mask (opt). Inference only.
    Dropout,

    /// Inputs: X. Outputs: Y. `legacy` = opset < 13 semantics (coerce to 2-D at `axis`).
    Softmax {
        /// Axis.
        axis: i64,
        /// Opset < 13 semantics.
        legacy: bool,
    },
    /// Like [`Op::Softmax`].
    LogSoftmax {
        /// Axis.
        axis: i64,
        /// Opset < 13 semantics.
        legacy: bool,
    },
    /// Like [`Op::Softmax`].
    Hardmax {
        /// Axis.
        axis: i64,
        /// Opset < 13 semantics.
        legacy: bool,
    },
    /// Inputs: data, axes (opt, i64). Outputs: reduced.
    Reduce {
        /// Which reduction.
        op: ReduceOp,
        /// Keep reduced dims as size 1.
        keepdims: bool,
        /// With no axes: identity instead of reducing everything.
        noop_with_empty_axes: bool,
    },
    /// Inputs: data. Outputs: i64 indices.
    ArgMax {
        /// Axis.
        axis: i64,
        /// keepdims.
        keepdims: bool,
        /// Index of the last occurrence of the max.
        select_last_index: bool,
    },
    /// Inputs: data. Outputs: i64 indices.
    ArgMin {
        /// Axis.
        axis: i64,
        /// keepdims.
        keepdims: bool,
        /// Index of the last occurrence of the min.
        select_last_index: bool,
    },
    /// Inputs: x, axis (scalar). Outputs: y.
    CumSum {
        /// Exclude the current element.
        exclusive: bool,
        /// Sum from the end.
        reverse: bool,
    },
    /// Inputs: X, K (1-element i64). Outputs: Values, Indices (i64).
    TopK {
        /// Axis.
        axis: i64,
        /// Largest (true) or smallest.
        largest: bool,
        /// Sorted output.
        sorted: bool,
    },

    /// Inputs: X, W, B (opt). Outputs: Y.
    Conv(ConvAttrs),
    /// Inputs: X, W, B (opt). Outputs: Y.
    ConvTranspose {
        /// Conv attributes.
        conv: ConvAttrs,
        /// Extra size added to one side of each output spatial dim.
        output_padding: Vec<usize>,
        /// Explicit output spatial shape; pads are then computed.
        output_shape: Vec<usize>,
    },
    /// Inputs: X. Outputs: Y, Indices (opt, i64).
    MaxPool {
        /// Window.
        window: Window,
        /// Ceil instead of floor for output sizes.
        ceil_mode: bool,
        /// Indices in column-major order (1) instead of row-major (0).
        storage_order: u8,
    },
    /// Inputs: X. Outputs: Y.
    AveragePool {
        /// Window.
        window: Window,
        /// Ceil instead of floor for output sizes.
        ceil_mode: bool,
        /// Count padded elements in the divisor.
        count_include_pad: bool,
    },
    /// Inputs: X. Outputs: Y of shape N×C×1×1...
    GlobalAveragePool,
    /// Inputs: X. Outputs: Y of shape N×C×1×1...
    GlobalMaxPool,
    /// Inputs: X. Outputs: Y.
    LpNormalization {
        /// Axis.
        axis: i64,
        /// 1 or 2.
        p: u8,
    },
    /// Normalisations with an epsilon; inputs and outputs per [`NormOp`].
    Norm {
        /// Which normalisation.
        op: NormOp,
        /// Epsilon.
        epsilon: f32,
    },
    /// Inputs: X. Outputs: Y.
    Lrn {
        /// alpha
        alpha: f32,
        /// beta
        beta: f32,
        /// bias
        bias: f32,
        /// size
        size: usize,
    },
    /// Inputs: A, B, C (opt). Outputs: Y.
    Gemm {
        /// alpha
        alpha: f32,
        /// beta
        beta: f32,
        /// Transpose A.
        trans_a: bool,
        /// Transpose B.
        trans_b: bool,
    },
    /// Inputs: A, B. Outputs: Y.
    MatMul,
    /// Inputs: Inputs1..n. Outputs: Output.
    Einsum {
        /// The equation, as written in the model.
        equation: String,
    },

    /// Inputs: X, roi (opt), scales (opt), sizes (opt). Outputs: Y.
    Resize(Box<ResizeAttrs>),
    /// Inputs: input. Outputs: output.
    DepthToSpace {
        /// Block size.
        blocksize: usize,
        /// CRD (true) or DCR (false) ordering.
        crd: bool,
    },
    /// Inputs: input. Outputs: output.
    SpaceToDepth {
        /// Block size.
        blocksize: usize,
    },
    /// Inputs: data, pads (i64), constant_value (opt), axes (opt). Outputs: output.
    Pad {
        /// Mode.
        mode: PadMode,
    },
    /// Inputs: input, k (opt). Outputs: output.
    Trilu {
        /// Upper (true) or lower triangle.
        upper: bool,
    },
    /// Inputs: data, shape (i64). Outputs: reshaped.
    Reshape {
        /// A 0 in `shape` is a real 0 rather than "copy this dim".
        allowzero: bool,
    },
    /// Inputs: input. Outputs: 2-D output.
    Flatten {
        /// Axis.
        axis: i64,
    },
    /// Inputs: data, axes (opt). Outputs: squeezed.
    Squeeze,
    /// Inputs: data, axes. Outputs: expanded.
    Unsqueeze,
    /// Inputs: data. Outputs: transposed. No `perm` = reverse the dims.
    Transpose {
        /// Permutation.
        perm: Option<Vec<usize>>,
    },
    /// Inputs: inputs1..n. Outputs: concat_result.
    Concat {
        /// Axis.
        axis: i64,
    },
    /// Inputs: input, split (opt, i64). Outputs: outputs1..n (n = number of node outputs).
    Split {
        /// Axis.
        axis: i64,
        /// `num_outputs` (opset 18); otherwise the node's output count decides.
        num_outputs: Option<usize>,
    },
    /// Inputs: data, starts, ends, axes (opt), steps (opt). Outputs: output.
    Slice,
    /// Inputs: data, indices. Outputs: output.
    Gather {
        /// Axis.
        axis: i64,
    },
    /// Inputs: data, indices. Outputs: output.
    GatherElements {
        /// Axis.
        axis: i64,
    },
    /// Inputs: data, indices. Outputs: output.
    GatherNd {
        /// Leading batch dims.
        batch_dims: usize,
    },
    /// Inputs: data, indices, updates. Outputs: output.
    ScatterElements {
        /// Axis.
        axis: i64,
        /// Reduction.
        reduction: ScatterReduction,
    },
    /// Inputs: data, indices, updates. Outputs: output.
    ScatterNd {
        /// Reduction.
        reduction: ScatterReduction,
    },
    /// Inputs: input, shape. Outputs: output.
    Expand,
    /// Inputs: input, repeats. Outputs: output.
    Tile,
    /// Inputs: data. Outputs: i64 shape.
    Shape {
        /// start (negative counts from the end).
        start: i64,
        /// end, if given.
        end: Option<i64>,
    },
    /// Inputs: data. Outputs: i64 scalar.
    Size,
    /// Inputs: shape (i64). Outputs: tensor filled with `value` (a one-element tensor).
    ConstantOfShape {
        /// The fill value (one element; its dtype is the output dtype).
        value: Tensor,
    },
    /// Inputs: start, limit, delta (scalars). Outputs: output.
    Range,
    /// Inputs: indices, depth, values. Outputs: output.
    OneHot {
        /// Axis.
        axis: i64,
    },
    /// Inputs: X. Outputs: i64 indices [rank, nnz].
    NonZero,
    /// Inputs: input. Outputs: output.
    EyeLike {
        /// Output dtype; `None` = the input's.
        dtype: Option<DType>,
        /// Diagonal offset.
        k: i64,
    },

    /// Inputs: x, y_scale, y_zero_point (opt). Outputs: y.
    QuantizeLinear {
        /// Axis for per-axis scales.
        axis: i64,
        /// Block size for blocked quantization (0 = none).
        block_size: usize,
        /// Output dtype when there is no zero point (`None` = u8).
        output_dtype: Option<DType>,
        /// Saturate (float8 only).
        saturate: bool,
    },
    /// Inputs: x, x_scale, x_zero_point (opt). Outputs: y.
    DequantizeLinear {
        /// Axis for per-axis scales.
        axis: i64,
        /// Block size (0 = none).
        block_size: usize,
    },
    /// Inputs: x. Outputs: y (u8), y_scale, y_zero_point (u8).
    DynamicQuantizeLinear,
    /// Inputs: x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point,
    /// B (opt, i32). Outputs: y.
    QLinearConv(ConvAttrs),
    /// Inputs: a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point.
    /// Outputs: y.
    QLinearMatMul,
    /// Inputs: A, B, a_zero_point (opt), b_zero_point (opt). Outputs: i32 Y.
    MatMulInteger,
    /// Inputs: x, w, x_zero_point (opt), w_zero_point (opt). Outputs: i32 y.
    ConvInteger(ConvAttrs),

    /// Bitwise ops on integers. Inputs: A, B (broadcast; Not: X only). Outputs: C.
    Bitwise(BitwiseOp),
    /// Inputs: x, axis (scalar int). Outputs: y, the running products along `axis`.
    CumProd {
        /// Each output excludes its own element.
        exclusive: bool,
        /// Multiply from the end.
        reverse: bool,
    },
    /// Inputs: X. Outputs: Y = (sum over the window of |x|^p)^(1/p).
    LpPool {
        /// Window.
        window: Window,
        /// Ceil instead of floor for output sizes.
        ceil_mode: bool,
        /// The norm's exponent.
        p: i64,
    },
    /// Inputs: X. Outputs: Y = X * sigmoid(alpha * X).
    Swish {
        /// Slope inside the sigmoid.
        alpha: f32,
    },
    /// Inputs: input, condition (1-D bool). Outputs: the selected slices.
    Compress {
        /// Axis (`None`: the flattened input).
        axis: Option<i64>,
    },
    /// Inputs: input_data, shape (1-D int). Outputs: the centre crop / pad.
    CenterCropPad {
        /// Axes the shape applies to (empty = all).
        axes: Vec<i64>,
    },
    /// Inputs: input, sequence_lens (1-D i64). Outputs: Y.
    ReverseSequence {
        /// Batch axis (0 or 1).
        batch_axis: i64,
        /// Time axis (0 or 1).
        time_axis: i64,
    },
    /// Inputs: input. Outputs: x - bias if x > lambd, x + bias if x < -lambd, else 0.
    Shrink {
        /// Bias.
        bias: f32,
        /// Threshold.
        lambd: f32,
    },
    /// Inputs: X. Outputs: (X - mean) / sqrt(var) over `axes`.
    MeanVarianceNormalization {
        /// Axes to normalise over.
        axes: Vec<i64>,
    },
    /// Inputs: size (scalar int). Outputs: a 1-D window.
    SignalWindow {
        /// Which window.
        kind: WindowKind,
        /// Periodic (size + 1 samples, last dropped) instead of symmetric.
        periodic: bool,
        /// Output dtype.
        output_datatype: DType,
    },

    /// Inputs: theta (N×2×3 or N×3×4), size (N, C, \[D,\] H, W). Outputs: grid (N, \[D,\] H, W, 2|3).
    AffineGrid {
        /// Grid points at the centres of the corner pixels instead of their outer edges.
        align_corners: bool,
    },
    /// Inputs: input (N, C·∏block, L), image_shape (1-D int64), block_shape (1-D int64).
    /// Outputs: the image (N, C, image_shape...), summing overlapping blocks.
    Col2Im {
        /// Dilations per spatial axis (empty = 1).
        dilations: Vec<usize>,
        /// `[begin..., end...]` pads (empty = 0).
        pads: Vec<usize>,
        /// Strides per spatial axis (empty = 1).
        strides: Vec<usize>,
    },
    /// Inputs: X (N, C, spatial...), grid (N, out spatial..., r). Outputs: Y (N, C, out
    /// spatial...).
    GridSample {
        /// Interpolation.
        mode: GridSampleMode,
        /// Values outside the input.
        padding_mode: GridPadding,
        /// -1/1 address the centres of the corner pixels instead of their outer edges.
        align_corners: bool,
    },
    /// Inputs: cond, then the outer values the branches capture (in the order of each
    /// branch graph's inputs). Outputs: the branch outputs.
    If {
        /// Taken when cond is true; its inputs are the captured values.
        then_branch: Box<Graph>,
        /// Taken when cond is false; same inputs as `then_branch`.
        else_branch: Box<Graph>,
    },
    /// Inputs: input `[N, C, d1..dk]` (log-probabilities), target `[N, d1..dk]` (i32/i64),
    /// weight (opt, `[C]`). Outputs: loss.
    NegativeLogLikelihoodLoss {
        /// Reduction of the per-element losses.
        reduction: LossReduction,
        /// Target value that contributes nothing (may be outside `[0, C)`).
        ignore_index: Option<i64>,
    },
    /// Inputs: scores `[N, C, d1..dk]`, labels `[N, d1..dk]` (i32/i64), weights (opt, `[C]`).
    /// Outputs: output (the loss), log_prob (opt, log-softmax of scores over axis 1).
    SoftmaxCrossEntropyLoss {
        /// Reduction of the per-element losses.
        reduction: LossReduction,
        /// Label value that contributes nothing (may be outside `[0, C)`).
        ignore_index: Option<i64>,
    },
    /// Cast (or CastLike) to a float8 or FLOAT8E8M0 dtype with a non-default `saturate` or
    /// `round_mode`; the importer emits [`Op::Cast`] otherwise. Inputs: X. Outputs: Y of `to`.
    CastExt {
        /// Target dtype.
        to: DType,
        /// Float8 targets: out-of-range values become ±max (true) or NaN/±inf (false).
        saturate: bool,
        /// FLOAT8E8M0 targets: rounding of the mantissa.
        round_mode: crate::lowp::E8m0Round,
    },
    /// A fused kernel chosen by the optimizer (`optc-passes`): an optional anchor op followed by
    /// an elementwise program. Inputs: the anchor's inputs, then the program's extra inputs.
    /// Outputs: Y. See [`Fused`].
    Fused(Box<Fused>),
    /// A fused attention kernel chosen by the optimizer: `MatMul(Softmax(score(Q·Kt)), V)` in
    /// one kernel. Inputs: Q `[.., S, D]`, Kt `[.., D, T]`, V `[.., T, Dv]`, then the score
    /// program's extra inputs. Outputs: Y `[.., S, Dv]`. See [`FusedAttention`].
    FusedAttention(Box<FusedAttention>),
}

/// One step of a [`Program`]: an elementwise op applied (with numpy broadcasting) to earlier
/// values of the program.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// The op; [`Program::is_step_op`] says which ops may appear.
    pub op: Op,
    /// Its inputs as program value numbers (`None` for absent optional inputs).
    pub args: Vec<Option<usize>>,
}

/// A straight-line elementwise program. Value `k < inputs` is program input `k`; value
/// `inputs + j` is the result of step `j`; the result is the last step's value.
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    /// Number of program inputs.
    pub inputs: usize,
    /// The steps, in order; at least one.
    pub steps: Vec<Step>,
}

impl Program {
    /// True for ops that a program step may hold: single-output elementwise ops whose output
    /// element depends only on the same (broadcast) element of each input.
    pub fn is_step_op(op: &Op) -> bool {
        matches!(
            op,
            Op::Identity
                | Op::Unary(_)
                | Op::Activation(_)
                | Op::Binary(_)
                | Op::Variadic(_)
                | Op::Clip
                | Op::Where
                | Op::Cast { .. }
                | Op::Bitwise(_)
                | Op::Swish { .. }
                | Op::Shrink { .. }
        )
    }

    /// The value number of the program's result.
    pub fn result(&self) -> usize {
        self.inputs + self.steps.len() - 1
    }

    /// A short text form: `Relu(Add(x0, x1))`-style, one line, steps shared by reference
    /// (`s2`) when used twice.
    pub fn describe(&self) -> String {
        let steps: Vec<String> = self
            .steps
            .iter()
            .enumerate()
            .map(|(j, s)| {
                let args: Vec<String> = s
                    .args
                    .iter()
                    .map(|a| match a {
                        None => "_".to_string(),
                        Some(v) if *v < self.inputs => format!("x{v}"),
                        Some(v) => format!("s{}", v - self.inputs),
                    })
                    .collect();
                format!("s{j}={}({})", s.op.name(), args.join(","))
            })
            .collect();
        steps.join("; ")
    }
}

/// A fused kernel: `program(anchor(inputs[..anchor_inputs]), inputs[anchor_inputs..])`, or
/// `program(inputs)` without an anchor.
#[derive(Clone, Debug, PartialEq)]
pub struct Fused {
    /// The op computed first (Conv, Gemm, MatMul: the kernel's main loop), whose output is
    /// program input 0; `None` for a pure elementwise kernel.
    pub anchor: Option<Op>,
    /// How many of the fused op's inputs belong to the anchor (absent optional ones included).
    pub anchor_inputs: usize,
    /// The elementwise program. With an anchor, program input 0 is the anchor's output and
    /// program input `k ≥ 1` is fused input `anchor_inputs + k - 1`; without one, program input
    /// `k` is fused input `k`. The anchor's output is never broadcast larger by the program.
    pub program: Program,
}

/// Fused attention: `MatMul(nan_fill(Softmax_{axis=-1}(score(MatMul(Q, Kt), extras))), V)`.
///
/// Reference semantics by decomposition (`opset::attention`): the ops it replaced run one after
/// another, so every rounding of the unfused graph is kept.
#[derive(Clone, Debug, PartialEq)]
pub struct FusedAttention {
    /// An elementwise program applied to the raw scores `Q·Kt`: program input 0 is the score,
    /// program input `k ≥ 1` is fused input `2 + k` (extra inputs after Q, Kt and V), broadcast
    /// to the score shape without enlarging it. `None`: the raw scores are normalised.
    pub score: Option<Program>,
    /// The `Where(IsNaN(p), 0, p)` step after the softmax: probabilities that are NaN (rows that
    /// are all `-inf`, or hold a NaN or `+inf` score) become 0.
    pub nan_fill_zero: bool,
    /// Where Q, Kt, V and the output live when not in the canonical layout above (`None`: all
    /// canonical).
    pub layout: Option<AttentionLayout>,
}

/// The layouts of a [`FusedAttention`]'s operands and output as permutations, so that the head
/// split and merge around attention (`[b, s, h, d]` ↔ `[b, h, s, d]`) are read and written
/// through strides instead of transposed copies: the op's inputs are Q', K', V' with
/// `Q = Transpose(Q', q)`, `Kt = Transpose(K', k)`, `V = Transpose(V', v)`, and it stores
/// `Transpose(y, out)` where `y` is the canonical `[.., S, Dv]` result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttentionLayout {
    /// Q's permutation.
    pub q: Vec<usize>,
    /// Kt's permutation (e.g. `[0, 2, 3, 1]` for K stored `[b, t, h, d]`).
    pub k: Vec<usize>,
    /// V's permutation.
    pub v: Vec<usize>,
    /// The output's permutation.
    pub out: Vec<usize>,
}

impl AttentionLayout {
    /// The permutation of input `j` (0 Q, 1 Kt, 2 V), if it has one.
    pub fn input(&self, j: usize) -> Option<&[usize]> {
        match j {
            0 => Some(&self.q),
            1 => Some(&self.k),
            2 => Some(&self.v),
            _ => None,
        }
    }
}

impl FusedAttention {
    /// The canonical dims of input `j` (0 Q `[.., S, D]`, 1 Kt `[.., D, T]`, 2 V `[.., T, Dv]`,
    /// others as stored) given its stored dims, `None` if a permutation does not fit them.
    pub fn input_dims(&self, j: usize, stored: &[usize]) -> Option<Vec<usize>> {
        match self.layout.as_ref().and_then(|l| l.input(j)) {
            None => Some(stored.to_vec()),
            Some(p) => permute(stored, p),
        }
    }
}

/// The inverse of permutation `perm` (`inv[perm[i]] = i`), `None` if `perm` is not one.
pub fn inverse_permutation(perm: &[usize]) -> Option<Vec<usize>> {
    let axes: Vec<usize> = (0..perm.len()).collect();
    permute(&axes, perm)?;
    let mut inv = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    Some(inv)
}

/// `dims` transposed by `perm` (`out[i] = dims[perm[i]]`), `None` if `perm` is not a
/// permutation of `dims`' axes.
pub fn permute(dims: &[usize], perm: &[usize]) -> Option<Vec<usize>> {
    let mut seen = vec![false; dims.len()];
    if perm.len() != dims.len() {
        return None;
    }
    for &p in perm {
        if p >= dims.len() || std::mem::replace(&mut seen[p], true) {
            return None;
        }
    }
    Some(perm.iter().map(|&p| dims[p]).collect())
}

impl Op {
    /// The ONNX-style name of this op (`Conv`, `ReduceMean`, ...), for printing and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Identity => "Identity",
            Op::Unary(u) => match u {
                UnaryOp::Abs => "Abs",
                UnaryOp::Neg => "Neg",
                UnaryOp::Exp => "Exp",
                UnaryOp::Log => "Log",
                UnaryOp::Sqrt => "Sqrt",
                UnaryOp::Reciprocal => "Reciprocal",
                UnaryOp::Sin => "Sin",
                UnaryOp::Cos => "Cos",
                UnaryOp::Tan => "Tan",
                UnaryOp::Asin => "Asin",
                UnaryOp::Acos => "Acos",
                UnaryOp::Atan => "Atan",
                UnaryOp::Sinh => "Sinh",
                UnaryOp::Cosh => "Cosh",
                UnaryOp::Asinh => "Asinh",
                UnaryOp::Acosh => "Acosh",
                UnaryOp::Atanh => "Atanh",
                UnaryOp::Tanh => "Tanh",
                UnaryOp::Sigmoid => "Sigmoid",
                UnaryOp::Erf => "Erf",
                UnaryOp::Floor => "Floor",
                UnaryOp::Ceil => "Ceil",
                UnaryOp::Round => "Round",
                UnaryOp::Sign => "Sign",
                UnaryOp::Not => "Not",
                UnaryOp::IsNaN => "IsNaN",
                UnaryOp::Relu => "Relu",
                UnaryOp::Softplus => "Softplus",
                UnaryOp::Softsign => "Softsign",
                UnaryOp::Mish => "Mish",
                UnaryOp::HardSwish => "HardSwish",
            },
            Op::Activation(a) => match a {
                ActivationOp::LeakyRelu { .. } => "LeakyRelu",
                ActivationOp::Elu { .. } => "Elu",
                ActivationOp::Selu { .. } => "Selu",
                ActivationOp::Celu { .. } => "Celu",
                ActivationOp::HardSigmoid { .. } => "HardSigmoid",
                ActivationOp::ThresholdedRelu { .. } => "ThresholdedRelu",
                ActivationOp::Gelu { .. } => "Gelu",
                ActivationOp::IsInf { .. } => "IsInf",
            },
            Op::Binary(b) => match b {
                BinaryOp::Add => "Add",
                BinaryOp::Sub => "Sub",
                BinaryOp::Mul => "Mul",
                BinaryOp::Div => "Div",
                BinaryOp::Pow => "Pow",
                BinaryOp::Mod { .. } => "Mod",
                BinaryOp::And => "And",
                BinaryOp::Or => "Or",
                BinaryOp::Xor => "Xor",
                BinaryOp::Equal => "Equal",
                BinaryOp::Less => "Less",
                BinaryOp::LessOrEqual => "LessOrEqual",
                BinaryOp::Greater => "Greater",
                BinaryOp::GreaterOrEqual => "GreaterOrEqual",
                BinaryOp::BitShiftLeft | BinaryOp::BitShiftRight => "BitShift",
                BinaryOp::PRelu => "PRelu",
            },
            Op::Variadic(v) => match v {
                VariadicOp::Sum => "Sum",
                VariadicOp::Mean => "Mean",
                VariadicOp::Max => "Max",
                VariadicOp::Min => "Min",
            },
            Op::Clip => "Clip",
            Op::Where => "Where",
            Op::Cast { .. } => "Cast",
            Op::Dropout => "Dropout",
            Op::Softmax { .. } => "Softmax",
            Op::LogSoftmax { .. } => "LogSoftmax",
            Op::Hardmax { .. } => "Hardmax",
            Op::Reduce { op, .. } => match op {
                ReduceOp::Sum => "ReduceSum",
                ReduceOp::Mean => "ReduceMean",
                ReduceOp::Max => "ReduceMax",
                ReduceOp::Min => "ReduceMin",
                ReduceOp::Prod => "ReduceProd",
                ReduceOp::L1 => "ReduceL1",
                ReduceOp::L2 => "ReduceL2",
                ReduceOp::SumSquare => "ReduceSumSquare",
                ReduceOp::LogSum => "ReduceLogSum",
                ReduceOp::LogSumExp => "ReduceLogSumExp",
            },
            Op::ArgMax { .. } => "ArgMax",
            Op::ArgMin { .. } => "ArgMin",
            Op::CumSum { .. } => "CumSum",
            Op::TopK { .. } => "TopK",
            Op::Conv(_) => "Conv",
            Op::ConvTranspose { .. } => "ConvTranspose",
            Op::MaxPool { .. } => "MaxPool",
            Op::AveragePool { .. } => "AveragePool",
            Op::GlobalAveragePool => "GlobalAveragePool",
            Op::GlobalMaxPool => "GlobalMaxPool",
            Op::LpNormalization { .. } => "LpNormalization",
            Op::Norm { op, .. } => match op {
                NormOp::BatchNormalization => "BatchNormalization",
                NormOp::InstanceNormalization => "InstanceNormalization",
                NormOp::LayerNormalization { .. } => "LayerNormalization",
                NormOp::GroupNormalization { .. } => "GroupNormalization",
                NormOp::RmsNormalization { .. } => "RMSNormalization",
            },
            Op::Lrn { .. } => "LRN",
            Op::Gemm { .. } => "Gemm",
            Op::MatMul => "MatMul",
            Op::Einsum { .. } => "Einsum",
            Op::Resize(_) => "Resize",
            Op::DepthToSpace { .. } => "DepthToSpace",
            Op::SpaceToDepth { .. } => "SpaceToDepth",
            Op::Pad { .. } => "Pad",
            Op::Trilu { .. } => "Trilu",
            Op::Reshape { .. } => "Reshape",
            Op::Flatten { .. } => "Flatten",
            Op::Squeeze => "Squeeze",
            Op::Unsqueeze => "Unsqueeze",
            Op::Transpose { .. } => "Transpose",
            Op::Concat { .. } => "Concat",
            Op::Split { .. } => "Split",
            Op::Slice => "Slice",
            Op::Gather { .. } => "Gather",
            Op::GatherElements { .. } => "GatherElements",
            Op::GatherNd { .. } => "GatherND",
            Op::ScatterElements { .. } => "ScatterElements",
            Op::ScatterNd { .. } => "ScatterND",
            Op::Expand => "Expand",
            Op::Tile => "Tile",
            Op::Shape { .. } => "Shape",
            Op::Size => "Size",
            Op::ConstantOfShape { .. } => "ConstantOfShape",
            Op::Range => "Range",
            Op::OneHot { .. } => "OneHot",
            Op::NonZero => "NonZero",
            Op::EyeLike { .. } => "EyeLike",
            Op::QuantizeLinear { .. } => "QuantizeLinear",
            Op::DequantizeLinear { .. } => "DequantizeLinear",
            Op::DynamicQuantizeLinear => "DynamicQuantizeLinear",
            Op::QLinearConv(_) => "QLinearConv",
            Op::QLinearMatMul => "QLinearMatMul",
            Op::MatMulInteger => "MatMulInteger",
            Op::ConvInteger(_) => "ConvInteger",
            Op::Bitwise(b) => match b {
                BitwiseOp::And => "BitwiseAnd",
                BitwiseOp::Or => "BitwiseOr",
                BitwiseOp::Xor => "BitwiseXor",
                BitwiseOp::Not => "BitwiseNot",
            },
            Op::CumProd { .. } => "CumProd",
            Op::LpPool { .. } => "LpPool",
            Op::Swish { .. } => "Swish",
            Op::Compress { .. } => "Compress",
            Op::CenterCropPad { .. } => "CenterCropPad",
            Op::ReverseSequence { .. } => "ReverseSequence",
            Op::Shrink { .. } => "Shrink",
            Op::MeanVarianceNormalization { .. } => "MeanVarianceNormalization",
            Op::SignalWindow { kind, .. } => match kind {
                WindowKind::Hann => "HannWindow",
                WindowKind::Hamming => "HammingWindow",
                WindowKind::Blackman => "BlackmanWindow",
            },
            Op::AffineGrid { .. } => "AffineGrid",
            Op::Col2Im { .. } => "Col2Im",
            Op::GridSample { .. } => "GridSample",
            Op::If { .. } => "If",
            Op::NegativeLogLikelihoodLoss { .. } => "NegativeLogLikelihoodLoss",
            Op::SoftmaxCrossEntropyLoss { .. } => "SoftmaxCrossEntropyLoss",
            Op::CastExt { .. } => "Cast",
            Op::Fused(_) => "Fused",
            Op::FusedAttention(_) => "FusedAttention",
        }
    }

    /// The subgraphs this op holds (the branches of `If`).
    pub fn subgraphs(&self) -> Vec<&Graph> {
        match self {
            Op::If {
                then_branch,
                else_branch,
            } => vec![then_branch, else_branch],
            _ => vec![],
        }
    }
}
