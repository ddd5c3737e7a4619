//! Graphs arrive from other processes (browsers, remote workers) as JSON.
//! Whatever the bytes, deserializing, validating, compiling and running must
//! end in `Ok` or a clear `Err` — never a panic, a hang or an out-of-bounds read.
//! This mutates a valid graph many times (a deterministic, dependency-free fuzz).

use ipfs_accelerate_tensor::graph::{AttentionOptions, AttentionSegment};
use ipfs_accelerate_tensor::{CpuBackend, DType, GemmOptions, Graph, GraphBuilder, LayerNormOptions, Tensor, Weights};

fn sample_graph() -> (Graph, Weights) {
    let mut b = GraphBuilder::new();
    let ids = b.input("ids", DType::Int32, [6]).unwrap();
    let table = b
        .constant("table", Tensor::from_f32([8, 4], &(0..32).map(|i| i as f32 / 32.0).collect::<Vec<_>>()).unwrap())
        .unwrap();
    let x = b.gather(table, ids, 0).unwrap();
    let w = b
        .constant("w", Tensor::from_f32([8, 4], &(0..32).map(|i| (i % 7) as f32 / 7.0).collect::<Vec<_>>()).unwrap())
        .unwrap();
    let qkv = b.gemm(x, w, GemmOptions { b_transpose: true, ..Default::default() }).unwrap();
    let q = b.slice(qkv, &[0, 0], &[6, 4]).unwrap();
    let k = b.slice(qkv, &[0, 4], &[6, 2]).unwrap();
    let v = b.slice(qkv, &[0, 6], &[6, 2]).unwrap();
    let seg = vec![AttentionSegment { q_len: 2, kv_len: 2 }, AttentionSegment { q_len: 4, kv_len: 4 }];
    let a = b
        .attention(
            q,
            k,
            v,
            AttentionOptions {
                num_heads: 2,
                num_kv_heads: 1,
                head_dim: 2,
                scale: 0.5,
                causal: true,
                segments: seg,
                has_mask: false,
            },
        )
        .unwrap();
    let t = b.transpose(a, &[1, 0]).unwrap();
    let r = b.reshape(t, &[2, 2, 6]).unwrap();
    let s = b.softmax(r, 1).unwrap();
    let m = b.reduce_mean(s, &[2], true).unwrap();
    let e = b.expand(m, &[2, 2, 6]).unwrap();
    let c = b.concat(&[e, s], 2).unwrap();
    let n = b.layer_normalization(c, LayerNormOptions { axes: Some(vec![2]), ..Default::default() }).unwrap();
    let zero = b.scalar(0.0);
    let cond = b.greater(n, zero).unwrap();
    let y = b.where_(cond, n, zero).unwrap();
    let y = b.cast(y, DType::Float16).unwrap();
    b.build(&[("y", y)]).unwrap()
}

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[test]
fn mutated_graphs_never_panic() {
    let (graph, weights) = sample_graph();
    let json = serde_json::to_string(&graph).unwrap();
    let ids = Tensor::from_i32([6], &[0, 1, 2, 3, 4, 7]).unwrap();
    let backend = CpuBackend::new();
    // The unmutated graph runs.
    backend.compile(&graph, &weights).unwrap().run(&[("ids", &ids)]).unwrap();

    let digits: Vec<usize> = json.char_indices().filter(|(_, c)| c.is_ascii_digit()).map(|(i, _)| i).collect();
    let mut rng = Lcg(42);
    let (mut parsed, mut compiled) = (0, 0);
    for _ in 0..20000 {
        let mut bytes = json.clone().into_bytes();
        for _ in 0..1 + rng.next() % 3 {
            // Mostly change numbers (shapes, axes, operand ids), sometimes any byte.
            let at = if rng.next().is_multiple_of(4) {
                rng.next() as usize % bytes.len()
            } else {
                digits[rng.next() as usize % digits.len()]
            };
            match rng.next() % 8 {
                0 => bytes[at] = rng.next() as u8,
                // Huge numbers probe overflow in size arithmetic.
                1 => {
                    bytes.splice(at..at + 1, b"4294967297".iter().copied());
                }
                2 => {
                    bytes.splice(at..at + 1, b"18446744073709551615".iter().copied());
                }
                _ => bytes[at] = b'0' + (rng.next() % 10) as u8,
            }
        }
        let Ok(mutated) = serde_json::from_slice::<Graph>(&bytes) else { continue };
        parsed += 1;
        let Ok(exe) = backend.compile(&mutated, &weights) else { continue };
        compiled += 1;
        let _ = exe.run(&[("ids", &ids)]);
    }
    assert!(
        parsed > 3000 && compiled > 100,
        "the mutations should exercise every stage: parsed {parsed}, compiled {compiled}"
    );
}
