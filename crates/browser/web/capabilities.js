// What this browser can do, measured rather than guessed: a WebGPU adapter
// that actually resolves (with its features and limits), WebNN contexts that
// actually resolve for each device type, WASM SIMD and threads, memory.

import { webnnCapabilities } from './webnn.js';

/** WebGPU limits worth reporting (the plan compiler needs the first two). */
const LIMITS = [
  'maxStorageBufferBindingSize', 'maxBufferSize', 'maxComputeWorkgroupSizeX',
  'maxComputeInvocationsPerWorkgroup', 'maxComputeWorkgroupStorageSize',
  'maxStorageBuffersPerShaderStage', 'maxComputeWorkgroupsPerDimension',
  'minUniformBufferOffsetAlignment', 'minStorageBufferOffsetAlignment',
];

/**
 * @returns {Promise<object>} WebGPU adapter report, or {available: false, reason}
 */
export async function webgpuCapabilities() {
  if (!('gpu' in navigator)) return { available: false, reason: 'navigator.gpu is missing' };
  try {
    const adapter = await navigator.gpu.requestAdapter({ powerPreference: 'high-performance' });
    if (!adapter) return { available: false, reason: 'requestAdapter() returned null (Chromium needs --enable-unsafe-webgpu without a GPU)' };
    const info = adapter.info || {};
    const limits = {};
    for (const name of LIMITS) limits[name] = adapter.limits[name];
    return {
      available: true,
      adapter: { vendor: info.vendor, architecture: info.architecture, device: info.device, description: info.description },
      features: [...adapter.features].sort(),
      shaderF16: adapter.features.has('shader-f16'),
      subgroups: adapter.features.has('subgroups'),
      timestampQuery: adapter.features.has('timestamp-query'),
      limits,
    };
  } catch (e) {
    return { available: false, reason: String(e && e.message || e) };
  }
}

/** A module whose only function returns a v128 constant: valid only with SIMD. */
const SIMD_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
  0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, // type section: () -> v128
  0x03, 0x02, 0x01, 0x00, // function section: one function of type 0
  0x0a, 0x16, 0x01, 0x14, 0x00, 0xfd, 0x0c, // code: no locals, v128.const
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0b,
]);

/** @returns {Promise<object>} the whole capability report sent in `hello`. */
export async function detectCapabilities() {
  let webnn;
  try {
    webnn = await webnnCapabilities();
  } catch (e) {
    webnn = { available: false, reason: String(e && e.message || e) };
  }
  return {
    userAgent: navigator.userAgent,
    webgpu: await webgpuCapabilities(),
    webnn,
    wasm: {
      simd: typeof WebAssembly === 'object' && WebAssembly.validate(SIMD_PROBE),
      threads: typeof SharedArrayBuffer !== 'undefined' && globalThis.crossOriginIsolated === true,
    },
    deviceMemoryGiB: navigator.deviceMemory ?? null,
    hardwareConcurrency: navigator.hardwareConcurrency ?? null,
  };
}
