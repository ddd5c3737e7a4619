// Runs in the browser page that serve.mjs serves: all-MiniLM-L6-v2 through
// transformers.js (ONNX Runtime Web, WASM backend, fp32) from local files only,
// feature-extraction with mean pooling and normalization, timed per batch size.
// Posts {config, results, embeddings} (or {error}) to /result.

import { env, pipeline } from '/transformers/transformers.js';

const log = (s) => { document.getElementById('log').textContent += '\n' + s; };

async function main() {
  const q = new URLSearchParams(location.search);
  const batchSizes = (q.get('batch_sizes') || '1,8').split(',').map(Number);
  const seconds = Number(q.get('seconds') || '3');
  const threads = Number(q.get('threads') || '0') || navigator.hardwareConcurrency || 1;
  const model = q.get('model') || 'all-MiniLM-L6-v2';
  const texts = await (await fetch('/texts.json')).json();

  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = '/models/';
  env.useBrowserCache = false;
  const onnx = env.backends.onnx;
  onnx.wasm.wasmPaths = { mjs: '/ort/ort-wasm-simd-threaded.asyncify.mjs', wasm: '/ort/ort-wasm-simd-threaded.asyncify.wasm' };
  onnx.wasm.numThreads = threads;

  const t0 = performance.now();
  const extractor = await pipeline('feature-extraction', model, { device: 'wasm', dtype: 'fp32' });
  const loadMs = performance.now() - t0;
  log(`loaded in ${loadMs.toFixed(0)} ms`);
  const embed = async (batch) => extractor(batch, { pooling: 'mean', normalize: true });

  const results = [];
  for (const batchSize of batchSizes) {
    let next = 0;
    const take = () => {
      const batch = [];
      for (let i = 0; i < batchSize; i++) batch.push(texts[(next++) % texts.length]);
      return batch;
    };
    await embed(take()); // warm-up
    next = 0;
    let batches = 0;
    let done = 0;
    const start = performance.now();
    // Like `ipfs-accelerate bench embed`: until the time is up and every text ran once.
    while (performance.now() - start < seconds * 1000 || done < texts.length) {
      await embed(take());
      batches++;
      done += batchSize;
    }
    const ms = performance.now() - start;
    results.push({ batch_size: batchSize, batches, sentences_per_sec: (done * 1000) / ms, mean_batch_ms: ms / batches });
    log(`batch ${batchSize}: ${(ms / batches).toFixed(2)} ms`);
  }
  const check = await embed(texts.slice(0, 2));
  return {
    config: { model, threads, crossOriginIsolated: globalThis.crossOriginIsolated === true, loadMs, userAgent: navigator.userAgent },
    results,
    embeddings: check.tolist(),
  };
}

let body;
try {
  body = await main();
} catch (e) {
  body = { error: String(e && e.stack || e) };
}
await fetch('/result', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
log('done');
