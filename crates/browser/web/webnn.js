// WebNN executor: lowers the project's graph IR (crates/tensor/src/graph,
// serialized as JSON) one-to-one onto W3C WebNN's MLGraphBuilder and runs it
// with MLContext.createTensor / writeTensor / dispatch / readTensor.
//
// Plain ES module, no build step, no model knowledge. Fused IR ops (attention)
// must be decomposed by the host (`decompose_fused`) before the graph is sent;
// an op this file does not know is a clear error.

/**
 * @typedef {'float32'|'float16'|'int32'|'uint32'|'int64'|'int8'|'uint8'} DType
 * @typedef {{dtype: DType, shape: number[], data: ArrayBuffer}} HostTensor
 * @typedef {{dtype: DType, shape: number[]}} OperandDesc
 * @typedef {{name: string, operand: number}} NamedOperand
 * @typedef {{operand: number, source: {weight?: string, inline?: {dtype: DType, shape: number[], data: number[]}}}} GraphConstant
 * @typedef {{op: string, inputs: number[], output: number, [option: string]: any}} GraphNode
 * @typedef {{operands: OperandDesc[], inputs: NamedOperand[], constants: GraphConstant[], nodes: GraphNode[], outputs: NamedOperand[]}} GraphJson
 * @typedef {{run(inputs: Map<string, HostTensor>): Promise<Map<string, HostTensor>>, destroy(): void, limits: any}} WebnnExecutor
 */

/** Bytes per element of each WebNN data type the IR uses. */
const BYTES = { float32: 4, float16: 2, int32: 4, uint32: 4, int64: 8, int8: 1, uint8: 1 };

/** Typed-array class per data type (float16 travels as raw uint16 bits). */
const ARRAYS = {
  float32: Float32Array,
  float16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
  int64: BigInt64Array,
  int8: Int8Array,
  uint8: Uint8Array,
};

const UNARY = ['gelu', 'tanh', 'erf', 'relu', 'sigmoid', 'exp', 'log', 'sqrt', 'neg', 'abs', 'reciprocal', 'identity'];
const BINARY = ['add', 'sub', 'mul', 'div', 'max', 'min', 'pow', 'equal', 'greater', 'lesser'];
const REDUCE = ['reduceMean', 'reduceSum', 'reduceMax'];
const INDEX_TYPES = ['int32', 'int64', 'uint32'];

/** @param {number[]} shape */
function numel(shape) {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * A typed-array view of `data` for `dtype`, checked against `shape`.
 * @param {DType} dtype @param {number[]} shape @param {ArrayBuffer|ArrayBufferView} data @param {string} what
 */
function view(dtype, shape, data, what) {
  const Ctor = ARRAYS[dtype];
  if (!Ctor) throw new Error(`webnn: ${what}: unsupported data type ${dtype}`);
  const buf = ArrayBuffer.isView(data) ? data : new Uint8Array(data);
  const want = numel(shape) * BYTES[dtype];
  if (buf.byteLength !== want) {
    throw new Error(`webnn: ${what}: ${dtype}[${shape}] needs ${want} bytes, got ${buf.byteLength}`);
  }
  if (buf.byteOffset % Ctor.BYTES_PER_ELEMENT === 0) {
    return new Ctor(buf.buffer, buf.byteOffset, numel(shape));
  }
  const copy = new Uint8Array(want);
  copy.set(new Uint8Array(buf.buffer, buf.byteOffset, want));
  return new Ctor(copy.buffer);
}

/**
 * Converts integer data between the index types (int64 <-> int32 <-> uint32),
 * throwing if a value does not fit.
 * @param {ArrayBufferView} src @param {DType} to @param {string} what
 */
function convertInts(src, to, what) {
  const out = new ARRAYS[to](/** @type {any} */ (src).length);
  const big = to === 'int64';
  const [lo, hi] = to === 'int32' ? [-2147483648, 2147483647] : to === 'uint32' ? [0, 4294967295] : [-Infinity, Infinity];
  for (let i = 0; i < out.length; i++) {
    const v = Number(/** @type {any} */ (src)[i]);
    if (!(v >= lo && v <= hi)) throw new Error(`webnn: ${what}: value ${v} does not fit ${to}`);
    out[i] = big ? BigInt(v) : v;
  }
  return out;
}

/**
 * The data types `limits[op][param]` allows, or null when the context does not say.
 * @param {any} limits @param {string} op @param {string} param
 * @returns {string[]|null}
 */
function allowed(limits, op, param) {
  const entry = limits && limits[op];
  const p = entry && (param ? entry[param] : entry);
  return p && Array.isArray(p.dataTypes) ? p.dataTypes : null;
}

/**
 * The data type an int64/uint32/int32 tensor is carried as when the context
 * does not accept its own type for `op`/`param` (graph inputs, constants).
 * @param {any} limits @param {DType} dtype @param {string} op @param {string} param
 * @returns {DType}
 */
function carriedType(limits, dtype, op, param) {
  const ok = allowed(limits, op, param);
  if (!ok || ok.includes(dtype) || !INDEX_TYPES.includes(dtype)) return dtype;
  const alt = /** @type {DType|undefined} */ (INDEX_TYPES.find((t) => ok.includes(t)));
  return alt || dtype;
}

/**
 * Builds the MLGraph for `graph` on `context` and returns an executor.
 *
 * @param {MLContext} context a WebNN context (`navigator.ml.createContext(...)`)
 * @param {GraphJson} graph the IR graph, fused ops already decomposed
 * @param {Map<string, HostTensor>} weights the data of the graph's weight constants
 * @returns {Promise<WebnnExecutor>}
 */
export async function createWebnnExecutor(context, graph, weights) {
  const limits = typeof context.opSupportLimits === 'function' ? context.opSupportLimits() : {};
  const builder = new MLGraphBuilder(context);
  /** @type {(MLOperand|undefined)[]} */
  const ops = new Array(graph.operands.length);
  /** The data type each operand really has in the WebNN graph (may differ for carried index types). */
  const types = graph.operands.map((d) => d.dtype);
  const desc = (/** @type {number} */ i) => {
    const d = graph.operands[i];
    if (!d) throw new Error(`webnn: operand ${i} is out of range`);
    return d;
  };
  const get = (/** @type {number} */ i, /** @type {string} */ what) => {
    const o = ops[i];
    if (!o) throw new Error(`webnn: ${what} reads operand ${i} before it is defined`);
    return o;
  };

  // Graph inputs, carried as another index type where the context needs it.
  /** @type {{name: string, dtype: DType, carried: DType, shape: number[]}[]} */
  const inputSpecs = [];
  for (const { name, operand } of graph.inputs) {
    const d = desc(operand);
    const carried = carriedType(limits, d.dtype, 'input', '');
    types[operand] = carried;
    ops[operand] = builder.input(name, { dataType: carried, shape: d.shape });
    inputSpecs.push({ name, dtype: d.dtype, carried, shape: d.shape });
  }

  // Constants: weights by name, or small inline tensors.
  for (const { operand, source } of graph.constants) {
    const d = desc(operand);
    /** @type {{dtype: DType, shape: number[], data: ArrayBuffer|ArrayBufferView}} */
    let t;
    let what;
    if (source.weight !== undefined) {
      what = `weight ${JSON.stringify(source.weight)}`;
      const w = weights.get(source.weight);
      if (!w) throw new Error(`webnn: ${what} is missing from the weights`);
      t = w;
    } else if (source.inline) {
      what = `inline constant ${operand}`;
      t = { dtype: source.inline.dtype, shape: source.inline.shape, data: Uint8Array.from(source.inline.data) };
    } else {
      throw new Error(`webnn: constant ${operand} has no source`);
    }
    if (t.dtype !== d.dtype || JSON.stringify(t.shape) !== JSON.stringify(d.shape)) {
      throw new Error(`webnn: ${what} is ${t.dtype}[${t.shape}] but the graph declares ${d.dtype}[${d.shape}]`);
    }
    let data = view(t.dtype, t.shape, t.data, what);
    const carried = carriedType(limits, d.dtype, 'constant', '');
    if (carried !== d.dtype) data = convertInts(data, carried, what);
    types[operand] = carried;
    ops[operand] = builder.constant({ dataType: carried, shape: d.shape }, data);
  }

  for (let n = 0; n < graph.nodes.length; n++) {
    const node = graph.nodes[n];
    const what = `node ${n} (${node.op})`;
    const x = node.inputs.map((i) => get(i, what));
    try {
      const shapes = node.inputs.map((i) => desc(i).shape);
      ops[node.output] = lower(builder, node, x, node.inputs.map((i) => types[i]), limits, shapes);
    } catch (e) {
      const shapes = node.inputs.map((i) => `${types[i]}[${desc(i).shape}]`).join(', ');
      throw new Error(`webnn: ${what} on (${shapes}) failed: ${e && e.message ? e.message : e}`);
    }
    types[node.output] = desc(node.output).dtype;
  }

  /** @type {Record<string, MLOperand>} */
  const named = {};
  for (const { name, operand } of graph.outputs) named[name] = get(operand, `output ${name}`);
  const mlGraph = await builder.build(named);

  // Tensors are created once (shapes are static) and reused by every run.
  /** @type {Record<string, MLTensor>} */
  const inTensors = {};
  for (const s of inputSpecs) {
    inTensors[s.name] = await context.createTensor({ dataType: s.carried, shape: s.shape, writable: true });
  }
  /** @type {Record<string, MLTensor>} */
  const outTensors = {};
  /** @type {{name: string, dtype: DType, shape: number[]}[]} */
  const outputSpecs = [];
  for (const { name, operand } of graph.outputs) {
    const d = desc(operand);
    outTensors[name] = await context.createTensor({ dataType: d.dtype, shape: d.shape, readable: true });
    outputSpecs.push({ name, dtype: d.dtype, shape: d.shape });
  }

  let destroyed = false;
  return {
    limits,
    async run(inputs) {
      if (destroyed) throw new Error('webnn: executor was destroyed');
      for (const s of inputSpecs) {
        const t = inputs.get(s.name);
        if (!t) throw new Error(`webnn: input ${JSON.stringify(s.name)} is missing`);
        if (t.dtype !== s.dtype || JSON.stringify(t.shape) !== JSON.stringify(s.shape)) {
          throw new Error(`webnn: input ${JSON.stringify(s.name)} is ${t.dtype}[${t.shape}], the graph wants ${s.dtype}[${s.shape}]`);
        }
        let data = view(t.dtype, t.shape, t.data, `input ${s.name}`);
        if (s.carried !== s.dtype) data = convertInts(data, s.carried, `input ${s.name}`);
        context.writeTensor(inTensors[s.name], data);
      }
      context.dispatch(mlGraph, inTensors, outTensors);
      /** @type {Map<string, HostTensor>} */
      const out = new Map();
      const bufs = await Promise.all(outputSpecs.map((s) => context.readTensor(outTensors[s.name])));
      outputSpecs.forEach((s, i) => out.set(s.name, { dtype: s.dtype, shape: s.shape, data: bufs[i] }));
      return out;
    },
    destroy() {
      if (destroyed) return;
      destroyed = true;
      for (const t of [...Object.values(inTensors), ...Object.values(outTensors)]) t.destroy();
      if (typeof mlGraph.destroy === 'function') mlGraph.destroy();
    },
  };
}

/**
 * One IR node as one MLGraphBuilder call (plus a cast for index types the
 * context does not take).
 * @param {MLGraphBuilder} b @param {GraphNode} node @param {MLOperand[]} x @param {DType[]} xt @param {any} limits
 * @param {number[][]} shapes the IR shapes of the inputs
 * @returns {MLOperand}
 */
function lower(b, node, x, xt, limits, shapes) {
  const op = node.op;
  const want = (/** @type {number} */ n) => {
    if (x.length !== n) throw new Error(`expects ${n} inputs, got ${x.length}`);
  };
  if (UNARY.includes(op)) {
    want(1);
    return /** @type {any} */ (b)[op](x[0]);
  }
  if (BINARY.includes(op)) {
    want(2);
    return /** @type {any} */ (b)[op](x[0], x[1]);
  }
  if (REDUCE.includes(op)) {
    want(1);
    return /** @type {any} */ (b)[op](x[0], { axes: node.axes, keepDimensions: !!node.keepDimensions });
  }
  switch (op) {
    case 'matmul':
      want(2);
      return b.matmul(x[0], x[1]);
    case 'gemm': {
      want(node.hasC ? 3 : 2);
      /** @type {any} */
      const o = { alpha: node.alpha, beta: node.beta, aTranspose: !!node.aTranspose, bTranspose: !!node.bTranspose };
      if (node.hasC) o.c = x[2];
      return b.gemm(x[0], x[1], o);
    }
    case 'softmax':
      want(1);
      return b.softmax(x[0], node.axis);
    case 'layerNormalization': {
      want(1 + (node.hasScale ? 1 : 0) + (node.hasBias ? 1 : 0));
      /** @type {any} */
      const o = { axes: node.axes, epsilon: node.epsilon };
      let k = 1;
      if (node.hasScale) o.scale = x[k++];
      if (node.hasBias) o.bias = x[k++];
      return b.layerNormalization(x[0], o);
    }
    case 'gather': {
      want(2);
      let idx = x[1];
      const ok = allowed(limits, 'gather', 'indices');
      if (ok && !ok.includes(xt[1])) {
        const to = INDEX_TYPES.find((t) => ok.includes(t));
        if (!to) throw new Error(`gather indices of type ${xt[1]} are not supported (context takes ${ok})`);
        idx = b.cast(idx, /** @type {any} */ (to));
      }
      return b.gather(x[0], idx, { axis: node.axis });
    }
    case 'reshape':
      want(1);
      return b.reshape(x[0], node.newShape);
    case 'transpose':
      want(1);
      return b.transpose(x[0], { permutation: node.permutation });
    case 'concat':
      if (x.length < 1) throw new Error('expects at least one input');
      return b.concat(x, node.axis);
    case 'slice':
      want(1);
      return b.slice(x[0], node.starts, node.sizes);
    case 'expand':
      want(1);
      return b.expand(x[0], node.newShape);
    case 'where':
      want(3);
      return b.where(x[0], x[1], x[2]);
    case 'cast':
      want(1);
      return b.cast(x[0], node.to);
    case 'conv2d': {
      want(node.hasBias ? 3 : 2);
      /** @type {any} */
      const o = {
        padding: node.padding,
        strides: node.strides,
        dilations: node.dilations,
        groups: node.groups,
        inputLayout: 'nchw',
        filterLayout: 'oihw',
      };
      if (node.hasBias) o.bias = x[2];
      return b.conv2d(x[0], x[1], o);
    }
    case 'averagePool2d':
    case 'maxPool2d':
      want(1);
      return pool2d(b, op, node, x[0], xt[0], shapes[0]);
    case 'clamp':
      want(1);
      return b.clamp(x[0], { minValue: node.minValue, maxValue: node.maxValue });
    case 'attention':
      throw new Error('the fused attention op is not a WebNN op: decompose the graph (decompose_fused) before sending it');
    default:
      throw new Error(`unknown op ${JSON.stringify(op)} (not a WebNN op this executor lowers)`);
  }
}

/**
 * averagePool2d / maxPool2d (NCHW, floor rounding). Without padding, one
 * call. With padding, the IR's meaning — padded positions are not counted —
 * is built explicitly, because backends differ here (Chromium's TFLite-based
 * CPU backend pads with zeros and counts them: webmachinelearning/webnn#876):
 * the input is padded (zeros for the average, the lowest float for the max)
 * and pooled without padding; an average is then scaled per output position
 * by window size / positions inside the input.
 * @param {MLGraphBuilder} b @param {string} op @param {GraphNode} node @param {MLOperand} x
 * @param {DType} dtype @param {number[]} shape the input's NCHW shape
 * @returns {MLOperand}
 */
function pool2d(b, op, node, x, dtype, shape) {
  const [top, bottom, left, right] = node.padding;
  const o = { windowDimensions: node.windowDimensions, strides: node.strides, dilations: node.dilations, layout: 'nchw', roundingType: 'floor' };
  if (top + bottom + left + right === 0) return /** @type {any} */ (b)[op](x, { ...o, padding: [0, 0, 0, 0] });
  const isMax = op === 'maxPool2d';
  const padded = b.pad(x, [0, 0, top, left], [0, 0, bottom, right], { mode: 'constant', value: isMax ? -3.4028234663852886e38 : 0 });
  const pooled = /** @type {any} */ (b)[op](padded, { ...o, padding: [0, 0, 0, 0] });
  if (isMax) return pooled;
  const [kh, kw] = node.windowDimensions;
  const [sh, sw] = node.strides;
  const [dh, dw] = node.dilations;
  const inside = (/** @type {number} */ o0, /** @type {number} */ s, /** @type {number} */ d, /** @type {number} */ k, /** @type {number} */ pad, /** @type {number} */ size) => {
    let n = 0;
    for (let i = 0; i < k; i++) {
      const at = o0 * s + i * d - pad;
      if (at >= 0 && at < size) n++;
    }
    return n;
  };
  const outH = Math.floor((shape[2] + top + bottom - dh * (kh - 1) - 1) / sh) + 1;
  const outW = Math.floor((shape[3] + left + right - dw * (kw - 1) - 1) / sw) + 1;
  const scale = new Float32Array(outH * outW);
  for (let oy = 0; oy < outH; oy++) {
    const ny = inside(oy, sh, dh, kh, top, shape[2]);
    for (let ox = 0; ox < outW; ox++) {
      const n = ny * inside(ox, sw, dw, kw, left, shape[3]);
      scale[oy * outW + ox] = n === 0 ? 0 : (kh * kw) / n;
    }
  }
  let factor = b.constant({ dataType: 'float32', shape: [1, 1, outH, outW] }, scale);
  if (dtype !== 'float32') factor = b.cast(factor, /** @type {any} */ (dtype));
  return b.mul(pooled, factor);
}

/**
 * What WebNN this browser really offers: for each device type whether
 * `navigator.ml.createContext({deviceType})` resolves (the presence of
 * `navigator.ml` is not enough), and a summary of `opSupportLimits()`.
 * @returns {Promise<{available: boolean, reason?: string, devices: Record<string, {ok: boolean, error?: string, limits?: any}>}>}
 */
export async function webnnCapabilities() {
  /** @type {Record<string, {ok: boolean, error?: string, limits?: any}>} */
  const devices = {};
  const ml = typeof navigator !== 'undefined' ? /** @type {any} */ (navigator).ml : undefined;
  if (!ml || typeof ml.createContext !== 'function') {
    return { available: false, reason: 'navigator.ml is missing', devices };
  }
  for (const deviceType of ['cpu', 'gpu', 'npu']) {
    try {
      const ctx = await ml.createContext({ deviceType });
      devices[deviceType] = { ok: true, limits: summarizeLimits(ctx.opSupportLimits()) };
      if (typeof ctx.destroy === 'function') ctx.destroy();
    } catch (e) {
      devices[deviceType] = { ok: false, error: String(e && e.message ? e.message : e) };
    }
  }
  return { available: Object.values(devices).some((d) => d.ok), devices };
}

/**
 * A compact view of opSupportLimits(): the scalar entries, and per op the
 * data types and max rank of its first operand and of its indices.
 * @param {any} limits
 */
function summarizeLimits(limits) {
  /** @type {Record<string, any>} */
  const out = { ops: {} };
  for (const [key, value] of Object.entries(limits || {})) {
    if (typeof value !== 'object' || value === null) {
      out[key] = value;
    } else if (Array.isArray(value.dataTypes)) {
      out.ops[key] = { dataTypes: value.dataTypes, maxRank: value.rankRange ? value.rankRange.max : undefined };
    } else {
      const params = Object.keys(value).filter((k) => value[k] && Array.isArray(value[k].dataTypes));
      const first = value.input || value.a || value.inputs || (params.length ? value[params[0]] : undefined);
      if (!first) continue;
      /** @type {any} */
      const s = { dataTypes: first.dataTypes, maxRank: first.rankRange ? first.rankRange.max : undefined };
      if (value.indices) s.indices = value.indices.dataTypes;
      out.ops[key] = s;
    }
  }
  return out;
}
