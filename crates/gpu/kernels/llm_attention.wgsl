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

struct Params {
    rows: u32,
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    start: u32,
    scale: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k_cache: array<f32>;
@group(0) @binding(3) var<storage, read> v_cache: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

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
    let span = params.start + r + 1u;

    for (var d = t; d < d_len; d += WG) {
        q_head[d] = q[q_base + d] * params.scale;
    }
    workgroupBarrier();

    var m = NEG_BIG;
    var l = 0.0;
    var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
    for (var c0 = 0u; c0 < span; c0 += WG) {
        let j = c0 + t;
        var score = NEG_BIG;
        if (j < span) {
            let kb = j * kv_stride + kv_base;
            var dot = 0.0;
            for (var d = 0u; d < d_len; d++) {
                dot = fma(q_head[d], k_cache[kb + d], dot);
            }
            score = dot;
        }
        let m_new = max(m, reduce(score, t, true));
        let p = select(0.0, exp(score - m_new), j < span);
        probs[t] = p;
        let correction = exp(m - m_new);
        l = l * correction + reduce(p, t, false);
        m = m_new;
        let count = min(WG, span - c0);
        for (var a = 0u; a < 4u; a++) {
            let d = t + a * WG;
            if (d < d_len) {
                var sum = acc[a] * correction;
                for (var jj = 0u; jj < count; jj++) {
                    sum = fma(probs[jj], v_cache[(c0 + jj) * kv_stride + kv_base + d], sum);
                }
                acc[a] = sum;
            }
        }
        workgroupBarrier();
    }
    for (var a = 0u; a < 4u; a++) {
        let d = t + a * WG;
        if (d < d_len) {
            out[q_base + d] = acc[a] / l;
        }
    }
}
