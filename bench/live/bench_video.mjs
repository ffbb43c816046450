// bench/live: live video frames (/v1/video/stream) from a real client (`ws`).
//   node bench/live/bench_video.mjs --port P --fixtures DIR [--frames 200]
// Prints markdown: frames of one unchanged scene read per second (a decode
// and a comparison each, sent back to back: braid reads a frame when it is
// done with the last), and for frames that each start a new scene the time
// from sending one to its result: the scene check alone, with OCR, and with
// OCR and the CLIP embedding at once, each for images braid has not seen
// (the fixtures' 36 text images, half to each) and for images seen before
// (answered from the result cache). Run it on a fresh server.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    fixtures: { type: 'string' },
    frames: { type: 'string', default: '200' },
  },
});
const frames = Number(args.frames);
const images = readFileSync(`${args.fixtures}/images.tsv`, 'utf8').trim().split('\n')
  .map((line) => readFileSync(`${args.fixtures}/${line.split('\t')[0]}`));
const half = images.length / 2;
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor((s.length - 1) / 2)]; };

function connect(query) {
  const socket = new WebSocket(`ws://127.0.0.1:${args.port}/v1/video/stream?${query}`);
  const closed = new Promise((resolve) => socket.once('close', resolve));
  return new Promise((resolve, reject) => {
    socket.once('open', () => resolve({ socket, closed }));
    socket.once('error', reject);
  });
}

// One scene, `frames` times, back to back: frames read per second.
async function unchanged() {
  const { socket, closed } = await connect('fps=30');
  const start = performance.now();
  for (let i = 0; i < frames; i++) socket.send(images[0]);
  socket.send(JSON.stringify({ type: 'end' }));
  await closed;
  return frames / ((performance.now() - start) / 1000);
}

// `frames` (each a new scene), one at a time: milliseconds from sending a
// frame to its result.
async function keyFrames(query, list) {
  const { socket, closed } = await connect(query);
  const times = [];
  for (const frame of list) {
    const result = new Promise((resolve) => socket.once('message', resolve));
    const start = performance.now();
    socket.send(frame);
    await result;
    times.push(performance.now() - start);
  }
  socket.send(JSON.stringify({ type: 'end' }));
  await closed;
  return times;
}

await unchanged();  // warm: the decoders and the pool
const rate = await unchanged();
const bare = await keyFrames('ocr=false&embed=false', images);
const ocrNew = await keyFrames('embed=false', images.slice(0, half));
const bothNew = await keyFrames('', images.slice(half));
const ocrSeen = await keyFrames('embed=false', images.slice(0, half));
const bothSeen = await keyFrames('', images.slice(half));
const row = (label, times) => console.log(`| ${label} | ${median(times).toFixed(1)} ms | ${Math.max(...times).toFixed(1)} ms |`);
console.log('### Live video frames');
console.log();
console.log(`Frames of one unchanged scene read per second (${frames} sent back to back; each is decoded and compared): **${rate.toFixed(0)}**`);
console.log();
console.log('| new-scene frame → its result | p50 | max |');
console.log('|---|---:|---:|');
row(`scene check only (${images.length} frames)`, bare);
row(`with OCR, images not seen before (${half})`, ocrNew);
row(`with OCR and the CLIP embedding, not seen before (${half})`, bothNew);
row('with OCR, seen before (result cache)', ocrSeen);
row('with OCR and the CLIP embedding, seen before', bothSeen);
console.log();
