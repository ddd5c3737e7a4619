// Kernel id: "llm_matmul" — a linear layer with the weight dequantized on the fly:
//
//   out[i, j] = sum_p x[i, p] * W[j, p]  (+ bias[j])      x: [m, k], W: [n, k], out: [m, n]
//
// W stays in its quantized blocks; each element is dequantized where it is read, never
// into a full f32 copy. The host repacks GGML's blocks once at upload (18/20/34-byte
// blocks are not 4-byte aligned, and WGSL reads u32 words) into two arrays:
//
//   DTYPE 0, F32:  wq = the f32 bits, row-major                           (ws unused)
//   DTYPE 1, F16:  wq = the halves, two per word, row-major (element e is
//                  half e % 2 of word e / 2)                              (ws unused)
//   DTYPE 2, Q8_0: wq = per block 8 words (the 32 int8 quants)             ws[blk] = d
//   DTYPE 3, Q4_0: wq = per block 4 words (16 bytes: element i < 16 is the
//                  low nibble of byte i, element 16 + i the high one)      ws[blk] = d
//   DTYPE 4, Q4_1: wq as Q4_0                                ws[2 blk] = d, ws[2 blk + 1] = m
//   DTYPE 5, Q8_16: wq as Q8_0     ws[2 blk] = scale of elements 0..16, ws[2 blk + 1] of 16..32
//
// (Q4_K is repacked into Q4_1 blocks and Q6_K into Q8_16 blocks at upload: see
// crates/gpu/src/llm/pack.rs.)
//
// (wq zero-padded to a multiple of 16 bytes, as is x.)
//
// with blk = row * nb + p / 32 (nb = k / 32 blocks per row); the values are d * q
// (Q8_0), d * (q - 8) (Q4_0), d * q + m (Q4_1), as GGML defines them, and
// ws[2 blk + i / 16] * q (Q8_16).
//
// Activations x and out are f32, or f16 in the `_f16a` variants build.rs derives
// (`alias Act`, `alias Out`; `_f16a_f32out` reads f16 and writes f32, for logits);
// every product and sum is f32 either way.
//
// Two modes (GEMV override), both 256 invocations per workgroup:
// * GEMV (decode, few rows of x): 8 output columns per workgroup, 32 invocations each
//   striding over the row a block of 32 weights at a time (8 weights for F32/F16), with
//   16-byte loads of quants and x; partial sums added in workgroup memory. Dispatch
//   (ceil(n / 8), m). Memory-bound: every weight byte is read once per row of x and
//   dequantized in registers.
// * GEMM (prefill): 64×64 output tiles, k in steps of 16, each invocation a 4×4 block;
//   weights are dequantized into the workgroup tile as it is loaded.
//   Dispatch (ceil(n / 64), ceil(m / 64)).

struct Params {
    m: u32,
    n: u32,
    k: u32,
    nb: u32,
}

// Storage type of the activations (x) and of the output.
alias Act = f32;
alias Out = Act;

// 0 F32, 1 F16, 2 Q8_0, 3 Q4_0, 4 Q4_1, 5 Q8_16.
override DTYPE: u32 = 0u;
override GEMV: bool = true;
override HAS_BIAS: bool = false;

@group(0) @binding(0) var<uniform> params: Params;
// x and the weight words are read as 16-byte vectors (one load for four values in the
// GEMV hot loop); the host pads both buffers to 16 bytes.
@group(0) @binding(1) var<storage, read> x: array<vec4<Act>>;
@group(0) @binding(2) var<storage, read> wq: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> ws: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<Out>;

fn x_at(i: u32) -> f32 {
    return f32(x[i / 4u][i % 4u]);
}

fn x4(i: u32) -> vec4<f32> {
    return vec4<f32>(x[i]);
}

fn word(i: u32) -> u32 {
    return wq[i / 4u][i % 4u];
}

// Weight (row, p), one element (the GEMM tile loads and the F32/F16 GEMV path).
fn weight_at(row: u32, p: u32) -> f32 {
    switch DTYPE {
        case 1u: {
            let e = row * params.k + p;
            return unpack2x16float(word(e / 2u))[e % 2u];
        }
        case 2u, 5u: {
            let blk = row * params.nb + p / 32u;
            let i = p % 32u;
            let w = bitcast<i32>(word(blk * 8u + i / 4u));
            let q = f32(extractBits(w, (i % 4u) * 8u, 8u));
            if (DTYPE == 5u) {
                return ws[2u * blk + i / 16u] * q;
            }
            return ws[blk] * q;
        }
        case 3u, 4u: {
            let blk = row * params.nb + p / 32u;
            let i = p % 32u;
            let j = i % 16u;
            let byte = extractBits(word(blk * 4u + j / 4u), (j % 4u) * 8u, 8u);
            let q = f32(select(byte & 15u, byte >> 4u, i >= 16u));
            if (DTYPE == 3u) {
                return ws[blk] * (q - 8.0);
            }
            return ws[2u * blk] * q + ws[2u * blk + 1u];
        }
        default: {
            return bitcast<f32>(word(row * params.k + p));
        }
    }
}

// The four int8 of a word, as f32.
fn i8x4(w: u32) -> vec4<f32> {
    let v = bitcast<i32>(w);
    return vec4<f32>(
        f32(extractBits(v, 0u, 8u)),
        f32(extractBits(v, 8u, 8u)),
        f32(extractBits(v, 16u, 8u)),
        f32(extractBits(v, 24u, 8u)),
    );
}

// The low and the high nibbles of the four bytes of a word, as f32.
fn lo4(w: u32) -> vec4<f32> {
    return vec4<f32>(vec4<u32>(w, w >> 8u, w >> 16u, w >> 24u) & vec4<u32>(15u));
}
fn hi4(w: u32) -> vec4<f32> {
    return vec4<f32>((vec4<u32>(w, w >> 8u, w >> 16u, w >> 24u) >> vec4<u32>(4u)) & vec4<u32>(15u));
}

// Block b of row `row` (Q8_0, Q4_0, Q4_1, Q8_16) times x[xb + 32 b ..] (xb a multiple
// of 32, since k is). Q8_0, Q8_16: block = 2 vectors of words, word w holds weights
// 4w..4w+3 (for Q8_16 the first vector is the first scale's 16).
// Q4_0/Q4_1: block = 1 vector of words, word s holds weights 4s..4s+3 in its low
// nibbles and 16+4s..16+4s+3 in its high ones.
fn block_dot(row: u32, b: u32, xb: u32) -> f32 {
    let blk = row * params.nb + b;
    let x0 = (xb + b * 32u) / 4u;
    if (DTYPE == 2u || DTYPE == 5u) {
        let w0 = wq[blk * 2u];
        let w1 = wq[blk * 2u + 1u];
        var lo = 0.0;
        var hi = 0.0;
        for (var s = 0u; s < 4u; s++) {
            lo += dot(i8x4(w0[s]), x4(x0 + s));
            hi += dot(i8x4(w1[s]), x4(x0 + 4u + s));
        }
        if (DTYPE == 5u) {
            return ws[2u * blk] * lo + ws[2u * blk + 1u] * hi;
        }
        return ws[blk] * (lo + hi);
    }
    let w = wq[blk];
    var acc = 0.0;
    var xsum = vec4<f32>(0.0);
    for (var s = 0u; s < 4u; s++) {
        let lo = x4(x0 + s);
        let hi = x4(x0 + 4u + s);
        acc += dot(lo4(w[s]), lo) + dot(hi4(w[s]), hi);
        xsum += lo + hi;
    }
    let total = xsum.x + xsum.y + xsum.z + xsum.w;
    if (DTYPE == 3u) {
        return ws[blk] * (acc - 8.0 * total);
    }
    return ws[2u * blk] * acc + ws[2u * blk + 1u] * total;
}

// Weights 8u .. 8u + 8 of row `row` (F32, F16; the tail checked against k) times x.
fn unit_dot(row: u32, u: u32, xb: u32) -> f32 {
    var acc = 0.0;
    let p0 = u * 8u;
    let end = min(p0 + 8u, params.k);
    for (var p = p0; p < end; p++) {
        acc = fma(weight_at(row, p), x_at(xb + p), acc);
    }
    return acc;
}

const GEMV_LANES: u32 = 32u;
const GEMV_COLS: u32 = 8u;
const TILE: u32 = 64u;
const TILE_K: u32 = 16u;

var<workgroup> partial: array<f32, 256>;
// a_tile[kk * TILE + r], b_tile[kk * TILE + col]
var<workgroup> a_tile: array<f32, 1024>;
var<workgroup> b_tile: array<f32, 1024>;

fn finish(i: u32, j: u32, v: f32) {
    var y = v;
    if (HAS_BIAS) {
        y += bias[j];
    }
    out[i * params.n + j] = Out(y);
}

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let t = lid.x;
    if (GEMV) {
        let lane = t % GEMV_LANES;
        let j = wid.x * GEMV_COLS + t / GEMV_LANES;
        let i = wid.y;
        var acc = 0.0;
        if (j < params.n && i < params.m) {
            if (DTYPE >= 2u) {
                for (var b = lane; b < params.nb; b += GEMV_LANES) {
                    acc += block_dot(j, b, i * params.k);
                }
            } else {
                let units = (params.k + 7u) / 8u;
                for (var u = lane; u < units; u += GEMV_LANES) {
                    acc += unit_dot(j, u, i * params.k);
                }
            }
        }
        partial[t] = acc;
        workgroupBarrier();
        for (var s = GEMV_LANES / 2u; s > 0u; s >>= 1u) {
            if (lane < s) {
                partial[t] += partial[t + s];
            }
            workgroupBarrier();
        }
        if (lane == 0u && j < params.n && i < params.m) {
            finish(i, j, partial[t]);
        }
        return;
    }

    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    let ty = t / 16u;
    let tx = t % 16u;
    var acc = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    let k_tiles = (params.k + TILE_K - 1u) / TILE_K;
    for (var kt = 0u; kt < k_tiles; kt++) {
        let k0 = kt * TILE_K;
        // 1024 elements per tile, 256 invocations: 4 loads each, k fastest so that
        // neighbouring invocations read neighbouring x and weight bytes.
        for (var l = 0u; l < 4u; l++) {
            let e = t + l * 256u;
            let r = e / TILE_K;
            let kk = e % TILE_K;
            let gk = k0 + kk;
            var av = 0.0;
            if (row0 + r < params.m && gk < params.k) {
                av = x_at((row0 + r) * params.k + gk);
            }
            a_tile[kk * TILE + r] = av;
            var bv = 0.0;
            if (col0 + r < params.n && gk < params.k) {
                bv = weight_at(col0 + r, gk);
            }
            b_tile[kk * TILE + r] = bv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TILE_K; kk++) {
            let ab = kk * TILE + ty * 4u;
            let bb = kk * TILE + tx * 4u;
            let bv = vec4<f32>(b_tile[bb], b_tile[bb + 1u], b_tile[bb + 2u], b_tile[bb + 3u]);
            acc[0] = fma(vec4<f32>(a_tile[ab]), bv, acc[0]);
            acc[1] = fma(vec4<f32>(a_tile[ab + 1u]), bv, acc[1]);
            acc[2] = fma(vec4<f32>(a_tile[ab + 2u]), bv, acc[2]);
            acc[3] = fma(vec4<f32>(a_tile[ab + 3u]), bv, acc[3]);
        }
        workgroupBarrier();
    }
    for (var a = 0u; a < 4u; a++) {
        let i = row0 + ty * 4u + a;
        if (i >= params.m) {
            break;
        }
        for (var b = 0u; b < 4u; b++) {
            let j = col0 + tx * 4u + b;
            if (j < params.n) {
                finish(i, j, acc[a][b]);
            }
        }
    }
}
