//! Buffer planning: scratch values whose lifetimes do not overlap share a
//! buffer.
//!
//! Values are allocated in dispatch order, when first written, from a pool of
//! free scratch buffers (the smallest that fits, else the largest grown to
//! fit, else a new one), and return to the pool after the last dispatch that
//! reads them. A value is freed only after the dispatch's output has been
//! placed, so no dispatch ever reads and writes the same buffer (WebGPU
//! forbids binding one buffer both ways in a dispatch).

use super::lower::{Step, Value};

/// Placement of every value: `buffer_of[v]` for values that are scratch,
/// and the final sizes of the scratch buffers.
#[derive(Debug, Default)]
pub(super) struct Placement {
    pub buffer_of: Vec<Option<usize>>,
    pub sizes: Vec<u64>,
}

/// Places the scratch values (those with `is_scratch[v]`) of `steps`;
/// values in `keep` (graph outputs) are never freed.
pub(super) fn place(steps: &[Step], bytes: &[u64], is_scratch: &[bool], keep: &[Value]) -> Placement {
    let n = bytes.len();
    let mut last_use = vec![None::<usize>; n];
    for (i, step) in steps.iter().enumerate() {
        for v in step.reads.iter().flatten().chain([&step.write]) {
            last_use[*v] = Some(i);
        }
    }
    for &v in keep {
        last_use[v] = Some(usize::MAX);
    }
    let mut placement = Placement { buffer_of: vec![None; n], sizes: Vec::new() };
    let mut free: Vec<usize> = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let w = step.write;
        if is_scratch[w] && placement.buffer_of[w].is_none() {
            let need = bytes[w];
            let fitting = free.iter().enumerate().filter(|(_, &b)| placement.sizes[b] >= need);
            let pick = fitting
                .min_by_key(|(_, &b)| placement.sizes[b])
                .or_else(|| free.iter().enumerate().max_by_key(|(_, &b)| placement.sizes[b]))
                .map(|(slot, _)| slot);
            let buffer = match pick {
                Some(slot) => free.swap_remove(slot),
                None => {
                    placement.sizes.push(0);
                    placement.sizes.len() - 1
                }
            };
            placement.sizes[buffer] = placement.sizes[buffer].max(need);
            placement.buffer_of[w] = Some(buffer);
        }
        // Free what this step read (or wrote) for the last time.
        let mut done: Vec<Value> = step.reads.iter().flatten().copied().chain([w]).collect();
        done.sort_unstable();
        done.dedup();
        for v in done {
            if is_scratch[v] && last_use[v] == Some(i) {
                if let Some(b) = placement.buffer_of[v] {
                    free.push(b);
                }
            }
        }
    }
    placement
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(reads: &[Value], write: Value) -> Step {
        Step {
            kernel: "copy",
            constants: vec![],
            uniform: vec![],
            reads: reads.iter().map(|&r| Some(r)).collect(),
            write,
            workgroups: [1, 1, 1],
        }
    }

    #[test]
    fn a_chain_ping_pongs_between_two_buffers_and_never_binds_one_both_ways() {
        // v0 (input) -> v1 -> v2 -> v3 -> v4 (output)
        let steps = [step(&[0], 1), step(&[1], 2), step(&[2], 3), step(&[3], 4)];
        let bytes = [16, 16, 16, 16, 16];
        let scratch = [false, true, true, true, true];
        let p = place(&steps, &bytes, &scratch, &[4]);
        assert_eq!(p.sizes.len(), 2, "{p:?}");
        for s in &steps {
            for r in s.reads.iter().flatten() {
                if scratch[*r] {
                    assert_ne!(p.buffer_of[*r], p.buffer_of[s.write]);
                }
            }
        }
    }

    #[test]
    fn outputs_are_never_reused_and_buffers_grow_to_fit() {
        let steps = [step(&[0], 1), step(&[1], 2), step(&[2], 3)];
        let bytes = [4, 8, 4, 32];
        let scratch = [false, true, true, true];
        let p = place(&steps, &bytes, &scratch, &[2, 3]);
        let out2 = p.buffer_of[2].unwrap();
        assert_ne!(p.buffer_of[3].unwrap(), out2);
        assert!(p.sizes[p.buffer_of[3].unwrap()] >= 32);
    }
}
