//! Op families: for each, shape/dtype inference (`infer`) and reference semantics (`eval`).
//!
//! `eval` functions receive the node's inputs (`None` for absent optional inputs) and the
//! number of output slots, and return one tensor per output slot (optional outputs that the
//! node does not use may still be computed). They are exact and straightforward: they are the
//! oracle every optimisation and kernel is checked against.

pub mod attention;
pub mod control;
pub mod elementwise;
pub mod extra;
pub mod fused;
pub mod loss;
pub mod movement;
pub mod nn;
pub mod quant;
pub mod reduce;
pub mod util;
