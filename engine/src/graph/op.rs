//! The typed operator set. Each variant carries its attributes already validated and resolved
//! (shape tensors and scalar parameters that ONNX passes as inputs are folded into fields at
//! import), so an executor only ever reads f32 tensors through `Node::inputs`.

/// Element-wise activation. Standalone as [`Op::Activation`], or fused into a [`Conv`] /
/// [`Gemm`] as its `activation` field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    /// No activation (only meaningful as a fused field).
    None,
    Relu,
    LeakyRelu {
        alpha: f32,
    },
    Clip {
        min: f32,
        max: f32,
    },
    Sigmoid,
    /// Slope comes from a tensor input: `inputs[1]` for the standalone op (broadcast to X),
    /// the last input (one slope per output channel, shape `[C]`) when fused.
    PRelu,
}

impl Activation {
    /// `slope` is only read by [`Activation::PRelu`].
    #[inline]
    pub fn apply(self, x: f32, slope: f32) -> f32 {
        match self {
            Activation::None => x,
            Activation::Relu => x.max(0.0),
            Activation::LeakyRelu { alpha } => {
                if x < 0.0 {
                    alpha * x
                } else {
                    x
                }
            }
            Activation::Clip { min, max } => x.max(min).min(max),
            Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Activation::PRelu => {
                if x < 0.0 {
                    slope * x
                } else {
                    x
                }
            }
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Activation::None => "None",
            Activation::Relu => "Relu",
            Activation::LeakyRelu { .. } => "LeakyRelu",
            Activation::Clip { .. } => "Clip",
            Activation::Sigmoid => "Sigmoid",
            Activation::PRelu => "PRelu",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
}

impl BinaryOp {
    #[inline]
    pub fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "Add",
            BinaryOp::Sub => "Sub",
            BinaryOp::Mul => "Mul",
            BinaryOp::Div => "Div",
        }
    }
}

/// How a 2-D window op pads its input (ONNX `pads` / `auto_pad`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// `[top, left, bottom, right]` (ONNX order: all begins, then all ends).
    Explicit([usize; 4]),
    /// Output = ceil(input / stride); the odd pixel of padding goes at the end.
    SameUpper,
    /// Same, odd pixel at the beginning.
    SameLower,
}

/// Geometry shared by Conv and the pooling ops; spatial axes are H then W of NCHW.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window2d {
    pub kernel: [usize; 2],
    pub strides: [usize; 2],
    pub dilations: [usize; 2],
    pub padding: Padding,
    /// Pooling only: round the output size up instead of down.
    pub ceil_mode: bool,
}

/// A window resolved against a concrete input size: what a kernel actually loops over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedWindow {
    pub out: [usize; 2],
    /// `[top, left, bottom, right]`.
    pub pads: [usize; 4],
}

/// Conv (2-D, NCHW). Inputs: `[x, w]`, `[x, w, bias]`, or with a fused PRelu
/// `[x, w, bias, slope]`. Weights `[M, C/group, kH, kW]`; depthwise is `group == C`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Conv {
    pub window: Window2d,
    pub group: usize,
    pub activation: Activation,
}

/// MaxPool / AveragePool (2-D, NCHW). Inputs: `[x]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pool {
    pub window: Window2d,
    /// AveragePool only: divide by the full window even where it hangs over the padding.
    pub count_include_pad: bool,
}

/// Gemm: `Y = alpha * A' * B' + beta * C`, then the activation. Inputs `[A, B]` or
/// `[A, B, C]` (plus the slope for a fused PRelu); A is `[M, K]` (`[K, M]` if `trans_a`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gemm {
    pub alpha: f32,
    pub beta: f32,
    pub trans_a: bool,
    pub trans_b: bool,
    pub activation: Activation,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PadMode {
    Constant(f32),
    Reflect,
    Edge,
}

/// Pad. `pads` has `2 * rank` entries: all begins, then all ends (ONNX order).
#[derive(Debug, Clone, PartialEq)]
pub struct Pad {
    pub pads: Vec<usize>,
    pub mode: PadMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NearestMode {
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResizeMode {
    Nearest(NearestMode),
    /// Bilinear over H and W.
    Linear,
}

/// How an output pixel maps back to input coordinates (ONNX `coordinate_transformation_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoordMode {
    HalfPixel,
    PytorchHalfPixel,
    AlignCorners,
    Asymmetric,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ResizeTarget {
    /// Output H, W = floor(input * scale).
    Scales([f32; 2]),
    Sizes([usize; 2]),
}

/// Resize of the H and W axes of an NCHW tensor. Inputs: `[x]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resize {
    pub mode: ResizeMode,
    pub coord: CoordMode,
    pub target: ResizeTarget,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Conv(Conv),
    /// Inference BatchNormalization. Inputs `[x, scale, bias, mean, var]`, channel axis 1.
    BatchNorm {
        epsilon: f32,
    },
    /// `y = x * scale[c] + shift[c]` along axis 1, or one scalar pair for the whole tensor
    /// (`scale.len() == 1`). What input normalisation and unfoldable BatchNorms become.
    Affine {
        scale: Vec<f32>,
        shift: Vec<f32>,
    },
    Activation(Activation),
    /// Add/Sub/Mul/Div with numpy (multidirectional) broadcasting. Inputs `[a, b]`.
    Binary(BinaryOp),
    MaxPool(Pool),
    AveragePool(Pool),
    GlobalAveragePool,
    Gemm(Gemm),
    /// Numpy matmul where B is 2-D or both operands have the same rank and batch dims.
    MatMul,
    Flatten {
        axis: usize,
    },
    /// ONNX Reshape semantics (`0` copies the input dim, one `-1` is inferred).
    Reshape {
        shape: Vec<i64>,
    },
    Transpose {
        perm: Vec<usize>,
    },
    Concat {
        axis: usize,
    },
    Pad(Pad),
    Resize(Resize),
    /// Load-time only: inputs must be constants (int8/uint8/int32 data, f32 scale,
    /// optional zero point); `axis` is already non-negative.
    DequantizeLinear {
        axis: usize,
        block_size: usize,
    },
    /// No inputs; a constant tensor of `shape` filled with `value` (folded at load).
    ConstantOfShape {
        shape: Vec<usize>,
        value: f32,
    },
    Identity,
}

impl Op {
    /// A short name for messages and traces (the ONNX op it stands for).
    pub fn name(&self) -> &'static str {
        match self {
            Op::Conv(_) => "Conv",
            Op::BatchNorm { .. } => "BatchNormalization",
            Op::Affine { .. } => "Affine",
            Op::Activation(a) => a.name(),
            Op::Binary(b) => b.name(),
            Op::MaxPool(_) => "MaxPool",
            Op::AveragePool(_) => "AveragePool",
            Op::GlobalAveragePool => "GlobalAveragePool",
            Op::Gemm(_) => "Gemm",
            Op::MatMul => "MatMul",
            Op::Flatten { .. } => "Flatten",
            Op::Reshape { .. } => "Reshape",
            Op::Transpose { .. } => "Transpose",
            Op::Concat { .. } => "Concat",
            Op::Pad(_) => "Pad",
            Op::Resize(_) => "Resize",
            Op::DequantizeLinear { .. } => "DequantizeLinear",
            Op::ConstantOfShape { .. } => "ConstantOfShape",
            Op::Identity => "Identity",
        }
    }

    /// Ops that only rearrange or relabel memory: an executor may implement them as a copy
    /// (or alias) because the row-major element order does not change.
    pub fn is_layout_noop(&self) -> bool {
        matches!(self, Op::Flatten { .. } | Op::Reshape { .. } | Op::Identity)
    }
}
