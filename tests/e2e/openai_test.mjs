// braid's OpenAI-compatible endpoints through the official `openai` npm
// client, as Dify's OpenAI-API-compatible provider would call them.
//   node --test tests/e2e/openai_test.mjs   (BRAID_BINARY and BRAID_FIXTURES set by CTest)
import assert from 'node:assert/strict';
import { createReadStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import OpenAI from 'openai';
import { startBraid } from './serve.mjs';

const fixtures = process.env.BRAID_FIXTURES;
let server;
let client;

const imageUrl = () => `data:image/png;base64,${readFileSync(`${fixtures}/images/text_1_DejaVu-Sans_40.png`).toString('base64')}`;
const wavBase64 = () => readFileSync(`${fixtures}/speech/say_0.wav`).toString('base64');
const norm = (v) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));

before(async () => {
  server = await startBraid(process.env.BRAID_BINARY);
  client = new OpenAI({ apiKey: 'not-needed', baseURL: `http://127.0.0.1:${server.http}/v1` });
});

after(async () => {
  assert.equal(await server.stop(), 0);
});

test('models lists models and workflows', async () => {
  const ids = [];
  for await (const model of client.models.list()) ids.push(model.id);
  for (const id of ['clip', 'clip-text', 'asr', 'multimodal-assist', 'speech-report']) assert.ok(ids.includes(id), id);
});

test('text embeddings, with usage', async () => {
  const response = await client.embeddings.create({ model: 'clip', input: ['a photo of a cat', 'a photo of a cat', 'a dog'] });
  assert.equal(response.data.length, 3);
  const [a, b, c] = response.data.map((d) => d.embedding);
  assert.equal(a.length, 512);
  assert.ok(Math.abs(norm(a) - 1) < 1e-4, 'normalised');
  assert.deepEqual(a, b, 'same text, same embedding');
  assert.notDeepEqual(a, c);
  assert.ok(response.usage.prompt_tokens > 0);
  assert.equal(response.usage.total_tokens, response.usage.prompt_tokens);
});

test('text-embed, the default: vectors that mean something', async () => {
  const cos = (a, b) => a.reduce((s, x, i) => s + x * b[i], 0);
  const response = await client.embeddings.create({ model: 'text-embed', input: ['a fox', 'dog', 'car', 'fox'] });
  assert.equal(response.model, 'text-embed');
  const [query, dog, car, fox] = response.data.map((d) => d.embedding);
  assert.equal(query.length, 96);
  assert.ok(cos(query, fox) > cos(query, dog) && cos(query, fox) > cos(query, car), 'a fox is nearest to fox');
  // A picture of text is embedded by what OCR reads in it.
  const picture = await client.embeddings.create({
    model: 'text-embed', input: [{ type: 'image_url', image_url: { url: imageUrl() } }, 'an invoice'],
  });
  assert.equal(picture.data[0].embedding.length, 96);
  // 128 dimensions: the document space, the text's vector then an image's
  // layout (zeros for a text).
  const documents = await client.embeddings.create({
    model: 'text-embed', dimensions: 128, input: [{ type: 'image_url', image_url: { url: imageUrl() } }, 'an invoice'],
  });
  assert.equal(documents.data[0].embedding.length, 128);
  assert.ok(documents.data[0].embedding.slice(96).some((x) => x !== 0), 'an image has a layout');
  assert.ok(documents.data[1].embedding.slice(96).every((x) => x === 0), 'a text has none');
  await assert.rejects(client.embeddings.create({ model: 'text-embed', dimensions: 512, input: 'x' }), (e) => e.status === 400);
});

test('image and audio content parts, float format, 128 dimensions', async () => {
  const image = await client.embeddings.create({
    model: 'clip', encoding_format: 'float',
    input: [{ type: 'image_url', image_url: { url: imageUrl() } }],
  });
  assert.equal(image.data[0].embedding.length, 512);
  const aligned = await client.embeddings.create({ model: 'clip', dimensions: 128, input: 'an invoice' });
  assert.equal(aligned.data[0].embedding.length, 128);
  // Dify sends audio as an image_url data URL: it is transcribed, then embedded.
  const audio = await client.embeddings.create({
    model: 'clip', input: [{ type: 'image_url', image_url: { url: `data:audio/wav;base64,${wavBase64()}` } }],
  });
  const text = await client.embeddings.create({ model: 'clip', input: 'the weather is nice today' });
  assert.deepEqual(audio.data[0].embedding, text.data[0].embedding);
  // An image data URL sent as a plain string is the image, not its text.
  const plain = await client.embeddings.create({ model: 'clip-image', encoding_format: 'float', input: [imageUrl()] });
  assert.deepEqual(plain.data[0].embedding, image.data[0].embedding);
});

test('each CLIP tower takes its own kind of input and a bad item is named', async () => {
  await assert.rejects(client.embeddings.create({ model: 'clip-image', input: ['a cat'] }),
    (e) => e.status === 400 && /clip-image embeds images; input\[0\] is text: send it to clip-text/.test(e.message));
  await assert.rejects(client.embeddings.create({ model: 'clip-text', input: ['a cat', imageUrl()] }),
    (e) => e.status === 400 && /input\[1\] is an image: send it to clip-image/.test(e.message));
  await assert.rejects(client.embeddings.create({ model: 'clip', input: ['a cat', 'data:image/png;base64,@@'] }),
    (e) => e.status === 400 && /input\[1\]: invalid base64/.test(e.message));
  const both = await client.embeddings.create({ model: 'clip-text', input: ['a cat', `data:audio/wav;base64,${wavBase64()}`] });
  assert.equal(both.data.length, 2, 'clip-text takes audio, transcribed');
});

test('transcriptions in every response format', async () => {
  const file = () => createReadStream(`${fixtures}/speech/say_2.wav`);
  const json = await client.audio.transcriptions.create({ file: file(), model: 'asr' });
  assert.equal(json.text, 'i would like to order a pizza');
  const text = await client.audio.transcriptions.create({ file: file(), model: 'asr', response_format: 'text' });
  assert.equal(String(text).trim(), 'i would like to order a pizza');
  const verbose = await client.audio.transcriptions.create({ file: file(), model: 'asr', response_format: 'verbose_json' });
  assert.equal(verbose.segments.length, 1);
  assert.ok(verbose.duration > 1);
  assert.equal(verbose.words.length, 7);
});

// A Whisper-shaped model (modelgen whisper): Optimum's export interface,
// decoders forced to say one script for speech, nothing for silence.
test('transcriptions through a whisper model: segments, language, srt and vtt', async () => {
  const workflows = mkdtempSync(join(tmpdir(), 'braid-whisper-'));
  writeFileSync(join(workflows, 'hear.yaml'), `inputs: {audio: {type: audio}}
nodes:
  - {id: heard, kind: model, model: whisper, from: {audio: inputs.audio}}
outputs: {text: heard.text}
`);
  const whisper = await startBraid(process.env.BRAID_BINARY,
    ['--model-repository', process.env.BRAID_WHISPER_REPOSITORY, '--workflows', workflows]);
  try {
    const local = new OpenAI({ apiKey: 'not-needed', baseURL: `http://127.0.0.1:${whisper.http}/v1` });
    const ids = [];
    for await (const model of local.models.list()) ids.push(model.id);
    assert.ok(ids.includes('whisper'), ids.join(' '));
    const file = () => createReadStream(`${fixtures}/speech/say_2.wav`);
    const json = await local.audio.transcriptions.create({ file: file(), model: 'whisper' });
    assert.equal(json.text, 'The quick brown fox. It jumps.');
    const verbose = await local.audio.transcriptions.create({ file: file(), model: 'whisper', response_format: 'verbose_json' });
    assert.equal(verbose.language, 'en');
    assert.deepEqual(verbose.segments.map((s) => [s.start, s.end, s.text]),
      [[0, 1.5, 'The quick brown fox.'], [1.5, 3, 'It jumps.']]);
    assert.equal(verbose.duration, 3);
    const srt = await local.audio.transcriptions.create({ file: file(), model: 'whisper', response_format: 'srt' });
    assert.equal(String(srt), '1\n00:00:00,000 --> 00:00:01,500\nThe quick brown fox.\n\n2\n00:00:01,500 --> 00:00:03,000\nIt jumps.\n\n');
    const vtt = await local.audio.transcriptions.create({ file: file(), model: 'whisper', response_format: 'vtt' });
    assert.match(String(vtt), /^WEBVTT\n\n00:00:00\.000 --> 00:00:01\.500\nThe quick brown fox\.\n/);
    await assert.rejects(local.audio.transcriptions.create({ file: file(), model: 'nosuch' }),
      (error) => error.status === 404 && /available: whisper/.test(error.message));
    // A workflow's audio reaches the batching model as a batch of one.
    const form = new FormData();
    form.append('audio', new Blob([readFileSync(`${fixtures}/speech/say_2.wav`)]), 'say_2.wav');
    form.append('response_mode', 'blocking');
    const run = await fetch(`http://127.0.0.1:${whisper.http}/v1/workflows/hear/run`, { method: 'POST', body: form });
    const body = await run.json();
    assert.equal(body.data.status, 'succeeded', JSON.stringify(body));
    assert.equal(body.data.outputs.text, 'The quick brown fox. It jumps.');
  } finally {
    assert.equal(await whisper.stop(), 0);
    rmSync(workflows, { recursive: true });
  }
});

test('chat completions run a workflow, blocking and streaming', async () => {
  const reply = await client.chat.completions.create({
    model: 'multimodal-assist', messages: [{ role: 'user', content: 'what is the weather like?' }],
  });
  assert.match(reply.choices[0].message.content, /what is the weather like\?/);
  assert.equal(reply.choices[0].finish_reason, 'stop');
  assert.ok(reply.usage.total_tokens > 0);

  const stream = await client.chat.completions.create({
    model: 'multimodal-assist', stream: true, stream_options: { include_usage: true },
    messages: [{ role: 'user', content: [
      { type: 'text', text: 'what does the picture say?' },
      { type: 'image_url', image_url: { url: imageUrl() } },
      { type: 'input_audio', input_audio: { data: wavBase64(), format: 'wav' } },
    ] }],
  });
  let content = '';
  let chunks = 0;
  let usage = null;
  let finish = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const choice of chunk.choices) {
      content += choice.delta.content ?? '';
      finish = choice.finish_reason ?? finish;
      chunks += 1;
    }
  }
  assert.ok(chunks > 5, 'the answer streams in pieces');
  assert.equal(finish, 'stop');
  assert.ok(usage && usage.total_tokens > 0);
  assert.match(content, /Heard: the weather is nice today/);
  assert.match(content, /Invoice number 4821/);
});

test('errors come back as API errors', async () => {
  await assert.rejects(client.embeddings.create({ model: 'gpt-9', input: 'x' }), (e) => e.status === 404);
  await assert.rejects(client.embeddings.create({ model: 'clip', input: [] }), (e) => e.status === 400);
  await assert.rejects(client.chat.completions.create({ model: 'no-such-workflow', messages: [{ role: 'user', content: 'x' }] }),
                       (e) => e.status === 404);
  const wav = wavBase64();
  await assert.rejects(client.chat.completions.create({ model: 'image-text-match', messages: [{ role: 'user', content: [
    { type: 'text', text: 'x' }, { type: 'image_url', image_url: { url: `data:audio/wav;base64,${wav}` } }] }] }),
  (e) => e.status === 400 && /takes no audio input/.test(e.message));
  await assert.rejects(client.chat.completions.create({ model: 'speech-report', max_tokens: 0, messages: [{ role: 'user', content: 'x' }] }),
                       (e) => e.status === 400 && /max_tokens/.test(e.message));
});

test('a text-only message to a workflow that needs media is told what to attach', async () => {
  const answer = await client.chat.completions.create({ model: 'speech-report', messages: [{ role: 'user', content: 'ping' }] });
  assert.match(answer.choices[0].message.content, /^Attach audio to the message: speech-report needs it \(it also takes image\)/);
  assert.equal(answer.choices[0].finish_reason, 'stop');
});
