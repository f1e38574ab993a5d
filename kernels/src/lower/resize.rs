//! Resize (stub).
use super::{LowerCtx, LowerError, Lowered};
/// Lowers Resize.
pub fn lower(ctx: &LowerCtx<'_>) -> Result<Lowered, LowerError> {
    Err(ctx.unsupported("has no kernel template yet"))
}
