// braid behind Dify's model provider plugins, their calls replayed as the
// plugins build them (langgenius/dify-official-plugins and the
// dify-plugin-sdks OpenAI-compatible base classes): the same URLs, headers,
// bodies, multipart field and file names, the same response fields read and
// the same credential-validation requests — for every workflow /v1/models
// lists as a chat model. The settings used are those deploy/dify/README.md
// gives; braid runs with no flags but the ports.
//   node --test tests/e2e/dify_plugins_test.mjs   (BRAID_BINARY, BRAID_FIXTURES set by CTest)
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { startBraid } from './serve.mjs';

const fixtures = process.env.BRAID_FIXTURES;
const png = readFileSync(`${fixtures}/images/text_1_DejaVu-Sans_40.png`);
const wav = readFileSync(`${fixtures}/speech/say_0.wav`);
let server;
let host;

before(async () => {
  server = await startBraid(process.env.BRAID_BINARY);
  host = `http://127.0.0.1:${server.http}`;
});

after(async () => {
  assert.equal(await server.stop(), 0);
});

// The OpenAI-compatible plugins take an endpoint URL and append the path
// with urljoin after adding a trailing slash; the API key, when set, goes in
// a Bearer header (braid serve with no --api-key ignores it).
const endpoint = () => `${host}/v1/`;
const headers = { 'Content-Type': 'application/json', Authorization: 'Bearer not-needed' };
const postJson = (url, body) => fetch(url, { method: 'POST', headers, body: JSON.stringify(body) });

// The lines of an SSE body as the plugins read them (iter_lines, then
// "data:" stripped), up to "[DONE]".
async function dataLines(response) {
  const text = await response.text();
  return text.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim())
    .filter((l) => l && l !== '[DONE]').map((l) => JSON.parse(l));
}

async function chatWorkflows() {
  const models = await (await fetch(`${endpoint()}models`, { headers })).json();
  return models.data.filter((m) => m.braid?.serves.includes('chat'));
}

test('/v1/models says what each name serves; GET /v1/models/{id} works', async () => {
  const models = await (await fetch(`${endpoint()}models`, { headers })).json();
  const byId = Object.fromEntries(models.data.map((m) => [m.id, m]));
  assert.deepEqual(byId.clip.braid.serves, ['embeddings', 'rerank']);
  assert.deepEqual(byId.clip.braid.dimensions, [512, 128]);
  assert.ok(byId.asr.braid.serves.includes('transcription'));
  assert.ok(byId.tts.braid.serves.includes('speech'));
  const report = byId['speech-report'];
  assert.equal(report.owned_by, 'braid-workflow');
  assert.deepEqual(report.braid.inputs.map((i) => [i.name, i.type, i.optional]),
                   [['audio', 'audio', false], ['image', 'image', true]]);
  const one = await fetch(`${endpoint()}models/speech-report`, { headers });
  assert.equal(one.status, 200);
  assert.deepEqual(await one.json(), report);
  assert.equal((await fetch(`${endpoint()}models/no-such-model`, { headers })).status, 404);
});

test('OpenAI-API-compatible LLM: credential validation passes for every workflow', async () => {
  const workflows = await chatWorkflows();
  assert.ok(workflows.length >= 5, workflows.map((w) => w.id).join(', '));
  for (const { id } of workflows) {
    // validate_credentials in chat mode: "ping", max_tokens 5, not streamed.
    const response = await postJson(`${endpoint()}chat/completions`, {
      model: id, max_tokens: 5, messages: [{ role: 'user', content: 'ping' }],
    });
    assert.equal(response.status, 200, `${id}: ${await response.clone().text()}`);
    const body = await response.json();
    assert.equal(body.object, 'chat.completion', id);
    assert.equal(typeof body.choices[0].message.content, 'string', id);
    assert.ok(body.usage.total_tokens > 0, id);
  }
});

test('OpenAI-API-compatible LLM: a streamed turn with text beside an image, as Dify sends it', async () => {
  // Dify sends a system prompt, the history and the user turn; files as
  // image_url data URLs with detail; stream_options.include_usage on.
  const response = await postJson(`${endpoint()}chat/completions`, {
    model: 'image-text-match', stream: true, stream_options: { include_usage: true },
    max_tokens: 512, temperature: 0.7, top_p: 1, user: 'abc-123', stop: ['\n\n\n'],
    messages: [
      { role: 'system', content: 'You are a helpful assistant.' },
      { role: 'user', content: 'earlier question' },
      { role: 'assistant', content: 'earlier answer' },
      { role: 'user', content: [
        { type: 'text', text: 'Hello World' },
        { type: 'image_url', image_url: { url: `data:image/png;base64,${png.toString('base64')}`, detail: 'low' } },
      ] },
    ],
  });
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type'), /text\/event-stream/);
  const chunks = await dataLines(response);
  const text = chunks.filter((c) => c.choices?.length).map((c) => c.choices[0].delta.content ?? '').join('');
  assert.match(text, /Image-text similarity: -?[0-9.]+/);
  const finish = chunks.find((c) => c.choices?.[0]?.finish_reason);
  assert.equal(finish.choices[0].finish_reason, 'stop');
  assert.ok(chunks.at(-1).usage.completion_tokens > 0);
});

test('OpenAI-API-compatible LLM: audio as an image_url data URL reaches the audio input', async () => {
  const response = await postJson(`${endpoint()}chat/completions`, {
    model: 'speech-report', messages: [{ role: 'user', content: [
      { type: 'text', text: 'What does the note say?' },
      { type: 'image_url', image_url: { url: `data:audio/wav;base64,${wav.toString('base64')}` } },
    ] }],
  });
  assert.equal(response.status, 200);
  assert.match((await response.json()).choices[0].message.content, /weather is nice today/i);
});

test('OpenAI-API-compatible text embedding: validation and a batch', async () => {
  const check = await postJson(`${endpoint()}embeddings`, { model: 'clip', input: ['ping'], encoding_format: 'float' });
  assert.equal(check.status, 200);
  const body = await (await postJson(`${endpoint()}embeddings`, {
    model: 'clip-text', input: ['a photo of a cat', 'a diagram'], encoding_format: 'float',
  })).json();
  assert.equal(body.data.length, 2);
  assert.equal(body.data[1].index, 1);
  assert.equal(body.data[0].embedding.length, 512);
  assert.ok(body.usage.total_tokens > 0);
});

test('OpenAI-API-compatible rerank: validation request and the fields read', async () => {
  const response = await postJson(`${endpoint()}rerank`, {
    model: 'clip', query: 'What is the capital of the United States?', top_n: 2,
    documents: [
      'Carson City is the capital city of the American state of Nevada.',
      'The Commonwealth of the Northern Mariana Islands is a group of islands in the Pacific Ocean. Its capital is Saipan.',
    ],
  });
  assert.equal(response.status, 200);
  const body = await response.json();
  assert.equal(body.results.length, 2);
  for (const r of body.results) {
    assert.ok(Number.isInteger(r.index));
    assert.ok(r.relevance_score >= 0 && r.relevance_score <= 1);
  }
});

test('OpenAI-API-compatible speech2text: multipart file and model', async () => {
  const form = new FormData();
  form.append('model', 'whisper-1');
  form.append('file', new Blob([wav], { type: 'audio/wav' }), 'audio.wav');
  const response = await fetch(`${endpoint()}audio/transcriptions`, {
    method: 'POST', headers: { Authorization: 'Bearer not-needed' }, body: form,
  });
  assert.equal(response.status, 200);
  assert.match((await response.json()).text, /weather is nice today/i);
});

test('OpenAI-API-compatible TTS: speech for the text', async () => {
  const response = await postJson(`${endpoint()}audio/speech`, {
    model: 'tts-1', input: 'Hello from braid.', voice: 'alloy', response_format: 'mp3',
  });
  assert.equal(response.status, 200);
  const bytes = Buffer.from(await response.arrayBuffer());
  assert.ok(bytes.length > 1000);
});

test('Triton provider: generate for validation, generate_stream for a turn', async () => {
  const workflows = await chatWorkflows();
  for (const { id } of workflows) {
    const response = await postJson(`${host}/v2/models/${id}/generate`, {
      text_input: 'ping', max_tokens: 5, parameters: { temperature: 0.5, top_p: 1 },
    });
    assert.equal(response.status, 200, `${id}: ${await response.clone().text()}`);
    const body = await response.json();
    assert.equal(body.model_name, id);
    assert.equal(typeof body.text_output, 'string');
  }
  const stream = await postJson(`${host}/v2/models/multimodal-assist/generate_stream`, {
    text_input: 'Human: what is braid?\nAssistant: ', max_tokens: 64,
  });
  assert.equal(stream.status, 200);
  const pieces = await dataLines(stream);
  assert.ok(pieces.length > 2);
  assert.match(pieces.map((p) => p.text_output).join(''), /You asked: Human: what is braid\?/);
  assert.equal(pieces.at(-1).finish_reason, 'stop');
});

test('generate also serves a model with text in and out (ocr: an image in, its text out)', async () => {
  const response = await postJson(`${host}/v2/models/ocr/generate`, {
    image: `data:image/png;base64,${png.toString('base64')}`,
  });
  assert.equal(response.status, 200);
  assert.match((await response.json()).text_output, /Invoice number 4821/);
  const refused = await postJson(`${host}/v2/models/identity/generate`, { text_input: 'x' });
  assert.equal(refused.status, 400);
  assert.match((await refused.json()).error, /no text answer/);
});

test('TEI provider: info decides the type, then embed and rerank', async () => {
  const info = await (await fetch(`${host}/info`)).json();
  assert.ok(info.model_type.embedding !== undefined || info.model_type === 'embedding' || info.model_type.embedding === null);
  const embed = await (await postJson(`${host}/embed`, { inputs: ['ping'], truncate: true })).json();
  assert.equal(embed[0].length, 512);
  const reranker = await (await fetch(`${host}/tei/reranker/info`)).json();
  assert.ok('reranker' in reranker.model_type || reranker.model_type === 'reranker');
  const ranked = await (await postJson(`${host}/tei/reranker/rerank`, {
    query: 'ping', texts: ['ping', 'pong'], raw_scores: false, return_text: true,
  })).json();
  assert.deepEqual(ranked.map((r) => r.index).sort(), [0, 1]);
  assert.ok(ranked.every((r) => typeof r.score === 'number' && typeof r.text === 'string'));
});
