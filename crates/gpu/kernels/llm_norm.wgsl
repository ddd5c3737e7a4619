// Kernel id: "llm_norm" — the normalizations of decoder layers, per row of a contiguous
// [rows, cols] activation (f32, or f16 in the `_f16a` variant; sums in f32):
//
//   LAYER = false (RMSNorm):   y = x / sqrt(mean(x²) + eps) * weight
//   LAYER = true  (LayerNorm): y = (x - mean) / sqrt(var + eps) * weight + bias
//
// (biased variance, from a second pass over the row for accuracy).
//
// Dispatch: one workgroup of 256 invocations per row; more than 65535 rows spill into y
// (row = wid.x + wid.y * num_workgroups.x).

struct Params {
    rows: u32,
    cols: u32,
    eps: f32,
    _pad: u32,
}

// Storage type of the activations.
alias Act = f32;

override LAYER: bool = false;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<Act>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<Act>;

const WG: u32 = 256u;
var<workgroup> scratch: array<f32, 256>;

fn reduce_sum(v: f32, lane: u32) -> f32 {
    scratch[lane] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lane < s) {
            scratch[lane] += scratch[lane + s];
        }
        workgroupBarrier();
    }
    let total = scratch[0];
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let row = wid.x + wid.y * nwg.x;
    let cols = select(0u, params.cols, row < params.rows);
    let base = row * params.cols;
    let n = f32(max(params.cols, 1u));

    var mean = 0.0;
    if (LAYER) {
        var sum = 0.0;
        for (var j = lid.x; j < cols; j += WG) {
            sum += f32(x[base + j]);
        }
        mean = reduce_sum(sum, lid.x) / n;
    }
    var sq = 0.0;
    for (var j = lid.x; j < cols; j += WG) {
        let d = f32(x[base + j]) - mean;
        sq = fma(d, d, sq);
    }
    let inv = 1.0 / sqrt(reduce_sum(sq, lid.x) / n + params.eps);
    for (var j = lid.x; j < cols; j += WG) {
        var v = (f32(x[base + j]) - mean) * inv * weight[j];
        if (LAYER) {
            v += bias[j];
        }
        y[base + j] = Act(v);
    }
}
