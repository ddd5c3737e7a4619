// Kernel id: "binary" — elementwise binary op with broadcasting: c = op(a, b).
//
// The output is contiguous with shape `shape[0..rank]` (rank <= 8). Operand element
// offsets are `x_offset + sum(coord[d] * x_strides[d])`; a stride of 0 broadcasts that
// dimension (numpy/WebNN broadcasting is expressed entirely by the host's strides).
//
// Dispatch: linear over `numel` with WG invocations per workgroup; more than 65535
// workgroups spill into y (index = gid.x + gid.y * num_workgroups.x * WG).

struct Params {
    rank: u32,
    numel: u32,
    a_offset: u32,
    b_offset: u32,
    shape: array<vec4<u32>, 2>,
    a_strides: array<vec4<u32>, 2>,
    b_strides: array<vec4<u32>, 2>,
}

// 0 add, 1 sub, 2 mul, 3 div, 4 max, 5 min, 6 pow.
override OP: u32 = 0u;
override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

// pow with the sign rules of C's powf for negative bases and integral exponents.
fn pow_signed(x: f32, e: f32) -> f32 {
    if (x >= 0.0) {
        return pow(x, e);
    }
    if (e != floor(e)) {
        // Undefined (NaN in C); WGSL's pow of a negative base is indeterminate too,
        // and NaN on common hardware.
        return pow(x, e);
    }
    let mag = pow(-x, e);
    let odd = (abs(e) % 2.0) == 1.0;
    return select(mag, -mag, odd);
}

fn apply(x: f32, z: f32) -> f32 {
    switch OP {
        case 0u: { return x + z; }
        case 1u: { return x - z; }
        case 2u: { return x * z; }
        case 3u: { return x / z; }
        case 4u: { return max(x, z); }
        case 5u: { return min(x, z); }
        case 6u: { return pow_signed(x, z); }
        default: { return x; }
    }
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= params.numel) {
        return;
    }
    var rem = i;
    var ai = params.a_offset;
    var bi = params.b_offset;
    for (var d = i32(params.rank) - 1; d >= 0; d--) {
        let q = u32(d) / 4u;
        let r = u32(d) % 4u;
        let extent = params.shape[q][r];
        let coord = rem % extent;
        rem = rem / extent;
        ai += coord * params.a_strides[q][r];
        bi += coord * params.b_strides[q][r];
    }
    c[i] = apply(a[ai], b[bi]);
}
