// Kernel id: "llm_attention" — causal, grouped-query attention of new query rows over a
// KV cache:
//
//   out[r, h] = softmax_j(scale * q[r, h] · K[j, g]) · V[j, g]     j = 0 ..= start + r
//
// with g = h / (heads / kv_heads). q and out are [rows, heads * head_dim]; the cache
// K and V of the layer are [capacity, kv_heads * head_dim] and already hold the new
// keys and values at start .. start + rows (the host copies them in first).
//
// One workgroup of 64 invocations per (head, row): keys in chunks of 64, one score per
// invocation, softmax online (running max and sum, flash-attention style) so no buffer
// of scores is needed whatever the span; each invocation accumulates head_dim / 64 of
// the output dims (head_dim <= 256).
//
// Dispatch: (heads, rows).
//
// With `causal` 0 there is no mask: every row attends to keys 0 .. start (`start` is
// then the key count), and K and V are any [start, kv_heads * head_dim] matrices —
// an encoder's self-attention or a decoder's cross-attention to the encoder output.
//
// q, K, V and out are f32, or f16 in the `_f16a` variant (an f16 KV cache halves its
// memory and the bytes each step reads); scores, softmax and sums are f32 either way,
// and so are the split partials.
//
// Split over the keys (flash-decoding), for few query rows over a long span, where
// (heads × rows) workgroups alone would leave most of a GPU idle — chosen by PHASE:
//   0  the whole span per workgroup, as above; `partials` unused.
//   1  workgroup z of `splits` takes its share of the span and writes its running max,
//      sum and unnormalized output, [rows, heads, splits, head_dim + 2] (m, l, acc…), to
//      `partials` (`out` unused). Dispatch (heads, rows, splits).
//   2  combines those `partials` into out[r, h] (q and the cache unused).
//      Dispatch (heads, rows).

struct Params {
    rows: u32,
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    start: u32,
    scale: f32,
    splits: u32,
    causal: u32,
}

// Storage type of q, the cache and out.
alias Act = f32;

override PHASE: u32 = 0u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> q: array<Act>;
@group(0) @binding(2) var<storage, read> k_cache: array<Act>;
@group(0) @binding(3) var<storage, read> v_cache: array<Act>;
@group(0) @binding(4) var<storage, read_write> partials: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<Act>;

const WG: u32 = 64u;
const MAX_HEAD_DIM: u32 = 256u;
const NEG_BIG: f32 = -3.0e38;

var<workgroup> q_head: array<f32, 256>;
var<workgroup> probs: array<f32, 64>;
var<workgroup> red: array<f32, 64>;

fn reduce(v: f32, t: u32, is_max: bool) -> f32 {
    red[t] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (t < s) {
            if (is_max) {
                red[t] = max(red[t], red[t + s]);
            } else {
                red[t] += red[t + s];
            }
        }
        workgroupBarrier();
    }
    let total = red[0];
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = lid.x;
    let h = wid.x;
    let r = wid.y;
    let d_len = params.head_dim;
    let g = h / (params.heads / params.kv_heads);
    let q_base = (r * params.heads + h) * d_len;
    let kv_stride = params.kv_heads * d_len;
    let kv_base = g * d_len;
    let span = select(params.start, params.start + r + 1u, params.causal != 0u);

    if (PHASE == 2u) {
        combine(q_base, (r * params.heads + h) * params.splits, t);
        return;
    }
    var k_begin = 0u;
    var k_end = span;
    if (PHASE == 1u) {
        let share = (span + params.splits - 1u) / params.splits;
        k_begin = min(wid.z * share, span);
        k_end = min(k_begin + share, span);
    }

    for (var d = t; d < d_len; d += WG) {
        q_head[d] = f32(q[q_base + d]) * params.scale;
    }
    workgroupBarrier();

    var m = NEG_BIG;
    var l = 0.0;
    var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
    for (var c0 = k_begin; c0 < k_end; c0 += WG) {
        let j = c0 + t;
        var score = NEG_BIG;
        if (j < k_end) {
            let kb = j * kv_stride + kv_base;
            var dot = 0.0;
            for (var d = 0u; d < d_len; d++) {
                dot = fma(q_head[d], f32(k_cache[kb + d]), dot);
            }
            score = dot;
        }
        let m_new = max(m, reduce(score, t, true));
        let p = select(0.0, exp(score - m_new), j < k_end);
        probs[t] = p;
        let correction = exp(m - m_new);
        l = l * correction + reduce(p, t, false);
        m = m_new;
        let count = min(WG, k_end - c0);
        for (var a = 0u; a < 4u; a++) {
            let d = t + a * WG;
            if (d < d_len) {
                var sum = acc[a] * correction;
                for (var jj = 0u; jj < count; jj++) {
                    sum = fma(probs[jj], f32(v_cache[(c0 + jj) * kv_stride + kv_base + d]), sum);
                }
                acc[a] = sum;
            }
        }
        workgroupBarrier();
    }
    if (PHASE == 1u) {
        let base = ((r * params.heads + h) * params.splits + wid.z) * (d_len + 2u);
        if (t == 0u) {
            partials[base] = m;
            partials[base + 1u] = l;
        }
        for (var a = 0u; a < 4u; a++) {
            let d = t + a * WG;
            if (d < d_len) {
                partials[base + 2u + d] = acc[a];
            }
        }
        return;
    }
    for (var a = 0u; a < 4u; a++) {
        let d = t + a * WG;
        if (d < d_len) {
            out[q_base + d] = Act(acc[a] / l);
        }
    }
}

// PHASE 2: out[q_base + d] from the `splits` partial results starting at partial
// `first` (an empty share has m = NEG_BIG, l = 0 and adds nothing).
fn combine(q_base: u32, first: u32, t: u32) {
    let d_len = params.head_dim;
    let stride = d_len + 2u;
    var m = NEG_BIG;
    for (var s = 0u; s < params.splits; s++) {
        m = max(m, partials[(first + s) * stride]);
    }
    var l = 0.0;
    var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
    for (var s = 0u; s < params.splits; s++) {
        let base = (first + s) * stride;
        let w = exp(partials[base] - m);
        l = fma(w, partials[base + 1u], l);
        for (var a = 0u; a < 4u; a++) {
            let d = t + a * WG;
            if (d < d_len) {
                acc[a] = fma(w, partials[base + 2u + d], acc[a]);
            }
        }
    }
    for (var a = 0u; a < 4u; a++) {
        let d = t + a * WG;
        if (d < d_len) {
            out[q_base + d] = Act(acc[a] / l);
        }
    }
}
