// The WebGPU plan executor: a small interpreter of the plans the host
// compiles (crates/gpu/src/plan), running the same WGSL kernels as the
// native backend. It knows nothing of models: buffers, pipelines, bind
// groups and dispatches are all in the plan.

/**
 * @typedef {{size: number, role: {kind: string, name?: string, dtype?: string, rows?: number[], words?: number[]}}} PlanBuffer
 * @typedef {{kernel: string, constants: [string, number][], uniform: number[], bindings: (number|null)[], workgroups: number[]}} Dispatch
 * @typedef {{name: string, buffer: number, dtype: string, shape: number[]}} PlanTensor
 * @typedef {{version: number, buffers: PlanBuffer[], inputs: PlanTensor[], outputs: PlanTensor[], dispatches: Dispatch[]}} Plan
 * @typedef {{id: string, bindings: string[], shader_f16: boolean}} KernelRef
 * @typedef {{dtype: string, shape: number[], data: ArrayBuffer}} HostTensor
 */

/** The plan format this executor runs (crates/gpu/src/plan PLAN_VERSION). */
export const PLAN_VERSION = 1;

/** Key of a weight buffer, as the host names it in `load`. */
export function weightKey(role) {
  return `${role.name}|${role.dtype}|${role.rows ? role.rows.join(':') : ''}`;
}

/** Bytes of a tensor of `shape` (4-byte elements: float32, int32, uint32). */
function tensorBytes(shape) {
  return shape.reduce((a, b) => a * b, 1) * 4;
}

/**
 * A GPU device with the adapter's own limits (large storage bindings) and
 * shader-f16 when the adapter has it.
 * @returns {Promise<GPUDevice>}
 */
export async function openDevice() {
  const adapter = await navigator.gpu?.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new Error('no WebGPU adapter (Chromium needs --enable-unsafe-webgpu without a GPU)');
  const requiredLimits = {};
  for (const name of ['maxStorageBufferBindingSize', 'maxBufferSize', 'maxComputeWorkgroupStorageSize',
    'maxComputeInvocationsPerWorkgroup', 'maxComputeWorkgroupSizeX', 'maxStorageBuffersPerShaderStage']) {
    requiredLimits[name] = adapter.limits[name];
  }
  const requiredFeatures = adapter.features.has('shader-f16') ? ['shader-f16'] : [];
  return adapter.requestDevice({ requiredLimits, requiredFeatures });
}

/**
 * Creates everything a plan needs once; `run` then writes the inputs,
 * records one compute pass and reads back only the outputs.
 * @param {GPUDevice} device
 * @param {Plan} plan
 * @param {Map<string, KernelRef & {source: string}>} kernels by id
 * @param {(role: object) => GPUBuffer} weightBuffer the uploaded weight for a buffer role
 */
export async function createWebgpuExecutor(device, plan, kernels, weightBuffer) {
  if (plan.version !== PLAN_VERSION) throw new Error(`plan version ${plan.version}; this page runs ${PLAN_VERSION}`);
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
  const owned = [];
  const buffers = plan.buffers.map((b, i) => {
    if (b.role.kind === 'weight') return weightBuffer(b.role);
    const buffer = device.createBuffer({ label: `${b.role.kind} ${i}`, size: b.size, usage });
    owned.push(buffer);
    if (b.role.kind === 'constant') device.queue.writeBuffer(buffer, 0, new Uint32Array(b.role.words));
    return buffer;
  });
  const placeholder = device.createBuffer({ label: 'placeholder', size: 16, usage });
  owned.push(placeholder);

  // Every dispatch's uniform in one buffer, each at an aligned offset.
  const align = device.limits.minUniformBufferOffsetAlignment;
  let uniformBytes = 0;
  const offsets = plan.dispatches.map((d) => {
    const at = Math.ceil(uniformBytes / align) * align;
    uniformBytes = at + d.uniform.length * 4;
    return at;
  });
  const uniforms = device.createBuffer({ label: 'uniforms', size: Math.max(16, uniformBytes), usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  owned.push(uniforms);
  const staging = new Uint32Array(Math.max(16, uniformBytes) / 4);
  plan.dispatches.forEach((d, i) => staging.set(d.uniform, offsets[i] / 4));
  device.queue.writeBuffer(uniforms, 0, staging);

  // Pipelines by kernel id and constants; explicit layouts, so bindings a
  // variant does not read (an absent bias) stay in the layout.
  const modules = new Map();
  const layouts = new Map();
  const pipelines = new Map();
  device.pushErrorScope('validation');
  const steps = [];
  for (const [i, d] of plan.dispatches.entries()) {
    const k = kernels.get(d.kernel);
    if (!k) throw new Error(`the plan uses kernel ${d.kernel}, which the host did not send`);
    if (!modules.has(k.id)) modules.set(k.id, device.createShaderModule({ label: k.id, code: k.source }));
    if (!layouts.has(k.id)) {
      const entries = k.bindings.map((kind, binding) => ({
        binding,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: kind },
      }));
      layouts.set(k.id, device.createBindGroupLayout({ label: k.id, entries }));
    }
    const constants = Object.fromEntries(d.constants);
    const pipelineKey = `${k.id}${JSON.stringify(d.constants)}`;
    if (!pipelines.has(pipelineKey)) {
      pipelines.set(pipelineKey, device.createComputePipelineAsync({
        label: k.id,
        layout: device.createPipelineLayout({ bindGroupLayouts: [layouts.get(k.id)] }),
        compute: { module: modules.get(k.id), entryPoint: 'main', constants },
      }));
    }
    if (d.bindings.length + 1 !== k.bindings.length) {
      throw new Error(`dispatch ${i} (${k.id}) binds ${d.bindings.length} buffers for ${k.bindings.length - 1} bindings`);
    }
    const entries = [{ binding: 0, resource: { buffer: uniforms, offset: offsets[i], size: d.uniform.length * 4 } }];
    d.bindings.forEach((b, j) => entries.push({ binding: j + 1, resource: { buffer: b === null ? placeholder : buffers[b] } }));
    const bindGroup = device.createBindGroup({ label: k.id, layout: layouts.get(k.id), entries });
    steps.push({ pipelineKey, bindGroup, workgroups: d.workgroups });
  }
  const resolved = new Map();
  for (const [key, promise] of pipelines) resolved.set(key, await promise);
  const error = await device.popErrorScope();
  if (error) throw new Error(`the plan does not validate on this device: ${error.message}`);

  return {
    /**
     * @param {Map<string, HostTensor>} inputs
     * @returns {Promise<Map<string, HostTensor>>}
     */
    async run(inputs) {
      for (const t of plan.inputs) {
        const given = inputs.get(t.name);
        if (!given) throw new Error(`input ${t.name} was not given`);
        if (given.dtype !== t.dtype || given.shape.join() !== t.shape.join()) {
          throw new Error(`input ${t.name} is ${given.dtype}[${given.shape}] but the plan takes ${t.dtype}[${t.shape}]`);
        }
        if (given.data.byteLength) device.queue.writeBuffer(buffers[t.buffer], 0, given.data);
      }
      const encoder = device.createCommandEncoder({ label: 'plan' });
      const pass = encoder.beginComputePass({ label: 'plan' });
      for (const s of steps) {
        pass.setPipeline(resolved.get(s.pipelineKey));
        pass.setBindGroup(0, s.bindGroup);
        pass.dispatchWorkgroups(s.workgroups[0], s.workgroups[1], s.workgroups[2]);
      }
      pass.end();
      const reads = plan.outputs.map((t) => {
        const bytes = tensorBytes(t.shape);
        const read = device.createBuffer({ size: Math.max(4, bytes), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
        encoder.copyBufferToBuffer(buffers[t.buffer], 0, read, 0, Math.max(4, bytes));
        return { t, bytes, read };
      });
      device.queue.submit([encoder.finish()]);
      const out = new Map();
      for (const { t, bytes, read } of reads) {
        await read.mapAsync(GPUMapMode.READ);
        out.set(t.name, { dtype: t.dtype, shape: t.shape, data: read.getMappedRange(0, Math.max(4, bytes)).slice(0, bytes) });
        read.destroy();
      }
      return out;
    },
    destroy() {
      for (const b of owned) b.destroy();
    },
  };
}
