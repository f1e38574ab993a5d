//! Tensor types of graph values: a dtype and a shape whose dims are static or symbolic.

use crate::dtype::DType;
use std::fmt;

/// One dimension of a value's shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dim {
    /// A known size.
    Static(usize),
    /// A named size fixed at run time (`batch`, `seq`), specialised at compile time with
    /// `--shape`.
    Sym(String),
    /// A size that inference could not determine (data-dependent, e.g. NonZero).
    Unknown,
}

impl Dim {
    /// The static size, if known.
    pub fn as_static(&self) -> Option<usize> {
        match self {
            Dim::Static(n) => Some(*n),
            _ => None,
        }
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Static(n) => write!(f, "{n}"),
            Dim::Sym(s) => f.write_str(s),
            Dim::Unknown => f.write_str("?"),
        }
    }
}

/// The shape of a value: a rank (known or not) and its dims.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Shape {
    /// Known rank.
    Ranked(Vec<Dim>),
    /// Rank not known (e.g. Reshape to a runtime shape of unknown length).
    Unranked,
}

impl Shape {
    /// A fully static shape.
    pub fn fixed(dims: &[usize]) -> Shape {
        Shape::Ranked(dims.iter().map(|&d| Dim::Static(d)).collect())
    }

    /// The rank, if known.
    pub fn rank(&self) -> Option<usize> {
        match self {
            Shape::Ranked(d) => Some(d.len()),
            Shape::Unranked => None,
        }
    }

    /// The dims, if the rank is known.
    pub fn dims(&self) -> Option<&[Dim]> {
        match self {
            Shape::Ranked(d) => Some(d),
            Shape::Unranked => None,
        }
    }

    /// All dims as sizes, if every one is static.
    pub fn as_static(&self) -> Option<Vec<usize>> {
        self.dims()?.iter().map(Dim::as_static).collect()
    }

    /// A shape of `rank` unknown dims.
    pub fn unknown_dims(rank: usize) -> Shape {
        Shape::Ranked(vec![Dim::Unknown; rank])
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Unranked => f.write_str("[*]"),
            Shape::Ranked(d) => {
                f.write_str("[")?;
                for (i, x) in d.iter().enumerate() {
                    if i > 0 {
                        f.write_str("x")?;
                    }
                    write!(f, "{x}")?;
                }
                f.write_str("]")
            }
        }
    }
}

/// The type of a graph value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TensorType {
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: Shape,
}

impl TensorType {
    /// A type with a fully static shape.
    pub fn fixed(dtype: DType, dims: &[usize]) -> TensorType {
        TensorType {
            dtype,
            shape: Shape::fixed(dims),
        }
    }

    /// A type whose shape is unknown.
    pub fn unranked(dtype: DType) -> TensorType {
        TensorType {
            dtype,
            shape: Shape::Unranked,
        }
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.dtype, self.shape)
    }
}
