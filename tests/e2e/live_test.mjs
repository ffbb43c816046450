// Live transcription over a WebSocket with the `ws` npm client: flite speech
// sent in 20 ms frames as a microphone would, partials before the end, finals
// per utterance, resampled WAV streams, refusals, disconnects and the drain;
// the same as sequences on gRPC ModelStreamInfer with @grpc/grpc-js; video
// frames whose scene changes are read by OCR and embedded; and live reports
// that put both on one timeline.
//   node --test tests/e2e/live_test.mjs
//   (BRAID_BINARY, BRAID_FIXTURES and BRAID_PROTO set by CTest)
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import WebSocket from 'ws';
import { startBraid } from './serve.mjs';

const fixtures = process.env.BRAID_FIXTURES;
const kRate = 16000;
let server;
let grpcClient;

before(async () => {
  server = await startBraid(process.env.BRAID_BINARY, ['--live-streams', '2', '--live-idle-seconds', '2']);
  const definition = protoLoader.loadSync(process.env.BRAID_PROTO,
    { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true });
  const inference = grpc.loadPackageDefinition(definition).inference;
  grpcClient = new inference.GRPCInferenceService(`127.0.0.1:${server.grpc}`, grpc.credentials.createInsecure());
});

after(async () => {
  grpcClient.close();
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

const metric = (text, name) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);

// The metrics once no live stream is open (a stream's slot comes back when
// its last piece of audio is recognised).
async function liveStreamsClosed() {
  let scrape = '';
  for (let tries = 0; tries < 600; tries++) {
    scrape = await (await fetch(`http://127.0.0.1:${server.metrics}/metrics`)).text();
    if (metric(scrape, 'braid_live_streams') === 0 && metric(scrape, 'braid_live_video_streams') === 0) return scrape;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.fail(`live streams still open after 30 s:\n${scrape}`);
}

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
  // Both slots taken at once, once the cut-off streams have given theirs
  // back: a held stream that waited alone for the other slot could pass
  // --live-idle-seconds without audio and be closed.
  await liveStreamsClosed();
  const held = [open(), open()];
  await Promise.all(held.map((stream) => stream.opened));
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
  const scrape = await liveStreamsClosed();
  assert.equal(metric(scrape, 'braid_live_streams_max'), 2);
  assert.ok(metric(scrape, 'braid_live_streams_total\\{result="refused"\\}') >= 1, scrape);
  assert.ok(metric(scrape, 'braid_live_streams_total\\{result="opened"\\}') >= 6, scrape);
  assert.ok(metric(scrape, 'braid_live_decoders') <= 2, scrape);
  assert.ok(metric(scrape, 'braid_live_utterances_total') >= 4, scrape);
  assert.ok(metric(scrape, 'braid_live_audio_seconds_total') > 10, scrape);
});

// KServe BYTES raw contents: a 4-byte little-endian length, then the bytes.
const rawBytes = (buffer) => {
  const length = Buffer.alloc(4);
  length.writeUInt32LE(buffer.length);
  return Buffer.concat([length, buffer]);
};
const readStrings = (raw) => {
  const out = [];
  for (let at = 0; at < raw.length; at += 4 + raw.readUInt32LE(at))
    out.push(raw.subarray(at + 4, at + 4 + raw.readUInt32LE(at)).toString());
  return out;
};
const value = (parameter) => parameter && parameter[parameter.parameter_choice];

// A ModelStreamInfer request carrying `audio` of sequence `id`.
function piece(id, audio, { start = false, end = false, requestId = '', model = 'asr', parameters = {} } = {}) {
  return {
    model_name: model, id: requestId,
    parameters: {
      sequence_id: typeof id === 'number' ? { int64_param: id } : { string_param: id },
      ...(start ? { sequence_start: { bool_param: true } } : {}),
      ...(end ? { sequence_end: { bool_param: true } } : {}),
      ...parameters,
    },
    inputs: [{ name: 'audio', datatype: 'BYTES', shape: [1] }],
    raw_input_contents: [rawBytes(audio)],
  };
}

// What one response says.
function readResponse(response) {
  const out = response.infer_response;
  const tensors = Object.fromEntries(out.outputs.map((o, i) => [o.name, out.raw_output_contents[i]]));
  const p = out.parameters;
  return {
    error: response.error_message,
    id: out.id,
    sequence: value(p.sequence_id),
    event: value(p.event),
    start: value(p.start),
    end: value(p.end),
    text: tensors.text && readStrings(tensors.text)[0],
    words: tensors.words && readStrings(tensors.words),
    timings: tensors.timings && Array.from({ length: tensors.timings.length / 4 }, (_, i) => tensors.timings.readFloatLE(4 * i)),
    last: value(p.sequence_end) === true && value(p.triton_final_response) === true,
  };
}

// A ModelStreamInfer call: `until` resolves with the first response that
// matches (the test waits for events, not for time to pass); `status` with
// the call's status.
function sequenceCall(client = grpcClient, metadata = new grpc.Metadata()) {
  const call = client.ModelStreamInfer(metadata);
  const responses = [];
  const waiters = new Set();
  call.on('data', (response) => {
    responses.push(readResponse(response));
    for (const check of [...waiters]) check();
  });
  call.on('error', () => {});
  const status = new Promise((resolve) => call.on('status', resolve));
  const until = (predicate, what, ms = 120000) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => { waiters.delete(check); reject(new Error(`no ${what} within ${ms} ms: ${JSON.stringify(responses)}`)); }, ms);
    function check() {
      const found = responses.find(predicate);
      if (!found) return;
      clearTimeout(timer);
      waiters.delete(check);
      resolve(found);
    }
    waiters.add(check);
    check();
  });
  return { call, responses, status, until };
}

test('gRPC: two live sequences on one ModelStreamInfer call, partials while spoken, finals with times', async () => {
  await liveStreamsClosed();
  const stream = sequenceCall();
  const audio = { 7: bytes(concat([silence(0.5), speech('say_0.wav'), silence(1.2)])),
                  second: bytes(concat([silence(0.3), speech('say_4.wav'), silence(1.2)])) };
  const frames = Math.max(audio[7].length, audio.second.length) / 640;
  // 20 ms of each sequence every 20 ms, as two microphones would send them;
  // the first half, then (once a partial has come) the rest.
  const sendFrames = async (from, to) => {
    for (let frame = from; frame < to; frame++) {
      for (const id of [7, 'second']) {
        const chunk = audio[id].subarray(frame * 640, (frame + 1) * 640);
        const last = (frame + 1) * 640 >= audio[id].length;
        if (chunk.length === 0) continue;
        stream.call.write(piece(id, chunk, { start: frame === 0, end: last, requestId: `${id}-${frame}` }));
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  const half = Math.floor(frames / 2);
  await sendFrames(0, half);
  const partial = await stream.until((r) => r.sequence === 7 && r.event === 'partial', 'partial');
  assert.ok(partial.text.length > 0 && partial.id.startsWith('7-'), JSON.stringify(partial));
  await sendFrames(half, Math.ceil(frames));
  await stream.until((r) => r.sequence === 7 && r.last, 'end of sequence 7');
  await stream.until((r) => r.sequence === 'second' && r.last, 'end of sequence second');
  stream.call.end();
  assert.equal((await stream.status).code, grpc.status.OK);
  assert.deepEqual(stream.responses.filter((r) => r.error), []);
  for (const [id, clip] of [[7, 'say_0.wav'], ['second', 'say_4.wav']]) {
    const finals = stream.responses.filter((r) => r.sequence === id && r.event === 'final');
    assert.equal(finals.length, 1, JSON.stringify(finals));
    const [final] = finals;
    assert.ok(wordErrors(expected[clip], final.text) / expected[clip].split(' ').length <= 0.25, final.text);
    assert.equal(final.words.join(' '), final.text);
    assert.equal(final.timings.length, 2 * final.words.length);
    for (let i = 0; i < final.timings.length; i += 2)
      assert.ok(final.timings[i] >= final.start - 1e-3 && final.timings[i + 1] <= final.end + 1e-3, JSON.stringify(final));
    assert.ok(final.end <= audio[id].length / 2 / kRate + 0.05);
    const last = stream.responses.find((r) => r.sequence === id && r.last);
    assert.equal(last.id, `${id}-${Math.ceil(audio[id].length / 640) - 1}`);
  }
});

test('gRPC: bad sequence requests get error responses; a half-closed call ends its open sequence', async () => {
  await liveStreamsClosed();
  const unary = await new Promise((resolve) => grpcClient.ModelInfer(piece(1, Buffer.alloc(640), { start: true }),
    (error) => resolve(error)));
  assert.equal(unary?.code, grpc.status.INVALID_ARGUMENT);
  assert.match(unary.details, /ModelStreamInfer/);

  const stream = sequenceCall();
  const cases = [
    [piece(99, Buffer.alloc(640), { requestId: 'unopened' }), /sequence 99 is not open/],
    [piece(5, Buffer.alloc(640), { start: true, requestId: 'mp3', parameters: { encoding: { string_param: 'mp3' } } }), /encoding 'mp3'/],
    [piece(6, Buffer.alloc(640), { start: true, requestId: 'text', model: 'clip-text' }), /cannot recognise a live stream/],
    [piece('', Buffer.alloc(640), { start: true, requestId: 'empty-id' }), /sequence_id/],
    [{ ...piece(4, Buffer.alloc(8), { start: true, requestId: 'floats' }), inputs: [{ name: 'audio', datatype: 'FP32', shape: [2] }], raw_input_contents: [Buffer.alloc(8)] }, /BYTES or UINT8/],
  ];
  for (const [request] of cases) stream.call.write(request);
  for (const [request, message] of cases) {
    const response = await stream.until((r) => r.id === request.id, request.id);
    assert.match(response.error, message, request.id);
  }
  // Sequence 8: speech in UINT8 pieces, never ended by the client.
  const speech8 = bytes(concat([silence(0.3), speech('say_3.wav')]));
  stream.call.write({ ...piece(8, Buffer.alloc(0), { start: true, requestId: 'open-8' }),
                      inputs: [{ name: 'audio', datatype: 'UINT8', shape: [0] }], raw_input_contents: [Buffer.alloc(0)] });
  stream.call.write(piece(8, Buffer.alloc(640), { start: true, requestId: 'again' }));
  assert.match((await stream.until((r) => r.id === 'again', 'again')).error, /sequence 8 is already open/);
  stream.call.write(piece(9, Buffer.alloc(640), { start: true, requestId: 'open-9' }));
  stream.call.write(piece(10, Buffer.alloc(640), { start: true, requestId: 'open-10' }));
  assert.match((await stream.until((r) => r.id === 'open-10', 'open-10')).error, /all 2 live streams are in use/);
  for (let at = 0; at < speech8.length; at += 6400) {
    const chunk = speech8.subarray(at, at + 6400);
    stream.call.write({ ...piece(8, chunk, { requestId: `8-${at}` }),
                        inputs: [{ name: 'audio', datatype: 'UINT8', shape: [chunk.length] }], raw_input_contents: [chunk] });
  }
  stream.call.end();
  assert.equal((await stream.status).code, grpc.status.OK);
  const finals = stream.responses.filter((r) => r.sequence === 8 && r.event === 'final');
  assert.equal(finals.length, 1, JSON.stringify(stream.responses));
  assert.ok(wordErrors(expected['say_3.wav'], finals[0].text) <= 2, finals[0].text);
  assert.ok(stream.responses.some((r) => r.sequence === 8 && r.last));
  assert.ok(stream.responses.some((r) => r.sequence === 9 && r.last));
  await liveStreamsClosed();
});

const image = (name) => readFileSync(`${fixtures}/images/${name}`);
const imageText = Object.fromEntries(readFileSync(`${fixtures}/images.tsv`, 'utf8').trim().split('\n')
  .map((line) => line.split('\t')).map(([file, text]) => [file.replace('images/', ''), text.toLowerCase()]));
const videoUrl = (query) => `ws://127.0.0.1:${server.http}/v1/video/stream?${query}`;

test('gRPC: a sequence without audio for --live-idle-seconds is ended; an ended id starts again at once', async () => {
  await liveStreamsClosed();
  const stream = sequenceCall();
  stream.call.write(piece(21, Buffer.alloc(640), { start: true, requestId: 'quiet' }));
  const idle = await stream.until((r) => r.error && r.sequence === 21, 'idle error');
  assert.match(idle.error, /sequence 21 ended: no audio for 2 s/);
  await stream.until((r) => r.sequence === 21 && r.last, 'end of the idle sequence');
  await liveStreamsClosed();
  // The second start comes before the first sequence's end is answered
  // (both fit the cap of 2).
  for (let round = 0; round < 2; round++) {
    stream.call.write(piece(22, Buffer.alloc(640), { start: true, requestId: `start-${round}` }));
    stream.call.write(piece(22, Buffer.alloc(640), { end: true, requestId: `end-${round}` }));
  }
  await stream.until((r) => r.id === 'end-1' && r.last, 'the second end');
  stream.call.end();
  assert.equal((await stream.status).code, grpc.status.OK);
  assert.deepEqual(stream.responses.filter((r) => r.error && r.sequence !== 21), []);
  assert.equal(stream.responses.filter((r) => r.sequence === 22 && r.last).length, 2);
});

test('video frames: a result per scene change with OCR text, an embedding and the capture time', async () => {
  const socket = new WebSocket(videoUrl('fps=2'));
  const messages = [];
  socket.on('message', (data) => messages.push(JSON.parse(data.toString())));
  const closed = new Promise((resolve) => socket.once('close', (code) => resolve(code)));
  await new Promise((resolve, reject) => { socket.once('open', resolve); socket.once('error', reject); });
  const slide = ['text_0_DejaVu-Sans_40.png', 'text_1_DejaVu-Sans_40.png', 'text_2_DejaVu-Sans_40.jpg'];
  // Three frames of the first slide at 2 fps (times from their index), then
  // frames with capture times: the second slide twice, the third once.
  for (let i = 0; i < 3; i++) socket.send(image(slide[0]));
  for (const [t, name] of [[10, slide[1]], [10.5, slide[1]], [11.25, slide[2]]]) {
    socket.send(JSON.stringify({ type: 'frame', t }));
    socket.send(image(name));
  }
  socket.send(JSON.stringify({ type: 'end' }));
  assert.equal(await closed, 1000);
  assert.deepEqual(messages.map((m) => [m.type, m.index, m.t]),
    [['scene', 0, 0], ['scene', 3, 10], ['scene', 5, 11.25]], JSON.stringify(messages.map((m) => m.text)));
  messages.forEach((scene, i) => {
    const reference = imageText[slide[i]];
    assert.ok(wordErrors(reference, scene.text.toLowerCase().replace(/[^a-z0-9 ]/g, ' ')) <= 2, scene.text);
    assert.equal(scene.change, 1);
    assert.ok(scene.embedding.length >= 64);
    assert.ok(Math.abs(Math.hypot(...scene.embedding) - 1) < 1e-3);
  });
  assert.notDeepEqual(messages[0].embedding, messages[1].embedding);
  const scrape = await (await fetch(`http://127.0.0.1:${server.metrics}/metrics`)).text();
  assert.ok(metric(scrape, 'braid_live_video_frames_total\\{kind="key"\\}') >= 3, scrape);
  assert.ok(metric(scrape, 'braid_live_video_frames_total\\{kind="other"\\}') >= 3, scrape);
});

test('video: bad parameters are refused, bad frames closed with an error', async () => {
  for (const [query, message] of [['fps=0', /fps/], ['scene_threshold=2', /scene_threshold/], ['ocr=maybe', /true or false/]]) {
    const socket = new WebSocket(videoUrl(query));
    const status = await new Promise((resolve) => {
      socket.once('unexpected-response', (request, response) => {
        let body = '';
        response.on('data', (chunk) => { body += chunk; });
        response.on('end', () => resolve({ code: response.statusCode, body }));
      });
      socket.once('open', () => resolve({ code: 101 }));
      socket.on('error', () => {});
    });
    assert.equal(status.code, 400, query);
    assert.match(JSON.parse(status.body).error, message);
  }
  for (const [frame, message] of [[Buffer.from('not an image at all'), /image|format/i],
                                  [JSON.stringify({ type: 'frame' }), /capture time/]]) {
    const socket = new WebSocket(videoUrl('embed=false'));
    const messages = [];
    socket.on('message', (data) => messages.push(JSON.parse(data.toString())));
    const closed = new Promise((resolve) => socket.once('close', (code) => resolve(code)));
    await new Promise((resolve) => socket.once('open', resolve));
    socket.send(frame);
    assert.equal(await closed, 1003);
    assert.match(messages[0]?.error, message);
  }
});

// A live report's reader (server-sent events): `chunks` resolves with every
// chunk once the report is done.
async function readReport(eventsUrl) {
  const response = await fetch(`http://127.0.0.1:${server.http}${eventsUrl}`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type'), /text\/event-stream/);
  return { chunks: chunksOf(response) };
}
async function chunksOf(response) {
  const chunks = [];
  let buffer = '';
  const decoder = new TextDecoder();
  for await (const part of response.body) {
    buffer += decoder.decode(part, { stream: true });
    for (let end; (end = buffer.indexOf('\n\n')) >= 0; buffer = buffer.slice(end + 2)) {
      const event = buffer.slice(0, end);
      if (event.startsWith('data: ')) chunks.push(JSON.parse(event.slice(6)));
    }
  }
  return chunks;
}

const postReport = (body) => fetch(`http://127.0.0.1:${server.http}/v1/live/reports`,
  { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

test('live-report: speech and scenes on one timeline, released in time order while input arrives', async () => {
  await liveStreamsClosed();
  const made = await postReport({});
  assert.equal(made.status, 201);
  const report = await made.json();
  assert.match(report.id, /^report-/);
  const { chunks } = await readReport(report.events_url);
  const second = await fetch(`http://127.0.0.1:${server.http}${report.events_url}`);
  assert.equal(second.status, 409, 'one reader at a time');

  const speechStream = open(report.speech_url.split('?')[1]);
  await speechStream.opened;
  const again = open(report.speech_url.split('?')[1]);
  const refused = await again.opened.then(() => null, (e) => e);
  assert.equal(refused?.status, 409);
  assert.match(JSON.parse(refused.body).error, /already has its speech stream/);
  // The speaker reads the first slide, pauses, then the second one; the
  // audio is sent at once (braid reads it as fast as it recognises it) and
  // ended before any frame: the report holds its speech until the video has
  // caught up, so the chunks still come in time order.
  const audio = concat([silence(0.5), speech('say_0.wav'), silence(4.6 - 0.5 - speech('say_0.wav').length / kRate),
                        speech('say_4.wav'), silence(1.2)]);
  await send(speechStream.socket, bytes(audio), 6400, 0);
  assert.equal((await speechStream.closed).code, 1000);

  const video = new WebSocket(`ws://127.0.0.1:${server.http}${report.video_url}&embed=false`);
  const videoClosed = new Promise((resolve) => video.once('close', (code) => resolve(code)));
  await new Promise((resolve) => video.once('open', resolve));
  const slides = ['text_0_DejaVu-Sans_40.png', 'text_4_DejaVu-Sans_40.png'];
  for (const [t, slide] of [[0, 0], [1, 0], [2, 0], [4, 1], [5, 1]]) {
    video.send(JSON.stringify({ type: 'frame', t }));
    video.send(image(slides[slide]));
  }
  video.send(JSON.stringify({ type: 'end' }));
  assert.equal(await videoClosed, 1000);

  const all = await chunks;
  assert.deepEqual(all.map((c) => c.type), ['scene', 'speech', 'scene', 'speech', 'done'], JSON.stringify(all));
  const [scene0, speech0, scene1, speech1, done] = all;
  assert.deepEqual([scene0.t, scene0.index, scene1.t, scene1.index], [0, 0, 4, 3]);
  assert.ok(wordErrors(imageText[slides[0]], scene0.text.toLowerCase()) <= 2, scene0.text);
  assert.ok(wordErrors(expected['say_0.wav'], speech0.text) <= 1, speech0.text);
  assert.ok(wordErrors(expected['say_4.wav'], speech1.text) <= 1, speech1.text);
  assert.ok(speech0.start < 4 && speech1.start >= 4, JSON.stringify([speech0, speech1]));
  assert.equal(speech0.scene, 0);
  assert.equal(speech0.scene_text, scene0.text);
  assert.equal(speech1.scene, 3);
  assert.deepEqual(done, { type: 'done', utterances: 2, scenes: 2 });
  // A late reader gets the whole report.
  assert.deepEqual(await (await readReport(report.events_url)).chunks, all);
});

test('live-report: refusals', async () => {
  await liveStreamsClosed();
  const none = await postReport({ speech: false, video: false });
  assert.equal(none.status, 400);
  assert.equal((await postReport({ speech: 'yes' })).status, 400);
  const missing = open('report=report-nosuch');
  const error = await missing.opened.then(() => null, (e) => e);
  assert.equal(error?.status, 404);
  assert.equal((await fetch(`http://127.0.0.1:${server.http}/v1/live/reports/report-nosuch/events`)).status, 404);
  const speechOnly = await (await postReport({ video: false })).json();
  assert.equal(speechOnly.video_url, null);
  const video = new WebSocket(videoUrl(`report=${speechOnly.id}`));
  const status = await new Promise((resolve) => {
    video.once('unexpected-response', (request, response) => resolve(response.statusCode));
    video.once('open', () => resolve(101));
    video.on('error', () => {});
  });
  assert.equal(status, 409);
});

test('SIGTERM during a stream: the utterance under way is finished, then 1001 (UNAVAILABLE on gRPC)', async () => {
  // Behind an API key: a browser's WebSocket offers it as a subprotocol.
  const own = await startBraid(process.env.BRAID_BINARY, ['--api-key', 'sesame42']);
  const streamUrl = `ws://127.0.0.1:${own.http}/v1/audio/transcriptions/stream`;
  const keyless = new WebSocket(streamUrl);
  const refused = await new Promise((resolve) => {
    keyless.once('unexpected-response', (request, response) => resolve(response.statusCode));
    keyless.on('error', () => {});
  });
  assert.equal(refused, 401);
  const socket = new WebSocket(streamUrl, ['braid', 'bearer.sesame42']);
  const messages = [];
  const closed = new Promise((resolve) => socket.once('close', (code) => resolve(code)));
  const firstPartial = new Promise((resolve) => socket.on('message', (data) => {
    const message = JSON.parse(data.toString());
    messages.push(message);
    if (message.type === 'partial') resolve();
  }));
  await new Promise((resolve) => socket.once('open', resolve));
  assert.equal(socket.protocol, 'braid');
  // The same speech as a gRPC sequence beside it.
  const client = new grpcClient.constructor(`127.0.0.1:${own.grpc}`, grpc.credentials.createInsecure());
  const metadata = new grpc.Metadata();
  metadata.set('authorization', 'Bearer sesame42');
  const stream = sequenceCall(client, metadata);
  const audio = bytes(concat([silence(0.3), speech('say_5.wav'), speech('say_5.wav')]));
  let at = 0;
  const sender = setInterval(() => {
    if (at >= audio.length || socket.readyState !== WebSocket.OPEN) return;
    const chunk = audio.subarray(at, at += 640);
    socket.send(chunk);
    stream.call.write(piece(1, chunk, { start: at === 640, requestId: `${at}` }));
  }, 20);
  await firstPartial;
  await stream.until((r) => r.event === 'partial', 'gRPC partial');
  const exited = own.stop();
  assert.equal(await closed, 1001);
  assert.equal((await stream.status).code, grpc.status.UNAVAILABLE);
  clearInterval(sender);
  client.close();
  assert.equal(await exited, 0);
  const finals = messages.filter((m) => m.type === 'final');
  assert.equal(finals.length, 1, JSON.stringify(messages));
  assert.ok(finals[0].text.length > 0);
  const sequenceFinals = stream.responses.filter((r) => r.event === 'final');
  assert.equal(sequenceFinals.length, 1, JSON.stringify(stream.responses));
  assert.ok(sequenceFinals[0].text.length > 0);
  assert.ok(stream.responses.some((r) => r.last));
});
