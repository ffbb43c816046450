// remote.chat: a braid whose multimodal-assist answers through an upstream
// OpenAI-compatible chat API — here a second braid serve — with the
// upstream's tokens streaming through.
//   node --test tests/e2e/upstream_test.mjs   (BRAID_BINARY set by CTest)
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, before, test } from 'node:test';
import { createParser } from 'eventsource-parser';
import OpenAI from 'openai';
import { startBraid } from './serve.mjs';

let upstream;
let front;

before(async () => {
  upstream = await startBraid(process.env.BRAID_BINARY);
  front = await startBraid(process.env.BRAID_BINARY, [
    '--upstream-chat', `http://127.0.0.1:${upstream.http}/v1`, '--upstream-model', 'multimodal-assist',
  ]);
});

after(async () => {
  assert.equal(await front.stop(), 0);
  assert.equal(await upstream.stop(), 0);
});

test('remote.chat streams the upstream answer through the workflow', async () => {
  const response = await fetch(`http://127.0.0.1:${front.http}/v1/workflows/multimodal-assist/run`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ inputs: { text: 'hello there' }, response_mode: 'streaming' }),
  });
  const events = [];
  const parser = createParser({ onEvent: (m) => events.push(JSON.parse(m.data)) });
  const decoder = new TextDecoder();
  for await (const chunk of response.body) parser.feed(decoder.decode(chunk, { stream: true }));
  const chunks = events.filter((e) => e.event === 'text_chunk');
  assert.ok(chunks.length > 3, 'the upstream tokens arrive one by one');
  assert.ok(chunks.every((e) => e.data.from_variable_selector[0] === 'chat'));
  const final = events.at(-1);
  assert.equal(final.event, 'workflow_finished');
  // The upstream ran its own multimodal-assist (template path) on the prompt.
  assert.match(final.data.outputs.chat_answer, /You asked: Question: hello there/);
  assert.equal(final.data.outputs.chat_answer, chunks.map((e) => e.data.text).join(''));
  assert.equal(final.data.outputs.text_answer, undefined, 'the template path is skipped');
});

test('chat completions on the front answer from the upstream', async () => {
  const client = new OpenAI({ apiKey: 'x', baseURL: `http://127.0.0.1:${front.http}/v1` });
  const reply = await client.chat.completions.create({
    model: 'multimodal-assist', messages: [{ role: 'user', content: 'what time is it?' }],
  });
  assert.match(reply.choices[0].message.content, /You asked: Question: what time is it\?/);
});

// A blocking multimodal-assist run on a braid whose upstream chat is `url`
// (`args` added); the answer's status and text.
async function runAgainst(url, args = []) {
  const front = await startBraid(process.env.BRAID_BINARY, ['--upstream-chat', url, ...args]);
  try {
    const response = await fetch(`http://127.0.0.1:${front.http}/v1/workflows/multimodal-assist/run`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ inputs: { text: 'hi' }, response_mode: 'blocking' }),
    });
    return { status: response.status, text: await response.text() };
  } finally {
    assert.equal(await front.stop(), 0);
  }
}

// A local upstream answering with `handler`; closed after `use(url)`.
async function withUpstream(handler, use) {
  const upstream = createServer(handler);
  await new Promise((done) => upstream.listen(0, '127.0.0.1', done));
  try {
    return await use(`http://127.0.0.1:${upstream.address().port}/v1`);
  } finally {
    upstream.closeAllConnections();
    upstream.close();
  }
}

test('an unreachable upstream fails the run with an error event', async () => {
  const { status, text } = await runAgainst('http://127.0.0.1:1/v1');
  assert.equal(status, 503);
  const body = JSON.parse(text);
  assert.equal(body.data.status, 'failed');
  assert.match(body.data.error, /node 'chat'.*upstream chat/);
});

test('an upstream that never answers fails the run after --upstream-timeout', async () => {
  // It reads the request and never answers.
  const { status, text } = await withUpstream((req) => req.resume(),
                                              (url) => runAgainst(url, ['--upstream-timeout', '1']));
  assert.equal(status, 503);
  const body = JSON.parse(text);
  assert.equal(body.data.status, 'failed');
  assert.match(body.error, /node 'chat'.*upstream chat.*(timeout|timed out)/i);
});

test("an upstream's error body stays in braid's log, not in the answer", async () => {
  const failing = (req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(500, { 'Content-Type': 'application/json' });
      res.end('{"error":"db password is hunter2"}');
    });
  };
  const { status, text } = await withUpstream(failing, (url) => runAgainst(url));
  assert.equal(status, 503);
  assert.ok(!text.includes('hunter2'), text);
  assert.match(JSON.parse(text).error, /upstream chat model answered 500/);
});
