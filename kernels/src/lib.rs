//! optc kernels: the kernel IR that every code generator prints, a builder for it, and the
//! kernel templates that lower graph operators to kernels.

#![warn(missing_docs)]

pub mod builder;
pub mod ir;
pub mod lower;

pub use builder::KernelBuilder;
pub use ir::{
    Access, BinOp, Buffer, Builtin, Expr, Kernel, Scalar, Shared, Stmt, SubgroupOp, Type,
    TypeError, UnOp, Var,
};
