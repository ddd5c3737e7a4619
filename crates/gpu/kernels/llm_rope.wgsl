// Kernel id: "llm_rope" — rotary position embedding, in place, on a contiguous
// [rows, heads * head_dim] activation (f32, or f16 in the `_f16a` variant; rotated in
// f32) whose row r is at position start + r.
//
// Pair i (i < pairs, pairs = number of inverse frequencies) of each head is rotated by
// the angle of (position, i):
//
//   HALVES = false (interleaved, GGUF):     dims (2i, 2i + 1)
//   HALVES = true  (Hugging Face halves):   dims (i, i + pairs)
//
// and the dims past 2 * pairs pass through (partial rotary). The cosines and sines come
// from `table`, [positions, pairs, 2] as (cos, sin) with any attention factor applied,
// computed once on the host: WGSL's cos/sin are only accurate to 2^-11 near ±π and
// worse for the large angles of late positions.
//
// Dispatch: linear over rows * heads * pairs, 256 per workgroup; more than 65535
// workgroups spill into y (index = gid.x + gid.y * num_workgroups.x * 256).

struct Params {
    rows: u32,
    heads: u32,
    head_dim: u32,
    pairs: u32,
    start: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// Storage type of the activations.
alias Act = f32;

override HALVES: bool = false;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> table: array<f32>;
@group(0) @binding(2) var<storage, read_write> x: array<Act>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let index = gid.x + gid.y * nwg.x * 256u;
    if (index >= params.rows * params.heads * params.pairs) {
        return;
    }
    let i = index % params.pairs;
    let head = (index / params.pairs) % params.heads;
    let row = index / (params.pairs * params.heads);
    let t = ((params.start + row) * params.pairs + i) * 2u;
    let c = table[t];
    let s = table[t + 1u];
    let base = (row * params.heads + head) * params.head_dim;
    var a = base + 2u * i;
    var b = a + 1u;
    if (HALVES) {
        a = base + i;
        b = a + params.pairs;
    }
    let x0 = f32(x[a]);
    let x1 = f32(x[b]);
    x[a] = Act(x0 * c - x1 * s);
    x[b] = Act(x0 * s + x1 * c);
}
