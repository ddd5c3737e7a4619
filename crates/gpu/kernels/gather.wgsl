// Kernel id: "gather" — WebNN gather of a contiguous f32 tensor along one axis with
// int32 indices (embedding lookup is axis 0 of a [vocab, hidden] table).
//
// The input is viewed as [outer, axis_size, inner]; the output is
// [outer, num_indices, inner]:
//
//   y[o, i, n] = x[o, clamp(idx[i]), n]
//
// Negative indices count from the end (idx + axis_size); indices still out of range
// are clamped to [0, axis_size - 1], as WebNN specifies, so a bad index never reads
// outside the buffer.
//
// Dispatch: linear over outer*num_indices*inner with WG invocations per workgroup;
// more than 65535 workgroups spill into y.

struct Params {
    outer: u32,
    axis_size: u32,
    inner: u32,
    num_indices: u32,
    // This dispatch's table holds rows [row_start, row_start + row_count) of the axis
    // (a table larger than one storage binding is split into row blocks, one dispatch
    // each, axis 0 only); output elements whose row lies elsewhere are left alone.
    // Unsplit: row_start 0, row_count axis_size.
    row_start: u32,
    row_count: u32,
    _pad0: u32,
    _pad1: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> params: Params;
// Element type of the table as stored. The build derives the kernel "gather_f16w" (an
// f16 table, f32 output) from this file by making it f16 and enabling the f16
// extension; the two kernels differ in nothing else.
alias Weight = f32;
@group(0) @binding(1) var<storage, read> x: array<Weight>;
@group(0) @binding(2) var<storage, read> indices: array<i32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = gid.x + gid.y * nwg.x * WG;
    if (e >= params.outer * params.num_indices * params.inner) {
        return;
    }
    let n = e % params.inner;
    let t = e / params.inner;
    let i = t % params.num_indices;
    let o = t / params.num_indices;
    var idx = indices[i];
    if (idx < 0) {
        idx += i32(params.axis_size);
    }
    let row = u32(clamp(idx, 0, i32(params.axis_size) - 1));
    if (row < params.row_start || row - params.row_start >= params.row_count) {
        return;
    }
    y[e] = f32(x[(o * params.row_count + row - params.row_start) * params.inner + n]);
}
