//! Folds an inference batch norm into the convolution that feeds it.
//!
//! `bn(conv(x, w, b))` with constant weights and statistics is
//! `conv(x, w', b')`, where `scale = gamma / sqrt(var + eps)`,
//! `w'[o, ...] = w[o, ...] * scale[o]` and `b' = (b - mean) * scale + beta`.
//! The new weight and bias are computed once here (in f64, rounded to f32)
//! and become constant inputs; the batch norm disappears. This removes a
//! pass over every convolution's output and lets an activation that follows
//! fuse into the convolution's epilogue.
//!
//! It applies only when the convolution is not transposed, its output has
//! no other reader, the batch norm's statistics outputs are unused, and
//! every tensor involved is an f32 weight that the program never mutates.
//! Running statistics the program never writes are constants for the
//! compiled model, as every inference compiler treats them; a caller that
//! edits them in the state after loading must load again.

use std::collections::{BTreeMap, HashSet};

use crate::error::Result;
use crate::ir::{Arg, Aten, InputKind, InputSpec, Op, Program, ValueId};
use crate::tensor::Tensor;
use crate::DType;

use super::{Pass, PassContext};

pub struct FoldBatchNorm;

impl Pass for FoldBatchNorm {
    fn name(&self) -> &'static str {
        "fold_batch_norm"
    }

    fn run(&self, p: &mut Program, cx: &mut PassContext<'_>) -> Result<bool> {
        let Some(weights) = cx.weights.as_deref_mut() else {
            return Ok(false);
        };
        let mut changed = false;
        while fold_one(p, weights)? {
            changed = true;
        }
        if changed {
            super::cleanup::drop_unused_weight_inputs(p);
        }
        Ok(changed)
    }
}

/// Folds the first batch norm that can be folded; returns whether one was.
fn fold_one(p: &mut Program, weights: &mut BTreeMap<String, Tensor>) -> Result<bool> {
    {
        let mutated: HashSet<String> = super::cleanup::mutated_weights(p)
            .into_iter()
            .map(str::to_string)
            .collect();
        // The weight behind a value: an unmutated f32 parameter, buffer or
        // constant.
        let weight_of = |p: &Program, v: ValueId| -> Option<String> {
            let spec = p.input_spec(v)?;
            if !matches!(
                spec.kind,
                InputKind::Parameter | InputKind::Buffer { .. } | InputKind::ConstantTensor
            ) {
                return None;
            }
            let t = spec.target.clone()?;
            (!mutated.contains(&t)).then_some(t)
        };
        let uses = p.graph.use_counts();
        let producers = p.graph.producers();
        let mut i = 0;
        while i < p.graph.nodes.len() {
            let n = &p.graph.nodes[i];
            let is_bn = matches!(&n.op, Op::Aten(Aten::InternalNativeBatchNormLegitNoTraining, o) if o == "default");
            if !is_bn || n.outputs.iter().skip(1).any(|v| uses[v.index()] > 0) {
                i += 1;
                continue;
            }
            let (Some(Arg::Value(y)), Some(Arg::Float(eps))) = (n.arg("input"), n.arg("eps"))
            else {
                i += 1;
                continue;
            };
            let (y, eps) = (*y, *eps);
            let val = |name: &str| match n.arg(name) {
                Some(Arg::Value(v)) => Some(Some(*v)),
                None | Some(Arg::None) => Some(None),
                _ => None,
            };
            let (Some(gamma), Some(beta), Some(Some(mean)), Some(Some(var))) = (
                val("weight"),
                val("bias"),
                val("running_mean"),
                val("running_var"),
            ) else {
                i += 1;
                continue;
            };
            let bn_out = n.outputs[0];
            let Some(ci) = producers[y.index()] else {
                i += 1;
                continue;
            };
            let conv = &p.graph.nodes[ci];
            let is_conv = matches!(&conv.op, Op::Aten(Aten::Convolution, o) if o == "default");
            if !is_conv
                || uses[y.index()] != 1
                || matches!(conv.arg("transposed"), Some(Arg::Bool(true)))
            {
                i += 1;
                continue;
            }
            let (Some(Arg::Value(w)), Some(cb)) = (conv.arg("weight"), conv.arg("bias")) else {
                i += 1;
                continue;
            };
            let w = *w;
            let cb = match cb {
                Arg::Value(v) => Some(*v),
                _ => None,
            };
            // Every tensor involved must be a weight, known and f32.
            let names: Option<Vec<Option<String>>> =
                [Some(w), cb, gamma, beta, Some(mean), Some(var)]
                    .iter()
                    .map(|v| match v {
                        None => Some(None),
                        Some(v) => weight_of(p, *v).map(Some),
                    })
                    .collect();
            let Some(names) = names else {
                i += 1;
                continue;
            };
            let get = |k: usize| -> Option<Option<Vec<f32>>> {
                match &names[k] {
                    None => Some(None),
                    Some(n) => {
                        let t = weights.get(n)?;
                        (t.dtype() == DType::F32)
                            .then(|| t.to_vec::<f32>().ok())?
                            .map(Some)
                    }
                }
            };
            let (Some(Some(wv)), Some(bv), Some(gv), Some(betav), Some(Some(mv)), Some(Some(vv))) =
                (get(0), get(1), get(2), get(3), get(4), get(5))
            else {
                i += 1;
                continue;
            };
            let wshape: Vec<usize> = match names[0].as_ref().and_then(|n| weights.get(n)) {
                Some(t) => t.sizes().to_vec(),
                None => {
                    i += 1;
                    continue;
                }
            };
            let oc = wshape.first().copied().unwrap_or(0);
            let per = wv.len().checked_div(oc).unwrap_or(0);
            let lens_ok = oc > 0
                && mv.len() == oc
                && vv.len() == oc
                && bv.as_ref().map_or(true, |b| b.len() == oc)
                && gv.as_ref().map_or(true, |g| g.len() == oc)
                && betav.as_ref().map_or(true, |b| b.len() == oc);
            if !lens_ok {
                i += 1;
                continue;
            }
            let mut nw = vec![0f32; wv.len()];
            let mut nb = vec![0f32; oc];
            for o in 0..oc {
                let g = gv.as_ref().map_or(1.0, |g| g[o] as f64);
                let scale = g / (vv[o] as f64 + eps).sqrt();
                for k in 0..per {
                    nw[o * per + k] = (wv[o * per + k] as f64 * scale) as f32;
                }
                let b0 = bv.as_ref().map_or(0.0, |b| b[o] as f64);
                let shift = betav.as_ref().map_or(0.0, |b| b[o] as f64);
                nb[o] = ((b0 - mv[o] as f64) * scale + shift) as f32;
            }
            // New constant inputs, named after the batch norm.
            let base = p.graph.nodes[i].name.clone();
            let mut add_const = |p: &mut Program, what: &str, t: Tensor, like: ValueId| {
                let mut name = format!("_folded_{base}_{what}");
                let mut k = 1;
                while weights.contains_key(&name) || p.graph.lookup(&name).is_some() {
                    name = format!("_folded_{base}_{what}_{k}");
                    k += 1;
                }
                let ty = p.graph.ty(like).clone();
                let v = p.graph.add_value(&name, ty);
                weights.insert(name.clone(), t);
                let at = p
                    .signature
                    .inputs
                    .iter()
                    .position(|s| s.kind == InputKind::UserInput)
                    .unwrap_or(p.signature.inputs.len());
                p.graph.inputs.insert(at, v);
                p.signature.inputs.insert(
                    at,
                    InputSpec {
                        kind: InputKind::ConstantTensor,
                        value: v,
                        target: Some(name),
                    },
                );
                v
            };
            let tw = Tensor::from_vec_f32(nw, &wshape)?;
            let tb = Tensor::from_vec_f32(nb, &[oc])?;
            let new_w = add_const(p, "weight", tw, w);
            let new_b = add_const(p, "bias", tb, mean);
            let conv = &mut p.graph.nodes[ci];
            if let Some(a) = conv.arg_mut("weight") {
                *a = Arg::Value(new_w);
            }
            if let Some(a) = conv.arg_mut("bias") {
                *a = Arg::Value(new_b);
            }
            p.graph.replace_uses(bn_out, y);
            p.graph.nodes.remove(i);
            return Ok(true);
        }
        Ok(false)
    }
}
