//! Higher-order ops in the interpreter: their bodies run as nested graphs.

use std::collections::HashMap;

use crate::error::Result;
use crate::ir::{Arg, Hop};
use crate::DType;

use super::eval::{run_subgraph_with, Args, EvalMode, RValue};

/// Splits a HOP's positional arguments into the body graph and its operands.
fn body_and_operands<'a>(a: &Args<'a>) -> Result<(&'a crate::ir::Graph, Vec<RValue>)> {
    let mut graph = None;
    let mut operands = Vec::new();
    for na in &a.node.args {
        match &na.value {
            Arg::Graph(sg) if graph.is_none() => graph = Some(&sg.graph),
            other if graph.is_some() => operands.push(a.value(other)?),
            _ => {}
        }
    }
    let g = graph.ok_or_else(|| a.err("higher-order op without a body graph"))?;
    Ok((g, operands))
}

pub(crate) fn eval_hop(
    a: &Args<'_>,
    h: Hop,
    syms: &HashMap<String, i64>,
    mode: EvalMode,
) -> Result<Vec<RValue>> {
    match h {
        Hop::WrapWithSetGradEnabled => {
            // Inference only: gradient mode does not change values.
            let (g, ops) = body_and_operands(a)?;
            run_subgraph_with(g, ops, syms, mode)
        }
        Hop::WrapWithAutocast => {
            // (device_type, dtype, enabled, cache_enabled, body, *operands)
            let enabled = matches!(a.positional(2), Some(Arg::Bool(true)));
            let dtype = match a.positional(1) {
                Some(Arg::DType(d)) => Some(*d),
                _ => None,
            };
            let device = match a.positional(0) {
                Some(Arg::Str(s)) => s.as_str(),
                _ => "cpu",
            };
            let inner = if enabled {
                if device != "cpu" {
                    return Err(a.err(format!("autocast on device {device} is not supported")));
                }
                // CPU autocast defaults to bfloat16.
                let d = dtype.unwrap_or(DType::BF16);
                if !matches!(d, DType::BF16 | DType::F16) {
                    return Err(a.err(format!("autocast to {d} is not supported")));
                }
                EvalMode { autocast: Some(d) }
            } else {
                EvalMode { autocast: None }
            };
            let (g, ops) = body_and_operands(a)?;
            run_subgraph_with(g, ops, syms, inner)
        }
        Hop::AutoFunctionalized | Hop::AutoFunctionalizedV2 => {
            let op = a.node.args.iter().find_map(|x| match &x.value {
                Arg::Operator(o) => Some(o.as_str()),
                _ => None,
            });
            Err(a.err(format!(
                "custom operator {} has no kernel in torchlift",
                op.map(|o| o.strip_prefix("torch.ops.").unwrap_or(o))
                    .unwrap_or("?")
            )))
        }
        other => Err(a.err(format!("higher-order op {} is not supported", other.name()))),
    }
}
