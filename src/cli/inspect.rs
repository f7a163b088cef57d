//! `torchlift inspect`: what is in an archive.

use std::fmt::Write;
use std::path::Path;
use std::process::ExitCode;

use torchlift::ir::print::{program_to_string_with, type_text, PrintOptions};
use torchlift::ir::{Arg, InputKind, Program};
use torchlift::model::Model;
use torchlift::passes;
use torchlift::pt2::Archive;
use torchlift::{Error, Result};

pub fn run(path: &Path, after: Option<&str>, source_lines: bool) -> Result<ExitCode> {
    let archive = Archive::open(path)?;
    let mut model = Model::from_archive(&archive)?;
    let opts = PrintOptions { source_lines };
    let mut out = String::new();
    let ep = &archive.program;
    let _ = writeln!(out, "model: {}", path.display());
    let _ = writeln!(
        out,
        "schema: {}.{}  torch: {}",
        ep.schema_version.major, ep.schema_version.minor, ep.torch_version
    );
    write_signature(&mut out, &model.program);
    write_ranges(&mut out, &model.program);
    write_weights(&mut out, &archive, &model.program);
    match after {
        None => {
            out.push_str("graph:\n");
            out.push_str(&indent(&program_to_string_with(&model.program, opts)));
        }
        Some(which) => {
            if which != "all" && passes::pass_by_name(which).is_none() {
                let names: Vec<_> = passes::all_passes().iter().map(|p| p.name()).collect();
                return Err(Error::other(format!(
                    "unknown pass {which:?}; passes: {}, all",
                    names.join(", ")
                )));
            }
            let mut shown = String::new();
            model.run_pipeline(true, |name, p| {
                if which == "all" || which == name {
                    let _ = writeln!(shown, "graph after {name}:");
                    shown.push_str(&indent(&program_to_string_with(p, opts)));
                }
            })?;
            out.push_str(&shown);
        }
    }
    out.push_str("op histogram:\n");
    for (op, n) in model.program.graph.op_histogram() {
        let _ = writeln!(out, "  {n:>5}  {op}");
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// `torchlift inspect --kernels`: the kernel plan of the compiled program.
pub fn kernels(path: &Path) -> Result<ExitCode> {
    let model = Model::load(path)?;
    let plan = torchlift::codegen::schedule(&model.program)?;
    let arena = torchlift::codegen::memory::ArenaPlan::new(&plan);
    let mut out = String::new();
    let _ = writeln!(out, "model: {}", path.display());
    out.push_str(&torchlift::codegen::kernel::plan_text(&plan));
    let [pw, red, ext, fb] = plan.counts();
    let _ = writeln!(
        out,
        "kernels: {} ({pw} pointwise, {red} reduction, {ext} extern, {fb} fallback)",
        plan.kernels.len()
    );
    let peak = arena.peak();
    let _ = write!(out, "arena: {} slots, {peak} bytes", arena.slots.len());
    if let Some(inputs) = &model.sample_inputs {
        let shapes: Vec<_> = inputs
            .iter()
            .map(|t| (t.dtype(), t.sizes().to_vec()))
            .collect();
        if let Ok(env) = passes::shape_prop::bind_inputs(&model.program, &shapes) {
            if let Some(v) = peak.eval_map(&env) {
                let _ = write!(out, " ({v} with the sample inputs)");
            }
        }
    }
    out.push('\n');
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("  {l}\n")).collect()
}

fn write_signature(out: &mut String, p: &Program) {
    let g = &p.graph;
    out.push_str("inputs:\n");
    for spec in &p.signature.inputs {
        let target = spec.target.as_deref().unwrap_or("-");
        let _ = writeln!(
            out,
            "  {:<16} {:<28} {:<28} {}",
            spec.kind.name(),
            g.name(spec.value),
            target,
            type_text(g.ty(spec.value))
        );
    }
    out.push_str("outputs:\n");
    for (a, spec) in p.outputs() {
        let (name, ty) = match a {
            Arg::Value(v) => (g.name(*v).to_string(), type_text(g.ty(*v))),
            other => (format!("{other:?}"), "constant".to_string()),
        };
        let target = spec.target.as_deref().unwrap_or("-");
        let _ = writeln!(
            out,
            "  {:<16} {:<28} {:<28} {ty}",
            spec.kind.name(),
            name,
            target
        );
    }
}

fn write_ranges(out: &mut String, p: &Program) {
    out.push_str("range constraints:\n");
    if p.range_constraints.is_empty() {
        out.push_str("  (none: every shape is static)\n");
    }
    for (s, r) in &p.range_constraints {
        let max = r.max.map_or("inf".to_string(), |m| m.to_string());
        let _ = writeln!(out, "  {s} in [{}, {max}]", r.min);
    }
}

fn write_weights(out: &mut String, archive: &Archive, p: &Program) {
    let mut count = [0usize; 3];
    let mut bytes = [0usize; 3];
    for spec in &p.signature.inputs {
        let slot = match spec.kind {
            InputKind::Parameter => 0,
            InputKind::Buffer { .. } => 1,
            InputKind::ConstantTensor => 2,
            _ => continue,
        };
        let name = spec.target.as_deref().unwrap_or("");
        if let Some(t) = archive
            .weights
            .get(name)
            .or_else(|| archive.constants.get(name))
        {
            count[slot] += 1;
            bytes[slot] += t.numel() * t.dtype.size_bytes();
        }
    }
    let _ = writeln!(
        out,
        "weights: {} tensors, {} bytes (parameters {} / {} B, buffers {} / {} B, constants {} / {} B)",
        count.iter().sum::<usize>(),
        bytes.iter().sum::<usize>(),
        count[0],
        bytes[0],
        count[1],
        bytes[1],
        count[2],
        bytes[2]
    );
}
