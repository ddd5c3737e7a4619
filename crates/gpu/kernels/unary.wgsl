// Kernel id: "unary" — elementwise unary op on a contiguous f32 tensor: y[i] = op(x[i]).
//
// Dispatch: linear over `numel` with WG invocations per workgroup; more than 65535
// workgroups spill into y (index = gid.x + gid.y * num_workgroups.x * WG).

struct Params {
    numel: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// 0 gelu (erf), 1 erf, 2 tanh, 3 relu, 4 sigmoid, 5 exp, 6 log, 7 sqrt, 8 neg, 9 abs,
// 10 reciprocal, 11 gelu (tanh approximation), 12 identity.
override OP: u32 = 0u;
override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

// Abramowitz & Stegun 7.1.26, |error| < 1.5e-7.
fn erf_approx(v: f32) -> f32 {
    let av = abs(v);
    let t = 1.0 / (1.0 + 0.3275911 * av);
    let poly = ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t;
    return sign(v) * (1.0 - poly * exp(-av * av));
}

fn apply(v: f32) -> f32 {
    switch OP {
        case 0u: { return 0.5 * v * (1.0 + erf_approx(v * 0.70710678118654752)); }
        case 1u: { return erf_approx(v); }
        case 2u: { return tanh(clamp(v, -20.0, 20.0)); }
        case 3u: { return max(v, 0.0); }
        case 4u: { return 1.0 / (1.0 + exp(-v)); }
        case 5u: { return exp(v); }
        case 6u: { return log(v); }
        case 7u: { return sqrt(v); }
        case 8u: { return -v; }
        case 9u: { return abs(v); }
        case 10u: { return 1.0 / v; }
        case 11u: {
            let u = clamp(0.7978845608028654 * (v + 0.044715 * v * v * v), -20.0, 20.0);
            return 0.5 * v * (1.0 + tanh(u));
        }
        default: { return v; }
    }
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= params.numel) {
        return;
    }
    y[i] = apply(x[i]);
}
