// Kernel id: "attention" — fused scaled-dot-product attention for one query row per
// workgroup, with an optional additive mask and optional causal masking:
//
//   out[b, h, s, :] = softmax_t(scale * q[b,h,s,:]·k[b,g,t,:] + mask[b,h,s,t]) · v[b,g,t,:]
//
// where g = h / kv_group (grouped-query attention; kv_group = 1 for ordinary
// multi-head attention). Every operand is addressed by strides so the host can read Q,
// K and V straight out of a fused QKV projection laid out [batch, seq, 3 * hidden]
// without transposing: element (b, h, s, d) of q is at
//   q_offset + b*q_strides.x + h*q_strides.y + s*q_strides.z + d
// (likewise k, v, out; the mask's element (b, h, s, t) is at
//   m_offset + b*m_strides.x + h*m_strides.y + s*m_strides.z + t,
// so a [batch, kv_len] key-padding mask has strides (kv_len, 0, 0)).
// A mask value of -inf (or a large negative number) removes a key; a row whose keys are
// all removed yields zeros.
//
// Limits: head_dim <= 256 and kv_len <= 2048 (the scores of one row live in workgroup
// memory); longer sequences need the decomposed form (matmul + softmax + matmul).
//
// Dispatch: (q_len, heads, batch) workgroups of WG invocations (WG a power of two <= 256).

struct Params {
    batch: u32,
    heads: u32,
    q_len: u32,
    kv_len: u32,
    head_dim: u32,
    kv_group: u32,
    scale: f32,
    _pad0: u32,
    q_strides: vec4<u32>,
    k_strides: vec4<u32>,
    v_strides: vec4<u32>,
    o_strides: vec4<u32>,
    m_strides: vec4<u32>,
    q_offset: u32,
    k_offset: u32,
    v_offset: u32,
    o_offset: u32,
    m_offset: u32,
    _pad1: u32,
    _pad2: u32,
    _pad3: u32,
}

override HAS_MASK: bool = false;
// Query s attends to keys t <= s + (kv_len - q_len) only.
override CAUSAL: bool = false;
override WG: u32 = 64u;

const MAX_KV: u32 = 2048u;
// Score of a causally removed key. (A constant -inf would be a shader-creation error in
// browsers: WGSL forbids const expressions that evaluate to inf or NaN.)
const NEG_BIG: f32 = -3.402823e38;
const MAX_HEAD_DIM: u32 = 256u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> mask: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

var<workgroup> q_row: array<f32, MAX_HEAD_DIM>;
var<workgroup> scores: array<f32, MAX_KV>;
var<workgroup> scratch: array<f32, 256>;

fn reduce_max(x: f32, lane: u32) -> f32 {
    scratch[lane] = x;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lane < s) {
            scratch[lane] = max(scratch[lane], scratch[lane + s]);
        }
        workgroupBarrier();
    }
    let r = scratch[0];
    workgroupBarrier();
    return r;
}

fn reduce_sum(x: f32, lane: u32) -> f32 {
    scratch[lane] = x;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lane < s) {
            scratch[lane] += scratch[lane + s];
        }
        workgroupBarrier();
    }
    let r = scratch[0];
    workgroupBarrier();
    return r;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let s = wid.x;
    let h = wid.y;
    let b = wid.z;
    let g = h / max(params.kv_group, 1u);
    let lane = lid.x;
    let dim = min(params.head_dim, MAX_HEAD_DIM);
    let kv_len = min(params.kv_len, MAX_KV);

    let q_base = params.q_offset + b * params.q_strides.x + h * params.q_strides.y + s * params.q_strides.z;
    for (var d = lane; d < dim; d += WG) {
        q_row[d] = q[q_base + d];
    }
    workgroupBarrier();

    let k_base = params.k_offset + b * params.k_strides.x + g * params.k_strides.y;
    let m_base = params.m_offset + b * params.m_strides.x + h * params.m_strides.y + s * params.m_strides.z;
    let causal_limit = s + params.kv_len - min(params.q_len, params.kv_len);

    var local_max = NEG_BIG;
    for (var t = lane; t < kv_len; t += WG) {
        var score = NEG_BIG;
        if (!CAUSAL || t <= causal_limit) {
            let kt = k_base + t * params.k_strides.z;
            var qk = 0.0;
            for (var d = 0u; d < dim; d++) {
                qk = fma(q_row[d], k[kt + d], qk);
            }
            score = qk * params.scale;
            if (HAS_MASK) {
                score += mask[m_base + t];
            }
        }
        scores[t] = score;
        local_max = max(local_max, score);
    }
    let row_max = reduce_max(local_max, lane);

    var local_sum = 0.0;
    for (var t = lane; t < kv_len; t += WG) {
        var p = 0.0;
        if (row_max > NEG_BIG) {
            p = exp(scores[t] - row_max);
        }
        scores[t] = p;
        local_sum += p;
    }
    let total = reduce_sum(local_sum, lane);
    let inv = select(0.0, 1.0 / total, total > 0.0);

    let v_base = params.v_offset + b * params.v_strides.x + g * params.v_strides.y;
    let o_base = params.o_offset + b * params.o_strides.x + h * params.o_strides.y + s * params.o_strides.z;
    for (var d = lane; d < dim; d += WG) {
        var acc = 0.0;
        for (var t = 0u; t < kv_len; t++) {
            acc = fma(scores[t], v[v_base + t * params.v_strides.z + d], acc);
        }
        out[o_base + d] = acc * inv;
    }
}
