// bench/live: live transcription over the WebSocket, measured from a real
// client (`ws`) that sends flite speech in 20 ms frames on a real-time
// schedule, as a microphone would; with --transport grpc the same audio goes
// as a sequence on gRPC ModelStreamInfer (@grpc/grpc-js), one call per
// stream, 20 ms per request.
//   node bench/live/bench_live.mjs --port P --metrics P --pid PID --fixtures DIR [--levels 1,4,16,64]
//        [--transport ws|grpc --grpc P --proto FILE]
// Prints markdown: the delay from the first spoken word to the first
// partial, the final word error rate beside the same clips transcribed whole
// by /v1/audio/transcriptions, and for growing numbers of simultaneous
// streams how far the finals fall behind real time and the server's memory.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import WebSocket from 'ws';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    metrics: { type: 'string' },
    pid: { type: 'string' },
    fixtures: { type: 'string' },
    levels: { type: 'string', default: '1,2,4,6,8,16,32,64' },
    transport: { type: 'string', default: 'ws' },
    grpc: { type: 'string' },
    proto: { type: 'string' },
  },
});
const kRate = 16000;
const kFrame = 320;  // 20 ms
const base = `127.0.0.1:${args.port}`;

const rows = readFileSync(`${args.fixtures}/speech.tsv`, 'utf8').trim().split('\n').map((line) => line.split('\t'));
const clip = (file) => {
  const wav = readFileSync(`${args.fixtures}/${file}`);
  return new Int16Array(wav.buffer.slice(wav.byteOffset + 44, wav.byteOffset + wav.length));
};
const silence = (seconds) => new Int16Array(Math.round(seconds * kRate));
const concat = (parts) => {
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) { out.set(part, at); at += part.length; }
  return out;
};
// The first 10 ms whose level is within 30 dB of the clip's loudest: where
// the speaker starts.
const onset = (samples) => {
  const rms = [];
  for (let at = 0; at + 160 <= samples.length; at += 160) {
    let sum = 0;
    for (let i = at; i < at + 160; i++) sum += samples[i] * samples[i];
    rms.push(Math.sqrt(sum / 160));
  }
  const loudest = Math.max(...rms);
  return rms.findIndex((r) => r >= loudest / 31.6) * 160 / kRate;
};
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN; };
const words = (text) => text.toLowerCase().replace(/[^a-z0-9' ]/g, ' ').split(/\s+/).filter(Boolean);
function editDistance(a, b) {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next[j] = Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    row = next;
  }
  return row[b.length];
}
const rss = () => {
  const status = readFileSync(`/proc/${args.pid}/status`, 'utf8');
  const field = (name) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)[1]) / 1024;
  return { now: field('VmRSS'), peak: field('VmHWM') };
};

// Calls send(bytes of frame i) every 20 ms on a real-time schedule from t0,
// then end(); stops when open() turns false.
function realTime(bytes, t0, open, send, end) {
  let frame = 0;
  const next = () => {
    if (!open()) return;
    const at = frame * kFrame * 2;
    if (at >= bytes.length) return end();
    send(bytes.subarray(at, at + kFrame * 2), frame);
    frame += 1;
    setTimeout(next, Math.max(0, t0 + frame * 20 - performance.now()));
  };
  next();
}

// Streams `samples` in real time over the WebSocket; resolves with each
// message and the time (ms since the first frame was sent) it arrived.
function streamWs(samples) {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`ws://${base}/v1/audio/transcriptions/stream?sample_rate=${kRate}`);
    const messages = [];
    let t0 = 0;
    socket.on('unexpected-response', (request, response) => reject(new Error(`HTTP ${response.statusCode}`)));
    socket.on('error', reject);
    socket.on('message', (data) => messages.push({ at: performance.now() - t0, ...JSON.parse(data.toString()) }));
    socket.on('close', (code) => resolve({ code, messages }));
    socket.on('open', () => {
      t0 = performance.now();
      realTime(Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength), t0,
               () => socket.readyState === WebSocket.OPEN, (frame) => socket.send(frame),
               () => socket.send(JSON.stringify({ type: 'end' })));
    });
  });
}

let client;
let sequences = 0;
// The same as one sequence on a ModelStreamInfer call.
function streamGrpc(samples) {
  client ??= (() => {
    const definition = protoLoader.loadSync(args.proto,
      { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true });
    const { GRPCInferenceService } = grpc.loadPackageDefinition(definition).inference;
    return new GRPCInferenceService(`127.0.0.1:${args.grpc}`, grpc.credentials.createInsecure());
  })();
  return new Promise((resolve, reject) => {
    const call = client.ModelStreamInfer();
    const messages = [];
    const id = ++sequences;
    const t0 = performance.now();
    let open = true;
    const value = (p) => p && p[p.parameter_choice];
    call.on('data', (response) => {
      if (response.error_message) return reject(new Error(response.error_message));
      const out = response.infer_response;
      const event = value(out.parameters.event);
      if (!event) return call.end();
      const raw = out.raw_output_contents[out.outputs.findIndex((o) => o.name === 'text')];
      messages.push({ at: performance.now() - t0, type: event, text: raw.subarray(4).toString(),
                      end: value(out.parameters.end) });
    });
    call.on('error', () => {});
    call.on('status', (status) => { open = false; resolve({ code: status.code, messages }); });
    const piece = (bytes, frame, end = false) => ({
      model_name: 'asr', id: `${frame}`,
      parameters: { sequence_id: { int64_param: id }, sequence_start: { bool_param: frame === 0 },
                    sequence_end: { bool_param: end } },
      inputs: [{ name: 'audio', datatype: 'UINT8', shape: [bytes.length] }],
      raw_input_contents: [bytes],
    });
    const bytes = Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength);
    realTime(bytes, t0, () => open, (chunk, frame) => call.write(piece(chunk, frame)),
             () => call.write(piece(Buffer.alloc(0), bytes.length, true)));
  });
}

const stream = args.transport === 'grpc' ? streamGrpc : streamWs;

async function wholeFile(file) {
  const form = new FormData();
  form.append('model', 'asr');
  form.append('file', new Blob([readFileSync(`${args.fixtures}/${file}`)]), 'clip.wav');
  const response = await fetch(`http://${base}/v1/audio/transcriptions`, { method: 'POST', body: form });
  return (await response.json()).text;
}

// 1. Delay to the first partial, and the finals' word errors.
const lead = 0.5;
const firstPartial = [];
let liveErrors = 0, wholeErrors = 0, total = 0;
let cold = NaN;
for (let round = 0; round < 2; round++) {
  for (const [file, text] of rows) {
    const samples = clip(file);
    const { messages } = await stream(concat([silence(lead), samples, silence(1.0)]));
    const spoken = (lead + onset(samples)) * 1000;
    const partial = messages.find((m) => m.type === 'partial');
    const delay = partial ? partial.at - spoken : NaN;
    if (Number.isNaN(cold)) { cold = delay; continue; }  // the first stream loads a decoder
    if (round === 0) continue;
    firstPartial.push(delay);
    const heard = messages.filter((m) => m.type === 'final').map((m) => m.text).join(' ');
    liveErrors += editDistance(words(text), words(heard));
    wholeErrors += editDistance(words(text), words(await wholeFile(file)));
    total += words(text).length;
  }
}
const liveWer = liveErrors / total, wholeWer = wholeErrors / total;
console.log(`### One stream at a time (warm), ${args.transport === 'grpc' ? 'gRPC sequences' : 'WebSocket'}`);
console.log();
console.log('| figure | value | goal |');
console.log('|---|---:|---|');
console.log(`| first partial after the first spoken word, p50 of ${firstPartial.length} clips | ${median(firstPartial).toFixed(0)} ms | ≤ 300 ms |`);
console.log(`| first partial, worst clip | ${Math.max(...firstPartial).toFixed(0)} ms | |`);
console.log(`| first partial of the server's first stream (loads a decoder) | ${cold.toFixed(0)} ms | |`);
console.log(`| word error rate, live finals | ${(100 * liveWer).toFixed(1)} % (${liveErrors} of ${total} words) | |`);
console.log(`| word error rate, the same clips whole (/v1/audio/transcriptions) | ${(100 * wholeWer).toFixed(1)} % (${wholeErrors} of ${total}) | |`);
console.log(`| live − whole | ${(100 * (liveWer - wholeWer)).toFixed(1)} points | ≤ +2 |`);
console.log();

// 2. Streams at once: each sends three clips with pauses (10.6 s of audio).
const program = concat([silence(0.5), ...rows.slice(0, 3).flatMap(([file]) => [clip(file), silence(1.2)])]);
const seconds = program.length / kRate;
console.log(`### Simultaneous real-time streams, ${args.transport === 'grpc' ? 'gRPC sequences' : 'WebSocket'} (${seconds.toFixed(1)} s of audio each: three clips with 1.2 s pauses)`);
console.log();
console.log('| streams | finals | lag p50 | lag max | streams > 1 s behind | refused | RSS after | RSS peak |');
console.log('|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const level of args.levels.split(',').map(Number)) {
  // Warm: every stream's decoder loaded before the timed round, whose
  // streams start once the warm ones have given their slots back.
  await Promise.all(Array.from({ length: level }, () => stream(silence(0.2)).catch(() => null)));
  while (!/^braid_live_streams 0$/m.test(await (await fetch(`http://127.0.0.1:${args.metrics}/metrics`)).text()))
    await new Promise((resolve) => setTimeout(resolve, 50));
  const results = await Promise.all(Array.from({ length: level }, (_, i) =>
    new Promise((resolve) => setTimeout(resolve, (20 * i) / level)).then(() => stream(program)).catch((e) => ({ error: e }))));
  const lags = [];
  let behind = 0, refused = 0, finals = 0;
  for (const result of results) {
    if (result.error) { refused++; continue; }
    let worst = 0;
    for (const m of result.messages.filter((m) => m.type === 'final')) {
      finals++;
      const lag = m.at - m.end * 1000;
      lags.push(lag);
      worst = Math.max(worst, lag);
    }
    if (worst > 1000) behind++;
  }
  const memory = rss();
  console.log(`| ${level} | ${finals} | ${median(lags).toFixed(0)} ms | ${Math.max(...lags).toFixed(0)} ms | ${behind} | ${refused} | ${memory.now.toFixed(0)} MB | ${memory.peak.toFixed(0)} MB |`);
}
console.log();
client?.close();
console.log('Lag: when a final arrived, minus when its utterance ended in the audio (the endpoint waits for 600 ms of silence, so a final cannot come sooner than that).');
