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

// An SSE body as the OpenAI-compatible LLM reads it: split on the blank
// line (stream_mode_delimiter), stripped, ':' comments skipped, "data: "
// removed, "[DONE]" skipped, the rest parsed as JSON.
async function sseChunks(response) {
  const text = await response.text();
  return text.split('\n\n').map((c) => c.trim()).filter((c) => c && !c.startsWith(':'))
    .map((c) => (c.startsWith('data: ') ? c.slice(6) : c).trimStart())
    .filter((c) => c !== '[DONE]').map((c) => JSON.parse(c));
}

// A Triton stream as the Triton provider reads it: lines starting "data:".
async function dataLines(response) {
  const text = await response.text();
  return text.split('\n').filter((l) => l.startsWith('data:')).map((l) => JSON.parse(l.slice(5).trim()));
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
  assert.match(byId.clip.braid.description, /stand-ins with random weights/);
  assert.deepEqual(byId['text-embed'].braid.serves, ['embeddings', 'rerank', 'inference']);
  assert.deepEqual(byId['text-embed'].braid.dimensions, [96, 128]);
  assert.match(byId['text-embed'].braid.description, /WordNet/);
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
    // OAICompatLargeLanguageModel.validate_credentials in chat mode.
    const response = await postJson(`${endpoint()}chat/completions`, {
      model: id, max_completion_tokens: 5, messages: [{ role: 'user', content: 'ping' }],
    });
    assert.equal(response.status, 200, `${id}: ${await response.clone().text()}`);
    const body = await response.json();
    assert.equal(body.object, 'chat.completion', id);
    assert.equal(typeof body.choices[0].message.content, 'string', id);
    assert.ok(body.usage.total_tokens > 0, id);
  }
});

test('OpenAI-API-compatible LLM: a streamed turn with text beside an image, as Dify sends it', async () => {
  // _generate: {model, stream, **model_parameters, messages, stop, user};
  // files as image_url data URLs with their detail.
  const response = await fetch(`${endpoint()}chat/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'Accept-Charset': 'utf-8', Authorization: 'Bearer not-needed' },
    body: JSON.stringify({
    model: 'image-text-match', stream: true,
    temperature: 0.7, top_p: 1, frequency_penalty: 0, presence_penalty: 0, max_tokens: 512,
    messages: [
      { role: 'system', content: 'You are a helpful assistant.' },
      { role: 'user', content: 'earlier question' },
      { role: 'assistant', content: 'earlier answer' },
      { role: 'user', content: [
        { type: 'text', text: 'Hello World' },
        { type: 'image_url', image_url: { url: `data:image/png;base64,${png.toString('base64')}`, detail: 'low' } },
      ] },
    ],
    stop: ['\n\n\n'], user: 'abc-123',
    }),
  });
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type'), /text\/event-stream/);
  const chunks = await sseChunks(response);
  assert.ok(chunks.every((c) => Array.isArray(c.choices)), 'every chunk has choices');
  const text = chunks.filter((c) => c.choices.length).map((c) => c.choices[0].delta.content ?? '').join('');
  assert.match(text, /Image-text similarity: -?[0-9.]+/);
  const finish = chunks.find((c) => c.choices[0]?.finish_reason);
  assert.equal(finish.choices[0].finish_reason, 'stop');
});

test('OpenAI-API-compatible LLM: a blocking turn gives the fields _handle_generate_response reads', async () => {
  const response = await postJson(`${endpoint()}chat/completions`, {
    model: 'multimodal-assist', stream: false, max_tokens: 512,
    messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hello' }],
  });
  const body = await response.json();
  assert.equal(body.model, 'multimodal-assist');
  assert.match(body.choices[0].message.content, /You asked: hello/);
  assert.ok(Number.isInteger(body.usage.prompt_tokens) && Number.isInteger(body.usage.completion_tokens));
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
  // validate_credentials: one string, and "model" must come back.
  // The model deploy/dify/README.md names (text-embed), and clip as well.
  for (const [model, dimensions] of [['text-embed', 96], ['clip', 512]]) {
    const check = await postJson(`${endpoint()}embeddings`, { input: 'ping', model });
    assert.equal(check.status, 200);
    assert.equal((await check.json()).model, model);
    const body = await (await postJson(`${endpoint()}embeddings`, {
      model, input: ['a photo of a cat', 'a diagram'], encoding_format: 'float',
    })).json();
    assert.equal(body.data.length, 2);
    assert.equal(body.data[1].index, 1);
    assert.equal(body.data[0].embedding.length, dimensions);
    assert.ok(body.usage.total_tokens > 0);
  }
});

test('OpenAI-API-compatible rerank: validation request and the fields read', async () => {
  // OAICompatRerankModel sends "Bearer None" without a key, and top_n null.
  const response = await fetch(`${endpoint()}rerank`, {
    method: 'POST',
    headers: { Authorization: 'Bearer None', 'Content-Type': 'application/json' },
    body: JSON.stringify({
      model: 'text-embed', query: 'What is the capital of the United States?',
      documents: [
        'Carson City is the capital city of the American state of Nevada. At the 2010 United States Census, Carson City had a population of 55,274.',
        'The Commonwealth of the Northern Mariana Islands is a group of islands in the Pacific Ocean that are a political division controlled by the United States. Its capital is Saipan.',
      ],
      top_n: null, return_documents: true,
    }),
  });
  assert.equal(response.status, 200);
  const body = await response.json();
  assert.equal(body.results.length, 2);
  for (const r of body.results) {
    assert.ok(Number.isInteger(r.index));
    assert.ok(r.relevance_score >= 0 && r.relevance_score <= 1);
  }
});

// The multipart body python-requests builds for data={"model"} and
// files=[("file", open(path))]: the file part has its name, no type.
function requestsMultipart(model, filename, bytes) {
  const boundary = 'a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6';
  const body = Buffer.concat([
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\n${model}\r\n`),
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${filename}"\r\n\r\n`),
    bytes, Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  return { body, type: `multipart/form-data; boundary=${boundary}` };
}

test('OpenAI-API-compatible TTS and speech2text: validation calls, then one read back', async () => {
  // OAICompatText2SpeechModel: "Test." in the default voice as mp3, streamed.
  const check = await fetch(`${endpoint()}audio/speech`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ model: 'tts', input: 'Test.', voice: 'alloy', response_format: 'mp3' }),
  });
  assert.equal(check.status, 200);
  assert.ok(Buffer.from(await check.arrayBuffer()).length > 500);
  const spoken = await fetch(`${endpoint()}audio/speech`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ model: 'tts-1', input: 'The weather is nice today.', voice: 'alloy', response_format: 'mp3' }),
  });
  const mp3 = Buffer.from(await spoken.arrayBuffer());
  // OAICompatSpeech2TextModel: the demo file as audio.mp3, the model name.
  for (const [name, bytes] of [['audio.mp3', mp3], ['audio.wav', wav]]) {
    const { body, type } = requestsMultipart('whisper-1', name, bytes);
    const response = await fetch(`${endpoint()}audio/transcriptions`, {
      method: 'POST', headers: { 'Content-Type': type }, body,
    });
    assert.equal(response.status, 200, name);
    assert.match((await response.json()).text, /weather is nice today/i, name);
  }
});

test('Triton provider: generate for validation and for a turn', async () => {
  // TritonInferenceAILargeLanguageModel: the messages flattened to text,
  // max_tokens beside it, parameters with stream false; text_output read.
  const workflows = await chatWorkflows();
  for (const { id } of workflows) {
    const response = await fetch(`${host}/v2/models/${id}/generate`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ text_input: 'User: ping', max_tokens: 512, parameters: { stream: false } }),
    });
    assert.equal(response.status, 200, `${id}: ${await response.clone().text()}`);
    assert.equal(typeof (await response.json()).text_output, 'string', id);
  }
  const turn = await postJson(`${host}/v2/models/multimodal-assist/generate`, {
    text_input: 'System: Be brief.User: what is braid?', max_tokens: 64,
    parameters: { stream: false, temperature: 0.7, top_p: 1 },
  });
  assert.match((await turn.json()).text_output, /You asked: System: Be brief\.User: what is braid\?/);
  // generate_stream, as Triton's own clients read it.
  const stream = await postJson(`${host}/v2/models/multimodal-assist/generate_stream`, {
    text_input: 'what is braid?', parameters: { max_tokens: 64 },
  });
  assert.equal(stream.status, 200);
  const pieces = await dataLines(stream);
  assert.ok(pieces.length > 2);
  assert.match(pieces.map((p) => p.text_output).join(''), /You asked: what is braid\?/);
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

test('TEI provider: info decides the type, then tokenize, embeddings and rerank', async () => {
  // TeiHelper: GET /info's first model_type key; embeddings through
  // {server}/v1/embeddings without a model; /tokenize; /rerank with
  // return_text.
  const typeAt = async (server) => Object.keys((await (await fetch(`${server}/info`)).json()).model_type)[0];
  const embedding = host;
  const reranker = `${host}/tei/reranker`;
  assert.equal(await typeAt(embedding), 'embedding');
  assert.equal(await typeAt(reranker), 'reranker');
  const tokens = await (await postJson(`${embedding}/tokenize`, { inputs: ['a photo of a cat'] })).json();
  assert.ok(tokens[0].length > 2 && tokens[0].every((t) => Number.isInteger(t.id) && typeof t.text === 'string'));
  const vectors = await (await postJson(`${embedding}/v1/embeddings`, { input: ['ping', 'pong'] })).json();
  assert.equal(vectors.data.length, 2);
  assert.equal(vectors.data[0].embedding.length, 96, 'text-embed without a model');
  assert.ok(vectors.usage.total_tokens > 0);
  const ranked = await (await postJson(`${reranker}/rerank`, {
    query: 'ping', texts: ['ping', 'pong'], return_text: true,
  })).json();
  assert.deepEqual(ranked.map((r) => r.index).sort(), [0, 1]);
  assert.ok(ranked.every((r) => typeof r.score === 'number' && typeof r.text === 'string'));
});
