//! Steady-state runs allocate only for their outputs: the number of heap
//! allocations of a second run does not grow with the number of ops.
//! (Its own test binary: the counting allocator sees every thread.)

use ipfs_accelerate_tensor::graph::{AttentionOptions, AttentionSegment};
use ipfs_accelerate_tensor::{CpuBackend, DType, GemmOptions, GraphBuilder, LayerNormOptions, Tensor};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n).map(|i| ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 1000) as f32 / 1000.0 - 0.5).collect()
}

/// Fewest allocations of a steady-state run of an encoder-shaped graph with `layers` layers.
fn second_run_allocations(layers: usize) -> usize {
    let (tokens, hidden, heads) = (10, 16, 2);
    let mut b = GraphBuilder::new();
    let ids = b.input("ids", DType::Int32, [tokens]).unwrap();
    let table = b.constant("table", Tensor::from_f32([50, hidden], &values(50 * hidden, 1)).unwrap()).unwrap();
    let mut h = b.gather(table, ids, 0).unwrap();
    for l in 0..layers {
        let w = b
            .constant(
                &format!("w{l}"),
                Tensor::from_f32([3 * hidden, hidden], &values(3 * hidden * hidden, l as u32)).unwrap(),
            )
            .unwrap();
        let bias =
            b.constant(&format!("b{l}"), Tensor::from_f32([3 * hidden], &values(3 * hidden, 7)).unwrap()).unwrap();
        let qkv = b.gemm(h, w, GemmOptions { c: Some(bias), b_transpose: true, ..Default::default() }).unwrap();
        let q = b.slice(qkv, &[0, 0], &[tokens, hidden]).unwrap();
        let k = b.slice(qkv, &[0, hidden], &[tokens, hidden]).unwrap();
        let v = b.slice(qkv, &[0, 2 * hidden], &[tokens, hidden]).unwrap();
        let segments = vec![AttentionSegment { q_len: 4, kv_len: 4 }, AttentionSegment { q_len: 6, kv_len: 6 }];
        let options = AttentionOptions {
            num_heads: heads,
            num_kv_heads: heads,
            head_dim: hidden / heads,
            scale: 0.3,
            causal: false,
            segments,
            has_mask: false,
        };
        let ctx = b.attention(q, k, v, options).unwrap();
        let wo = b
            .constant(&format!("wo{l}"), Tensor::from_f32([hidden, hidden], &values(hidden * hidden, 3)).unwrap())
            .unwrap();
        let o = b.gemm(ctx, wo, GemmOptions { b_transpose: true, ..Default::default() }).unwrap();
        let o = b.add(o, h).unwrap();
        let o = b.gelu(o).unwrap();
        h = b.layer_normalization(o, LayerNormOptions::default()).unwrap();
    }
    let (graph, weights) = b.build(&[("h", h)]).unwrap();
    let exe = CpuBackend::new().compile(&graph, &weights).unwrap();
    let ids = Tensor::from_i32([tokens], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]).unwrap();
    let first = exe.run(&[("ids", &ids)]).unwrap();
    // The minimum over several runs: a run may land on a pool thread whose
    // scratch has not grown yet, or the pool may grow its job queue, both
    // one-time costs. Allocations per op would show in every run.
    let mut fewest = usize::MAX;
    for _ in 0..10 {
        let before = ALLOCATIONS.load(Ordering::SeqCst);
        let again = exe.run(&[("ids", &ids)]).unwrap();
        fewest = fewest.min(ALLOCATIONS.load(Ordering::SeqCst) - before);
        assert_eq!(first, again, "runs are deterministic");
    }
    fewest
}

#[test]
fn allocations_do_not_grow_with_ops() {
    let one = second_run_allocations(1);
    let four = second_run_allocations(4);
    assert_eq!(one, four, "allocations per run must not depend on the number of ops");
    assert!(one <= 8, "a run should allocate only its inputs table and outputs, got {one}");
}
