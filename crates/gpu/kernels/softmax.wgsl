// Kernel id: "softmax" — numerically stable softmax over the last axis of a contiguous
// [rows, cols] f32 tensor: y[r, j] = exp(x[r, j] - max_r) / sum_j exp(x[r, j] - max_r).
//
// Dispatch: one workgroup of WG invocations per row (WG a power of two <= 256); more than
// 65535 rows spill into y (row = wid.x + wid.y * num_workgroups.x).

struct Params {
    rows: u32,
    cols: u32,
    _pad0: u32,
    _pad1: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

var<workgroup> scratch: array<f32, 256>;

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let row = wid.x + wid.y * nwg.x;
    // Whole workgroups past the end do no work but still reach every barrier.
    let cols = select(0u, params.cols, row < params.rows);
    let base = row * params.cols;

    var m = -3.402823e38;
    for (var j = lid.x; j < cols; j += WG) {
        m = max(m, x[base + j]);
    }
    scratch[lid.x] = m;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid.x < s) {
            scratch[lid.x] = max(scratch[lid.x], scratch[lid.x + s]);
        }
        workgroupBarrier();
    }
    let row_max = scratch[0];
    workgroupBarrier();

    var sum = 0.0;
    for (var j = lid.x; j < cols; j += WG) {
        sum += exp(x[base + j] - row_max);
    }
    scratch[lid.x] = sum;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid.x < s) {
            scratch[lid.x] += scratch[lid.x + s];
        }
        workgroupBarrier();
    }
    let inv = 1.0 / scratch[0];

    for (var j = lid.x; j < cols; j += WG) {
        y[base + j] = exp(x[base + j] - row_max) * inv;
    }
}
