//! Contraction rules (fusion stage): a MatMul is an Einsum, and an Einsum reads its operands and
//! writes its result through strides, so the transposes and scalar factors around attention's
//! GEMMs (head split, `Kᵀ`, the `1/√d` scale, head merge) become part of the one GEMM kernel:
//!
//! * `MatMul(a, b) = Einsum("…mk,…kn->…mn")(a, b)` is implied by the rules below, which accept
//!   a MatMul of two same-rank operands with equal batch dims as that Einsum;
//! * `C(.., Transpose(x, p), ..) = C'(.., x, ..)` for a contraction `C`: `x`'s letters are the
//!   operand's letters put back in `x`'s order (`einsum-through-transpose`; also through a
//!   reshape that only adds or removes size-1 dims, as in ViT's head split);
//! * `Transpose(C(a, b), p) = C'(a, b)` with the output letters permuted
//!   (`transpose-into-einsum`);
//! * `C(.., Mul(y, s), ..) = Mul(C(.., y, ..), s)` for a scalar `s`
//!   (`scalar-out-of-contraction`), after which the `Mul` fuses into the GEMM's epilogue.
//!
//! The rewritten Einsums keep the MatMul's structure (batch letters, one row, one column and
//! one reduction letter), which is exactly what the Einsum template lowers to one strided GEMM.
//! Extraction keeps them where they pay: an operand read through a stride other than 1 along K
//! loses the template's vec4 loads, which the cost model does not see (it counts bytes, flops
//! and launches).

use super::canon::reshape_to;
use super::layout::unit_reshape_inputs;
use super::{Ctx, Rule, add_op, op_node, shape};
use crate::lang::{EG, Node};
use egg::Id;
use optc_ir::Op;
use optc_ir::ops::BinaryOp;

/// A two-operand contraction: the letters of A, B and the output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Contraction {
    pub a: Vec<char>,
    pub b: Vec<char>,
    pub out: Vec<char>,
}

impl Contraction {
    /// The Einsum equation.
    pub fn equation(&self) -> String {
        let s = |v: &[char]| v.iter().collect::<String>();
        format!("{},{}->{}", s(&self.a), s(&self.b), s(&self.out))
    }

    /// A two-operand equation of letters (the IR's parser; implicit outputs derived) without
    /// repeated letters in one term.
    pub fn parse(eq: &str) -> Option<Contraction> {
        let (mut ins, out) = optc_ir::opset::nn::letter_terms(eq, 2).ok()?;
        let unique = |v: &[char]| v.iter().enumerate().all(|(i, c)| !v[..i].contains(c));
        let (b, a) = (ins.pop()?, ins.pop()?);
        (unique(&a) && unique(&b) && unique(&out)).then_some(Contraction { a, b, out })
    }

    /// The contraction of an e-node: an Einsum with a parsable equation, or a MatMul of two
    /// operands of the same rank ≥ 2 with equal batch dims (no broadcasting).
    fn of(eg: &EG, op: &Op, args: &[Id]) -> Option<Contraction> {
        if args.len() != 2 {
            return None;
        }
        match op {
            Op::Einsum { equation } => Contraction::parse(equation),
            Op::MatMul => {
                let (sa, sb) = (shape(eg, args[0])?, shape(eg, args[1])?);
                let r = sa.len();
                if r < 2 || sb.len() != r || r > 10 || sa[..r - 2] != sb[..r - 2] {
                    return None;
                }
                let batch: Vec<char> = "abcdefgh".chars().take(r - 2).collect();
                let with = |x: char, y: char| {
                    let mut v = batch.clone();
                    v.extend([x, y]);
                    v
                };
                Some(Contraction {
                    a: with('m', 'k'),
                    b: with('k', 'n'),
                    out: with('m', 'n'),
                })
            }
            _ => None,
        }
    }

    /// The letters summed over (in both operands, not in the output).
    pub fn reduced(&self) -> Vec<char> {
        self.a
            .iter()
            .copied()
            .filter(|c| self.b.contains(c) && !self.out.contains(c))
            .collect()
    }
}

/// The contraction of e-node `node`: (op, arguments, contraction).
fn contraction_node(eg: &EG, node: &Node) -> Option<(Op, Vec<Id>, Contraction)> {
    let (op, 0, 1, args) = op_node(eg, node)? else {
        return None;
    };
    let c = Contraction::of(eg, &op, &args)?;
    Some((op, args, c))
}

/// The contraction nodes of class `id`: (contraction, arguments).
fn contractions(eg: &EG, id: Id) -> Vec<(Contraction, Vec<Id>)> {
    eg[id]
        .nodes
        .iter()
        .filter_map(|n| contraction_node(eg, n).map(|(_, args, c)| (c, args)))
        .collect()
}

/// `letters` of a transposed value put back in the order of the transpose's input: `out[i]` is
/// `in[perm[i]]`, so `in[perm[i]] = letters[i]`.
fn unpermute(letters: &[char], perm: Option<Vec<usize>>) -> Option<Vec<char>> {
    let r = letters.len();
    let p = perm.unwrap_or_else(|| (0..r).rev().collect());
    if p.len() != r || p.iter().any(|&i| i >= r) {
        return None;
    }
    let mut out = vec![' '; r];
    for (i, &pi) in p.iter().enumerate() {
        out[pi] = letters[i];
    }
    (!out.contains(&' ')).then_some(out)
}

/// The transposes in class `id`: (input, perm).
fn transposes(eg: &EG, id: Id) -> Vec<(Id, Option<Vec<usize>>)> {
    eg[id]
        .nodes
        .iter()
        .filter_map(|n| match op_node(eg, n)? {
            (Op::Transpose { perm }, 0, 1, t) => Some((t[0], perm)),
            _ => None,
        })
        .collect()
}

/// An operand `a` (shape `sa`, letters `la`) that is `Reshape(Transpose(x, perm))`, the reshape
/// only adding or removing size-1 dims: `x` reshaped to `a`'s size-1 dims followed by `x`'s
/// other dims in `x`'s order (a free alias), with its letters: `a`'s letters of the size-1
/// dims, then each of `x`'s dims with the letter of the `a` dim it becomes.
fn through_unit_reshape(
    eg: &mut EG,
    x: Id,
    perm: Option<Vec<usize>>,
    sa: &[usize],
    la: &[char],
) -> Option<(Id, Vec<char>)> {
    let xs = shape(eg, x)?;
    let r = xs.len();
    let p = perm.unwrap_or_else(|| (0..r).rev().collect());
    if p.len() != r || p.iter().any(|&i| i >= r) || la.len() != sa.len() {
        return None;
    }
    // The transpose's output dims other than 1, in order, are `a`'s dims other than 1.
    let big_a: Vec<usize> = (0..sa.len()).filter(|&i| sa[i] != 1).collect();
    let big_y: Vec<usize> = (0..r).filter(|&j| xs[p[j]] != 1).collect();
    if big_a.len() != big_y.len() {
        return None;
    }
    let mut xl: Vec<Option<char>> = vec![None; r];
    for (&ia, &jy) in big_a.iter().zip(&big_y) {
        if sa[ia] != xs[p[jy]] {
            return None;
        }
        xl[p[jy]] = Some(la[ia]);
    }
    let mut letters: Vec<char> = (0..sa.len())
        .filter(|&i| sa[i] == 1)
        .map(|i| la[i])
        .collect();
    let mut shape2 = vec![1; letters.len()];
    for d in 0..r {
        if let Some(l) = xl[d] {
            letters.push(l);
            shape2.push(xs[d]);
        }
    }
    let x2 = if shape2 == xs {
        x
    } else {
        reshape_to(eg, x, &shape2)
    };
    Some((x2, letters))
}

fn einsum(eg: &mut EG, c: &Contraction, args: Vec<Id>) -> Id {
    add_op(
        eg,
        Op::Einsum {
            equation: c.equation(),
        },
        args,
    )
}

/// Contraction rules (fusion stage).
pub fn rules() -> Vec<Box<dyn Rule>> {
    vec![
        Box::new(ThroughTranspose),
        Box::new(TransposeInto),
        Box::new(ScalarOut),
    ]
}

/// `C(.., Transpose(x, p), ..) = C'(.., x, ..)`.
pub struct ThroughTranspose;

impl Rule for ThroughTranspose {
    fn name(&self) -> &'static str {
        "einsum-through-transpose"
    }
    fn apply(&self, eg: &mut EG, _: &Ctx, _class: Id, node: &Node) -> Vec<Id> {
        let Some((_, args, c)) = contraction_node(eg, node) else {
            return vec![];
        };
        let mut res = Vec::new();
        for pos in 0..2 {
            let letters = if pos == 0 { c.a.clone() } else { c.b.clone() };
            let mut found: Vec<(Id, Vec<char>)> = transposes(eg, args[pos])
                .into_iter()
                .filter_map(|(x, perm)| Some((x, unpermute(&letters, perm)?)))
                .collect();
            // Through a reshape that only adds or removes size-1 dims (a head split's
            // `[H, S, D] -> [1, H, S, D]`).
            if let Some(sa) = shape(eg, args[pos]) {
                for (y, _) in unit_reshape_inputs(eg, args[pos], &sa) {
                    for (x, perm) in transposes(eg, y) {
                        if let Some(v) = through_unit_reshape(eg, x, perm, &sa, &letters) {
                            found.push(v);
                        }
                    }
                }
            }
            for (x, xl) in found {
                let mut nc = c.clone();
                let mut nargs = args.clone();
                if pos == 0 {
                    nc.a = xl;
                } else {
                    nc.b = xl;
                }
                nargs[pos] = x;
                res.push(einsum(eg, &nc, nargs));
            }
        }
        res
    }
}

/// `Transpose(C(a, b), p) = C'(a, b)` with the output letters permuted.
pub struct TransposeInto;

impl Rule for TransposeInto {
    fn name(&self) -> &'static str {
        "transpose-into-einsum"
    }
    fn apply(&self, eg: &mut EG, _: &Ctx, _class: Id, node: &Node) -> Vec<Id> {
        let Some((Op::Transpose { perm }, 0, 1, targs)) = op_node(eg, node) else {
            return vec![];
        };
        let mut res = Vec::new();
        for (c, args) in contractions(eg, targs[0]) {
            let r = c.out.len();
            let p = perm.clone().unwrap_or_else(|| (0..r).rev().collect());
            if p.len() != r || p.iter().any(|&i| i >= r) {
                continue;
            }
            let nc = Contraction {
                out: p.iter().map(|&i| c.out[i]).collect(),
                ..c
            };
            res.push(einsum(eg, &nc, args));
        }
        res
    }
}

/// `C(.., Mul(y, s), ..) = Mul(C(.., y, ..), s)` for a single-element `s` (as a scalar).
pub struct ScalarOut;

impl Rule for ScalarOut {
    fn name(&self) -> &'static str {
        "scalar-out-of-contraction"
    }
    fn apply(&self, eg: &mut EG, _: &Ctx, class: Id, node: &Node) -> Vec<Id> {
        let Some((op, args, _)) = contraction_node(eg, node) else {
            return vec![];
        };
        let Some(out_ty) = eg[class].data.ty.clone() else {
            return vec![];
        };
        let mut res = Vec::new();
        for pos in 0..2 {
            let Some(operand) = shape(eg, args[pos]) else {
                continue;
            };
            let muls: Vec<(Id, Id)> = eg[args[pos]]
                .nodes
                .iter()
                .filter_map(|n| match op_node(eg, n)? {
                    (Op::Binary(BinaryOp::Mul), 0, 1, m) if m.len() == 2 => Some((m[0], m[1])),
                    _ => None,
                })
                .collect();
            for (x, y) in muls {
                for (full, s) in [(x, y), (y, x)] {
                    let one = eg[s].data.ty.as_ref().is_some_and(|t| {
                        t.dtype == out_ty.dtype
                            && t.shape
                                .as_static()
                                .is_some_and(|d| d.iter().product::<usize>() == 1)
                    });
                    if !one || shape(eg, full).as_ref() != Some(&operand) {
                        continue;
                    }
                    let mut nargs = args.clone();
                    nargs[pos] = full;
                    let c = add_op(eg, op.clone(), nargs);
                    let s = if shape(eg, s).is_some_and(|d| d.is_empty()) {
                        s
                    } else {
                        reshape_to(eg, s, &[])
                    };
                    res.push(add_op(eg, Op::Binary(BinaryOp::Mul), vec![c, s]));
                }
            }
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equations_parse_and_print_back() {
        let c = Contraction::parse("abmk, abkn -> abmn").unwrap();
        assert_eq!(c.equation(), "abmk,abkn->abmn");
        assert_eq!(c.reduced(), vec!['k']);
        assert!(Contraction::parse("...mk,...kn->...mn").is_none());
        assert!(Contraction::parse("aak,kb->ab").is_none());
        // Implicit output: the letters seen once, in order.
        assert_eq!(Contraction::parse("mk,kn").unwrap().equation(), "mk,kn->mn");
        assert_eq!(
            unpermute(&['a', 'b', 'c', 'd'], Some(vec![0, 2, 1, 3])),
            Some(vec!['a', 'c', 'b', 'd'])
        );
        assert_eq!(unpermute(&['m', 'k'], None), Some(vec!['k', 'm']));
        assert_eq!(unpermute(&['m', 'k'], Some(vec![0, 0])), None);
    }
}
