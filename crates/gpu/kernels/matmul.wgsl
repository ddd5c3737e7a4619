// Kernel id: "matmul" — batched, tiled f32 matrix multiply with a fused epilogue.
//
//   C[b] = activation(A[b] · B[b] + bias)        for b in 0..batch
//
// A[b] is m×k: element (i, p) at  b*stride_a + i*lda + p
// B[b] is k×n: element (p, j) at  b*stride_b + p*ldb + j      (TRANSPOSE_B = false)
//          or stored n×k:         b*stride_b + j*ldb + p      (TRANSPOSE_B = true)
// C[b] is m×n: element (i, j) at  c_offset + b*stride_c + i*ldc + j
// bias element j at bias_offset + j. The offsets let one matmul of a weight split into
// row blocks (a weight larger than one storage binding) write its block of columns.
// bias has n elements, added to every row (HAS_BIAS = true); a stride of 0 broadcasts
// an operand over the batch (e.g. shared weights).
//
// Dispatch: (ceil(n / 64), ceil(m / 64), batch) workgroups of 16×16 invocations; each
// invocation computes a 4×4 block of a 64×64 output tile, stepping k by 16.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    batch: u32,
    lda: u32,
    ldb: u32,
    ldc: u32,
    c_offset: u32,
    stride_a: u32,
    stride_b: u32,
    stride_c: u32,
    bias_offset: u32,
}

// B is stored transposed (n×k), as linear-layer weights usually are.
override TRANSPOSE_B: bool = false;
// Add bias[j] to column j before the activation.
override HAS_BIAS: bool = false;
// 0 = none, 1 = relu, 2 = gelu (exact, erf), 3 = gelu (tanh approximation).
override ACTIVATION: u32 = 0u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
// Element type of B as stored. The build derives the kernel "matmul_f16w" (f16 weights,
// f32 arithmetic) from this file by making it f16 and enabling the f16 extension; the
// two kernels differ in nothing else.
alias Weight = f32;
@group(0) @binding(2) var<storage, read> b: array<Weight>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

const TILE_M: u32 = 64u;
const TILE_N: u32 = 64u;
const TILE_K: u32 = 16u;

// a_tile[kk * TILE_M + r], b_tile[kk * TILE_N + col]
var<workgroup> a_tile: array<f32, 1024>;
var<workgroup> b_tile: array<f32, 1024>;

// Abramowitz & Stegun 7.1.26, |error| < 1.5e-7.
fn erf_approx(x: f32) -> f32 {
    let ax = abs(x);
    let t = 1.0 / (1.0 + 0.3275911 * ax);
    let poly = ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t;
    return sign(x) * (1.0 - poly * exp(-ax * ax));
}

fn activate(x: f32) -> f32 {
    switch ACTIVATION {
        case 1u: { return max(x, 0.0); }
        case 2u: { return 0.5 * x * (1.0 + erf_approx(x * 0.70710678118654752)); }
        case 3u: {
            let u = clamp(0.7978845608028654 * (x + 0.044715 * x * x * x), -20.0, 20.0);
            return 0.5 * x * (1.0 + tanh(u));
        }
        default: { return x; }
    }
}

@compute @workgroup_size(16, 16, 1)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) lidx: u32,
) {
    let batch = wid.z;
    let row0 = wid.y * TILE_M;
    let col0 = wid.x * TILE_N;
    let a_base = batch * params.stride_a;
    let b_base = batch * params.stride_b;

    var acc = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));

    let k_tiles = (params.k + TILE_K - 1u) / TILE_K;
    for (var t = 0u; t < k_tiles; t++) {
        let k0 = t * TILE_K;
        // 1024 elements per tile, 256 invocations: 4 loads each.
        for (var l = 0u; l < 4u; l++) {
            let e = lidx + l * 256u;
            let r = e / TILE_K;
            let kk = e % TILE_K;
            let gr = row0 + r;
            let gk = k0 + kk;
            var v = 0.0;
            if (gr < params.m && gk < params.k) {
                v = a[a_base + gr * params.lda + gk];
            }
            a_tile[kk * TILE_M + r] = v;
        }
        for (var l = 0u; l < 4u; l++) {
            let e = lidx + l * 256u;
            var kk: u32;
            var col: u32;
            if (TRANSPOSE_B) {
                col = e / TILE_K;
                kk = e % TILE_K;
            } else {
                kk = e / TILE_N;
                col = e % TILE_N;
            }
            let gk = k0 + kk;
            let gc = col0 + col;
            var v = 0.0;
            if (gk < params.k && gc < params.n) {
                if (TRANSPOSE_B) {
                    v = f32(b[b_base + gc * params.ldb + gk]);
                } else {
                    v = f32(b[b_base + gk * params.ldb + gc]);
                }
            }
            b_tile[kk * TILE_N + col] = v;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TILE_K; kk++) {
            let ab = kk * TILE_M + lid.y * 4u;
            let bb = kk * TILE_N + lid.x * 4u;
            let bv = vec4<f32>(b_tile[bb], b_tile[bb + 1u], b_tile[bb + 2u], b_tile[bb + 3u]);
            acc[0] = fma(vec4<f32>(a_tile[ab]), bv, acc[0]);
            acc[1] = fma(vec4<f32>(a_tile[ab + 1u]), bv, acc[1]);
            acc[2] = fma(vec4<f32>(a_tile[ab + 2u]), bv, acc[2]);
            acc[3] = fma(vec4<f32>(a_tile[ab + 3u]), bv, acc[3]);
        }
        workgroupBarrier();
    }

    let c_base = params.c_offset + batch * params.stride_c;
    for (var i = 0u; i < 4u; i++) {
        let r = row0 + lid.y * 4u + i;
        if (r >= params.m) {
            break;
        }
        for (var j = 0u; j < 4u; j++) {
            let col = col0 + lid.x * 4u + j;
            if (col < params.n) {
                var v = acc[i][j];
                if (HAS_BIAS) {
                    v += bias[params.bias_offset + col];
                }
                c[c_base + r * params.ldc + col] = activate(v);
            }
        }
    }
}
