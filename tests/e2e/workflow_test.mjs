// The workflow API from a client's side: fetch, and Server-Sent Events read
// by eventsource-parser (a parser nobody here wrote).
//   node --test tests/e2e/workflow_test.mjs   (BRAID_BINARY and BRAID_FIXTURES set by CTest)
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { createParser } from 'eventsource-parser';
import { startBraid } from './serve.mjs';

const fixtures = process.env.BRAID_FIXTURES;
let server;
let base;

const dataUrl = (file, type) => `data:${type};base64,${readFileSync(`${fixtures}/${file}`).toString('base64')}`;
const image = () => dataUrl('images/text_1_DejaVu-Sans_40.png', 'image/png');
const audio = () => dataUrl('speech/say_0.wav', 'audio/wav');
// The fixture image with random bytes after its end: a picture no earlier
// test has sent, so nothing of it is cached yet.
const freshImage = () => Buffer.concat([readFileSync(`${fixtures}/images/text_1_DejaVu-Sans_40.png`),
  Buffer.from(`${Math.random()}`)]);
const cachedNodes = (body) => Object.fromEntries(body.data.nodes.filter((n) => n.status === 'succeeded').map((n) => [n.id, n.cached]));

// Requests the OCR model has served, from /metrics.
async function ocrServed() {
  const text = await (await fetch(`http://127.0.0.1:${server.metrics}/metrics`)).text();
  const line = /braid_inference_requests_total\{model="ocr",version="1",outcome="success"\} (\d+)/.exec(text);
  return line ? Number(line[1]) : 0;
}

async function run(name, inputs, mode = 'blocking') {
  return fetch(`${base}/v1/workflows/${name}/run`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ inputs, response_mode: mode, user: 'e2e' }),
  });
}

// Every event of a streaming run, in arrival order.
async function stream(name, inputs) {
  const response = await run(name, inputs, 'streaming');
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type'), /text\/event-stream/);
  const events = [];
  const parser = createParser({ onEvent: (message) => events.push(JSON.parse(message.data)) });
  const decoder = new TextDecoder();
  for await (const chunk of response.body) parser.feed(decoder.decode(chunk, { stream: true }));
  return events;
}

before(async () => {
  server = await startBraid(process.env.BRAID_BINARY);
  base = `http://127.0.0.1:${server.http}`;
});

after(async () => {
  assert.equal(await server.stop(), 0);
});

test('lists the default workflows', async () => {
  const body = await (await fetch(`${base}/v1/workflows`)).json();
  const names = body.data.map((w) => w.name).sort();
  assert.deepEqual(names, ['image-search', 'image-text-match', 'multimodal-assist', 'read-aloud', 'speech-report']);
  assert.ok(body.data.every((w) => w.status === 'available'));
});

test('speech-report streams node by node, its branches in parallel', async () => {
  const events = await stream('speech-report', { audio: audio(), image: image() });
  assert.equal(events[0].event, 'workflow_started');
  assert.equal(events.at(-1).event, 'workflow_finished');
  const position = (event, node) => events.findIndex((e) => e.event === event && e.data.node_id === node);
  // Both recognisers start before either finishes: they run at the same time.
  for (const a of ['ocr', 'transcript']) {
    for (const b of ['ocr', 'transcript']) assert.ok(position('node_started', a) < position('node_finished', b));
  }
  const transcript = events[position('node_finished', 'transcript')];
  assert.equal(transcript.data.outputs.text, 'the weather is nice today');
  assert.ok(position('node_finished', 'transcript') < events.length - 1, 'node results arrive before the run ends');
  const chunks = events.filter((e) => e.event === 'text_chunk').map((e) => e.data.text).join('');
  assert.ok(position('node_finished', 'report') > events.findLastIndex((e) => e.event === 'text_chunk'));
  const final = events.at(-1).data;
  assert.equal(final.outputs.report, chunks);
  assert.match(final.outputs.report, /the weather is nice today/);
  assert.match(final.outputs.image_text, /Invoice number 4821/);
});

// Checks the event grammar of a streaming run: started first, finished (or
// error) last, every executed node started before it finished, chunks inside
// their node.
function checkOrder(events) {
  assert.equal(events[0].event, 'workflow_started');
  assert.equal(events.at(-1).event, 'workflow_finished');
  const started = new Map();
  events.forEach((e, i) => {
    if (e.event === 'node_started') started.set(e.data.node_id, i);
    if (e.event === 'node_finished' && e.data.status === 'succeeded') {
      assert.ok(started.get(e.data.node_id) < i, `${e.data.node_id} started before it finished`);
    }
    if (e.event === 'text_chunk') {
      const node = e.data.from_variable_selector[0];
      assert.ok(started.get(node) < i, `chunk of ${node} after its start`);
    }
  });
}

test('every default workflow streams a well-formed event sequence', async () => {
  const match = await stream('image-text-match', { image: image(), text: 'an invoice' });
  checkOrder(match);
  const finishedNodes = match.filter((e) => e.event === 'node_finished').map((e) => e.data.node_id);
  assert.deepEqual(finishedNodes.slice(-3), ['aligned', 'match', 'report']);
  const embedding = match.find((e) => e.event === 'node_finished' && e.data.node_id === 'image_embedding');
  assert.equal(embedding.data.outputs.image_embeds.length, 512);
  assert.equal(typeof match.at(-1).data.outputs.similarity, 'number');

  const assist = await stream('multimodal-assist', { text: 'what is this?', image: image(), audio: audio() });
  checkOrder(assist);
  const position = (node) => assist.findIndex((e) => e.event === 'node_finished' && e.data.node_id === node);
  assert.ok(position('speech') < position('answer') && position('ocr') < position('answer'));
  assert.match(assist.at(-1).data.outputs.answer, /Heard: the weather is nice today/);
});

test('image-text-match blocking returns outputs and per-node timings', async () => {
  const response = await run('image-text-match', { image: image(), text: 'an invoice' });
  assert.equal(response.status, 200);
  const body = await response.json();
  assert.equal(body.data.status, 'succeeded');
  assert.equal(typeof body.data.outputs.similarity, 'number');
  assert.ok(Math.abs(body.data.outputs.similarity) <= 1);
  assert.equal(body.data.nodes.length, 7);
  assert.ok(body.data.nodes.every((n) => n.status === 'succeeded' && n.elapsed_time >= 0 && typeof n.cached === 'boolean'));
  assert.equal(body.workflow_run_id, body.data.id);
});

test('multimodal-assist routes text-only requests to the text path', async () => {
  const body = await (await run('multimodal-assist', { text: 'what is the weather like?' })).json();
  assert.equal(body.data.status, 'succeeded');
  assert.match(body.data.outputs.text_answer, /what is the weather like\?/);
  const skipped = body.data.nodes.filter((n) => n.status === 'skipped').map((n) => n.id).sort();
  assert.deepEqual(skipped, ['aligned', 'answer', 'chat', 'ocr', 'pixels', 'relevance', 'speech', 'vision']);

  const full = await (await run('multimodal-assist', { text: 'what is this?', image: image(), audio: audio() })).json();
  assert.equal(full.data.status, 'succeeded');
  assert.match(full.data.outputs.answer, /Heard: the weather is nice today/);
  assert.match(full.data.outputs.answer, /Read in the image: Invoice number 4821/);
});

test('bad requests get clear 4xx errors', async () => {
  let response = await run('no-such-flow', {});
  assert.equal(response.status, 404);
  assert.match((await response.json()).error, /unknown workflow 'no-such-flow'; the workflows are: .*speech-report/);
  // Dify's own path names no workflow: the answer says how to name one.
  response = await fetch(`${base}/v1/workflows/run`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ inputs: {} }),
  });
  assert.equal(response.status, 404);
  assert.match((await response.json()).error, /POST \/v1\/workflows\/\{name\}\/run; the workflows are: .*speech-report/);
  response = await run('speech-report', {});
  assert.equal(response.status, 400);
  assert.match((await response.json()).error, /needs input 'audio'/);
  response = await run('speech-report', { audio: image() });
  assert.equal(response.status, 400);
  assert.match((await response.json()).error, /expects audio but the data holds image\/png/);
  response = await run('speech-report', { audio: 'data:audio/wav;base64,@@@' });
  assert.equal(response.status, 400);
  response = await run('image-text-match', { image: 'data:image/png;base64,AAAA', text: 'x' });
  assert.equal(response.status, 400, 'a corrupt image fails its node with the node\'s status');
  const body = await response.json();
  assert.equal(body.data.status, 'failed');
  assert.match(body.data.error, /node 'pixels'/);
  const events = await stream('image-text-match', { image: 'data:image/png;base64,AAAA', text: 'x' });
  assert.equal(events.at(-1).event, 'error');
  assert.equal(events.at(-1).status, 400);
});

test('uploaded files and multipart runs', async () => {
  const wav = readFileSync(`${fixtures}/speech/say_5.wav`);
  const form = new FormData();
  form.append('file', new Blob([wav], { type: 'audio/wav' }), 'thanks.wav');
  form.append('user', 'e2e');
  const uploaded = await fetch(`${base}/v1/files/upload`, { method: 'POST', body: form });
  assert.equal(uploaded.status, 201);
  const file = await uploaded.json();
  assert.equal(file.size, wav.length);
  assert.equal(file.mime_type, 'audio/wav');
  assert.equal(file.extension, 'wav');

  const byId = await (await run('speech-report', {
    audio: { type: 'audio', transfer_method: 'local_file', upload_file_id: file.id },
  })).json();
  assert.equal(byId.data.status, 'succeeded');
  assert.match(byId.data.outputs.transcript, /thank you/);

  const missing = await run('speech-report', { audio: { transfer_method: 'local_file', upload_file_id: 'nope' } });
  assert.equal(missing.status, 404);

  const multipart = new FormData();
  multipart.append('inputs', JSON.stringify({}));
  multipart.append('response_mode', 'blocking');
  multipart.append('audio', new Blob([wav], { type: 'audio/wav' }), 'thanks.wav');
  const direct = await (await fetch(`${base}/v1/workflows/speech-report/run`, { method: 'POST', body: multipart })).json();
  assert.equal(direct.data.status, 'succeeded');
  assert.match(direct.data.outputs.transcript, /thank you/);
});

test('a repeated image reuses its node results even when the question differs', async () => {
  const picture = `data:image/png;base64,${freshImage().toString('base64')}`;
  const first = await (await run('image-text-match', { image: picture, text: `invoice ${Math.random()}` })).json();
  assert.equal(first.data.status, 'succeeded');
  assert.ok(Object.values(cachedNodes(first)).every((cached) => cached === false));

  const question = `receipt ${Math.random()}`;
  const second = await (await run('image-text-match', { image: picture, text: question })).json();
  const cached = cachedNodes(second);
  assert.equal(cached.pixels, true);
  assert.equal(cached.image_embedding, true);
  assert.equal(cached.text_embedding, false, 'the new question is computed');
  assert.equal(cached.aligned, false);
  assert.notEqual(second.data.outputs.similarity, first.data.outputs.similarity);

  const events = await stream('image-text-match', { image: picture, text: question });
  const finished = events.filter((e) => e.event === 'node_finished');
  // The third run repeats the second: every node whose result is cached hits
  // (tokenising, comparing and templating are cheaper than a lookup).
  const computed = new Set(['tokens', 'match', 'report']);
  assert.ok(finished.every((e) => e.data.cached === !computed.has(e.data.node_id)),
    JSON.stringify(finished.map((e) => [e.data.node_id, e.data.cached])));
});

test('an upload starts the precompute that a later run hits', async () => {
  const ocrBefore = await ocrServed();
  const form = new FormData();
  form.append('file', new Blob([freshImage()], { type: 'image/png' }), 'invoice.png');
  const file = await (await fetch(`${base}/v1/files/upload`, { method: 'POST', body: form })).json();
  const byId = { type: 'image', transfer_method: 'local_file', upload_file_id: file.id };
  // The precompute of `pixels` is under way (or done) when the upload
  // answers: the run reuses it instead of computing again.
  const match = await (await run('image-text-match', { image: byId, text: 'an invoice' })).json();
  assert.equal(cachedNodes(match).pixels, true);
  // `ocr` is a model node, precomputed at the off-peak level: an
  // interactive run does not wait for it while it is under way, so wait
  // for the OCR model to have served it (its success count grows with no
  // run asking), then the run hits.
  for (let i = 0; i < 200 && await ocrServed() < ocrBefore + 1; ++i) await new Promise((r) => setTimeout(r, 50));
  assert.equal(await ocrServed(), ocrBefore + 1, 'the upload precomputed OCR');
  const report = await (await run('speech-report', { audio: audio(), image: byId })).json();
  assert.equal(report.data.status, 'succeeded');
  assert.equal(cachedNodes(report).ocr, true);
  assert.match(report.data.outputs.image_text, /Invoice number 4821/);
});
