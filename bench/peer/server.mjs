// Benchmark peer baseline — NOT part of braid.
//
// This is the server a developer would otherwise write in an afternoon with
// onnxruntime-node (1.21.0, the same ONNX Runtime build braid links): one
// InferenceSession per model, the KServe v2 JSON endpoints braid answers, and
// one session.run per request. It deliberately has no dynamic batching, no
// result cache, no queue beyond Node's event loop, and a single process. It
// exists only so the benchmarks can compare braid against it on the same ONNX
// files and the same requests. See README.md beside it.
//
//   node bench/peer/server.mjs --models build/models --port 0 [--threads 2] [--host 127.0.0.1]
//   -> prints "peer ready http=HOST:PORT" on stdout once listening.

import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import ort from 'onnxruntime-node';

const { values: opts } = parseArgs({
  options: {
    models: { type: 'string', default: 'build/models' },
    port: { type: 'string', default: '8000' },
    host: { type: 'string', default: '127.0.0.1' },
    threads: { type: 'string', default: '2' },
  },
});
const MAX_BODY = 64 << 20; // braid's default --max-body-bytes

class HttpError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

// ---- models: DIR/<name>/config.yaml (backend: onnxruntime) + DIR/<name>/1/model.onnx
// Only the few config lines needed are read with regexes (no YAML library).
function tensorSpecs(config, key, batched) {
  const block = config.match(new RegExp(`^${key}:([\\s\\S]*?)(?=^\\w)`, 'm'))?.[1] ?? '';
  const specs = new Map();
  for (const m of block.matchAll(/\{name:\s*([\w.-]+),\s*datatype:\s*(\w+),\s*dims:\s*\[([^\]]*)\]/g)) {
    const dims = m[3].split(',').filter((d) => d.trim()).map(Number);
    specs.set(m[1], { datatype: m[2], shape: batched ? [-1, ...dims] : dims });
  }
  return specs;
}

const models = new Map(); // name -> { session, inputs, outputs }
for (const name of fs.readdirSync(opts.models).sort()) {
  const configPath = path.join(opts.models, name, 'config.yaml');
  const onnxPath = path.join(opts.models, name, '1', 'model.onnx');
  if (!fs.existsSync(configPath) || !fs.existsSync(onnxPath)) continue;
  const config = fs.readFileSync(configPath, 'utf8') + '\nend:\n'; // sentinel: every block ends at a top-level key
  if (config.match(/^backend:\s*(\S+)/m)?.[1] !== 'onnxruntime') continue;
  const batched = Number(config.match(/^max_batch_size:\s*(\d+)/m)?.[1] ?? 0) > 0;
  const session = await ort.InferenceSession.create(onnxPath, {
    intraOpNumThreads: Number(opts.threads),
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
  });
  // onnxruntime-node 1.21 exposes only the names; datatype/shape come from config.yaml.
  const describe = (names, specs) => names.map((n) => ({ name: n, ...specs.get(n) }));
  models.set(name, {
    session,
    inputs: describe(session.inputNames, tensorSpecs(config, 'inputs', batched)),
    outputs: describe(session.outputNames, tensorSpecs(config, 'outputs', batched)),
  });
}
if (models.size === 0) console.error(`peer: no onnxruntime models under ${opts.models}`);

// ---- tensors: KServe v2 JSON <-> ort.Tensor
const TO_ORT = {
  FP32: ['float32', (d) => Float32Array.from(d)],
  INT64: ['int64', (d) => BigInt64Array.from(d, (v) => BigInt(v))],
  INT32: ['int32', (d) => Int32Array.from(d)],
};
const FROM_ORT = { float32: 'FP32', int64: 'INT64', int32: 'INT32', float64: 'FP64', bool: 'BOOL', uint8: 'UINT8' };

function toTensor(input) {
  const { name, shape, datatype } = input;
  const conv = TO_ORT[datatype];
  if (!conv) throw new HttpError(400, `input '${name}': unsupported datatype ${datatype}`);
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0))
    throw new HttpError(400, `input '${name}': bad shape`);
  const data = Array.isArray(input.data) ? input.data.flat(Infinity) : null;
  if (!data) throw new HttpError(400, `input '${name}': missing data`);
  const count = shape.reduce((a, b) => a * b, 1);
  if (data.length !== count)
    throw new HttpError(400, `input '${name}': ${data.length} values for shape [${shape}] (${count})`);
  try {
    return new ort.Tensor(conv[0], conv[1](data), shape);
  } catch (e) {
    throw new HttpError(400, `input '${name}': ${e.message}`);
  }
}

function fromTensor(name, t) {
  const data = t.type === 'int64' ? Array.from(t.data, Number) : Array.from(t.data);
  return { name, datatype: FROM_ORT[t.type] ?? t.type, shape: t.dims, data };
}

async function infer(name, model, body) {
  if (!body || !Array.isArray(body.inputs)) throw new HttpError(400, "body needs an 'inputs' array");
  const feeds = {};
  for (const input of body.inputs) {
    if (!model.session.inputNames.includes(input?.name))
      throw new HttpError(400, `unknown input '${input?.name}' for model '${name}'`);
    feeds[input.name] = toTensor(input);
  }
  for (const n of model.session.inputNames)
    if (!(n in feeds)) throw new HttpError(400, `missing input '${n}'`);
  let fetches = model.session.outputNames;
  if (Array.isArray(body.outputs) && body.outputs.length) {
    fetches = body.outputs.map((o) => o?.name);
    for (const n of fetches)
      if (!model.session.outputNames.includes(n)) throw new HttpError(400, `unknown output '${n}'`);
  }
  // body.parameters (cache, priority, timeout, ...) are ignored on purpose.
  let results;
  try {
    // One request = one run, no batching. Always fetch every output: in
    // onnxruntime-node 1.21.0, run(feeds, [subset]) returns the right tensors
    // under the wrong names (keyed by position in outputNames).
    results = await model.session.run(feeds);
  } catch (e) {
    throw new HttpError(400, `inference failed: ${e.message}`); // e.g. dimensions the model rejects
  }
  const reply = { model_name: name, model_version: '1', outputs: fetches.map((n) => fromTensor(n, results[n])) };
  if (body.id !== undefined) reply.id = body.id;
  return reply;
}

// ---- HTTP
function send(res, status, obj) {
  const body = obj === undefined ? '' : JSON.stringify(obj);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

async function readJson(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_BODY) throw new HttpError(413, 'request body too large');
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (e) {
    throw new HttpError(400, `bad JSON: ${e.message}`);
  }
}

async function handle(req, res) {
  const url = req.url.split('?')[0];
  if (url === '/v2/health/ready' || url === '/v2/health/live') return send(res, 200);
  const m = url.match(/^\/v2\/models\/([^/]+)(?:\/versions\/([^/]+))?(\/infer)?$/);
  if (!m) throw new HttpError(404, `no route for ${req.method} ${url}`);
  const [, name, version, isInfer] = m;
  const model = models.get(decodeURIComponent(name));
  if (!model) throw new HttpError(404, `unknown model '${decodeURIComponent(name)}'`);
  if (version !== undefined && version !== '1') throw new HttpError(404, `unknown version '${version}'`);
  if (isInfer) {
    if (req.method !== 'POST') throw new HttpError(405, 'use POST');
    return send(res, 200, await infer(decodeURIComponent(name), model, await readJson(req)));
  }
  if (req.method !== 'GET') throw new HttpError(405, 'use GET');
  send(res, 200, {
    name: decodeURIComponent(name), versions: ['1'], platform: 'onnxruntime_onnx',
    inputs: model.inputs, outputs: model.outputs,
  });
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((e) => {
    if (!(e instanceof HttpError)) console.error(e);
    if (!res.headersSent) send(res, e.status ?? 500, { error: e.message });
    else res.destroy();
  });
});
server.keepAliveTimeout = 60_000; // braid keeps idle connections 60 s; Node's default is 5 s
server.listen(Number(opts.port), opts.host, () => {
  console.log(`peer ready http=${opts.host}:${server.address().port}`);
});
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
