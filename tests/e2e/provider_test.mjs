// braid as a complete Dify model provider: text-to-speech through the
// official `openai` client, rerank in the OpenAI-compatible (Jina/Cohere)
// shape, and the Text Embeddings Inference endpoints Dify's TEI provider
// calls, plus a workflow that answers with speech.
//   node --test tests/e2e/provider_test.mjs   (BRAID_BINARY and BRAID_FIXTURES set by CTest)
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import OpenAI, { toFile } from 'openai';
import { startBraid } from './serve.mjs';

const fixtures = process.env.BRAID_FIXTURES;
const picture = `${fixtures}/images/text_1_DejaVu-Sans_40.png`;
let server;
let base;
let client;

before(async () => {
  server = await startBraid(process.env.BRAID_BINARY);
  base = `http://127.0.0.1:${server.http}`;
  client = new OpenAI({ apiKey: 'not-needed', baseURL: `${base}/v1` });
});

after(async () => {
  assert.equal(await server.stop(), 0);
});

const post = (path, body) => fetch(`${base}${path}`, {
  method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
});
const words = (text) => text.toLowerCase().replace(/[^a-z0-9 ]/g, ' ').split(/\s+/).filter(Boolean);
// The share of `spoken` words that came back in `heard`.
const recall = (spoken, heard) => {
  const got = new Set(words(heard));
  return words(spoken).filter((w) => got.has(w)).length / words(spoken).length;
};

// The RIFF header's fields and the PCM after it.
function parseWav(bytes) {
  assert.equal(bytes.toString('ascii', 0, 4), 'RIFF');
  assert.equal(bytes.toString('ascii', 8, 12), 'WAVE');
  assert.equal(bytes.toString('ascii', 12, 16), 'fmt ');
  const format = { encoding: bytes.readUInt16LE(20), channels: bytes.readUInt16LE(22),
    rate: bytes.readUInt32LE(24), bits: bytes.readUInt16LE(34) };
  assert.equal(bytes.toString('ascii', 36, 40), 'data');
  const samples = (bytes.length - 44) / 2;
  return { ...format, seconds: samples / format.rate, pcm: bytes.subarray(44) };
}

const spoken = 'The weather is nice today. Please open the door. I would like to order a pizza.';

test('speech: a streamed WAV at 24 kHz that braid hears back', async () => {
  const response = await client.audio.speech.create({ model: 'tts-1', voice: 'alloy', input: spoken, response_format: 'wav' });
  assert.equal(response.headers.get('content-type'), 'audio/wav');
  assert.equal(response.headers.get('transfer-encoding'), 'chunked', 'sent as it is synthesised');
  const wav = Buffer.from(await response.arrayBuffer());
  const parsed = parseWav(wav);
  assert.deepEqual([parsed.encoding, parsed.channels, parsed.rate, parsed.bits], [1, 1, 24000, 16]);
  assert.ok(parsed.seconds > 3 && parsed.seconds < 15, `${parsed.seconds} s of speech`);
  let energy = 0;
  for (let i = 0; i < parsed.pcm.length; i += 2) energy += Math.abs(parsed.pcm.readInt16LE(i));
  assert.ok(energy / (parsed.pcm.length / 2) > 300, 'not silence');
  // Transcribed back through braid's asr, most words survive.
  const heard = await client.audio.transcriptions.create({ model: 'asr', file: await toFile(wav, 'speech.wav') });
  const share = recall(spoken, heard.text);
  console.log(`speech → asr word recall ${share.toFixed(2)}: "${heard.text}"`);
  assert.ok(share >= 0.6, `${share} of the words heard back: "${heard.text}"`);
});

test('speech: mp3 by default, pcm on request, every voice', async () => {
  const mp3 = Buffer.from(await (await client.audio.speech.create({ model: 'tts-1', voice: 'echo', input: 'Hello there.' })).arrayBuffer());
  assert.ok(mp3.length > 1000);
  assert.equal(mp3[0], 0xff, 'an MPEG frame sync');
  const heard = await client.audio.transcriptions.create({ model: 'asr', file: await toFile(mp3, 'speech.mp3') });
  assert.ok(heard.text.length > 0);
  const pcm = Buffer.from(await (await client.audio.speech.create({ model: 'tts-1', voice: 'fable', input: 'Hello there.', response_format: 'pcm' })).arrayBuffer());
  assert.equal(pcm.length % 2, 0);
  assert.ok(pcm.length / 2 / 24000 > 0.3, 'at least 0.3 s at 24 kHz');
  for (const voice of ['alloy', 'onyx', 'nova', 'shimmer', 'slt', 'rms', 'awb', 'kal', 'kal16']) {
    const response = await post('/v1/audio/speech', { model: 'tts', voice, input: 'Yes.', response_format: 'wav' });
    assert.equal(response.status, 200, voice);
    assert.ok(parseWav(Buffer.from(await response.arrayBuffer())).seconds > 0.1, voice);
  }
});

test('speech: bad input is a clear 4xx', async () => {
  const cases = [
    [{ model: 'tts', voice: 'alloy', input: '' }, 400],
    [{ model: 'tts', voice: 'alloy', input: '  \n ' }, 400],
    [{ model: 'tts', voice: 'robot', input: 'Hi.' }, 400],
    [{ model: 'tts', voice: 'alloy', input: 'x'.repeat(1 << 20) }, 400],
    [{ model: 'tts', voice: 'alloy', input: 'Hi.', response_format: 'flac' }, 400],
    [{ model: 'tts', voice: 'alloy', input: 'Hi.', speed: 2 }, 400],
    [{ model: 'nope', voice: 'alloy', input: 'Hi.' }, 404],
    [{ model: 'tts', voice: 'alloy' }, 400],
  ];
  for (const [body, status] of cases) {
    const response = await post('/v1/audio/speech', body);
    assert.equal(response.status, status, JSON.stringify(body).slice(0, 80));
    assert.ok((await response.json()).error.length > 0);
  }
});

test('rerank: an exact duplicate ranks first, for text and for images', async () => {
  const response = await post('/v1/rerank', {
    model: 'clip', query: 'a photo of a cat', top_n: 2, return_documents: true,
    documents: ['a red bicycle', 'the stock market fell', 'a photo of a cat', { text: 'an old lighthouse' }],
  });
  assert.equal(response.status, 200);
  const body = await response.json();
  assert.equal(body.results.length, 2);
  assert.equal(body.results[0].index, 2);
  assert.equal(body.results[0].document.text, 'a photo of a cat');
  assert.ok(Math.abs(body.results[0].relevance_score - 1) < 1e-4);
  assert.ok(body.results[0].relevance_score >= body.results[1].relevance_score);
  assert.ok(body.usage.total_tokens > 0);

  const image = { type: 'image_url', image_url: { url: `data:image/png;base64,${readFileSync(picture).toString('base64')}` } };
  const other = { type: 'image_url', image_url: { url: `data:image/png;base64,${readFileSync(`${fixtures}/images/text_0_DejaVu-Serif_28.png`).toString('base64')}` } };
  for (const model of ['clip', 'clip-aligned']) {
    const cross = await (await post('/v1/rerank', { model, query: image, documents: ['a photo of a cat', other, image], return_documents: false })).json();
    assert.equal(cross.results.length, 3, model);
    assert.equal(cross.results[0].index, 2, `${model}: the same picture first`);
    assert.equal(cross.results[0].document, undefined);
    for (const result of cross.results) assert.ok(result.relevance_score >= 0 && result.relevance_score <= 1);
  }
});

test('rerank without a model: text-embed ranks by meaning, pictures of text by what they say', async () => {
  const response = await post('/v1/rerank', { query: 'dog', documents: ['kitten', 'puppy'] });
  assert.equal(response.status, 200);
  const body = await response.json();
  assert.equal(body.model, 'text-embed');
  assert.equal(body.results[0].index, 1, 'puppy above kitten');
  const png = (file) => ({ type: 'image_url', image_url: { url: `data:image/png;base64,${readFileSync(file).toString('base64')}` } });
  const invoice = png(picture);  // "Invoice number 4821 is due on March 3"
  const fox = png(`${fixtures}/images/text_0_DejaVu-Serif_28.png`);  // "The quick brown fox jumps over the lazy dog"
  const ranked = await (await post('/v1/rerank', { query: 'a fox leaping over a dog', documents: [invoice, fox] })).json();
  assert.equal(ranked.results[0].index, 1, 'the picture that says so');
  const bill = await (await post('/v1/rerank', { query: 'the bill is due', documents: [invoice, fox] })).json();
  assert.equal(bill.results[0].index, 0);
});

test('rerank: bad input is a clear 4xx', async () => {
  const cases = [
    [{ query: 'q', documents: [] }, 400],
    [{ query: 'q', documents: ['a'], top_n: 0 }, 400],
    [{ query: 'q', documents: ['a'], top_n: -3 }, 400],
    [{ query: 'q', documents: ['a', ''] }, 400],
    [{ query: 'q', documents: 'a' }, 400],
    [{ documents: ['a'] }, 400],
    [{ model: 'bge-reranker', query: 'q', documents: ['a'] }, 404],
    [{ query: 'q', documents: Array(300).fill('a') }, 400],
  ];
  for (const [body, status] of cases) {
    const response = await post('/v1/rerank', body);
    assert.equal(response.status, status, JSON.stringify(body).slice(0, 80));
    assert.ok((await response.json()).error.length > 0);
  }
});

test('TEI: info, embed, rerank and tokenize answer as TEI does', async () => {
  const info = await (await fetch(`${base}/info`)).json();
  assert.deepEqual(Object.keys(info.model_type), ['embedding']);
  assert.equal(typeof info.max_input_length, 'number');
  assert.equal(typeof info.max_client_batch_size, 'number');
  const reranker = await (await fetch(`${base}/tei/reranker/info`)).json();
  assert.deepEqual(Object.keys(reranker.model_type), ['reranker']);

  const embedded = await (await post('/embed', { inputs: ['a photo of a cat', 'a dog'] })).json();
  assert.equal(embedded.length, 2);
  assert.equal(embedded[0].length, 96, 'text-embed, braid\'s text embedder');
  const single = await (await post('/embed', { inputs: 'a photo of a cat' })).json();
  assert.deepEqual(single[0], embedded[0]);
  const raw = await (await post('/embed', { inputs: 'a photo of a cat', normalize: false })).json();
  assert.notDeepEqual(raw[0], embedded[0]);

  for (const prefix of ['', '/tei/reranker']) {
    const ranked = await (await post(`${prefix}/rerank`, { query: 'a photo of a cat', texts: ['a dog', 'a photo of a cat'], return_text: true })).json();
    assert.deepEqual(ranked.map((r) => r.index), [1, 0]);
    assert.equal(ranked[0].text, 'a photo of a cat');
    assert.ok(ranked[0].score > ranked[1].score);
  }
  const rawScores = await (await post('/rerank', { query: 'cat', texts: ['cat'], raw_scores: true })).json();
  assert.ok(Math.abs(rawScores[0].score - 1) < 1e-4, 'raw: the cosine');

  // text-embed's tokens: each word, then its character n-grams.
  const tokens = await (await post('/tokenize', { inputs: ['Hello, World!'] })).json();
  assert.equal(tokens.length, 1);
  assert.deepEqual([tokens[0][0].text, tokens[0][0].start, tokens[0][0].stop], ['hello', 0, 5]);
  assert.equal(tokens[0][1].text, '<he');
  const plain = tokens[0].filter((t) => !t.special);
  assert.ok(plain.length >= 3);
  for (const token of plain) {
    assert.equal(typeof token.id, 'number');
    assert.ok(token.start < token.stop);
    assert.ok(token.stop <= 'Hello, World!'.length);
  }
  const bare = await (await post('/tokenize', { inputs: 'Hello', add_special_tokens: false })).json();
  assert.ok(bare[0].every((t) => !t.special));

  // Dify's TEI provider embeds through {server_url}/v1/embeddings without a model.
  const viaPrefix = await (await post('/tei/embedding/v1/embeddings', { input: ['a photo of a cat'] })).json();
  assert.deepEqual(viaPrefix.data[0].embedding, embedded[0]);
  assert.ok(viaPrefix.usage.total_tokens > 0);

  for (const [path, body] of [['/embed', {}], ['/embed', { inputs: [] }], ['/rerank', { query: 'q', texts: [] }],
    ['/rerank', { texts: ['a'] }], ['/tokenize', { inputs: 3 }]]) {
    const response = await post(path, body);
    assert.equal(response.status, 400, `${path} ${JSON.stringify(body)}`);
  }
  assert.equal((await fetch(`${base}/tei/reranker/nope`)).status, 404);
});

test('a workflow answers with speech: read-aloud speaks the text OCR found', async () => {
  const response = await post('/v1/workflows/read-aloud/run', {
    inputs: { image: `data:image/png;base64,${readFileSync(picture).toString('base64')}` },
    response_mode: 'blocking',
  });
  assert.equal(response.status, 200);
  const { data } = await response.json();
  assert.equal(data.status, 'succeeded');
  assert.match(data.outputs.text, /Invoice/);
  const prefix = 'data:audio/wav;base64,';
  assert.ok(data.outputs.audio.startsWith(prefix));
  const wav = Buffer.from(data.outputs.audio.slice(prefix.length), 'base64');
  assert.ok(parseWav(wav).seconds > 1);
  const heard = await client.audio.transcriptions.create({ model: 'asr', file: await toFile(wav, 'read.wav') });
  assert.ok(recall('invoice number is due on march', heard.text) >= 0.5, heard.text);
});
