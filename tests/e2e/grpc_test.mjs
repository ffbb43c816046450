// The KServe v2 gRPC service through @grpc/grpc-js, a client nobody here
// wrote, loading braid's proto: unary calls, raw tensors, streaming,
// deadlines, errors.
//   node --test tests/e2e/grpc_test.mjs   (BRAID_BINARY and BRAID_PROTO set by CTest)
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import { startBraid } from './serve.mjs';

const binary = process.env.BRAID_BINARY;
const protoPath = process.env.BRAID_PROTO;
let server;
let client;

function call(method, request, options = {}) {
  return new Promise((resolve, reject) => {
    client[method](request, new grpc.Metadata(), options, (error, response) => (error ? reject(error) : resolve(response)));
  });
}

function floats(values) {
  const buffer = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => buffer.writeFloatLE(v, i * 4));
  return buffer;
}

function identityRequest(values, id = '') {
  return {
    model_name: 'identity', id,
    inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 16] }],
    raw_input_contents: [floats(values)],
  };
}

before(async () => {
  server = await startBraid(binary);
  const definition = protoLoader.loadSync(protoPath, { keepCase: true, longs: Number, enums: String, defaults: true });
  const inference = grpc.loadPackageDefinition(definition).inference;
  client = new inference.GRPCInferenceService(`127.0.0.1:${server.grpc}`, grpc.credentials.createInsecure());
});

after(async () => {
  client.close();
  assert.equal(await server.stop(), 0);
});

test('health and metadata', async () => {
  assert.equal((await call('ServerLive', {})).live, true);
  assert.equal((await call('ServerReady', {})).ready, true);
  const meta = await call('ServerMetadata', {});
  assert.equal(meta.name, 'braid');
  assert.equal((await call('ModelReady', { name: 'clip-image' })).ready, true);
  const model = await call('ModelMetadata', { name: 'clip-image' });
  assert.equal(model.inputs[0].name, 'pixel_values');
  assert.deepEqual(model.inputs[0].shape, [-1, 3, 224, 224]);
  const config = await call('ModelConfig', { name: 'clip-text' });
  assert.equal(config.config.max_batch_size, 64);
  assert.equal(config.config.input[0].data_type, 'TYPE_INT64');
  const index = await call('RepositoryIndex', {});
  assert.equal(index.models.length, 9);
});

test('ModelInfer with raw tensors returns raw outputs', async () => {
  const values = Array.from({ length: 16 }, (_, i) => i * 1.5);
  const response = await call('ModelInfer', identityRequest(values, 'req-7'));
  assert.equal(response.id, 'req-7');
  assert.equal(response.outputs[0].name, 'output');
  assert.deepEqual(response.outputs[0].shape, [1, 16]);
  const out = response.raw_output_contents[0];
  assert.equal(out.readFloatLE(15 * 4), 22.5);
});

test('ModelInfer with typed contents', async () => {
  const ids = [49406, 320, 1929, 49407, ...new Array(73).fill(0)];
  const response = await call('ModelInfer', {
    model_name: 'clip-text',
    inputs: [{ name: 'input_ids', datatype: 'INT64', shape: [1, 77], contents: { int64_contents: ids } }],
    parameters: { priority: { int64_param: 1 } },
  });
  assert.deepEqual(response.outputs[0].shape, [1, 512]);
  assert.equal(response.raw_output_contents[0].length, 512 * 4);
});

test('ModelInfer runs a workflow by its name, as Triton runs an ensemble', async () => {
  const response = await call('ModelInfer', {
    model_name: 'multimodal-assist',
    inputs: [{ name: 'text', datatype: 'BYTES', shape: [1], contents: { bytes_contents: [Buffer.from('what is this?')] } }],
  });
  assert.equal(response.model_name, 'multimodal-assist');
  assert.equal((await call('ModelReady', { name: 'multimodal-assist' })).ready, true);
  const names = response.outputs.map((output) => output.name);
  assert.deepEqual(names, ['answer', 'chat_answer', 'image_text', 'text_answer', 'transcript']);
  const text = response.raw_output_contents[names.indexOf('text_answer')];
  assert.equal(text.readUInt32LE(0), text.length - 4, 'one length-prefixed string');
  assert.match(text.subarray(4).toString(), /^You asked: what is this\? \(no image or audio attached/);
  assert.deepEqual(response.outputs[names.indexOf('answer')].shape, [0], 'a skipped output is empty');
});

test('errors map to gRPC status codes', async () => {
  await assert.rejects(call('ModelInfer', { ...identityRequest(new Array(16).fill(0)), model_name: 'nope' }),
                       (e) => e.code === grpc.status.NOT_FOUND);
  await assert.rejects(call('ModelInfer', { model_name: 'identity', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 16] }],
                                           raw_input_contents: [floats([1, 2, 3])] }),
                       (e) => e.code === grpc.status.INVALID_ARGUMENT && /needs 64/.test(e.details));
  await assert.rejects(call('ModelMetadata', { name: 'identity', version: 'x' }),
                       (e) => e.code === grpc.status.INVALID_ARGUMENT);
});

test('a client-chosen model name never becomes a metric label', async () => {
  const name = `probe-${'x'.repeat(5000)}\r\nbraid_fake 1`;
  await assert.rejects(call('ModelInfer', { ...identityRequest(new Array(16).fill(0)), model_name: name }),
                       (e) => e.code === grpc.status.NOT_FOUND);
  const metrics = await (await fetch(`http://127.0.0.1:${server.metrics}/metrics`)).text();
  assert.ok(!metrics.includes('probe-'), 'the name is not in /metrics');
  assert.match(metrics, /braid_requests_total\{protocol="grpc",model="unknown",code="404"\} [1-9]/);
});

test('a deadline shorter than the queue wait is DEADLINE_EXCEEDED', async () => {
  const pixels = Buffer.alloc(16 * 3 * 224 * 224 * 4);
  const big = { model_name: 'clip-image', inputs: [{ name: 'pixel_values', datatype: 'FP32', shape: [16, 3, 224, 224] }],
                raw_input_contents: [pixels] };
  // Keep the model busy (the busy requests may queue as long as a loaded
  // machine needs: the model's own queue timeout is 2 s), then send a
  // request that cannot make its 1 ms deadline.
  const patient = { ...big, parameters: { timeout: { int64_param: 60000000 } } };
  const busy = [call('ModelInfer', patient), call('ModelInfer', patient)];
  await assert.rejects(call('ModelInfer', { ...big, inputs: [{ ...big.inputs[0], shape: [1, 3, 224, 224] }],
                                           raw_input_contents: [pixels.subarray(0, 3 * 224 * 224 * 4)] },
                            { deadline: Date.now() + 1 }),
                       (e) => e.code === grpc.status.DEADLINE_EXCEEDED);
  await Promise.all(busy);
});

test('a client that cancels ModelInfer cancels its queued request', async () => {
  const pixels = Buffer.alloc(16 * 3 * 224 * 224 * 4);
  const batch = (n) => ({ model_name: 'clip-image', inputs: [{ name: 'pixel_values', datatype: 'FP32', shape: [n, 3, 224, 224] }],
                          raw_input_contents: [pixels.subarray(0, n * 3 * 224 * 224 * 4)],
                          // Identical requests would share one run (the result cache).
                          parameters: { timeout: { int64_param: 120000000 }, cache: { bool_param: false } } });
  const stats = async () => (await (await fetch(`http://127.0.0.1:${server.http}/v2/models/clip-image/stats`)).json()).model_stats[0];
  const inFlight = async () => {
    const metrics = await (await fetch(`http://127.0.0.1:${server.metrics}/metrics`)).text();
    return Number(/^braid_inflight_requests (\d+)$/m.exec(metrics)[1]);
  };
  const until = async (what, check) => {
    for (let i = 0; i < 3000; ++i) {
      if (await check()) return;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.fail(`timed out waiting until ${what}`);
  };
  const before = await stats();
  // Eight clients each send a 16-image batch as soon as their last is
  // answered, so that several wait in the model's queue at any time: at
  // most eight requests are in flight until a ninth, the 1-image request,
  // queues behind them. Its client then cancels it. (Seen on two polls in a
  // row: an answered request is counted out just after its answer leaves.)
  let stop = false;
  const keepBusy = async () => { while (!stop) await call('ModelInfer', batch(16)); };
  const busy = Array.from({ length: 8 }, keepBusy);
  await until('the busy requests are admitted', async () => (await inFlight()) >= 7);
  const small = client.ModelInfer(batch(1), new grpc.Metadata(), () => {});
  let seen = 0;
  await until('the small request is admitted', async () => {
    seen = (await inFlight()) >= 9 ? seen + 1 : 0;
    return seen >= 2;
  });
  small.cancel();
  await until('the cancelled request is dropped', async () => (await stats()).cancelled > before.cancelled);
  stop = true;
  await Promise.all(busy);
  const after = await stats();
  assert.equal(after.cancelled - before.cancelled, 1);
  assert.equal((after.inference_count - before.inference_count) % 16, 0, 'the cancelled request never ran');
});

test('ModelStreamInfer answers every request on one stream', async () => {
  const stream = client.ModelStreamInfer();
  const responses = [];
  const done = new Promise((resolve, reject) => {
    stream.on('data', (r) => responses.push(r));
    stream.on('end', resolve);
    stream.on('error', reject);
  });
  for (let i = 0; i < 5; ++i) stream.write(identityRequest(new Array(16).fill(i), `s${i}`));
  stream.write({ ...identityRequest(new Array(16).fill(0), 'bad'), model_name: 'nope' });
  stream.end();
  await done;
  assert.equal(responses.length, 6);
  const byId = Object.fromEntries(responses.map((r) => [r.infer_response.id, r]));
  for (let i = 0; i < 5; ++i) {
    assert.equal(byId[`s${i}`].error_message, '');
    assert.equal(byId[`s${i}`].infer_response.raw_output_contents[0].readFloatLE(0), i);
  }
  assert.match(byId.bad.error_message, /unknown model/);
});

test('statistics count the requests', async () => {
  const stats = await call('ModelStatistics', { name: 'identity' });
  assert.ok(stats.model_stats[0].inference_count >= 6);
});

test('gzip-compressed requests are accepted', async () => {
  const definition = protoLoader.loadSync(protoPath, { keepCase: true, longs: Number, enums: String, defaults: true });
  const inference = grpc.loadPackageDefinition(definition).inference;
  const gzipClient = new inference.GRPCInferenceService(`127.0.0.1:${server.grpc}`, grpc.credentials.createInsecure(),
                                                        { 'grpc.default_compression_algorithm': 2 });
  const response = await new Promise((resolve, reject) => {
    gzipClient.ModelInfer(identityRequest(new Array(16).fill(3)), (e, r) => (e ? reject(e) : resolve(r)));
  });
  gzipClient.close();
  assert.equal(response.raw_output_contents[0].readFloatLE(0), 3);
});

test('--rate-limit refuses calls past an address\'s burst with RESOURCE_EXHAUSTED; health is exempt', async () => {
  const limited = await startBraid(binary, ['--rate-limit', '0.01', '--rate-burst', '2']);
  const definition = protoLoader.loadSync(protoPath, { keepCase: true, longs: Number, enums: String, defaults: true });
  const inference = grpc.loadPackageDefinition(definition).inference;
  const limitedClient = new inference.GRPCInferenceService(`127.0.0.1:${limited.grpc}`, grpc.credentials.createInsecure());
  const unary = (method, request) => new Promise((resolve, reject) => {
    limitedClient[method](request, (e, r) => (e ? reject(e) : resolve(r)));
  });
  try {
    await unary('ServerMetadata', {});
    await unary('ModelReady', { name: 'identity' });
    await assert.rejects(unary('ModelReady', { name: 'identity' }),
                         (e) => e.code === grpc.status.RESOURCE_EXHAUSTED && /too many requests/.test(e.details));
    assert.equal((await unary('ServerLive', {})).live, true);
    // The same address over HTTP shares the bucket.
    const http = await fetch(`http://127.0.0.1:${limited.http}/v2`);
    assert.equal(http.status, 429);
    assert.ok(http.headers.get('retry-after'));
  } finally {
    limitedClient.close();
    assert.equal(await limited.stop(), 0);
  }
});
