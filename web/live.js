// Live transcription in the playground: the microphone streams to
// /v1/audio/transcriptions/stream as it records (16-bit samples at the audio
// context's rate; braid resamples), partial words show greyed while the
// speaker talks and each sentence settles into a final at a pause.
//
// A browser's WebSocket cannot send an Authorization header, so the API key
// goes as the subprotocol "bearer.KEY" beside "braid". For the end-to-end
// test the page keeps what it showed in window.braidLive.
import { apiKey, el } from './common.js';

const button = document.getElementById('listen');
const status = document.getElementById('live-status');
const transcript = document.getElementById('live-transcript');

const live = { state: 'idle', partials: 0, finals: [] };
window.braidLive = live;

function setStatus(state, text) {
  live.state = state;
  status.dataset.state = state;
  status.textContent = text;
}

// The words heard so far: the finals, then the partial under way.
function show(partial) {
  transcript.replaceChildren(
    ...live.finals.map((final) => el('span', { class: 'final', title: `${final.start.toFixed(2)}–${final.end.toFixed(2)} s` }, `${final.text} `)),
    el('span', { class: 'partial' }, partial));
}

async function listen() {
  let microphone;
  try {
    microphone = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1 } });
  } catch (error) {
    button.onclick = start;
    return setStatus('failed', `no microphone: ${error.message}`);
  }
  const context = new AudioContext();
  const rate = context.sampleRate;
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const key = apiKey();
  let socket;
  try {
    socket = new WebSocket(`${scheme}://${location.host}/v1/audio/transcriptions/stream?sample_rate=${rate}`,
      key ? ['braid', `bearer.${key}`] : undefined);
  } catch (error) {
    // A key with characters a subprotocol cannot hold (spaces, '=', '/').
    microphone.getTracks().forEach((track) => track.stop());
    context.close();
    button.onclick = start;
    return setStatus('failed', `cannot connect with this API key: ${error.message}`);
  }
  socket.binaryType = 'arraybuffer';
  const source = context.createMediaStreamSource(microphone);
  const processor = context.createScriptProcessor(2048, 1, 1);
  processor.onaudioprocess = (event) => {
    // Audio the server has not taken yet beyond a second is dropped, not
    // piled up in the browser.
    if (socket.readyState !== WebSocket.OPEN || socket.bufferedAmount > 2 * rate) return;
    const samples = event.inputBuffer.getChannelData(0);
    const pcm = new Int16Array(samples.length);
    for (let i = 0; i < samples.length; i++) pcm[i] = Math.max(-1, Math.min(1, samples[i])) * 32767;
    socket.send(pcm.buffer);
  };
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    processor.disconnect();
    source.disconnect();
    microphone.getTracks().forEach((track) => track.stop());
    context.close();
  };
  socket.onopen = () => {
    source.connect(processor);
    processor.connect(context.destination);
    setStatus('listening', `listening (${rate} Hz)…`);
    button.textContent = 'Stop';
    button.onclick = () => {
      release();
      socket.send(JSON.stringify({ type: 'end' }));
      setStatus('finishing', 'finishing the last sentence…');
      button.disabled = true;
    };
  };
  socket.onmessage = (message) => {
    const event = JSON.parse(message.data);
    if (event.type === 'partial') {
      live.partials += 1;
      show(event.text);
    } else if (event.type === 'final') {
      live.finals.push(event);
      show('');
    } else if (event.type === 'error') {
      setStatus('failed', event.error);
    }
  };
  socket.onclose = (event) => {
    if (live.state !== 'failed') {
      setStatus(event.code === 1000 ? 'done' : 'failed',
        event.code === 1000 ? `done: ${live.finals.length} sentence(s)` : `closed (${event.code}) ${event.reason}`);
    }
    release();
    button.textContent = 'Listen';
    button.disabled = false;
    button.onclick = start;
  };
}

function start() {
  live.finals = [];
  live.partials = 0;
  show('');
  button.onclick = null;
  setStatus('connecting', 'connecting…');
  listen();
}

if (navigator.mediaDevices?.getUserMedia) {
  button.onclick = start;
} else {
  button.disabled = true;
  setStatus('failed', 'this browser gives the page no microphone (it needs https or localhost)');
}
