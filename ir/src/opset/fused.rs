//! Fused kernels (`Op::Fused`): reference semantics by decomposition. The anchor op runs as
//! itself, then each program step runs as its own op — so a fusion is checked against exactly
//! the ops it replaced, and every rounding of the unfused graph is kept.

use crate::infer::{InferError, InferInput, infer as infer_op};
use crate::interp::{EvalError, eval_op};
use crate::ops::{Fused, Program};
use crate::tensor::Tensor;
use crate::types::TensorType;

/// Checks the program's structure: at least one step, only step ops, arguments referring to
/// earlier values.
pub fn check(p: &Program) -> Result<(), String> {
    if p.steps.is_empty() {
        return Err("fused program has no steps".into());
    }
    for (j, s) in p.steps.iter().enumerate() {
        if !Program::is_step_op(&s.op) {
            return Err(format!(
                "fused program step {j}: {} is not elementwise",
                s.op.name()
            ));
        }
        if let Some(a) = s.args.iter().flatten().find(|&&a| a >= p.inputs + j) {
            return Err(format!(
                "fused program step {j} ({}) reads value {a}, which is not yet computed",
                s.op.name()
            ));
        }
    }
    Ok(())
}

/// The program inputs of `f` given the fused op's inputs: the anchor's output (when there is
/// an anchor) followed by the extra inputs.
type Halves<'a, T> = (&'a [Option<T>], &'a [Option<T>]);

fn split<'a, T>(f: &Fused, inputs: &'a [Option<T>]) -> Result<Halves<'a, T>, String> {
    if f.anchor.is_some() {
        if inputs.len() < f.anchor_inputs {
            return Err(format!(
                "fused op has {} inputs but its anchor takes {}",
                inputs.len(),
                f.anchor_inputs
            ));
        }
        Ok(inputs.split_at(f.anchor_inputs))
    } else {
        Ok((&[], inputs))
    }
}

/// Output type of a fused op.
pub fn infer(f: &Fused, inputs: &[Option<InferInput<'_>>]) -> Result<Vec<TensorType>, InferError> {
    check(&f.program).map_err(InferError::Attribute)?;
    let (anchor_in, extra) = split(f, inputs).map_err(InferError::Arity)?;
    let mut vals: Vec<TensorType> = Vec::new();
    if let Some(a) = &f.anchor {
        let t = infer_op(a, anchor_in, 1)?;
        vals.push(t.into_iter().next().ok_or_else(|| {
            InferError::Arity(format!("fused anchor {} has no output", a.name()))
        })?);
    }
    for e in extra {
        let e = e.ok_or_else(|| InferError::Arity("fused op: a program input is absent".into()))?;
        vals.push(e.ty.clone());
    }
    if vals.len() != f.program.inputs {
        return Err(InferError::Arity(format!(
            "fused program takes {} inputs, the op supplies {}",
            f.program.inputs,
            vals.len()
        )));
    }
    for s in &f.program.steps {
        let ins: Vec<Option<InferInput<'_>>> = s
            .args
            .iter()
            .map(|a| {
                a.map(|a| InferInput {
                    ty: &vals[a],
                    value: None,
                })
            })
            .collect();
        let t = infer_op(&s.op, &ins, 1)?;
        let t = t.into_iter().next().ok_or_else(|| {
            InferError::Arity(format!("fused step {} has no output", s.op.name()))
        })?;
        vals.push(t);
    }
    let out = vals.pop().expect("checked: at least one step");
    if f.anchor.is_some() && out.shape != vals[0].shape {
        return Err(InferError::Shape(format!(
            "fused epilogue changes the anchor's shape {} to {}",
            vals[0].shape, out.shape
        )));
    }
    Ok(vec![out])
}

/// Evaluates a fused op by decomposition.
pub fn eval(f: &Fused, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>, EvalError> {
    check(&f.program).map_err(EvalError::Invalid)?;
    let (anchor_in, extra) = split(f, inputs).map_err(EvalError::Invalid)?;
    let mut vals: Vec<Tensor> = Vec::new();
    if let Some(a) = &f.anchor {
        let t = eval_op(a, anchor_in, 1)?;
        vals.push(t.into_iter().next().ok_or_else(|| {
            EvalError::Invalid(format!("fused anchor {} has no output", a.name()))
        })?);
    }
    for e in extra {
        vals.push(
            e.clone()
                .ok_or_else(|| EvalError::Invalid("fused op: a program input is absent".into()))?,
        );
    }
    if vals.len() != f.program.inputs {
        return Err(EvalError::Invalid(format!(
            "fused program takes {} inputs, the op supplies {}",
            f.program.inputs,
            vals.len()
        )));
    }
    for s in &f.program.steps {
        let ins: Vec<Option<Tensor>> = s.args.iter().map(|a| a.map(|a| vals[a].clone())).collect();
        let t = eval_op(&s.op, &ins, 1)?;
        vals.push(t.into_iter().next().ok_or_else(|| {
            EvalError::Invalid(format!("fused step {} has no output", s.op.name()))
        })?);
    }
    Ok(vec![vals.pop().expect("checked: at least one step")])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DType;
    use crate::ops::{BinaryOp, Op, Step, UnaryOp};

    fn relu_add() -> Fused {
        Fused {
            anchor: None,
            anchor_inputs: 0,
            program: Program {
                inputs: 2,
                steps: vec![
                    Step {
                        op: Op::Binary(BinaryOp::Add),
                        args: vec![Some(0), Some(1)],
                    },
                    Step {
                        op: Op::Unary(UnaryOp::Relu),
                        args: vec![Some(2)],
                    },
                ],
            },
        }
    }

    #[test]
    fn elementwise_program_broadcasts_and_matches_the_ops() {
        let a = Tensor::from_vec(vec![2, 2], vec![1.0f32, -2.0, 3.0, -4.0]).unwrap();
        let b = Tensor::from_vec(vec![2], vec![0.5f32, 1.0]).unwrap();
        let out = eval(&relu_add(), &[Some(a.clone()), Some(b.clone())]).unwrap();
        assert_eq!(out[0].view::<f32>(), &[1.5, 0.0, 3.5, 0.0]);
        let ta = TensorType::fixed(DType::F32, &[2, 2]);
        let tb = TensorType::fixed(DType::F32, &[2]);
        let t = infer(
            &relu_add(),
            &[
                Some(InferInput {
                    ty: &ta,
                    value: None,
                }),
                Some(InferInput {
                    ty: &tb,
                    value: None,
                }),
            ],
        )
        .unwrap();
        assert_eq!(t[0], ta);
    }

    #[test]
    fn anchored_program_applies_to_the_anchor_output() {
        let f = Fused {
            anchor: Some(Op::MatMul),
            anchor_inputs: 2,
            program: Program {
                inputs: 2,
                steps: vec![
                    Step {
                        op: Op::Binary(BinaryOp::Add),
                        args: vec![Some(0), Some(1)],
                    },
                    Step {
                        op: Op::Unary(UnaryOp::Relu),
                        args: vec![Some(2)],
                    },
                ],
            },
        };
        let a = Tensor::from_vec(vec![1, 2], vec![1.0f32, 2.0]).unwrap();
        let b = Tensor::from_vec(vec![2, 2], vec![1.0f32, -1.0, 1.0, -1.0]).unwrap();
        let bias = Tensor::from_vec(vec![2], vec![1.0f32, 1.0]).unwrap();
        let out = eval(&f, &[Some(a), Some(b), Some(bias)]).unwrap();
        assert_eq!(out[0].view::<f32>(), &[4.0, 0.0]);
    }

    #[test]
    fn malformed_programs_are_errors() {
        let mut f = relu_add();
        f.program.steps[0].args[1] = Some(3);
        assert!(eval(&f, &[None, None]).is_err());
        let mut f = relu_add();
        f.program.steps[1].op = Op::MatMul;
        assert!(check(&f.program).unwrap_err().contains("not elementwise"));
        let mut f = relu_add();
        f.program.steps.clear();
        assert!(check(&f.program).is_err());
        let a = Tensor::from_vec(vec![1], vec![1.0f32]).unwrap();
        assert!(eval(&relu_add(), &[Some(a)]).is_err());
    }
}
