// Kernel id: "clamp" — y[i] = min(max(x[i], min_value), max_value) on a contiguous f32
// tensor (WebNN's clamp; ReLU6 is clamp(0, 6)).
//
// Dispatch: linear over `numel` with WG invocations per workgroup; more than 65535
// workgroups spill into y (index = gid.x + gid.y * num_workgroups.x * WG).

struct Params {
    numel: u32,
    min_value: f32,
    max_value: f32,
    _pad: u32,
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
    y[i] = min(max(x[i], params.min_value), params.max_value);
}
