// Kernel id: "reduce" — reduction over the last axis of a contiguous [rows, cols] f32
// tensor: y[r] = op_j x[r, j]. An empty row gives 0 for sum and mean, and -FLT_MAX for
// max / +FLT_MAX for min (not ∓inf: WGSL forbids const expressions that evaluate to inf,
// and browsers enforce it).
//
// Dispatch: one workgroup of WG invocations per row (WG a power of two <= 256); more than
// 65535 rows spill into y (row = wid.x + wid.y * num_workgroups.x).

struct Params {
    rows: u32,
    cols: u32,
    _pad0: u32,
    _pad1: u32,
}

// 0 sum, 1 mean, 2 max, 3 min.
override OP: u32 = 0u;
override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

var<workgroup> scratch: array<f32, 256>;

fn identity() -> f32 {
    switch OP {
        case 2u: { return -3.402823e38; }
        case 3u: { return 3.402823e38; }
        default: { return 0.0; }
    }
}

fn combine(p: f32, q: f32) -> f32 {
    switch OP {
        case 2u: { return max(p, q); }
        case 3u: { return min(p, q); }
        default: { return p + q; }
    }
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

    var acc = identity();
    for (var j = lid.x; j < cols; j += WG) {
        acc = combine(acc, x[base + j]);
    }
    scratch[lid.x] = acc;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid.x < s) {
            scratch[lid.x] = combine(scratch[lid.x], scratch[lid.x + s]);
        }
        workgroupBarrier();
    }
    if (lid.x == 0u && row < params.rows) {
        var r = scratch[0];
        if (OP == 1u && params.cols > 0u) {
            r /= f32(params.cols);
        }
        y[row] = r;
    }
}
