// Kernel id: "llm_elementwise" — the elementwise ops of decoder layers on contiguous
// activations (f32, or f16 in the `_f16a` variant; arithmetic in f32), chosen by OP:
//
//   0 silu_mul:   out[i] = a[i] / (1 + exp(-a[i])) * b[i]      (SwiGLU)
//   1 gelu_tanh:  out[i] = 0.5 a[i] (1 + tanh(√(2/π) (a[i] + 0.044715 a[i]³)))
//   2 add:        out[i] += a[i]                                 (in place; b unused)
//   3 columns:    out[i] = a[(i / cols) * src_cols + src_offset + i % cols]
//                 (columns src_offset .. src_offset + cols of a [rows, src_cols] matrix)
//   4 gelu:       out[i] = 0.5 a[i] (1 + erf(a[i] / √2))                  (exact GELU)
//
// Dispatch: linear over numel, 256 per workgroup; more than 65535 workgroups spill into
// y (index = gid.x + gid.y * num_workgroups.x * 256).

struct Params {
    numel: u32,
    cols: u32,
    src_cols: u32,
    src_offset: u32,
}

// Storage type of the activations.
alias Act = f32;

override OP: u32 = 0u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<Act>;
@group(0) @binding(2) var<storage, read> b: array<Act>;
@group(0) @binding(3) var<storage, read_write> out: array<Act>;

// Abramowitz & Stegun 7.1.26, |error| < 1.5e-7.
fn erf_approx(v: f32) -> f32 {
    let av = abs(v);
    let t = 1.0 / (1.0 + 0.3275911 * av);
    let poly = ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t;
    return sign(v) * (1.0 - poly * exp(-av * av));
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= params.numel) {
        return;
    }
    switch OP {
        case 0u: {
            let g = f32(a[i]);
            out[i] = Act(g / (1.0 + exp(-g)) * f32(b[i]));
        }
        case 1u: {
            let v = f32(a[i]);
            // tanh saturates long before ±20; clamping keeps exp inside f32 on
            // drivers that build tanh from exp.
            let u = clamp(0.7978845608028654 * (v + 0.044715 * v * v * v), -20.0, 20.0);
            out[i] = Act(0.5 * v * (1.0 + tanh(u)));
        }
        case 2u: {
            out[i] = Act(f32(out[i]) + f32(a[i]));
        }
        case 4u: {
            let v = f32(a[i]);
            out[i] = Act(0.5 * v * (1.0 + erf_approx(v * 0.7071067811865476)));
        }
        default: {
            out[i] = a[(i / params.cols) * params.src_cols + params.src_offset + i % params.cols];
        }
    }
}
