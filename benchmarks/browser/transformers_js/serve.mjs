// Serves bench.html, transformers.js and ONNX Runtime Web from node_modules,
// the exported model (models/) and the texts, launches a headless Chromium on
// the page, prints the page's JSON result on stdout and exits.
// Cross-origin isolated (COOP/COEP) so the WASM backend can use threads.
//
//   node serve.mjs --browser PATH --texts FILE [--batch-sizes 1,8] [--seconds 3]
//                  [--threads N] [--models DIR] [--timeout 600]

import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const { values: opts } = parseArgs({
  options: {
    browser: { type: 'string', default: '/usr/bin/chromium' },
    texts: { type: 'string' },
    'batch-sizes': { type: 'string', default: '1,8' },
    seconds: { type: 'string', default: '3' },
    threads: { type: 'string', default: '0' },
    models: { type: 'string', default: join(here, 'models') },
    timeout: { type: 'string', default: '600' },
  },
});
if (!opts.texts) throw new Error('--texts FILE (one text per line) is required');
const texts = readFileSync(opts.texts, 'utf8').split('\n').filter((l) => l.length > 0);

const roots = {
  '/transformers/': join(here, 'node_modules/@huggingface/transformers/dist'),
  '/ort/': join(here, 'node_modules/onnxruntime-web/dist'),
  '/models/': opts.models,
};
const types = { '.html': 'text/html', '.mjs': 'text/javascript', '.js': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json' };

let browser;
let finish;
const done = new Promise((resolve) => { finish = resolve; });

const server = createServer((req, res) => {
  const headers = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp', 'Cache-Control': 'no-store' };
  const url = new URL(req.url, 'http://x');
  if (req.method === 'POST' && url.pathname === '/result') {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => { res.writeHead(204, headers).end(); finish(body); });
    return;
  }
  let file;
  if (url.pathname === '/') file = join(here, 'bench.html');
  else if (url.pathname === '/bench.mjs') file = join(here, 'bench.mjs');
  else if (url.pathname === '/texts.json') {
    res.writeHead(200, { ...headers, 'Content-Type': 'application/json' }).end(JSON.stringify(texts));
    return;
  } else {
    for (const [prefix, dir] of Object.entries(roots)) {
      if (url.pathname.startsWith(prefix)) {
        const rel = normalize(decodeURIComponent(url.pathname.slice(prefix.length)));
        if (!rel.startsWith('..')) file = join(dir, rel);
      }
    }
  }
  try {
    if (!file || !statSync(file).isFile()) throw new Error('not found');
    res.writeHead(200, { ...headers, 'Content-Type': types[extname(file)] || 'application/octet-stream' });
    res.end(readFileSync(file));
  } catch {
    res.writeHead(404, headers).end();
  }
});

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const q = new URLSearchParams({ batch_sizes: opts['batch-sizes'], seconds: opts.seconds, threads: opts.threads });
  const url = `http://127.0.0.1:${port}/?${q}`;
  const profile = mkdtempSync(join(tmpdir(), 'tjs-bench-'));
  const args = [
    '--headless=new', '--no-first-run', '--no-default-browser-check', '--disable-extensions',
    '--disable-sync', '--disable-background-networking', '--disable-component-update',
    '--disable-background-timer-throttling', '--disable-renderer-backgrounding',
    `--user-data-dir=${profile}`,
  ];
  if (process.getuid && process.getuid() === 0) args.push('--no-sandbox');
  browser = spawn(opts.browser, [...args, url], { stdio: 'ignore' });
  browser.on('exit', (code, signal) => finish(JSON.stringify({ error: `the browser exited (${signal || code})` })));
  const timer = setTimeout(() => finish(JSON.stringify({ error: `no result within ${opts.timeout} s` })), Number(opts.timeout) * 1000);
  done.then((body) => {
    clearTimeout(timer);
    browser.removeAllListeners('exit');
    browser.kill('SIGKILL');
    rmSync(profile, { recursive: true, force: true });
    server.close();
    process.stdout.write(body + '\n');
    process.exit(JSON.parse(body).error ? 1 : 0);
  });
});
