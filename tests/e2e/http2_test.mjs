// HTTP/2 and TLS on braid's REST, gRPC and metrics ports, from clients
// nobody here wrote: curl, nghttp, openssl, Node's http2 and tls modules and
// @grpc/grpc-js; and hostile HTTP/2 written frame by frame on a raw socket
// (h2_wire.mjs). Certificates are made for each run with openssl.
//   node --test tests/e2e/http2_test.mjs
//   (BRAID_BINARY, BRAID_FIXTURES and BRAID_PROTO set by CTest)
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { copyFileSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import tls from 'node:tls';
import { gunzipSync, gzipSync } from 'node:zlib';
import { after, before, test } from 'node:test';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import { createParser } from 'eventsource-parser';
import WebSocket from 'ws';
import { makeCertificates, run } from './certs.mjs';
import * as wire from './h2_wire.mjs';
import { startBraid } from './serve.mjs';

const binary = process.env.BRAID_BINARY;
const kMaxBody = 1 << 20;  // --max-body-bytes of the plaintext server
const have = (tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
const missing = (...tools) => tools.filter((tool) => !have(tool));
const kSkipHint = 'bootstrap installs it: apt-get install openssl curl nghttp2-client';

let dir;        // scratch: certificates and request bodies
let certs;      // file names of the PEM files made by makeCertificates
let upstream;   // the chat upstream whose answers the tests hold back
let plain;      // braid serve without TLS (h2c, HTTP/1.1)
let secure;     // braid serve --tls-cert --tls-key

// ---------------------------------------------------------------------------
// Processes and certificates

const pem = (name) => readFileSync(certs[name]);
const tlsFlags = (cert = certs['server-a.pem'], key = certs['server-a.key']) => ['--tls-cert', cert, '--tls-key', key];

// ---------------------------------------------------------------------------
// The chat upstream: an OpenAI-compatible streaming API (what remote.chat
// calls). It sends its first token at once; for a prompt holding a nonce
// that a test holds back, the rest only when the test says so, which lets a
// test see events arrive while the run is still going.

function startUpstream() {
  const gates = new Map();
  const server = createServer((request, response) => {
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (chunk) => { body += chunk; });
    request.on('end', async () => {
      const gate = gates.get(/nonce[0-9a-f]+/.exec(body)?.[0]);
      let finished = false;
      response.on('error', () => {});
      response.on('close', () => gate?.settle(finished ? 'finished' : 'closed'));
      response.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
      const token = (text) => response.write(`data: ${JSON.stringify({ choices: [{ delta: { content: text } }] })}\n\n`);
      token('first ');
      if (gate) await gate.released;
      // A trickle of tokens for a caller that may have gone: stops once
      // braid closes the connection.
      for (let i = 0; i < (gate?.trickle ?? 0) && !response.destroyed; i++) {
        token('more ');
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      if (response.destroyed) return;
      token('second ');
      token('third');
      finished = true;
      response.end('data: [DONE]\n\n');
    });
  });
  return {
    server,
    listening: new Promise((resolve) => server.listen(0, '127.0.0.1', resolve)),
    url: () => `http://127.0.0.1:${server.address().port}/v1`,
    // Holds back the answer to the prompt that holds the nonce returned.
    hold(trickle = 0) {
      const nonce = `nonce${randomBytes(6).toString('hex')}`;
      const gate = { nonce, trickle };
      gate.released = new Promise((resolve) => { gate.release = resolve; });
      gate.outcome = new Promise((resolve) => { gate.settle = resolve; });
      gates.set(nonce, gate);
      return gate;
    },
  };
}

// ---------------------------------------------------------------------------
// Clients

// curl with the status and HTTP version it saw written after the body.
async function curl(args) {
  const result = await run('curl', ['-sS', '--max-time', '60', '-w', '\n%{http_code} %{http_version}', ...args]);
  const cut = result.stdout.lastIndexOf('\n');
  const [status, version] = result.stdout.slice(cut + 1).split(' ');
  return { code: result.code, body: result.stdout.slice(0, cut), status: Number(status), version, stderr: result.stderr };
}
// curl arguments for https://localhost:PORT reaching 127.0.0.1.
const overTls = (port, path, args = []) =>
  ['--resolve', `localhost:${port}:127.0.0.1`, ...args, `https://localhost:${port}${path}`];

const identityValues = (seed) => Array.from({ length: 16 }, (_, i) => seed * 16 + i + 0.5);
const identityBody = (values) => JSON.stringify({ inputs: [{ name: 'input', shape: [1, 16], datatype: 'FP32', data: values }] });
const outputOf = (body) => JSON.parse(body).outputs[0].data;

// An h2 session, over h2c with prior knowledge or over TLS (ALPN h2).
// `settingsReceived` resolves once the server's SETTINGS have arrived; `tlsSocket`
// is the TLS connection under a TLS session.
function h2c(port) {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  return watch(session);
}
function h2tls(port, options = {}) {
  let tlsSocket;
  const session = http2.connect(`https://localhost:${port}`, {
    createConnection: () => {
      tlsSocket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: pem('ca.pem'),
                                ALPNProtocols: ['h2'], ...options });
      return tlsSocket;
    },
  });
  watch(session);
  session.tlsSocket = () => tlsSocket;
  return session;
}
function watch(session) {
  session.errors = [];
  session.goaways = [];
  session.on('error', (error) => session.errors.push(error));
  session.on('goaway', (code) => session.goaways.push(code));
  session.settingsReceived = once(session, 'remoteSettings');
  session.connected = once(session, 'connect');
  return session;
}

// One request on a session: its status, headers, body and trailers.
function h2(session, headers, body) {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':method': 'GET', ...headers }, { endStream: body === undefined });
    const chunks = [];
    let response = {};
    let trailers = {};
    stream.on('response', (h) => { response = h; });
    stream.on('trailers', (t) => { trailers = t; });
    stream.on('data', (chunk) => chunks.push(chunk));
    stream.on('end', () => resolve({ status: response[':status'], headers: response, trailers, body: Buffer.concat(chunks) }));
    stream.on('error', reject);
    if (body !== undefined) stream.end(body);
  });
}
const infer = (session, values) => h2(session, { ':method': 'POST', ':path': '/v2/models/identity/infer',
                                                 'content-type': 'application/json' }, identityBody(values));

// A streaming workflow run on an h2 session: `events` in arrival order,
// `until(predicate)` resolves with the first that matches (rejecting after
// `ms`, a failure guard), `done` with every event once the stream ends.
function streamRun(session, workflow, inputs) {
  const stream = session.request({ ':method': 'POST', ':path': `/v1/workflows/${workflow}/run`,
                                   'content-type': 'application/json' });
  stream.end(JSON.stringify({ inputs, response_mode: 'streaming', user: 'e2e' }));
  const events = [];
  const waiters = new Set();
  const wake = () => { for (const check of [...waiters]) check(); };
  const parser = createParser({
    onEvent: (message) => {
      if (message.event === 'ping') return;
      events.push(JSON.parse(message.data));
      wake();
    },
  });
  const response = new Promise((resolve) => stream.on('response', resolve));
  stream.setEncoding('utf8');
  stream.on('data', (text) => parser.feed(text));
  let ended = false;
  const done = new Promise((resolve, reject) => {
    stream.on('end', () => { ended = true; wake(); resolve(events); });
    stream.on('error', (error) => { ended = true; wake(); reject(error); });
  });
  done.catch(() => {});
  const until = (predicate, what, ms = 60000) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => { waiters.delete(check); reject(new Error(`no ${what} within ${ms} ms: ${JSON.stringify(events)}`)); }, ms);
    function check() {
      const found = events.find(predicate);
      if (!found && !ended) return;
      clearTimeout(timer);
      waiters.delete(check);
      if (found) resolve(found);
      else reject(new Error(`the stream ended with no ${what}: ${JSON.stringify(events)}`));
    }
    waiters.add(check);
    check();
  });
  return { stream, events, response, done, until, ended: () => ended };
}

// The certificate a new TLS connection to `port` is shown.
function peerCertificate(port, options = {}) {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: pem('ca.pem'),
                                 ALPNProtocols: ['h2'], ...options }, () => {
      const certificate = socket.getPeerCertificate();
      socket.destroy();
      resolve(certificate);
    });
    socket.once('error', reject);
  });
}

// Calls `check` until it returns true, pausing `pauseMs` between tries, at
// most `tries` times (a guard: the test decides on what `check` sees).
async function eventually(check, what, { tries = 200, pauseMs = 50 } = {}) {
  let last;
  for (let i = 0; i < tries; i++) {
    try {
      if (await check()) return;
    } catch (error) {
      last = error;
    }
    await new Promise((resolve) => setTimeout(resolve, pauseMs));
  }
  assert.fail(`${what} did not happen in ${tries} tries${last ? `: ${last.message}` : ''}`);
}

const definition = protoLoader.loadSync(process.env.BRAID_PROTO,
  { keepCase: true, longs: Number, enums: String, defaults: true });
const inference = grpc.loadPackageDefinition(definition).inference;
const kTlsTarget = { 'grpc.ssl_target_name_override': 'localhost', 'grpc.default_authority': 'localhost' };
const grpcClient = (port, credentials, options = {}) =>
  new inference.GRPCInferenceService(`127.0.0.1:${port}`, credentials, options);
const unary = (client, method, request) => new Promise((resolve, reject) => {
  client[method](request, new grpc.Metadata(), { deadline: Date.now() + 60000 }, (e, r) => (e ? reject(e) : resolve(r)));
});
function floats(values) {
  const buffer = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => buffer.writeFloatLE(v, i * 4));
  return buffer;
}
// An identity request of `values` (16 floats) repeated over `rows` rows.
const grpcIdentity = (values, rows = 1) => ({
  model_name: 'identity', inputs: [{ name: 'input', datatype: 'FP32', shape: [rows, 16] }],
  raw_input_contents: [floats(Array.from({ length: rows }, () => values).flat())],
});
const rawFloats = (buffer) => Array.from({ length: buffer.length / 4 }, (_, i) => buffer.readFloatLE(4 * i));

// After a hostile client: braid still runs and answers a fresh client, over
// HTTP/1.1 and over h2c.
async function stillServes(server = plain) {
  assert.equal(server.child.exitCode, null, 'braid is still running');
  assert.equal(server.child.signalCode, null, 'braid is still running');
  const one = await curl(['--http1.1', `http://127.0.0.1:${server.http}/v2/health/ready`]);
  assert.equal(one.status, 200, `HTTP/1.1 health after the hostile client: ${JSON.stringify(one)}`);
  const two = await curl(['--http2-prior-knowledge', `http://127.0.0.1:${server.http}/v2/health/ready`]);
  assert.equal(two.status, 200, `h2c health after the hostile client: ${JSON.stringify(two)}`);
  assert.equal(two.version, '2');
}

// Stops a braid serve; its exit code (or signal) even if it has already
// exited.
async function stop(server) {
  const { exitCode, signalCode } = server.child;
  if (exitCode !== null || signalCode !== null) return exitCode ?? signalCode;
  return server.stop();
}

// ---------------------------------------------------------------------------

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'braid-http2-'));
  upstream = startUpstream();
  await upstream.listening;
  const common = ['--upstream-chat', upstream.url(), '--upstream-timeout', '120'];
  plain = await startBraid(binary, [...common, '--max-body-bytes', String(kMaxBody),
                                    '--grpc-response-compression', 'low']);
  if (!missing('openssl').length) {
    certs = await makeCertificates(dir);
    secure = await startBraid(binary, [...common, ...tlsFlags()]);
  }
});

after(async () => {
  upstream?.server.closeAllConnections();
  if (secure) assert.equal(await stop(secure), 0);
  if (plain) assert.equal(await stop(plain), 0);
  upstream?.server.closeAllConnections();
  upstream?.server.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// --- Cleartext: h2c with prior knowledge and by Upgrade, HTTP/1.1 beside ---

test('h2c with prior knowledge: curl gets HTTP/2 answers for health, the model list and an infer', async (t) => {
  if (missing('curl').length) return t.skip(`curl is missing (${kSkipHint})`);
  const base = `http://127.0.0.1:${plain.http}`;
  const health = await curl(['--http2-prior-knowledge', `${base}/v2/health/ready`]);
  assert.equal(health.code, 0, health.stderr);
  assert.deepEqual([health.status, health.version], [200, '2']);
  assert.deepEqual(JSON.parse(health.body), { ready: true });

  const index = await curl(['--http2-prior-knowledge', '-X', 'POST', '-H', 'content-type: application/json',
                            '--data-binary', '{}', `${base}/v2/repository/index`]);
  assert.deepEqual([index.status, index.version], [200, '2'], index.body);
  assert.ok(JSON.parse(index.body).some((m) => m.name === 'identity' && m.state === 'READY'), index.body);
  const openai = await curl(['--http2-prior-knowledge', `${base}/v1/models`]);
  assert.deepEqual([openai.status, openai.version], [200, '2'], openai.body);
  assert.equal(JSON.parse(openai.body).object, 'list');

  const values = identityValues(1);
  const inferred = await curl(['--http2-prior-knowledge', '-H', 'content-type: application/json',
                               '--data-binary', identityBody(values), `${base}/v2/models/identity/infer`]);
  assert.deepEqual([inferred.status, inferred.version], [200, '2'], inferred.body);
  assert.deepEqual(outputOf(inferred.body), values);
});

test('a 304 (If-None-Match on a page) has no body and no content-length, over HTTP/1.1 and h2c', async () => {
  const path = '/web/style.css';
  const first = await fetch(`http://127.0.0.1:${plain.http}${path}`);
  const etag = first.headers.get('etag');
  assert.ok((await first.arrayBuffer()).byteLength > 0 && etag);
  const again = await fetch(`http://127.0.0.1:${plain.http}${path}`, { headers: { 'If-None-Match': etag } });
  assert.equal(again.status, 304);
  assert.equal(again.headers.get('content-length'), null);
  assert.equal((await again.arrayBuffer()).byteLength, 0);
  const session = h2c(plain.http);
  try {
    const answer = await h2(session, { ':path': path, 'if-none-match': etag });
    assert.equal(answer.status, 304);
    assert.equal(answer.headers['content-length'], undefined);
    assert.equal(answer.body.length, 0);
  } finally {
    session.close();
  }
});

test('nghttp: the response, braid\'s SETTINGS (128 concurrent streams), a body, a POST', async (t) => {
  if (missing('nghttp').length) return t.skip(`nghttp is missing (${kSkipHint})`);
  const base = `http://127.0.0.1:${plain.http}`;
  const verbose = await run('nghttp', ['-nv', `${base}/v2/health/ready`]);
  assert.equal(verbose.code, 0, verbose.stdout + verbose.stderr);
  assert.match(verbose.stdout, /recv \(stream_id=\d+\) :status: 200/);
  // nghttp's log: one block per frame, each starting with a [time] stamp.
  const received = verbose.stdout.split(/\n(?=\[\s*\d+\.\d+\])/)
    .find((block) => /recv SETTINGS frame/.test(block) && !/ACK/.test(block));
  assert.match(received ?? '', /\[SETTINGS_MAX_CONCURRENT_STREAMS\(0x03\):128\]/, verbose.stdout);

  const metadata = await run('nghttp', [`${base}/v2/models/identity`]);
  assert.equal(metadata.code, 0, metadata.stderr);
  assert.equal(JSON.parse(metadata.stdout).name, 'identity');

  const values = identityValues(2);
  writeFileSync(join(dir, 'identity.json'), identityBody(values));
  const posted = await run('nghttp', ['-d', join(dir, 'identity.json'), '-H', 'content-type: application/json',
                                      `${base}/v2/models/identity/infer`]);
  assert.equal(posted.code, 0, posted.stderr);
  assert.deepEqual(outputOf(posted.stdout), values);
});

test('h2c by Upgrade: curl --http2 on http:// ends on HTTP/2 with the right body', async (t) => {
  if (missing('curl').length) return t.skip(`curl is missing (${kSkipHint})`);
  const upgraded = await curl(['--http2', `http://127.0.0.1:${plain.http}/v2/models/identity`]);
  assert.equal(upgraded.code, 0, upgraded.stderr);
  assert.deepEqual([upgraded.status, upgraded.version], [200, '2']);
  assert.equal(JSON.parse(upgraded.body).name, 'identity');
  const health = await curl(['--http2', `http://127.0.0.1:${plain.http}/v2/health/ready`]);
  assert.deepEqual([health.status, health.version], [200, '2']);
  assert.deepEqual(JSON.parse(health.body), { ready: true });
});

test('HTTP/1.1 still works on the same port', async (t) => {
  if (missing('curl').length) return t.skip(`curl is missing (${kSkipHint})`);
  const values = identityValues(3);
  const one = await curl(['--http1.1', '-H', 'content-type: application/json', '--data-binary', identityBody(values),
                          `http://127.0.0.1:${plain.http}/v2/models/identity/infer`]);
  assert.deepEqual([one.status, one.version], [200, '1.1'], one.body);
  assert.deepEqual(outputOf(one.body), values);
  const fetched = await fetch(`http://127.0.0.1:${plain.http}/v2/health/ready`);
  assert.equal(fetched.status, 200);
  assert.deepEqual(await fetched.json(), { ready: true });
});

// 200 requests at once on one session, more than the 128 streams braid
// allows at a time: every answer carries its own request's values.
async function parallelStreams(session) {
  await session.connected;
  await session.settingsReceived;
  assert.equal(session.remoteSettings.maxConcurrentStreams, 128);
  const n = 200;
  const answers = await Promise.all(Array.from({ length: n }, (_, i) => (i % 10 === 0
    ? h2(session, { ':path': '/v2/health/ready' })
    : infer(session, identityValues(i)))));
  answers.forEach((answer, i) => {
    assert.equal(answer.status, 200, `request ${i}: ${answer.body}`);
    if (i % 10 === 0) assert.deepEqual(JSON.parse(answer.body), { ready: true });
    else assert.deepEqual(outputOf(answer.body), identityValues(i), `request ${i}`);
  });
  assert.deepEqual(session.errors, []);
  assert.deepEqual(session.goaways, []);
}

// A streaming run whose chat answer braid's upstream holds back after its
// first token: that token's event reaches the client while the run is still
// going (a server that buffered the stream would send nothing until the
// release, and the wait fails); other streams of the session are answered
// meanwhile; the rest follows the release.
async function eventsAsTheyHappen(session) {
  await session.connected;
  const gate = upstream.hold();
  try {
    await heldRun(session, gate);
  } finally {
    gate.release();  // a failed test leaves no run waiting on the upstream
  }
}
async function heldRun(session, gate) {
  const runStream = streamRun(session, 'multimodal-assist', { text: `hello ${gate.nonce}` });
  const response = await runStream.response;
  assert.equal(response[':status'], 200);
  assert.match(response['content-type'], /text\/event-stream/);
  const first = await runStream.until((e) => e.event === 'text_chunk', 'text_chunk before the upstream was released');
  assert.equal(first.data.text, 'first ');
  assert.equal(runStream.events[0].event, 'workflow_started');
  assert.ok(!runStream.events.some((e) => e.event === 'workflow_finished'));

  const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => infer(session, identityValues(100 + i))));
  answers.forEach((answer, i) => assert.deepEqual(outputOf(answer.body), identityValues(100 + i)));
  assert.equal(runStream.ended(), false, 'the run is still open while the upstream holds');
  const before = runStream.events.length;

  gate.release();
  const events = await runStream.done;
  assert.ok(events.length > before, 'more events after the release');
  assert.equal(events.at(-1).event, 'workflow_finished');
  const chunks = events.filter((e) => e.event === 'text_chunk');
  assert.equal(chunks.map((e) => e.data.text).join(''), 'first second third');
  assert.ok(chunks.every((e) => e.data.from_variable_selector[0] === 'chat'));
  assert.equal(events.at(-1).data.outputs.chat_answer, 'first second third');
  assert.equal(await gate.outcome, 'finished');
}

test('Node http2 over h2c: 200 streams at once on one session', async () => {
  const session = h2c(plain.http);
  try {
    await parallelStreams(session);
  } finally {
    session.close();
  }
});

test('Node http2 over h2c: SSE events arrive as they happen, beside other streams', async () => {
  const session = h2c(plain.http);
  try {
    await eventsAsTheyHappen(session);
  } finally {
    session.close();
  }
});

test('RST_STREAM on a streaming run cancels it: braid stops reading its upstream', async () => {
  const session = h2c(plain.http);
  const cleanup = [];
  try {
    await session.connected;
    const gate = upstream.hold(2000);
    cleanup.push(gate.release);
    const runStream = streamRun(session, 'multimodal-assist', { text: `cancel ${gate.nonce}` });
    await runStream.until((e) => e.event === 'text_chunk', 'the first text_chunk');
    runStream.stream.close(http2.constants.NGHTTP2_CANCEL);
    // A PING answered after the RST_STREAM: braid has read the reset.
    await new Promise((resolve, reject) => session.ping((error) => (error ? reject(error) : resolve())));
    gate.release();
    // The upstream trickles up to 2000 tokens, 5 ms apart, and finishes
    // only if no one closes its connection.
    assert.equal(await gate.outcome, 'closed', 'braid went on reading the upstream of a cancelled run');
    const health = await h2(session, { ':path': '/v2/health/ready' });
    assert.equal(health.status, 200, 'the session goes on after the reset');
  } finally {
    for (const release of cleanup) release();
    session.close();
  }
});

// A raw gzip ModelInfer call as a compressing grpc-js client makes it, to
// see the wire: the answer, checked to have succeeded.
async function rawGzipInfer(session, values, rows) {
  const method = definition['inference.GRPCInferenceService'].ModelInfer;
  const message = gzipSync(method.requestSerialize(grpcIdentity(values, rows)));
  const prefix = Buffer.alloc(5);
  prefix[0] = 1;
  prefix.writeUInt32BE(message.length, 1);
  const answer = await h2(session, {
    ':method': 'POST', ':path': method.path, 'content-type': 'application/grpc', te: 'trailers',
    'grpc-encoding': 'gzip', 'grpc-accept-encoding': 'identity,deflate,gzip',
  }, Buffer.concat([prefix, message]));
  assert.equal(answer.status, 200);
  assert.equal(answer.trailers['grpc-status'] ?? answer.headers['grpc-status'], '0',
               `${answer.trailers['grpc-message'] ?? answer.headers['grpc-message']}`);
  return answer;
}

test('gRPC with gzip on the plaintext port (--grpc-response-compression low): the response is gzip and decodes', async () => {
  const method = definition['inference.GRPCInferenceService'].ModelInfer;
  const values = identityValues(5);
  const rows = 64;  // 4 KiB that repeat: gzip pays (gRPC sends a message plain when it would not)
  const repeated = Array.from({ length: rows }, () => values).flat();
  const session = h2c(plain.grpc);
  try {
    const answer = await rawGzipInfer(session, values, rows);
    assert.equal(answer.headers['grpc-encoding'], 'gzip', JSON.stringify(answer.headers));
    assert.equal(answer.body[0], 1, 'the response message is flagged compressed');
    const length = answer.body.readUInt32BE(1);
    assert.ok(length < rows * 16 * 4, `${length} bytes on the wire for ${rows * 16 * 4} of floats`);
    const response = method.responseDeserialize(gunzipSync(answer.body.subarray(5, 5 + length)));
    assert.deepEqual(rawFloats(response.raw_output_contents[0]), repeated);
  } finally {
    session.close();
  }
  const client = grpcClient(plain.grpc, grpc.credentials.createInsecure(), { 'grpc.default_compression_algorithm': 2 });
  try {
    for (const n of [1, rows]) {
      const response = await unary(client, 'ModelInfer', grpcIdentity(values, n));
      assert.deepEqual(rawFloats(response.raw_output_contents[0]), Array.from({ length: n }, () => values).flat());
    }
  } finally {
    client.close();
  }
});

// --- TLS ---

test('TLS: curl negotiates h2 and http/1.1 by ALPN and verifies braid\'s certificate', async (t) => {
  const lacking = missing('openssl', 'curl');
  if (lacking.length) return t.skip(`${lacking.join(', ')} missing (${kSkipHint})`);
  const port = secure.http;
  const two = await curl(overTls(port, '/v2/health/ready', ['--http2', '--cacert', certs['ca.pem']]));
  assert.equal(two.code, 0, two.stderr);
  assert.deepEqual([two.status, two.version], [200, '2']);
  const values = identityValues(6);
  const inferred = await curl(overTls(port, '/v2/models/identity/infer', ['--http2', '--cacert', certs['ca.pem'],
    '-H', 'content-type: application/json', '--data-binary', identityBody(values)]));
  assert.deepEqual([inferred.status, inferred.version], [200, '2'], inferred.body);
  assert.deepEqual(outputOf(inferred.body), values);
  const one = await curl(overTls(port, '/v2/health/ready', ['--http1.1', '--cacert', certs['ca.pem']]));
  assert.deepEqual([one.status, one.version], [200, '1.1']);
  const unverified = await curl(overTls(port, '/v2/health/ready', ['--http2']));
  assert.equal(unverified.code, 60, `curl without the CA fails verification: ${unverified.stderr}`);
  // The port speaks TLS only; a plain HTTP client is told so (as nginx does).
  const cleartext = await curl(['--http1.1', `http://127.0.0.1:${port}/v2/health/ready`]);
  assert.equal(cleartext.status, 400, 'plain HTTP on the TLS port is not served');
  assert.match(cleartext.body, /speaks TLS/);
  const priorKnowledge = await curl(['--http2-prior-knowledge', `http://127.0.0.1:${port}/v2/health/ready`]);
  assert.notEqual(priorKnowledge.status, 200, 'h2c on the TLS port is not served');
});

test('TLS: a WebSocket over TLS streams speech, is answered and closes cleanly', async () => {
  const [file, text] = readFileSync(`${process.env.BRAID_FIXTURES}/speech.tsv`, 'utf8').split('\n')[0].split('\t');
  const pcm = readFileSync(`${process.env.BRAID_FIXTURES}/${file}`).subarray(44);
  const socket = new WebSocket(`wss://localhost:${secure.http}/v1/audio/transcriptions/stream?sample_rate=16000`,
    { ca: pem('ca.pem') });
  const messages = [];
  socket.on('message', (data) => messages.push(JSON.parse(data.toString())));
  const closed = new Promise((resolve, reject) => {
    socket.once('close', (code) => resolve(code));
    socket.once('error', reject);
  });
  await once(socket, 'open');
  // 200 ms frames in quick succession: many TLS records each way.
  for (let at = 0; at < pcm.length; at += 6400) socket.send(pcm.subarray(at, at + 6400));
  socket.send(JSON.stringify({ type: 'end' }));
  assert.equal(await closed, 1000);
  const final = messages.filter((message) => message.type === 'final').map((message) => message.text).join(' ');
  assert.ok(final.length > 0, JSON.stringify(messages));
  assert.ok(text.split(' ').some((word) => final.includes(word)), `${final} vs ${text}`);
});

test('TLS: openssl s_client sees ALPN h2, TLS 1.2 accepted and TLS 1.1 refused', async (t) => {
  if (missing('openssl').length) return t.skip(`openssl is missing (${kSkipHint})`);
  const connect = ['s_client', '-connect', `127.0.0.1:${secure.http}`, '-servername', 'localhost', '-CAfile', certs['ca.pem']];
  const alpn = await run('openssl', [...connect, '-alpn', 'h2,http/1.1'], { input: '' });
  assert.match(alpn.stdout, /ALPN protocol: h2/, alpn.stdout + alpn.stderr);
  assert.match(alpn.stdout, /Verify return code: 0 \(ok\)/);
  const http11 = await run('openssl', [...connect, '-alpn', 'http/1.1'], { input: '' });
  assert.match(http11.stdout, /ALPN protocol: http\/1.1/, http11.stdout + http11.stderr);
  const tls12 = await run('openssl', [...connect, '-tls1_2'], { input: '' });
  assert.equal(tls12.code, 0, tls12.stderr);
  assert.match(tls12.stdout, /Protocol\s*: TLSv1\.2/);
  const tls11 = await run('openssl', [...connect, '-tls1_1', '-cipher', 'DEFAULT:@SECLEVEL=0'], { input: '' });
  assert.notEqual(tls11.code, 0, `a TLS 1.1 handshake is refused: ${tls11.stdout}`);
  assert.match(tls11.stdout, /Cipher is \(NONE\)/, 'no cipher agreed: the handshake did not finish');
});

test('TLS: Node http2 with 200 streams at once on one session', async (t) => {
  if (!secure) return t.skip(`openssl is missing (${kSkipHint})`);
  const session = h2tls(secure.http);
  try {
    await parallelStreams(session);
    assert.equal(session.tlsSocket().alpnProtocol, 'h2');
  } finally {
    session.close();
  }
});

test('TLS: SSE events arrive as they happen over h2', async (t) => {
  if (!secure) return t.skip(`openssl is missing (${kSkipHint})`);
  const session = h2tls(secure.http);
  try {
    await eventsAsTheyHappen(session);
  } finally {
    session.close();
  }
});

test('TLS: gRPC with grpc-js SSL credentials, with gzip; an insecure channel is refused', async (t) => {
  if (!secure) return t.skip(`openssl is missing (${kSkipHint})`);
  const values = identityValues(7);
  const client = grpcClient(secure.grpc, grpc.credentials.createSsl(pem('ca.pem')), kTlsTarget);
  const gzip = grpcClient(secure.grpc, grpc.credentials.createSsl(pem('ca.pem')),
                          { ...kTlsTarget, 'grpc.default_compression_algorithm': 2 });
  const insecure = grpcClient(secure.grpc, grpc.credentials.createInsecure());
  try {
    assert.equal((await unary(client, 'ServerReady', {})).ready, true);
    assert.deepEqual(rawFloats((await unary(client, 'ModelInfer', grpcIdentity(values))).raw_output_contents[0]), values);
    assert.deepEqual(rawFloats((await unary(gzip, 'ModelInfer', grpcIdentity(values))).raw_output_contents[0]), values);
    await assert.rejects(unary(insecure, 'ServerReady', {}), (e) => e.code === grpc.status.UNAVAILABLE);
  } finally {
    client.close();
    gzip.close();
    insecure.close();
  }
  const certificate = await peerCertificate(secure.grpc);
  assert.equal(certificate.serialNumber, 'A001');
});

test('gRPC answers go plain by default, to a client that accepts gzip and sends it', async (t) => {
  if (!secure) return t.skip(`openssl is missing (${kSkipHint})`);
  const method = definition['inference.GRPCInferenceService'].ModelInfer;
  const values = identityValues(9);
  const rows = 64;
  const session = h2tls(secure.grpc);
  try {
    const answer = await rawGzipInfer(session, values, rows);
    assert.notEqual(answer.headers['grpc-encoding'], 'gzip', JSON.stringify(answer.headers));
    assert.equal(answer.body[0], 0, 'the response message is not flagged compressed');
    const length = answer.body.readUInt32BE(1);
    const response = method.responseDeserialize(answer.body.subarray(5, 5 + length));
    assert.deepEqual(rawFloats(response.raw_output_contents[0]), Array.from({ length: rows }, () => values).flat());
  } finally {
    session.close();
  }
});

test('--tls-metrics: without it the metrics port stays plain HTTP; with it, HTTPS', async (t) => {
  const lacking = missing('openssl', 'curl');
  if (lacking.length) return t.skip(`${lacking.join(', ')} missing (${kSkipHint})`);
  const cleartext = await curl([`http://127.0.0.1:${secure.metrics}/metrics`]);
  assert.equal(cleartext.status, 200, cleartext.stderr);
  assert.match(cleartext.body, /^braid_/m);

  const server = await startBraid(binary, [...tlsFlags(), '--tls-metrics']);
  try {
    const scraped = await curl(overTls(server.metrics, '/metrics', ['--cacert', certs['ca.pem']]));
    assert.equal(scraped.code, 0, scraped.stderr);
    assert.equal(scraped.status, 200);
    assert.match(scraped.body, /^braid_/m);
    const refused = await curl([`http://127.0.0.1:${server.metrics}/metrics`]);
    assert.notEqual(refused.status, 200, 'plain HTTP on the TLS metrics port is not served');
  } finally {
    assert.equal(await stop(server), 0);
  }
});

test('mTLS (--tls-client-ca): a client certificate of the CA is let in; none, or a rogue one, is not', async (t) => {
  const lacking = missing('openssl', 'curl');
  if (lacking.length) return t.skip(`${lacking.join(', ')} missing (${kSkipHint})`);
  const server = await startBraid(binary, [...tlsFlags(), '--tls-client-ca', certs['ca.pem']]);
  const withCert = ['--cert', certs['client.pem'], '--key', certs['client.key']];
  const rogueCert = ['--cert', certs['rogue-client.pem'], '--key', certs['rogue-client.key']];
  const clients = [];
  const client = (...credentials) => {
    const c = grpcClient(server.grpc, grpc.credentials.createSsl(...credentials), kTlsTarget);
    clients.push(c);
    return c;
  };
  try {
    const admitted = await curl(overTls(server.http, '/v2/health/ready', ['--http2', '--cacert', certs['ca.pem'], ...withCert]));
    assert.equal(admitted.code, 0, admitted.stderr);
    assert.deepEqual([admitted.status, admitted.version], [200, '2']);
    const one = await curl(overTls(server.http, '/v2/health/ready', ['--http1.1', '--cacert', certs['ca.pem'], ...withCert]));
    assert.deepEqual([one.status, one.version], [200, '1.1']);
    for (const [what, extra] of [['no client certificate', []], ['a rogue CA\'s certificate', rogueCert]]) {
      const refused = await curl(overTls(server.http, '/v2/health/ready', ['--http2', '--cacert', certs['ca.pem'], ...extra]));
      assert.notEqual(refused.code, 0, `${what}: ${JSON.stringify(refused)}`);
      assert.notEqual(refused.status, 200, what);
    }

    const values = identityValues(8);
    const good = client(pem('ca.pem'), pem('client.key'), pem('client.pem'));
    assert.equal((await unary(good, 'ServerReady', {})).ready, true);
    assert.deepEqual(rawFloats((await unary(good, 'ModelInfer', grpcIdentity(values))).raw_output_contents[0]), values);
    await assert.rejects(unary(client(pem('ca.pem')), 'ServerReady', {}), (e) => e.code !== grpc.status.OK,
                         'gRPC without a client certificate');
    await assert.rejects(unary(client(pem('ca.pem'), pem('rogue-client.key'), pem('rogue-client.pem')), 'ServerReady', {}),
                         (e) => e.code !== grpc.status.OK, 'gRPC with a rogue CA\'s certificate');

    // Node's http2 with the client certificate: a session that works.
    const session = h2tls(server.http, { key: pem('client.key'), cert: pem('client.pem') });
    try {
      assert.deepEqual(outputOf((await infer(session, values)).body), values);
    } finally {
      session.close();
    }
  } finally {
    for (const c of clients) c.close();
    assert.equal(await stop(server), 0);
  }
});

// Starts `braid router` on free ports; resolves with its ports once ready.
function startRouter(args) {
  const child = spawn(binary, ['router', '--host', '127.0.0.1', '--http-port', '0', '--grpc-port', '0', ...args],
                      { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    lines.once('line', (line) => {
      const match = /^braid router ready http=[^:]+:(\d+)(?: grpc=[^:]+:(\d+))? /.exec(line);
      if (!match) return reject(new Error(`unexpected ready line: ${line}`));
      resolve({ child, http: Number(match[1]), grpc: Number(match[2]),
                stop: () => new Promise((done) => { child.once('exit', (code) => done(code)); child.kill('SIGTERM'); }) });
    });
    child.once('exit', (code) => reject(new Error(`braid router exited with ${code} before it was ready`)));
  });
}

test('router over TLS: h2 by ALPN in front, https and gRPC over TLS to replicas that want its client certificate', async (t) => {
  const lacking = missing('openssl', 'curl');
  if (lacking.length) return t.skip(`${lacking.join(', ')} missing (${kSkipHint})`);
  // Two replicas: `secure`, and one that lets in only clients of the CA.
  const strict = await startBraid(binary, [...tlsFlags(), '--tls-client-ca', certs['ca.pem']]);
  const replicas = [secure, strict].flatMap((r) => ['--replica', `https://127.0.0.1:${r.http}`, '--grpc-replica', `127.0.0.1:${r.grpc}`]);
  const upstreamCa = ['--upstream-ca', certs['ca.pem']];
  const clientCert = ['--upstream-cert', certs['client.pem'], '--upstream-key', certs['client.key']];
  const router = await startRouter([...replicas, ...upstreamCa, ...clientCert, ...tlsFlags(certs['server-b.pem'], certs['server-b.key']),
                                    '--health-interval-ms', '100']);
  // Without a client certificate the strict replica refuses the router; with
  // the system's CAs neither replica's certificate is trusted.
  const uncertified = await startRouter([...replicas, ...upstreamCa]);
  const untrusting = await startRouter(replicas);
  const clients = [];
  try {
    const state = async (r) => JSON.parse((await curl(r === router ? overTls(r.http, '/router/replicas', ['--cacert', certs['ca.pem']])
      : [`http://127.0.0.1:${r.http}/router/replicas`])).body);
    await eventually(async () => (await state(router)).replicas.every((r) => r.healthy), 'both replicas healthy behind the router');
    const values = identityValues(10);
    for (let i = 0; i < 4; i++) {
      const answer = await curl(overTls(router.http, '/v2/models/identity/infer',
        ['--http2', '--cacert', certs['ca.pem'], '-H', 'Content-Type: application/json', '-d', identityBody(values)]));
      assert.equal(answer.code, 0, answer.stderr);
      assert.deepEqual([answer.status, answer.version], [200, '2'], answer.body);
      assert.deepEqual(outputOf(answer.body), values);
    }
    assert.deepEqual((await state(router)).replicas.map((r) => r.requests > 0 && r.failures === 0), [true, true],
                     'round robin reached both replicas over TLS');
    assert.equal((await peerCertificate(router.http)).serialNumber, 'B002', 'the router shows its own certificate');
    // SIGHUP reads its files again; it does not stop the router.
    router.child.kill('SIGHUP');
    await eventually(async () => (await curl(overTls(router.http, '/v2/health/ready', ['--cacert', certs['ca.pem']]))).status === 200,
                     'the router serving after SIGHUP');
    assert.equal(router.child.exitCode, null);

    const client = grpcClient(router.grpc, grpc.credentials.createSsl(pem('ca.pem')), kTlsTarget);
    clients.push(client);
    for (let i = 0; i < 4; i++)
      assert.deepEqual(rawFloats((await unary(client, 'ModelInfer', grpcIdentity(values))).raw_output_contents[0]), values);

    // The strict replica stays out whatever the timing: the router waits
    // only for the other one to pass a check.
    await eventually(async () => (await state(uncertified)).replicas[0].healthy, 'the lenient replica healthy');
    assert.deepEqual((await state(uncertified)).replicas.map((r) => r.healthy), [true, false]);
    assert.deepEqual((await state(untrusting)).replicas.map((r) => r.healthy), [false, false]);
    const refused = await curl([`http://127.0.0.1:${untrusting.http}/v2/models/identity/infer`,
                                '-H', 'Content-Type: application/json', '-d', identityBody(values)]);
    assert.equal(refused.status, 503, refused.body);
  } finally {
    for (const c of clients) c.close();
    for (const r of [router, uncertified, untrusting]) assert.equal(await r.stop(), 0);
    assert.equal(await stop(strict), 0);
  }
});

test('SIGHUP re-reads the certificate: new handshakes get B, a session opened on A goes on', async (t) => {
  if (missing('openssl').length) return t.skip(`openssl is missing (${kSkipHint})`);
  const folder = mkdtempSync(join(dir, 'reload-'));
  const cert = join(folder, 'cert.pem');
  const key = join(folder, 'key.pem');
  copyFileSync(certs['server-a.pem'], cert);
  copyFileSync(certs['server-a.key'], key);
  const server = await startBraid(binary, tlsFlags(cert, key));
  const session = h2tls(server.http);
  try {
    await session.connected;
    assert.equal((await h2(session, { ':path': '/v2/health/ready' })).status, 200);
    assert.equal(session.tlsSocket().getPeerCertificate().serialNumber, 'A001');
    assert.equal((await peerCertificate(server.grpc)).serialNumber, 'A001');

    // Each file replaced whole (a rename), the key first.
    copyFileSync(certs['server-b.key'], `${key}.new`);
    copyFileSync(certs['server-b.pem'], `${cert}.new`);
    renameSync(`${key}.new`, key);
    renameSync(`${cert}.new`, cert);
    server.child.kill('SIGHUP');

    // The reload may finish just after the signal: new handshakes until one
    // sees B (HTTP), within a few seconds for gRPC.
    let seen;
    await eventually(async () => (seen = await peerCertificate(server.http)).serialNumber === 'B002',
                     'an HTTP handshake with certificate B');
    assert.equal(seen.subject.CN, 'braid server B');
    await eventually(async () => (await peerCertificate(server.grpc)).serialNumber === 'B002',
                     'a gRPC handshake with certificate B', { tries: 300, pauseMs: 100 });
    const grpcB = grpcClient(server.grpc, grpc.credentials.createSsl(pem('ca.pem')), kTlsTarget);
    try {
      assert.equal((await unary(grpcB, 'ServerReady', {})).ready, true);
    } finally {
      grpcB.close();
    }
    const after = await curl(overTls(server.http, '/v2/health/ready', ['--http2', '--cacert', certs['ca.pem']]));
    assert.deepEqual([after.status, after.version], [200, '2'], after.stderr);

    // The session opened before the signal is still open, on A.
    const values = identityValues(9);
    assert.deepEqual(outputOf((await infer(session, values)).body), values);
    assert.equal(session.tlsSocket().getPeerCertificate().serialNumber, 'A001');
    assert.deepEqual(session.goaways, []);
    assert.deepEqual(session.errors, []);
    assert.equal(server.child.exitCode, null);
  } finally {
    session.close();
    assert.equal(await stop(server), 0);
  }
});

// --- Hostile HTTP/2 on the REST port, frame by frame ---

test('raw h2c: braid\'s SETTINGS offer 128 concurrent streams; a plain request is answered 200', async () => {
  const connection = new wire.RawConnection(plain.http);
  try {
    await connection.start();
    const serverSettings = await connection.next((f) => f.type === wire.Type.SETTINGS && !(f.flags & wire.Flag.ACK),
                                                 'SETTINGS from braid');
    assert.ok(serverSettings, connection.describe());
    const entries = new Map();
    for (let at = 0; at + 6 <= serverSettings.payload.length; at += 6)
      entries.set(serverSettings.payload.readUInt16BE(at), serverSettings.payload.readUInt32BE(at + 2));
    assert.equal(entries.get(wire.Setting.MAX_CONCURRENT_STREAMS), 128);
    connection.send(wire.headers(1, wire.headerBlock(wire.requestFields('GET', '/v2/health/ready'))));
    const answer = await connection.next((f) => f.streamId === 1 && f.type === wire.Type.HEADERS, 'an answer');
    assert.equal(answer?.status, 200, connection.describe());
  } finally {
    connection.close();
  }
});

// Sends a GET with `extra` header fields and expects it refused on its
// stream (431 or RST_STREAM) or the connection ended with GOAWAY; unless it
// was GOAWAY, the next request on the connection is answered.
async function refusedHeaders(t, extra, what) {
  const connection = new wire.RawConnection(plain.http);
  try {
    await connection.start();
    connection.send(wire.headers(1, wire.headerBlock(wire.requestFields('GET', '/v2/health/ready', extra))));
    const answer = await connection.next((f) => (f.streamId === 1 && [wire.Type.HEADERS, wire.Type.RST_STREAM].includes(f.type))
                                               || f.type === wire.Type.GOAWAY, `braid's answer to ${what}`);
    assert.ok(answer, `the connection closed with neither 431, RST_STREAM nor GOAWAY: ${connection.describe()}`);
    t.diagnostic(`${what}: ${connection.describe()}`);
    if (answer.type === wire.Type.HEADERS) assert.equal(answer.status, 431, `${what}: ${connection.describe()}`);
    if (answer.type !== wire.Type.GOAWAY) {
      connection.send(wire.headers(3, wire.headerBlock(wire.requestFields('GET', '/v2/health/ready'))));
      const next = await connection.next((f) => (f.streamId === 3 && f.type === wire.Type.HEADERS) || f.type === wire.Type.GOAWAY,
                                         'an answer on stream 3');
      assert.equal(next?.status, 200, `the connection goes on after ${what}: ${connection.describe()}`);
    }
  } finally {
    connection.close();
  }
  await stillServes();
}

test('a header list over 16 KiB is refused on its stream (431)', async (t) => {
  // 24 fields of 1000 bytes: about 24.7 KiB as HPACK counts (name + value + 32).
  const big = Array.from({ length: 24 }, (_, i) => [`x-big-${i}`, 'a'.repeat(1000)]);
  await refusedHeaders(t, big, 'a 24 KiB header list');
});

test('more than 100 header fields are refused on their stream (431)', async (t) => {
  const many = Array.from({ length: 150 }, (_, i) => [`x-field-${i}`, 'v']);
  await refusedHeaders(t, many, '150 header fields');
});

test('a body over --max-body-bytes gets 413 or RST_STREAM; the session goes on', async (t) => {
  const session = h2c(plain.http);
  try {
    await session.connected;
    for (const declared of [true, false]) {
      const size = 2 * kMaxBody;
      const stream = session.request({ ':method': 'POST', ':path': '/v2/models/identity/infer', 'content-type': 'application/json',
                                       ...(declared ? { 'content-length': String(size) } : {}) });
      stream.on('error', () => {});
      const outcome = new Promise((resolve) => {
        stream.on('response', (headers) => resolve({ status: headers[':status'] }));
        stream.on('close', () => resolve({ rstCode: stream.rstCode }));
      });
      stream.end(Buffer.alloc(size, 0x20));
      const { status, rstCode } = await outcome;
      const what = declared ? 'a declared content-length' : 'no content-length';
      t.diagnostic(`${what}: status ${status}, RST_STREAM code ${rstCode}`);
      assert.ok(status === 413 || (status === undefined && rstCode !== http2.constants.NGHTTP2_NO_ERROR),
                `${what}: status ${status}, RST_STREAM code ${rstCode}`);
      stream.destroy();
    }
    const health = await h2(session, { ':path': '/v2/health/ready' });
    assert.equal(health.status, 200, 'the session goes on after the refused bodies');
  } finally {
    session.close();
  }
  await stillServes();
});

test('rapid reset (CVE-2023-44487): 5000 streams opened and reset get GOAWAY or the connection closed', async (t) => {
  const connection = new wire.RawConnection(plain.http);
  try {
    await connection.start();
    const block = wire.headerBlock(wire.requestFields('GET', '/v2/health/ready'));
    const frames = [];
    for (let i = 0; i < 5000; i++) {
      const id = 2 * i + 1;
      frames.push(wire.headers(id, block), wire.rstStream(id, wire.ErrorCode.CANCEL));
    }
    connection.send(...frames);
    const goaway = await connection.next((f) => f.type === wire.Type.GOAWAY, 'GOAWAY or a close after the flood');
    assert.ok(goaway || connection.closed, connection.describe());
    t.diagnostic(`rapid reset: ${connection.describe()}`);
  } finally {
    connection.close();
  }
  await stillServes();
});

// HEADERS without END_HEADERS, then CONTINUATION frames that never end the
// block (each holding `piece`).
async function continuationFlood(t, piece, count, what) {
  const connection = new wire.RawConnection(plain.http);
  try {
    await connection.start();
    const first = wire.frame(wire.Type.HEADERS, wire.Flag.END_STREAM, 1,
                             wire.headerBlock(wire.requestFields('GET', '/v2/health/ready')));
    const continuation = wire.frame(wire.Type.CONTINUATION, 0, 1, piece);
    connection.send(first, ...Array.from({ length: count }, () => continuation));
    const goaway = await connection.next((f) => f.type === wire.Type.GOAWAY, `GOAWAY or a close after ${what}`);
    assert.ok(goaway || connection.closed, connection.describe());
    t.diagnostic(`${what}: ${connection.describe()}`);
    assert.ok(!connection.frames.some((f) => f.streamId === 1 && f.type === wire.Type.HEADERS && f.status === 200),
              'a request whose header block never ended was not served');
  } finally {
    connection.close();
  }
  await stillServes();
}

test('endless CONTINUATION frames (10000 with a field each) get GOAWAY or the connection closed', async (t) => {
  await continuationFlood(t, wire.headerBlock([['x-flood', 'a'.repeat(24)]]), 10000, '10000 CONTINUATION frames');
});

test('endless empty CONTINUATION frames (10000) get GOAWAY or the connection closed', async (t) => {
  await continuationFlood(t, Buffer.alloc(0), 10000, '10000 empty CONTINUATION frames');
});

test('a zero flow-control window holds the answer without harm; a WINDOW_UPDATE releases it', async () => {
  const connection = new wire.RawConnection(plain.http);
  try {
    await connection.start({ [wire.Setting.INITIAL_WINDOW_SIZE]: 0 });
    connection.send(wire.headers(1, wire.headerBlock(wire.requestFields('GET', '/v2/models/identity'))));
    // A PING answered: braid has read the request.
    connection.send(wire.ping(Buffer.from('zerowind')));
    await connection.next((f) => f.type === wire.Type.PING && (f.flags & wire.Flag.ACK), 'the PING answer');
    assert.ok(!connection.closed, connection.describe());
    await stillServes();
    const early = connection.frames.filter((f) => f.streamId === 1 && f.type === wire.Type.DATA && wire.dataPayload(f).length > 0);
    assert.equal(early.length, 0, 'no DATA in a zero window');
    connection.send(wire.windowUpdate(1, 1 << 20));
    const end = await connection.next((f) => f.streamId === 1 && (f.flags & wire.Flag.END_STREAM)
                                          && [wire.Type.DATA, wire.Type.HEADERS].includes(f.type), 'the end of the answer');
    assert.ok(end, connection.describe());
    const head = connection.frames.find((f) => f.streamId === 1 && f.type === wire.Type.HEADERS);
    assert.equal(head.status, 200);
    const body = Buffer.concat(connection.frames.filter((f) => f.streamId === 1 && f.type === wire.Type.DATA).map(wire.dataPayload));
    assert.equal(JSON.parse(body).name, 'identity');
  } finally {
    connection.close();
  }
  await stillServes();
});
