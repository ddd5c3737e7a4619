// Kernel id: "layernorm" — WebNN layerNormalization over the last axis of a contiguous
// [rows, cols] f32 tensor:
//
//   y[r, j] = (x[r, j] - mean_r) / sqrt(var_r + epsilon) * scale[j] + bias[j]
//
// with the biased variance (mean of squared deviations, computed in a second pass).
// Without HAS_SCALE / HAS_BIAS the scale is 1 and the bias 0 (bind any buffer there).
//
// Dispatch: one workgroup of WG invocations per row (WG a power of two <= 256); more than
// 65535 rows spill into y (row = wid.x + wid.y * num_workgroups.x).

struct Params {
    rows: u32,
    cols: u32,
    epsilon: f32,
    _pad0: u32,
}

override HAS_SCALE: bool = true;
override HAS_BIAS: bool = true;
override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> scale: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

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

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let row = wid.x + wid.y * nwg.x;
    let cols = select(0u, params.cols, row < params.rows);
    let base = row * params.cols;
    let n = f32(max(params.cols, 1u));

    var sum = 0.0;
    for (var j = lid.x; j < cols; j += WG) {
        sum += x[base + j];
    }
    let mean = reduce_sum(sum, lid.x) / n;

    var sq = 0.0;
    for (var j = lid.x; j < cols; j += WG) {
        let d = x[base + j] - mean;
        sq += d * d;
    }
    let variance = reduce_sum(sq, lid.x) / n;
    let inv_std = inverseSqrt(variance + params.epsilon);

    for (var j = lid.x; j < cols; j += WG) {
        var v = (x[base + j] - mean) * inv_std;
        if (HAS_SCALE) {
            v *= scale[j];
        }
        if (HAS_BIAS) {
            v += bias[j];
        }
        y[base + j] = v;
    }
}
