// The worker page: joins the bridge over a WebSocket (with the token from
// this page's URL), reports what the browser can do, then loads and runs
// models on request. Protocol: crates/browser/src/protocol.rs (version 1).

import { detectCapabilities } from './capabilities.js';
import { createWebgpuExecutor, openDevice, weightKey } from './webgpu.js';
import { createWebnnExecutor } from './webnn.js';
import { loadWeight } from './weights.js';

const PROTOCOL_VERSION = 1;
const FRAME_HEADER = 8;

const status = (text) => {
  const el = document.getElementById('status');
  if (el) el.textContent = text;
};

/** @type {Map<string, {run: Function, destroy: Function}>} loaded models by key */
const models = new Map();
/** @type {Promise<GPUDevice>|null} */
let devicePromise = null;
/** Weight buffers on the device by key, shared by the plans of a model. */
const gpuWeights = new Map();
/** The weight keys each WebGPU model uses, so unloading the last model that
 * uses a weight frees its buffer (weights are named by content and shared). */
const modelWeights = new Map();
/** Keys of the models running on the GPU device (lost with it). */
const gpuModels = new Set();
/** Why the last GPU device was lost, for the errors of later runs. */
let deviceLost = null;

/** Run requests waiting for their input frames, by id. */
const waiting = new Map();

function send(socket, message) {
  socket.send(JSON.stringify(message));
}

function frame(id, index, data) {
  const out = new Uint8Array(FRAME_HEADER + data.byteLength);
  const view = new DataView(out.buffer);
  view.setUint32(0, id, true);
  view.setUint32(4, index, true);
  out.set(new Uint8Array(data), FRAME_HEADER);
  return out;
}

async function loadWebgpu(message, stats) {
  if (!devicePromise) {
    devicePromise = openDevice();
    // A lost device takes its buffers and pipelines with it: forget them, so
    // runs fail with the reason and a new load opens a new device.
    devicePromise.then((device) => device.lost.then((info) => {
      deviceLost = info.message || 'unknown reason';
      devicePromise = null;
      gpuWeights.clear();
      modelWeights.clear();
      for (const key of gpuModels) models.delete(key);
      gpuModels.clear();
    }), () => { devicePromise = null; });
  }
  const device = await devicePromise;
  const kernels = new Map();
  for (const k of message.kernels) {
    const response = await fetch(`/kernels/${k.id}.wgsl`);
    if (!response.ok) throw new Error(`kernel ${k.id}: HTTP ${response.status}`);
    kernels.set(k.id, { ...k, source: await response.text() });
  }
  const refs = new Map(message.weights.map((w) => [w.key, w]));
  for (const [key, ref] of refs) {
    if (gpuWeights.has(key)) continue;
    const data = await loadWeight(ref, stats);
    const buffer = device.createBuffer({
      label: key,
      size: Math.max(4, Math.ceil(data.byteLength / 4) * 4),
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC,
    });
    const padded = new Uint8Array(Math.max(4, Math.ceil(data.byteLength / 4) * 4));
    padded.set(new Uint8Array(data));
    device.queue.writeBuffer(buffer, 0, padded);
    gpuWeights.set(key, buffer);
  }
  return createWebgpuExecutor(device, message.plan, kernels, (role) => {
    const buffer = gpuWeights.get(weightKey(role));
    if (!buffer) throw new Error(`weight ${weightKey(role)} was not sent`);
    return buffer;
  });
}

/** Destroys the buffers of `keys` that no loaded model uses any more. */
function releaseUnused(keys) {
  for (const key of keys) {
    let used = false;
    for (const other of modelWeights.values()) {
      if (other.has(key)) { used = true; break; }
    }
    if (!used) {
      gpuWeights.get(key)?.destroy();
      gpuWeights.delete(key);
    }
  }
}

async function loadWebnn(message, stats) {
  if (!navigator.ml) throw new Error('this browser has no WebNN (navigator.ml)');
  const context = await navigator.ml.createContext({ deviceType: message.deviceType || 'cpu' });
  const weights = new Map();
  for (const ref of message.weights) {
    const data = await loadWeight(ref, stats);
    const [name, dtype, shape] = JSON.parse(ref.key);
    weights.set(name, { dtype, shape, data });
  }
  return createWebnnExecutor(context, message.graph, weights);
}

async function handle(socket, message) {
  switch (message.type) {
    case 'load': {
      const stats = { hits: 0, misses: 0 };
      try {
        models.get(message.model)?.destroy();
        const executor = message.backend === 'webnn' ? await loadWebnn(message, stats) : await loadWebgpu(message, stats);
        // Recorded after loading, then what a replaced model of the same
        // key used is released: weights both use stay on the device.
        const previous = modelWeights.get(message.model);
        if (message.backend !== 'webnn') {
          modelWeights.set(message.model, new Set(message.weights.map((w) => w.key)));
        } else {
          modelWeights.delete(message.model);
        }
        if (previous) releaseUnused(previous);
        models.set(message.model, executor);
        if (message.backend !== 'webnn') gpuModels.add(message.model);
        send(socket, { type: 'loaded', id: message.id, cache_hits: stats.hits, cache_misses: stats.misses });
        status(`running (${models.size} model(s) loaded)`);
      } catch (e) {
        send(socket, { type: 'error', id: message.id, message: `load failed: ${e && e.message || e}` });
      }
      break;
    }
    case 'run':
      waiting.set(message.id, { message, frames: new Array(message.inputs.length).fill(null), left: message.inputs.length });
      if (message.inputs.length === 0) await runReady(socket, message.id);
      break;
    case 'unload':
      models.get(message.model)?.destroy();
      models.delete(message.model);
      gpuModels.delete(message.model);
      {
        const keys = modelWeights.get(message.model);
        modelWeights.delete(message.model);
        if (keys) releaseUnused(keys);
      }
      status(`running (${models.size} model(s) loaded)`);
      break;
    case 'ping':
      send(socket, { type: 'pong', id: message.id });
      break;
    case 'bye':
      socket.close();
      break;
    default:
      break;
  }
}

async function runReady(socket, id) {
  const { message, frames } = waiting.get(id);
  waiting.delete(id);
  try {
    const executor = models.get(message.model);
    if (!executor) {
      const lost = deviceLost ? ` (the GPU device was lost: ${deviceLost})` : '';
      throw new Error(`model ${message.model} is not loaded${lost}`);
    }
    const inputs = new Map(message.inputs.map((d, i) => [d.name, { dtype: d.dtype, shape: d.shape, data: frames[i] }]));
    const outputs = await executor.run(inputs);
    const descs = [...outputs].map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape }));
    send(socket, { type: 'result', id, outputs: descs });
    [...outputs.values()].forEach((t, i) => socket.send(frame(id, i, t.data)));
  } catch (e) {
    send(socket, { type: 'error', id, message: `run failed: ${e && e.message || e}` });
  }
}

async function main() {
  const token = new URLSearchParams(location.search).get('token') || '';
  status('detecting capabilities…');
  const capabilities = await detectCapabilities();
  const report = document.getElementById('capabilities');
  if (report) report.textContent = JSON.stringify(capabilities, null, 2);
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const socket = new WebSocket(`${scheme}://${location.host}/ws?token=${encodeURIComponent(token)}`);
  socket.binaryType = 'arraybuffer';
  // Messages are handled one at a time, in order (a run's frames follow it).
  let queue = Promise.resolve();
  socket.onopen = () => {
    send(socket, { type: 'hello', version: PROTOCOL_VERSION, capabilities });
    status('connected');
  };
  socket.onmessage = (event) => {
    queue = queue.then(async () => {
      if (typeof event.data === 'string') {
        await handle(socket, JSON.parse(event.data));
        return;
      }
      const view = new DataView(event.data);
      const id = view.getUint32(0, true);
      const index = view.getUint32(4, true);
      const entry = waiting.get(id);
      if (!entry || index >= entry.frames.length || entry.frames[index]) return;
      entry.frames[index] = event.data.slice(FRAME_HEADER);
      if (--entry.left === 0) await runReady(socket, id);
    }).catch((e) => console.error(e));
  };
  socket.onclose = () => status('disconnected from the bridge');
}

main().catch((e) => status(`failed: ${e && e.message || e}`));
