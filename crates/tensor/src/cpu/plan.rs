//! Memory planning: one arena per program, values placed by liveness so
//! storage is reused as soon as a value is dead.

use super::instr::Instr;
use super::lower::Lowered;
use super::memory::{Loc, Slot, ALIGN};
use crate::graph::Graph;

/// Storage of every operand and the arena size the program needs.
pub(crate) struct MemoryPlan {
    pub slots: Vec<Slot>,
    pub arena_bytes: usize,
}

pub(crate) fn plan_memory(graph: &Graph, lowered: &Lowered) -> MemoryPlan {
    let n = graph.operands.len();
    let root = |mut i: usize| {
        while let Some(j) = lowered.alias[i] {
            i = j;
        }
        i
    };
    let bytes_of = |i: usize| {
        let d = &graph.operands[i];
        d.dtype.storage_bytes(d.shape.numel()).expect("validated graphs hold whole blocks")
    };

    let mut loc = vec![Loc::None; n];
    for (i, input) in graph.inputs.iter().enumerate() {
        loc[input.operand.index()] = Loc::Input(i);
    }
    for (i, constant) in graph.constants.iter().enumerate() {
        loc[constant.operand.index()] = Loc::Const(i);
    }

    // Last instruction reading each root (outputs live to the end).
    let mut last_use = vec![None::<usize>; n];
    for (t, instr) in lowered.instrs.iter().enumerate() {
        for r in instr.reads() {
            last_use[root(r)] = Some(t);
        }
    }
    for o in &graph.outputs {
        last_use[root(o.operand.index())] = Some(usize::MAX);
    }

    let mut alloc = FreeList::default();
    let mut size_of_root = vec![0; n];
    for (t, instr) in lowered.instrs.iter().enumerate() {
        let out = root(instr.output());
        if loc[out] == Loc::None {
            let size = bytes_of(out).max(1).next_multiple_of(ALIGN);
            size_of_root[out] = size;
            loc[out] = Loc::Arena(alloc.alloc(size));
        }
        let mut freed = reads_and_output(instr);
        freed.sort_unstable();
        freed.dedup();
        for r in freed {
            let r = root(r);
            if let Loc::Arena(off) = loc[r] {
                let dead = match last_use[r] {
                    None => true,
                    Some(u) => u == t,
                };
                if dead && size_of_root[r] > 0 {
                    alloc.free(off, size_of_root[r]);
                    size_of_root[r] = 0; // freed once
                }
            }
        }
    }

    let slots = (0..n)
        .map(|i| {
            let r = root(i);
            let l = if lowered.elided[i] { Loc::None } else { loc[r] };
            Slot { loc: l, bytes: bytes_of(i), dtype: graph.operands[i].dtype }
        })
        .collect();
    MemoryPlan { slots, arena_bytes: alloc.top }
}

fn reads_and_output(instr: &Instr) -> Vec<usize> {
    let mut v = instr.reads();
    v.push(instr.output());
    v
}

/// First-fit free list over arena byte offsets, merging neighbours on free.
#[derive(Default)]
struct FreeList {
    /// Free blocks `(offset, size)`, sorted by offset.
    free: Vec<(usize, usize)>,
    /// High-water mark.
    top: usize,
}

impl FreeList {
    fn alloc(&mut self, size: usize) -> usize {
        let best = self.free.iter().enumerate().filter(|(_, b)| b.1 >= size).min_by_key(|(_, b)| b.1).map(|(i, _)| i);
        if let Some(i) = best {
            let (off, len) = self.free[i];
            if len == size {
                self.free.remove(i);
            } else {
                self.free[i] = (off + size, len - size);
            }
            return off;
        }
        // Grow from the top, absorbing a free block that ends there.
        if let Some(&(off, len)) = self.free.last() {
            if off + len == self.top {
                self.free.pop();
                self.top = off + size;
                return off;
            }
        }
        let off = self.top;
        self.top += size;
        off
    }

    fn free(&mut self, off: usize, size: usize) {
        let i = self.free.partition_point(|b| b.0 < off);
        self.free.insert(i, (off, size));
        if i + 1 < self.free.len() && self.free[i].0 + self.free[i].1 == self.free[i + 1].0 {
            self.free[i].1 += self.free[i + 1].1;
            self.free.remove(i + 1);
        }
        if i > 0 && self.free[i - 1].0 + self.free[i - 1].1 == self.free[i].0 {
            self.free[i - 1].1 += self.free[i].1;
            self.free.remove(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FreeList;

    #[test]
    fn free_list_reuses_and_merges() {
        let mut f = FreeList::default();
        let a = f.alloc(64);
        let b = f.alloc(128);
        let c = f.alloc(64);
        f.free(a, 64);
        f.free(b, 128);
        assert_eq!(f.alloc(192), a, "neighbours merge");
        f.free(c, 64);
        assert_eq!(f.top, 256);
    }
}
