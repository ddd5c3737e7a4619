// Kernel id: "pool2d" — average or max pooling of NCHW input x over a kh × kw window with
// padding, strides and dilations. Padded positions are skipped: the average divides by the
// number of window positions inside the input (WebNN's averagePool2d), the max only looks
// at those; a window wholly in the padding gives 0.
//
// Dispatch: one invocation per output element, linear over `numel` with WG invocations per
// workgroup; more than 65535 workgroups spill into y (index = gid.x + gid.y * nwg.x * WG).

struct Params {
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    kh: u32,
    kw: u32,
    pad_top: u32,
    pad_left: u32,
    stride_h: u32,
    stride_w: u32,
    dil_h: u32,
    dil_w: u32,
    numel: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// 0 average, 1 max.
override OP: u32 = 0u;
override WG: u32 = 64u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= params.numel) {
        return;
    }
    let ox = i % params.ow;
    let rest = i / params.ow;
    let oy = rest % params.oh;
    let plane = rest / params.oh;
    let x_plane = plane * params.h;
    let iy0 = i32(oy * params.stride_h) - i32(params.pad_top);
    let ix0 = i32(ox * params.stride_w) - i32(params.pad_left);

    var acc = 0.0;
    var count = 0u;
    for (var ki = 0u; ki < params.kh; ki++) {
        let iy = iy0 + i32(ki * params.dil_h);
        if (iy < 0 || iy >= i32(params.h)) {
            continue;
        }
        let row = (x_plane + u32(iy)) * params.w;
        for (var kj = 0u; kj < params.kw; kj++) {
            let ix = ix0 + i32(kj * params.dil_w);
            if (ix < 0 || ix >= i32(params.w)) {
                continue;
            }
            let v = x[row + u32(ix)];
            if (OP == 1u) {
                acc = select(max(acc, v), v, count == 0u);
            } else {
                acc += v;
            }
            count += 1u;
        }
    }
    if (OP == 0u && count > 0u) {
        acc /= f32(count);
    }
    y[i] = acc;
}
