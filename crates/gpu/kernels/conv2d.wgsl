// Kernel id: "conv2d" — 2-D convolution of NCHW input x with an OIHW weight, any channel
// groups, padding, strides and dilations, an optional bias and a fused clamp (ReLU6):
//   y[b, m, oy, ox] = clamp(bias[m] + Σ_{ci, ki, kj} x[b, g*cg + ci, iy, ix] * weight[m, ci, ki, kj])
// with cg = c / groups, g = m / (oc / groups), iy = oy*stride_h + ki*dil_h - pad_top,
// ix = ox*stride_w + kj*dil_w - pad_left; taps in the padding contribute nothing.
// A depthwise convolution is groups == c (cg == 1).
//
// Dispatch: one invocation per output element, linear over `numel` with WG invocations per
// workgroup; more than 65535 workgroups spill into y (index = gid.x + gid.y * nwg.x * WG).

struct Params {
    n: u32,
    c: u32,
    h: u32,
    w: u32,
    oc: u32,
    oh: u32,
    ow: u32,
    groups: u32,
    kh: u32,
    kw: u32,
    pad_top: u32,
    pad_left: u32,
    stride_h: u32,
    stride_w: u32,
    dil_h: u32,
    dil_w: u32,
    min_value: f32,
    max_value: f32,
    numel: u32,
    _pad: u32,
}

// Without HAS_BIAS the bias is 0 (bind any buffer there); with CLAMP the output is
// min(max(y, min_value), max_value).
override HAS_BIAS: bool = false;
override CLAMP: bool = false;
override WG: u32 = 64u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

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
    let m = plane % params.oc;
    let b = plane / params.oc;
    let cg = params.c / params.groups;
    let g = m / (params.oc / params.groups);
    let iy0 = i32(oy * params.stride_h) - i32(params.pad_top);
    let ix0 = i32(ox * params.stride_w) - i32(params.pad_left);

    var acc = 0.0;
    if (HAS_BIAS) {
        acc = bias[m];
    }
    for (var ci = 0u; ci < cg; ci++) {
        let x_plane = (b * params.c + g * cg + ci) * params.h;
        let w_plane = (m * cg + ci) * params.kh;
        for (var ki = 0u; ki < params.kh; ki++) {
            let iy = iy0 + i32(ki * params.dil_h);
            if (iy < 0 || iy >= i32(params.h)) {
                continue;
            }
            let x_row = (x_plane + u32(iy)) * params.w;
            let w_row = (w_plane + ki) * params.kw;
            for (var kj = 0u; kj < params.kw; kj++) {
                let ix = ix0 + i32(kj * params.dil_w);
                if (ix >= 0 && ix < i32(params.w)) {
                    acc += x[x_row + u32(ix)] * weight[w_row + kj];
                }
            }
        }
    }
    if (CLAMP) {
        acc = min(max(acc, params.min_value), params.max_value);
    }
    y[i] = acc;
}
