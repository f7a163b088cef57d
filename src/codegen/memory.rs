//! The arena plan: every temporary buffer and user input of a [`Plan`]
//! lives at an offset of one arena, and buffers whose lifetimes do not
//! overlap share a slot.
//!
//! Lifetimes come from the kernel order: a buffer is live from the first
//! kernel that writes it (user inputs: from the start) to the last kernel
//! that reads it (graph outputs: to the end). Slot sizes are symbolic
//! ([`SymExpr`] bytes); a buffer joins a free slot of the same symbolic size,
//! or of any static size (the slot grows to the larger). Offsets are the
//! prefix sums of the slot sizes, 64-byte aligned, evaluated from the bound
//! symbols at each call.

use std::collections::HashMap;

use crate::sym::SymExpr;

use super::kernel::{BufKind, OutputRef, Plan};

/// Alignment of every buffer in the arena, in bytes.
pub const ALIGN: usize = 64;

#[derive(Clone, Debug, PartialEq)]
pub struct ArenaPlan {
    /// The size in bytes of each slot.
    pub slots: Vec<SymExpr>,
    /// The slot of each buffer of the plan (`None` for state buffers).
    pub slot_of: Vec<Option<usize>>,
}

impl ArenaPlan {
    pub fn new(plan: &Plan) -> ArenaPlan {
        let nb = plan.buffers.len();
        let end = plan.kernels.len() + 1;
        let mut first = vec![usize::MAX; nb];
        let mut last = vec![0usize; nb];
        for (b, buf) in plan.buffers.iter().enumerate() {
            if let BufKind::UserInput(_) = buf.kind {
                first[b] = 0;
            }
        }
        for (i, k) in plan.kernels.iter().enumerate() {
            let t = i + 1;
            for b in k.writes() {
                first[b.index()] = first[b.index()].min(t);
                last[b.index()] = last[b.index()].max(t);
            }
            for b in k.reads() {
                last[b.index()] = last[b.index()].max(t);
            }
        }
        for o in &plan.outputs {
            if let OutputRef::Tensor(v) = o {
                last[v.buf.index()] = end;
            }
        }
        let mut order: Vec<usize> = (0..nb)
            .filter(|&b| !matches!(plan.buffers[b].kind, BufKind::State(_)))
            .collect();
        order.sort_by_key(|&b| (first[b], b));
        let mut slots: Vec<SymExpr> = Vec::new();
        let mut free_at: Vec<usize> = Vec::new();
        let mut slot_of = vec![None; nb];
        for b in order {
            let buf = &plan.buffers[b];
            let bytes = SymExpr::mul(vec![
                buf.numel(),
                SymExpr::Int(buf.dtype.size_bytes() as i64),
            ]);
            let start = if first[b] == usize::MAX { 0 } else { first[b] };
            let stop = last[b].max(start);
            let fits =
                |s: &SymExpr| *s == bytes || (s.as_int().is_some() && bytes.as_int().is_some());
            let pick = (0..slots.len()).find(|&s| free_at[s] < start && fits(&slots[s]));
            let s = match pick {
                Some(s) => {
                    if let (Some(a), Some(c)) = (slots[s].as_int(), bytes.as_int()) {
                        slots[s] = SymExpr::Int(a.max(c));
                    }
                    s
                }
                None => {
                    slots.push(bytes);
                    free_at.push(0);
                    slots.len() - 1
                }
            };
            free_at[s] = stop;
            slot_of[b] = Some(s);
        }
        ArenaPlan { slots, slot_of }
    }

    /// The byte offset of each slot and the arena's total size, with the
    /// symbols bound; `None` when a size does not evaluate.
    pub fn offsets(&self, env: &HashMap<String, i64>) -> Option<(Vec<usize>, usize)> {
        let mut out = Vec::with_capacity(self.slots.len());
        let mut at = 0usize;
        for s in &self.slots {
            let n = usize::try_from(s.eval_map(env)?).ok()?;
            out.push(at);
            at = at.checked_add(n.checked_add(ALIGN - 1)? / ALIGN * ALIGN)?;
        }
        Some((out, at))
    }

    /// The arena's size in bytes, as an expression of the symbols.
    pub fn peak(&self) -> SymExpr {
        SymExpr::add(self.slots.clone())
    }
}
