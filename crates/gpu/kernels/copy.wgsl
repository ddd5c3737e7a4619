// Kernel id: "copy" — strided copy: transpose, reshape, slice, expand (broadcast) and
// concatenation are all this one gather of an input view into a contiguous output.
//
//   y[out_offset + i] = x[in_offset + sum(coord(i)[d] * in_strides[d])]
//
// where coord(i) is the row-major coordinate of i in `shape[0..rank]` (rank <= 8).
// A transpose permutes the input strides; a broadcast uses stride 0; a slice moves
// in_offset; a concatenation writes each part with its own out_offset.
//
// Dispatch: linear over `numel` with WG invocations per workgroup; more than 65535
// workgroups spill into y (index = gid.x + gid.y * num_workgroups.x * WG).

struct Params {
    rank: u32,
    numel: u32,
    in_offset: u32,
    out_offset: u32,
    shape: array<vec4<u32>, 2>,
    in_strides: array<vec4<u32>, 2>,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= params.numel) {
        return;
    }
    var rem = i;
    var xi = params.in_offset;
    for (var d = i32(params.rank) - 1; d >= 0; d--) {
        let q = u32(d) / 4u;
        let r = u32(d) % 4u;
        let extent = params.shape[q][r];
        xi += (rem % extent) * params.in_strides[q][r];
        rem = rem / extent;
    }
    y[params.out_offset + i] = x[xi];
}
