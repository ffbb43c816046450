// braid's workflow API as Dify's service API clients use it: Dify file
// objects (local_file, remote_url, file lists), the event fields Dify
// clients read, `event: ping` on a quiet stream, the stop endpoint, and the
// remote_url fetcher's guard against server-side request forgery.
//   node --test tests/e2e/dify_workflow_test.mjs   (BRAID_BINARY, BRAID_FIXTURES set by CTest)
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { after, before, test } from 'node:test';
import { createParser } from 'eventsource-parser';
import { startBraid } from './serve.mjs';

const fixtures = process.env.BRAID_FIXTURES;
const png = readFileSync(`${fixtures}/images/text_1_DejaVu-Sans_40.png`);
const wav = readFileSync(`${fixtures}/speech/say_0.wav`);

// Serves files to fetch, and the redirects an attacker would try towards
// another server's /secret (say, an admin API on the same machine), which
// counts what reached it: nothing may.
const files = { secretHits: 0, port: 0, secretPort: 0 };
const secretServer = createServer((req, res) => { files.secretHits += 1; res.writeHead(200); res.end('secret'); });
const fileServer = createServer((req, res) => {
  const routes = {
    '/slide.png': () => { res.writeHead(200, { 'Content-Type': 'image/png' }); res.end(png); },
    '/note.wav': () => { res.writeHead(200, { 'Content-Type': 'audio/wav' }); res.end(wav); },
    '/moved.png': () => { res.writeHead(302, { Location: '/slide.png' }); res.end(); },
    '/to-loopback-name': () => { res.writeHead(302, { Location: `http://localhost:${files.secretPort}/` }); res.end(); },
    '/to-allowed-internal': () => { res.writeHead(307, { Location: `http://127.0.0.1:${files.secretPort}/` }); res.end(); },
    '/to-metadata': () => { res.writeHead(301, { Location: 'http://169.254.169.254/latest/meta-data/' }); res.end(); },
    '/loop': () => { res.writeHead(302, { Location: '/loop' }); res.end(); },
    '/big.png': () => { res.writeHead(200, { 'Content-Type': 'image/png' }); res.end(Buffer.alloc(300000)); },
    // Answers long after any --fetch-timeout the tests give (the timer does
    // not keep the test process alive).
    '/slow.png': () => { setTimeout(() => { res.writeHead(200, { 'Content-Type': 'image/png' }); res.end(png); }, 60000).unref(); },
  };
  (routes[req.url] ?? (() => { res.writeHead(404); res.end(); }))();
});

// An upstream chat model that thinks for 1.5 s, then streams ten tokens
// 200 ms apart; counts the tokens it wrote until its connection closed.
const upstream = { port: 0, written: [], };
const chatServer = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'Content-Type': 'text/event-stream' });
    const call = { tokens: 0 };
    call.closed = new Promise((done) => res.on('close', done));
    upstream.written.push(call);
    let timer;
    res.on('close', () => clearTimeout(timer));
    const send = () => {
      if (call.tokens === 10) {
        res.end('data: [DONE]\n\n');
        return;
      }
      call.tokens += 1;
      res.write(`data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: `word${call.tokens} ` } }] })}\n\n`);
      timer = setTimeout(send, 200);
    };
    timer = setTimeout(send, 1500);
  });
});

const listen = (server) => new Promise((done) => server.listen(0, '127.0.0.1', () => done(server.address().port)));

let plain;     // no remote files, a slow upstream chat, pings every 0.5 s
let fetching;  // remote files from 127.0.0.1 only
const url = (server, path) => `http://127.0.0.1:${server.http}${path}`;

before(async () => {
  files.port = await listen(fileServer);
  files.secretPort = await listen(secretServer);
  upstream.port = await listen(chatServer);
  plain = await startBraid(process.env.BRAID_BINARY, [
    '--upstream-chat', `http://127.0.0.1:${upstream.port}/v1`, '--sse-ping-interval', '0.5']);
  fetching = await startBraid(process.env.BRAID_BINARY, [
    '--fetch-hosts', '127.0.0.1', '--fetch-max-bytes', '200000', '--fetch-timeout', '5']);
});

after(async () => {
  assert.equal(await plain.stop(), 0);
  assert.equal(await fetching.stop(), 0);
  fileServer.close();
  secretServer.close();
  chatServer.close();
});

const post = (server, path, body) => fetch(url(server, path), {
  method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
});

async function upload(server, bytes, name, type) {
  const form = new FormData();
  form.append('file', new Blob([bytes], { type }), name);
  form.append('user', 'abc-123');
  const response = await fetch(url(server, '/v1/files/upload'), { method: 'POST', body: form });
  assert.equal(response.status, 201);
  return (await response.json()).id;
}

// The SSE events of a streaming run, parsed as Dify's client parses them,
// and the raw text (pings are comment-like `event: ping` blocks).
async function stream(response, onEvent = () => {}) {
  const events = [];
  let raw = '';
  const parser = createParser({ onEvent: (m) => {
    if (m.event === 'ping') return events.push({ event: 'ping' });
    const event = JSON.parse(m.data);
    events.push(event);
    onEvent(event);
  } });
  const decoder = new TextDecoder();
  for await (const chunk of response.body) {
    const text = decoder.decode(chunk, { stream: true });
    raw += text;
    parser.feed(text);
  }
  return { events, raw };
}

test('a Dify local_file object, alone or as a one-file list, feeds the workflow', async () => {
  const audio = await upload(plain, wav, 'note.wav', 'audio/wav');
  const image = await upload(plain, png, 'slide.png', 'image/png');
  const response = await post(plain, '/v1/workflows/speech-report/run', {
    inputs: {
      audio: { type: 'audio', transfer_method: 'local_file', upload_file_id: audio },
      image: [{ type: 'image', transfer_method: 'local_file', upload_file_id: image }],
    },
    response_mode: 'blocking', user: 'abc-123',
  });
  assert.equal(response.status, 200);
  const body = await response.json();
  assert.equal(body.data.status, 'succeeded');
  assert.match(body.data.outputs.transcript, /weather/i);
  assert.match(body.data.outputs.image_text, /\w/);
  for (const key of ['id', 'workflow_id', 'elapsed_time', 'total_steps', 'created_at', 'finished_at'])
    assert.ok(key in body.data, key);

  const two = await post(plain, '/v1/workflows/speech-report/run', {
    inputs: { audio: [{ type: 'audio', transfer_method: 'local_file', upload_file_id: audio },
                      { type: 'audio', transfer_method: 'local_file', upload_file_id: audio }] },
  });
  assert.equal(two.status, 400);
  assert.match((await two.json()).error, /takes one file; the list has 2/);
  const wrongType = await post(plain, '/v1/workflows/speech-report/run', {
    inputs: { audio: { type: 'image', transfer_method: 'local_file', upload_file_id: image } },
  });
  assert.equal(wrongType.status, 400);
});

test('remote_url files are refused unless hosts are allowed', async () => {
  const response = await post(plain, '/v1/workflows/read-aloud/run', {
    inputs: { image: { type: 'image', transfer_method: 'remote_url', url: `http://127.0.0.1:${files.port}/slide.png` } },
  });
  assert.equal(response.status, 400);
  assert.match((await response.json()).error, /--fetch-hosts/);
});

test('an allowed host serves remote_url files, redirects included', async () => {
  for (const path of ['/slide.png', '/moved.png']) {
    const response = await post(fetching, '/v1/workflows/read-aloud/run', {
      inputs: { image: [{ type: 'image', transfer_method: 'remote_url', url: `http://127.0.0.1:${files.port}${path}` }] },
    });
    const body = await response.json();
    assert.equal(response.status, 200, JSON.stringify(body));
    assert.match(body.data.outputs.text, /\w/);
  }
});

test('SSRF: no redirect reaches an internal address, other hosts are refused, limits hold', async () => {
  const refused = async (path, status, pattern, host = `127.0.0.1:${files.port}`) => {
    const response = await post(fetching, '/v1/workflows/read-aloud/run', {
      inputs: { image: { type: 'image', transfer_method: 'remote_url', url: `http://${host}${path}` } },
    });
    const body = await response.json();
    assert.equal(response.status, status, `${path}: ${JSON.stringify(body)}`);
    assert.match(body.error, pattern, path);
  };
  await refused('/to-allowed-internal', 400, /internal address \(127\.0\.0\.1\)/);
  await refused('/to-loopback-name', 400, /host 'localhost' is not on the fetch allow-list/);
  await refused('/to-metadata', 400, /host '169\.254\.169\.254' is not on the fetch allow-list/);
  await refused('/loop', 400, /redirected more than 3 times/);
  await refused('/big.png', 413, /over the 200000 bytes allowed/);
  await refused('/slow.png', 504, /took over 5000 ms/);
  await refused('/', 400, /host 'localhost' is not on the fetch allow-list/, `localhost:${files.secretPort}`);
  assert.equal(files.secretHits, 0, 'nothing reached the secret server');
});

test('node events carry the fields Dify clients read', async () => {
  const response = await post(plain, '/v1/workflows/speech-report/run', {
    inputs: { audio: `data:audio/wav;base64,${wav.toString('base64')}` }, response_mode: 'streaming',
  });
  const { events } = await stream(response);
  const started = events.filter((e) => e.event === 'node_started');
  const finished = events.filter((e) => e.event === 'node_finished');
  assert.ok(started.length >= 2);
  for (const e of [...started, ...finished]) {
    for (const key of ['id', 'node_id', 'node_type', 'title', 'index', 'predecessor_node_id', 'created_at'])
      assert.ok(key in e.data, `${e.event} ${e.data.node_id} has ${key}`);
    assert.equal(e.task_id, events[0].task_id);
  }
  for (const e of finished) {
    for (const key of ['status', 'outputs', 'elapsed_time', 'finished_at', 'execution_metadata'])
      assert.ok(key in e.data, `node_finished ${e.data.node_id} has ${key}`);
    assert.ok(Number.isInteger(e.data.finished_at) && e.data.finished_at >= e.data.created_at);
  }
  const report = started.find((e) => e.data.node_id === 'report');
  assert.ok(['transcript', 'ocr'].includes(report.data.predecessor_node_id), 'a node report waits for');
  const transcript = finished.find((e) => e.data.node_id === 'transcript');
  assert.equal(transcript.data.id, started.find((e) => e.data.node_id === 'transcript').data.id,
               'started and finished share the node execution id');
  const last = events.at(-1);
  assert.equal(last.event, 'workflow_finished');
  assert.equal(last.data.status, 'succeeded');
  assert.ok(Number.isInteger(last.data.created_at) && Number.isInteger(last.data.finished_at));
});

test('a quiet stream gets event: ping', async () => {
  const response = await post(plain, '/v1/workflows/multimodal-assist/run', {
    inputs: { text: 'hello' }, response_mode: 'streaming',
  });
  const { events, raw } = await stream(response);
  assert.match(raw, /event: ping\n\n/);
  assert.equal(events.at(-1).event, 'workflow_finished');
  assert.equal(events.at(-1).data.status, 'succeeded');
});

test('stop ends a run: nothing streams or computes after it', async () => {
  const before = upstream.written.length;
  const response = await post(plain, '/v1/workflows/multimodal-assist/run', {
    inputs: { text: 'tell me a long story' }, response_mode: 'streaming', user: 'abc-123',
  });
  let stopped;
  const { events } = await stream(response, (event) => {
    if (event.event === 'text_chunk' && !stopped) {
      stopped = post(plain, `/v1/workflows/tasks/${event.task_id}/stop`, { user: 'abc-123' });
    }
  });
  const answer = await stopped;
  assert.equal(answer.status, 200, await answer.clone().text());
  assert.deepEqual(await answer.json(), { result: 'success' });
  const last = events.at(-1);
  assert.equal(last.event, 'workflow_finished');
  assert.equal(last.data.status, 'stopped');
  const chunks = events.filter((e) => e.event === 'text_chunk');
  assert.ok(chunks.length < 10, `${chunks.length} chunks streamed`);
  const call = upstream.written[before];
  await call.closed;
  assert.ok(call.tokens < 10, `braid stopped reading the upstream (it wrote ${call.tokens} of 10)`);
  const unknown = await post(plain, `/v1/workflows/tasks/${last.task_id}/stop`, { user: 'abc-123' });
  assert.equal(unknown.status, 404);
});

test('a failed blocking run answers with an error string beside the run object', async () => {
  const response = await post(plain, '/v1/workflows/read-aloud/run', {
    inputs: { image: `data:image/png;base64,${Buffer.from('not a png at all').toString('base64')}` },
  });
  assert.ok(response.status >= 400);
  const body = await response.json();
  assert.equal(typeof body.error, 'string');
  assert.equal(body.data.status, 'failed');
  assert.equal(body.data.error, body.error);
  assert.ok(body.workflow_run_id && body.task_id);
});
