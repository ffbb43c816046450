// The playground: pick a workflow, give it text, images and audio, run it
// and watch the answer assemble from the server's SSE events.
//
// A chosen file is uploaded at once (POST /v1/files/upload), so the server's
// predictive precompute is already working on it when Run is pressed; the run
// then names the file by its id. Image and audio inputs offer a sample (a
// screenshot and a voice note the server carries), so a first run needs no
// files. For the end-to-end test the page keeps a log of what it rendered and
// when in window.braidRun.
import { api, el, formatMs } from './common.js';

const select = document.getElementById('workflow');
const form = document.getElementById('inputs');
const runButton = document.getElementById('run');
const runStatus = document.getElementById('run-status');
const nodesBox = document.getElementById('nodes');
const timeline = document.getElementById('timeline');
const report = document.getElementById('report');
const outputsBox = document.getElementById('outputs');

let workflows = [];
const uploads = new Map();  // input name → {promise, chosenAt}
// The samples the server carries, by input type.
const samples = {
  image: { path: '/web/samples/screenshot.png', label: 'Sample screenshot', type: 'image/png' },
  audio: { path: '/web/samples/voice-note.wav', label: 'Sample voice note', type: 'audio/wav' },
};
// A workflow that runs with no setup opens the page: the first one that
// searches no collection, speech-report when it is there.
const preferred = 'speech-report';

function current() {
  return workflows.find((w) => w.name === select.value);
}

function setStatus(state, text) {
  runStatus.dataset.state = state;
  runStatus.textContent = text;
}

async function loadWorkflows() {
  const response = await api('/v1/workflows');
  const body = await response.json();
  if (!response.ok) return setStatus('failed', `workflows: ${body.error ?? response.status}`);
  workflows = body.data.filter((w) => w.status === 'available');
  select.replaceChildren(...workflows.map((w) => new Option(w.name, w.name)));
  const wanted = new URLSearchParams(location.search).get('workflow');
  const ready = workflows.filter((w) => !w.nodes.some((n) => n.kind === 'retrieve'));
  const opening = [wanted, preferred, ready[0]?.name].find((name) => workflows.some((w) => w.name === name));
  if (opening) select.value = opening;
  renderInputs();
}

// Forgets the last run: its cards, timeline, report, outputs and status.
function clearRun() {
  nodesBox.replaceChildren();
  timeline.replaceChildren();
  report.textContent = '';
  outputsBox.textContent = '';
  setStatus('idle', '');
  window.braidRun = undefined;
}

function renderInputs() {
  const workflow = current();
  uploads.clear();
  form.replaceChildren();
  clearRun();
  document.getElementById('description').textContent = workflow?.description ?? '';
  runButton.disabled = !workflow;
  if (!workflow) return;
  for (const input of workflow.inputs) {
    const label = el('label', {}, input.name, el('span', { class: 'type' },
      `${input.type}${input.optional ? ', optional' : ''}`));
    if (input.type === 'text') {
      label.append(el('textarea', { name: input.name, rows: 2 }));
      form.append(label);
      continue;
    }
    const picker = el('input', { type: 'file', name: input.name, accept: `${input.type}/*` });
    const preview = el('div', { class: 'preview' });
    const status = el('div', { class: 'upload', 'data-input': input.name });
    picker.addEventListener('change', () => {
      if (picker.files[0]) choose(input, picker.files[0], preview, status);
    });
    label.append(picker);
    const sample = samples[input.type];
    if (sample) {
      const use = el('button', { type: 'button', class: 'secondary', 'data-sample': input.name }, sample.label);
      use.addEventListener('click', async () => {
        const response = await fetch(sample.path);
        const name = sample.path.slice(sample.path.lastIndexOf('/') + 1);
        choose(input, new File([await response.blob()], name, { type: sample.type }), preview, status);
      });
      label.append(' ', use);
    }
    if (input.type === 'audio' && navigator.mediaDevices?.getUserMedia) {
      const record = el('button', { type: 'button', class: 'secondary' }, 'Record');
      record.addEventListener('click', () => recordInto(record, (file) => choose(input, file, preview, status)));
      label.append(' ', record);
    }
    form.append(label, preview, status);
  }
}

// Shows the file and uploads it now, so that precompute starts before Run.
function choose(input, file, preview, status) {
  const url = URL.createObjectURL(file);
  preview.replaceChildren(input.type === 'image'
    ? el('img', { src: url, alt: file.name })
    : el('audio', { src: url, controls: '' }));
  const chosenAt = performance.now();
  const body = new FormData();
  body.append('file', file, file.name);
  body.append('user', 'playground');
  status.textContent = 'uploading…';
  status.dataset.state = 'uploading';
  const promise = api('/v1/files/upload', { method: 'POST', body }).then(async (response) => {
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.error ?? `HTTP ${response.status}`);
    return answer;
  });
  uploads.set(input.name, { promise, chosenAt });
  promise.then(
    (answer) => {
      status.textContent = `uploaded in ${formatMs(performance.now() - chosenAt)}; the server is precomputing`;
      status.dataset.state = 'uploaded';
      status.dataset.fileId = answer.id;
    },
    (error) => {
      status.textContent = `upload failed: ${error.message}`;
      status.dataset.state = 'failed';
    });
}

// Records from the microphone into a 16-bit mono WAV file.
async function recordInto(button, done) {
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (error) {
    button.textContent = 'No microphone';
    button.disabled = true;
    return;
  }
  const context = new AudioContext();
  const source = context.createMediaStreamSource(stream);
  const processor = context.createScriptProcessor(4096, 1, 1);
  const chunks = [];
  processor.onaudioprocess = (e) => chunks.push(new Float32Array(e.inputBuffer.getChannelData(0)));
  source.connect(processor);
  processor.connect(context.destination);
  button.textContent = 'Stop';
  button.onclick = () => {
    processor.disconnect();
    source.disconnect();
    stream.getTracks().forEach((track) => track.stop());
    const file = new File([wavBytes(chunks, context.sampleRate)], 'recording.wav', { type: 'audio/wav' });
    context.close();
    button.textContent = 'Record';
    button.onclick = null;
    done(file);
  };
}

function wavBytes(chunks, rate) {
  const samples = chunks.reduce((n, c) => n + c.length, 0);
  const view = new DataView(new ArrayBuffer(44 + samples * 2));
  const text = (at, s) => [...s].forEach((c, i) => view.setUint8(at + i, c.charCodeAt(0)));
  text(0, 'RIFF');
  view.setUint32(4, 36 + samples * 2, true);
  text(8, 'WAVEfmt ');
  view.setUint32(16, 16, true);
  view.setUint16(20, 1, true);
  view.setUint16(22, 1, true);
  view.setUint32(24, rate, true);
  view.setUint32(28, rate * 2, true);
  view.setUint16(32, 2, true);
  view.setUint16(34, 16, true);
  text(36, 'data');
  view.setUint32(40, samples * 2, true);
  let at = 44;
  for (const chunk of chunks) {
    for (const v of chunk) {
      view.setInt16(at, Math.max(-1, Math.min(1, v)) * 0x7fff, true);
      at += 2;
    }
  }
  return view.buffer;
}

// How a node output reads: text as is, short lists of numbers, else a shape.
function describe(value) {
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return Number.isInteger(value) ? `${value}` : value.toFixed(4);
  if (Array.isArray(value)) {
    if (value.every((v) => typeof v === 'string')) return value.join('\n');
    if (value.length <= 6) return `[${value.map(describe).join(', ')}]`;
    return `[${value.length} values]`;
  }
  if (value && value.datatype) return `${value.datatype} [${value.shape.join('×')}]`;
  return JSON.stringify(value);
}

class RunView {
  constructor(workflow) {
    this.workflow = workflow;
    this.startedAt = performance.now();
    this.nodes = new Map();
    this.log = [];
    this.finished = false;
    nodesBox.replaceChildren();
    for (const node of workflow.nodes) {
      const card = el('div', { class: 'node', 'data-node': node.id, 'data-state': 'waiting' },
        el('div', { class: 'head' }, el('span', { class: 'id' }, node.id), el('span', { class: 'time' }, '')),
        el('div', { class: 'kind' }, node.kind),
        el('div', { class: 'out' }));
      nodesBox.append(card);
      this.nodes.set(node.id, { card, start: null, end: null, state: 'waiting' });
    }
    report.textContent = '';
    outputsBox.textContent = '';
    window.braidRun = { workflow: workflow.name, log: this.log, state: 'running' };
    this.drawTimeline();
  }

  now() {
    return performance.now() - this.startedAt;
  }

  record(what, node = null) {
    this.log.push({ what, node, at: this.now() });
  }

  handle(event) {
    const data = event.data ?? {};
    const node = this.nodes.get(data.node_id);
    switch (event.event) {
      case 'workflow_started':
        setStatus('running', 'running…');
        break;
      case 'node_started':
        if (node) {
          node.start = this.now();
          node.state = 'running';
          node.card.dataset.state = 'running';
        }
        break;
      case 'node_finished': {
        if (!node) break;
        node.end = this.now();
        node.start ??= node.end;
        node.state = data.cached ? 'cached' : data.status;
        node.card.dataset.state = node.state;
        node.card.dataset.cached = String(data.cached);
        const time = node.card.querySelector('.time');
        time.textContent = formatMs(data.elapsed_time * 1000);
        if (data.cached) time.prepend(el('span', { class: 'badge' }, 'cached'), ' ');
        const outputs = Object.entries(data.outputs ?? {});
        node.card.querySelector('.out').textContent =
          outputs.map(([name, value]) => `${name}: ${describe(value)}`).join('\n');
        this.record('node', data.node_id);
        break;
      }
      case 'text_chunk':
        report.textContent += data.text;
        this.record('chunk', (data.from_variable_selector ?? [])[0]);
        break;
      case 'workflow_finished': {
        this.finish('finished', `answered in ${formatMs(this.now())} (time to answer from Run)`);
        const outputs = data.outputs ?? {};
        if (typeof outputs.report === 'string') report.textContent = outputs.report;
        outputsBox.textContent = JSON.stringify(outputs, null, 2);
        window.braidRun.outputs = outputs;
        break;
      }
      case 'error':
        this.finish('failed', `failed${event.node_id ? ` at ${event.node_id}` : ''}: ${event.message}`);
        break;
    }
    this.drawTimeline();
  }

  finish(state, text) {
    this.finished = true;
    this.record(state);
    window.braidRun.state = state;
    window.braidRun.elapsedMs = this.now();
    setStatus(state, text);
  }

  // One bar per node from its start to its end (or now, while it runs).
  drawTimeline() {
    const rows = [...this.nodes.entries()];
    const rowHeight = 18, labelWidth = 120, width = timeline.clientWidth || 600;
    const now = this.now();
    const span = Math.max(1, ...rows.map(([, n]) => n.end ?? (n.start !== null ? now : 0)));
    timeline.setAttribute('height', rows.length * rowHeight + 18);
    const svg = 'http://www.w3.org/2000/svg';
    const shape = (tag, attributes, text) => {
      const node = document.createElementNS(svg, tag);
      for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
      if (text !== undefined) node.textContent = text;
      return node;
    };
    const colors = { running: '#2f6fdf', succeeded: '#1f9d55', cached: '#8b5cf6', failed: '#d64545' };
    const scale = (t) => labelWidth + (t / span) * (width - labelWidth - 10);
    const parts = [];
    rows.forEach(([id, n], i) => {
      const y = i * rowHeight;
      parts.push(shape('text', { x: 0, y: y + 13 }, id));
      if (n.start === null) return;
      const end = n.end ?? now;
      parts.push(shape('rect', {
        x: scale(n.start), y: y + 3, height: rowHeight - 6, rx: 2,
        width: Math.max(2, scale(end) - scale(n.start)), fill: colors[n.state] ?? '#b0b8c6',
      }));
    });
    parts.push(shape('text', { x: width - 60, y: rows.length * rowHeight + 14 }, formatMs(span)));
    timeline.replaceChildren(...parts);
    if (!this.finished && [...this.nodes.values()].some((n) => n.state === 'running'))
      requestAnimationFrame(() => this.drawTimeline());
  }
}

async function run() {
  const workflow = current();
  runButton.disabled = true;
  try {
    const inputs = {};
    for (const input of workflow.inputs) {
      if (input.type === 'text') {
        const value = form.elements[input.name].value;
        if (value || !input.optional) inputs[input.name] = value;
        continue;
      }
      const upload = uploads.get(input.name);
      if (!upload) continue;
      const file = await upload.promise;
      inputs[input.name] = { type: input.type, transfer_method: 'local_file', upload_file_id: file.id };
    }
    const view = new RunView(workflow);
    setStatus('running', 'starting…');
    const response = await api(`/v1/workflows/${encodeURIComponent(workflow.name)}/run`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ inputs, response_mode: 'streaming', user: 'playground' }),
    });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      return view.finish('failed', `HTTP ${response.status}: ${body.error ?? response.statusText}`);
    }
    // Server-sent events: blocks separated by a blank line, "data: {json}".
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join('\n');
        if (data) view.handle(JSON.parse(data));
      }
    }
    if (!view.finished) view.finish('failed', 'the stream ended before the workflow finished');
  } catch (error) {
    setStatus('failed', error.message);
    if (window.braidRun) window.braidRun.state = 'failed';
  } finally {
    runButton.disabled = false;
  }
}

select.addEventListener('change', renderInputs);
runButton.addEventListener('click', run);
loadWorkflows();
