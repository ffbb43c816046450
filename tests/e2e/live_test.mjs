// Live transcription over a WebSocket with the `ws` npm client: flite speech
// sent in 20 ms frames as a microphone would, partials before the end, finals
// per utterance, resampled WAV streams, refusals, disconnects and the drain.
//   node --test tests/e2e/live_test.mjs   (BRAID_BINARY and BRAID_FIXTURES set by CTest)
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { startBraid } from './serve.mjs';

const fixtures = process.env.BRAID_FIXTURES;
const kRate = 16000;
let server;

before(async () => {
  server = await startBraid(process.env.BRAID_BINARY, ['--live-streams', '2', '--live-idle-seconds', '2']);
});

after(async () => {
  assert.equal(await server.stop(), 0);
});

// 16 kHz mono samples of a fixture (flite writes a 44-byte header).
const speech = (name) => {
  const wav = readFileSync(`${fixtures}/speech/${name}`);
  return new Int16Array(wav.buffer.slice(wav.byteOffset + 44, wav.byteOffset + wav.length));
};
const expected = Object.fromEntries(readFileSync(`${fixtures}/speech.tsv`, 'utf8').trim().split('\n')
  .map((line) => line.split('\t')).map(([file, text]) => [file.replace('speech/', ''), text]));
const silence = (seconds) => new Int16Array(Math.round(seconds * kRate));
const concat = (parts) => {
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) { out.set(part, at); at += part.length; }
  return out;
};
const bytes = (samples) => Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength);

function wordErrors(reference, hypothesis) {
  const r = reference.split(/\s+/).filter(Boolean);
  const h = hypothesis.split(/\s+/).filter(Boolean);
  let row = Array.from({ length: h.length + 1 }, (_, j) => j);
  for (let i = 1; i <= r.length; i++) {
    const next = [i];
    for (let j = 1; j <= h.length; j++)
      next[j] = Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (r[i - 1] === h[j - 1] ? 0 : 1));
    row = next;
  }
  return row[h.length];
}

const url = (query = 'sample_rate=16000') =>
  `ws://127.0.0.1:${server.http}/v1/audio/transcriptions/stream?${query}`;

// Opens a stream and collects what braid sends; `closed` resolves with the
// close code and every message.
function open(query) {
  const socket = new WebSocket(url(query));
  const messages = [];
  const opened = new Promise((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('unexpected-response', (request, response) => {
      let body = '';
      response.on('data', (chunk) => { body += chunk; });
      response.on('end', () => reject(Object.assign(new Error(body), { status: response.statusCode, body })));
    });
    socket.once('error', reject);
  });
  const closed = new Promise((resolve) => {
    socket.on('message', (data) => messages.push(JSON.parse(data.toString())));
    socket.once('close', (code, reason) => resolve({ code, reason: reason.toString(), messages }));
  });
  opened.catch(() => {});
  return { socket, opened, closed, messages };
}

// Sends `data` in frames of `frameBytes`, one every `intervalMs` (real time
// for 20 ms frames at 20 ms), then, unless `end` is false, {"type":"end"}.
async function send(socket, data, frameBytes, intervalMs, end = true) {
  for (let at = 0; at < data.length; at += frameBytes) {
    socket.send(data.subarray(at, at + frameBytes));
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  if (end) socket.send(JSON.stringify({ type: 'end' }));
}

// Resolves with the first message of `type` (or rejects after `ms`): the
// test waits for events, not for time to pass.
function next(socket, type, ms = 120000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${type} within ${ms} ms`)), ms);
    const listen = (data) => {
      const message = JSON.parse(data.toString());
      if (message.type !== type) return;
      clearTimeout(timer);
      socket.off('message', listen);
      resolve(message);
    };
    socket.on('message', listen);
  });
}

test('speech sent in real time: partials while it is spoken, a final per utterance', async () => {
  const clips = ['say_0.wav', 'say_2.wav', 'say_3.wav'];
  const first = speech(clips[0]);
  const half = Math.floor(first.length / 2);
  const stream = open();
  await stream.opened;
  // A partial comes while the first sentence is half spoken, and its final
  // after the pause, before any more audio is sent.
  const partial = next(stream.socket, 'partial');
  await send(stream.socket, bytes(concat([silence(0.5), first.subarray(0, half)])), 640, 20, false);
  await partial;
  const final = next(stream.socket, 'final');
  await send(stream.socket, bytes(concat([first.subarray(half), silence(1.2)])), 640, 20, false);
  await final;
  await send(stream.socket, bytes(concat(clips.slice(1).flatMap((clip) => [speech(clip), silence(1.2)]))), 640, 20);
  const { code, messages } = await stream.closed;
  assert.equal(code, 1000);
  const finals = messages.filter((m) => m.type === 'final');
  assert.equal(finals.length, clips.length, JSON.stringify(finals.map((f) => f.text)));
  const reference = clips.map((clip) => expected[clip]).join(' ');
  const heard = finals.map((f) => f.text).join(' ');
  assert.ok(wordErrors(reference, heard) / reference.split(' ').length <= 0.25, `heard "${heard}"`);
  const seconds = (0.5 + clips.reduce((n, clip) => n + speech(clip).length / kRate + 1.2, 0));
  let last = 0;
  for (const final of finals) {
    assert.ok(final.start >= last && final.end > final.start, JSON.stringify(final));
    assert.equal(final.words.map((w) => w.word).join(' '), final.text);
    for (const word of final.words) assert.ok(word.start >= final.start && word.end <= final.end + 1e-3);
    last = final.end;
  }
  assert.ok(last <= seconds + 0.05, 'times fall within the audio sent');
});

test('a WAV stream at 48 kHz in stereo is read, downmixed and resampled', async () => {
  const mono = concat([silence(0.3), speech('say_4.wav'), silence(1.0)]);
  const samples = new Int16Array(mono.length * 3 * 2);
  for (let i = 0; i < mono.length * 3; i++) {
    const at = i / 3, lo = Math.floor(at), hi = Math.min(lo + 1, mono.length - 1);
    const value = Math.round(mono[lo] + (mono[hi] - mono[lo]) * (at - lo));
    samples[2 * i] = value;
    samples[2 * i + 1] = value;
  }
  const header = Buffer.alloc(44);
  header.write('RIFF', 0); header.writeUInt32LE(0xffffffff, 4); header.write('WAVE', 8);
  header.write('fmt ', 12); header.writeUInt32LE(16, 16); header.writeUInt16LE(1, 20);
  header.writeUInt16LE(2, 22); header.writeUInt32LE(48000, 24); header.writeUInt32LE(48000 * 4, 28);
  header.writeUInt16LE(4, 32); header.writeUInt16LE(16, 34);
  header.write('data', 36); header.writeUInt32LE(0xffffffff, 40);
  const stream = open('encoding=wav');
  await stream.opened;
  // The header split across frames, the samples in frames of an odd size,
  // sent at twice real time: braid takes the next frame only when it is done.
  stream.socket.send(header.subarray(0, 20));
  await send(stream.socket, Buffer.concat([header.subarray(20), bytes(samples)]), 3841, 10);
  const { code, messages } = await stream.closed;
  assert.equal(code, 1000);
  const finals = messages.filter((m) => m.type === 'final');
  assert.equal(finals.length, 1, JSON.stringify(messages));
  assert.ok(wordErrors(expected['say_4.wav'], finals[0].text) <= 1, finals[0].text);
});

test('refusals before the handshake are JSON errors with their status', async () => {
  const plain = await fetch(url().replace('ws:', 'http:'));
  assert.equal(plain.status, 400);
  assert.match((await plain.json()).error, /WebSocket/);
  const cases = [
    ['encoding=mp3', 400, /encoding 'mp3'/],
    ['sample_rate=fast', 400, /not an integer/],
    ['sample_rate=1000', 400, /outside/],
    ['channels=9', 400, /channels/],
    ['model=nosuch', 404, /nosuch/],
    ['model=clip-text', 400, /cannot recognise a live stream/],
  ];
  for (const [query, status, message] of cases) {
    const stream = open(query);
    const error = await stream.opened.then(() => null, (e) => e);
    assert.ok(error, query);
    assert.equal(error.status, status, query);
    assert.match(JSON.parse(error.body).error, message, query);
    stream.socket.terminate();
  }
});

test('bad frames get an error message and a close code', async () => {
  const text = open();
  await text.opened;
  text.socket.send('hello');
  let closed = await text.closed;
  assert.equal(closed.code, 1003);
  assert.match(closed.messages[0].error, /text frame must be JSON/);

  const wav = open('encoding=wav');
  await wav.opened;
  wav.socket.send(Buffer.from('this is not a WAV header at all'));
  closed = await wav.closed;
  assert.equal(closed.code, 1003);
  assert.match(closed.messages[0].error, /WAV header/);

  const big = open();
  await big.opened;
  big.socket.send(Buffer.alloc(300 * 1024));
  closed = await big.closed;
  assert.equal(closed.code, 1009, 'a frame over 256 KiB is too big');
});

// Opens a stream, waiting while every slot is taken (429): a stream cut off
// gives its slot back once its last piece of audio is recognised.
async function openWhenFree() {
  for (;;) {
    const stream = open();
    const error = await stream.opened.then(() => null, (e) => e);
    if (!error) return stream;
    assert.equal(error.status, 429, error.body);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test('a client that stops sending is closed with 1008, and one held back by braid is not', async () => {
  const quiet = open();
  await quiet.opened;
  quiet.socket.send(bytes(silence(0.1)));
  const closed = await quiet.closed;
  assert.equal(closed.code, 1008);
  assert.match(closed.reason, /no frame for 2 s/);
  // 8 s of audio sent at once: braid reads it a frame at a time as it
  // recognises it, so the client waits on TCP, not idle.
  const busy = open();
  await busy.opened;
  const audio = bytes(concat(Array.from({ length: 3 }, () => [speech('say_2.wav'), silence(0.8)]).flat()));
  await send(busy.socket, audio, 640, 0);
  const done = await busy.closed;
  assert.equal(done.code, 1000);
  assert.equal(done.messages.filter((m) => m.type === 'final').length, 3);
});

test('streams cut off mid-utterance give their slots back; past the cap a stream is refused', async () => {
  const audio = bytes(concat([silence(0.2), speech('say_1.wav')]));
  for (let i = 0; i < 4; i++) {
    const stream = await openWhenFree();
    for (let at = 0; at < audio.length / 2; at += 6400) stream.socket.send(audio.subarray(at, at + 6400));
    stream.socket.terminate();
    await stream.closed;
  }
  const held = [await openWhenFree(), await openWhenFree()];
  const third = open();
  const error = await third.opened.then(() => null, (e) => e);
  assert.equal(error?.status, 429);
  assert.match(JSON.parse(error.body).error, /all 2 live streams are in use/);
  for (const stream of held) stream.socket.send(JSON.stringify({ type: 'end' }));
  for (const stream of held) assert.equal((await stream.closed).code, 1000);
  const health = await fetch(`http://127.0.0.1:${server.http}/v2/health/ready`);
  assert.equal(health.status, 200);
  // Every stream's slot comes back; decoders are kept for reuse, never more
  // than the cap.
  const metric = (text, name) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
  let scrape;
  do {
    scrape = await (await fetch(`http://127.0.0.1:${server.metrics}/metrics`)).text();
  } while (metric(scrape, 'braid_live_streams') !== 0 && await new Promise((resolve) => setTimeout(resolve, 50, true)));
  assert.equal(metric(scrape, 'braid_live_streams_max'), 2);
  assert.ok(metric(scrape, 'braid_live_streams_total\\{result="refused"\\}') >= 1, scrape);
  assert.ok(metric(scrape, 'braid_live_streams_total\\{result="opened"\\}') >= 6, scrape);
  assert.ok(metric(scrape, 'braid_live_decoders') <= 2, scrape);
  assert.ok(metric(scrape, 'braid_live_utterances_total') >= 4, scrape);
  assert.ok(metric(scrape, 'braid_live_audio_seconds_total') > 10, scrape);
});

test('SIGTERM during a stream: the utterance under way is finished, then 1001', async () => {
  const own = await startBraid(process.env.BRAID_BINARY);
  const socket = new WebSocket(`ws://127.0.0.1:${own.http}/v1/audio/transcriptions/stream`);
  const messages = [];
  const closed = new Promise((resolve) => socket.once('close', (code) => resolve(code)));
  const firstPartial = new Promise((resolve) => socket.on('message', (data) => {
    const message = JSON.parse(data.toString());
    messages.push(message);
    if (message.type === 'partial') resolve();
  }));
  await new Promise((resolve) => socket.once('open', resolve));
  const audio = bytes(concat([silence(0.3), speech('say_5.wav'), speech('say_5.wav')]));
  let at = 0;
  const sender = setInterval(() => {
    if (at < audio.length && socket.readyState === WebSocket.OPEN) socket.send(audio.subarray(at, at += 640));
  }, 20);
  await firstPartial;
  const exited = own.stop();
  assert.equal(await closed, 1001);
  clearInterval(sender);
  assert.equal(await exited, 0);
  const finals = messages.filter((m) => m.type === 'final');
  assert.equal(finals.length, 1, JSON.stringify(messages));
  assert.ok(finals[0].text.length > 0);
});
