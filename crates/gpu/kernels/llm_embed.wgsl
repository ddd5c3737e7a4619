// Kernel id: "llm_embed" — rows of a (possibly quantized) embedding table:
//
//   out[r, c] = W[ids[r], c]        W: [table rows, cols], out: [ids, cols]
//
// W is packed as for "llm_matmul" (see kernels/llm_matmul.wgsl: DTYPE 0 F32, 1 F16,
// 2 Q8_0, 3 Q4_0, 4 Q4_1, 5 Q8_16; wq the words, ws the block scales and mins). An id past the
// table's rows gives zeros (the host checks ids first).
//
// Dispatch: linear over ids * cols, 256 per workgroup; more than 65535 workgroups spill
// into y (index = gid.x + gid.y * num_workgroups.x * 256).

struct Params {
    n_ids: u32,
    cols: u32,
    nb: u32,
    table_rows: u32,
}

// Storage type of the output activation (f32, or f16 in the `_f16a` variant).
alias Act = f32;

override DTYPE: u32 = 0u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> wq: array<u32>;
@group(0) @binding(2) var<storage, read> ws: array<f32>;
@group(0) @binding(3) var<storage, read> ids: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<Act>;

fn weight_at(row: u32, p: u32) -> f32 {
    switch DTYPE {
        case 1u: {
            let e = row * params.cols + p;
            return unpack2x16float(wq[e / 2u])[e % 2u];
        }
        case 2u, 5u: {
            let blk = row * params.nb + p / 32u;
            let i = p % 32u;
            let w = bitcast<i32>(wq[blk * 8u + i / 4u]);
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
            let byte = extractBits(wq[blk * 4u + j / 4u], (j % 4u) * 8u, 8u);
            let q = f32(select(byte & 15u, byte >> 4u, i >= 16u));
            if (DTYPE == 3u) {
                return ws[blk] * (q - 8.0);
            }
            return ws[2u * blk] * q + ws[2u * blk + 1u];
        }
        default: {
            return bitcast<f32>(wq[row * params.cols + p]);
        }
    }
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let index = gid.x + gid.y * nwg.x * 256u;
    if (index >= params.n_ids * params.cols) {
        return;
    }
    let r = index / params.cols;
    let c = index % params.cols;
    let id = ids[r];
    var v = 0.0;
    if (id < params.table_rows) {
        v = weight_at(id, c);
    }
    out[index] = Act(v);
}
