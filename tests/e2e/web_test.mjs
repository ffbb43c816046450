// The web playground and dashboard in a real browser: Debian's Chromium,
// headless, driven by playwright-core, against a live `braid serve`.
//   node --test tests/e2e/web_test.mjs
// (BRAID_BINARY, BRAID_FIXTURES and BRAID_TEST_OUTPUT set by CTest; the
// screenshots land in BRAID_TEST_OUTPUT.)
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { chromium } from 'playwright-core';
import { makeCertificates, spkiHash } from './certs.mjs';
import { startBraid } from './serve.mjs';

const binary = process.env.BRAID_BINARY;
const fixtures = process.env.BRAID_FIXTURES;
const output = process.env.BRAID_TEST_OUTPUT ?? 'web_test_output';
const speech = `${fixtures}/speech/say_0.wav`;
const picture = `${fixtures}/images/text_1_DejaVu-Sans_40.png`;
let server;
let base;
let browser;

before(async () => {
  mkdirSync(output, { recursive: true });
  server = await startBraid(binary);
  base = `http://127.0.0.1:${server.http}`;
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium' });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

async function blocking(name, inputs) {
  const response = await fetch(`${base}/v1/workflows/${name}/run`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ inputs, response_mode: 'blocking', user: 'e2e' }),
  });
  assert.equal(response.status, 200);
  return (await response.json()).data;
}

// Opens the playground on `workflow` and records, for every node card that
// turns done, the run's state at that moment as the DOM saw it.
async function openPlayground(workflow) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const problems = [];
  page.on('pageerror', (error) => problems.push(error.message));
  page.on('console', (message) => message.type() === 'error' && problems.push(message.text()));
  await page.goto(`${base}/?workflow=${workflow}`);
  await page.waitForSelector('#run:not([disabled])');
  assert.equal(await page.inputValue('#workflow'), workflow);
  return { page, problems };
}

async function watchNodes(page) {
  await page.evaluate(() => {
    window.seen = [];
    new MutationObserver(() => {
      const state = document.getElementById('run-status').dataset.state;
      for (const card of document.querySelectorAll('.node[data-state=succeeded], .node[data-state=cached]')) {
        if (window.seen.some((s) => s.node === card.dataset.node)) continue;
        window.seen.push({ node: card.dataset.node, state, text: card.querySelector('.out').textContent });
      }
    }).observe(document.getElementById('nodes'), { subtree: true, attributes: true, childList: true, characterData: true });
  });
}

async function runAndWait(page) {
  await page.click('#run');
  await page.waitForFunction(() => ['finished', 'failed'].includes(window.braidRun?.state), null, { timeout: 60000 });
  const run = await page.evaluate(() => window.braidRun);
  assert.equal(run.state, 'finished', await page.textContent('#run-status'));
  return run;
}

test('the pages come from the binary alone: no request leaves the server', async () => {
  const page = await browser.newPage();
  const requests = [];
  page.on('request', (request) => requests.push(request.url()));
  await page.goto(`${base}/`);
  await page.waitForSelector('#run:not([disabled])');
  await page.goto(`${base}/dashboard`);
  await page.waitForFunction(() => document.getElementById('updated').textContent === 'live');
  assert.ok(requests.length >= 6);
  for (const url of requests) assert.ok(url.startsWith(base), url);
  let bytes = 0;
  for (const path of ['/', '/dashboard', '/web/style.css', '/web/common.js', '/web/playground.js', '/web/live.js', '/web/dashboard.js']) {
    const response = await fetch(`${base}${path}`);
    assert.equal(response.status, 200, path);
    bytes += (await response.arrayBuffer()).byteLength;
    const again = await fetch(`${base}${path}`, { headers: { 'If-None-Match': response.headers.get('etag') } });
    assert.equal(again.status, 304, path);
  }
  assert.ok(bytes < 100_000, `the pages weigh ${bytes} bytes`);
  await page.close();
});

test('a first visit runs with no files of its own: samples fill the inputs, and another workflow starts clean', async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const problems = [];
  page.on('pageerror', (error) => problems.push(error.message));
  page.on('console', (message) => message.type() === 'error' && problems.push(message.text()));
  await page.goto(`${base}/`);
  await page.waitForSelector('#run:not([disabled])');
  assert.equal(await page.inputValue('#workflow'), 'speech-report', 'it opens on a workflow that needs no collection');
  assert.equal(await page.getAttribute('link[rel=icon]', 'href'), '/web/favicon.svg');
  const icon = await fetch(`${base}/favicon.ico`);
  assert.equal(icon.status, 200);
  assert.equal(icon.headers.get('content-type'), 'image/svg+xml');
  await page.click('[data-sample=audio]');
  await page.click('[data-sample=image]');
  await page.waitForSelector('.upload[data-input=audio][data-state=uploaded]');
  await page.waitForSelector('.upload[data-input=image][data-state=uploaded]');
  const run = await runAndWait(page);
  assert.match(run.outputs.transcript, /the weather is nice today/);
  assert.match(run.outputs.image_text, /Invoice number 4821/);
  assert.ok(await page.locator('.node').count() > 0);

  await page.selectOption('#workflow', 'read-aloud');
  assert.equal(await page.locator('.node').count(), 0, 'the last run\'s cards are gone');
  assert.equal(await page.textContent('#report'), '');
  assert.equal(await page.textContent('#outputs'), '');
  assert.equal(await page.getAttribute('#run-status', 'data-state'), 'idle');
  assert.equal(await page.locator('#timeline rect').count(), 0);
  assert.deepEqual(problems, []);
  await page.close();
});

test('speech-report: the branches render as they finish, the report streams, and it matches the blocking answer', async () => {
  const { page, problems } = await openPlayground('speech-report');
  await page.setInputFiles('input[name=audio]', speech);
  await page.setInputFiles('input[name=image]', picture);
  // The uploads go out as soon as the files are chosen (predictive precompute).
  await page.waitForSelector('.upload[data-input=audio][data-state=uploaded]');
  await page.waitForSelector('.upload[data-input=image][data-state=uploaded]');
  await watchNodes(page);
  const run = await runAndWait(page);

  const seen = await page.evaluate(() => window.seen);
  const branches = seen.filter((s) => s.node === 'transcript' || s.node === 'ocr');
  assert.equal(branches.length, 2, JSON.stringify(seen));
  assert.ok(branches[0].text.length > 0);
  const cached = [];
  for (const node of ['transcript', 'ocr'])
    cached.push(await page.getAttribute(`.node[data-node=${node}]`, 'data-cached'));
  if (cached.every((c) => c === 'true')) {
    // Both branches came from the uploads' precompute, finished before Run
    // (a slow machine takes longer between the uploads and the click):
    // nothing computed during the run, so there was no progress to show.
    assert.equal(await page.locator('.node[data-cached=true] .badge').count() >= 2, true);
  } else {
    // The branch that finished first was on screen while the run still went on.
    assert.equal(branches[0].state, 'running', JSON.stringify({ seen, cached }));
  }
  // The report arrived as several chunks before the workflow finished.
  const chunks = run.log.filter((e) => e.what === 'chunk');
  assert.ok(chunks.length > 3);
  assert.ok(chunks.at(-1).at <= run.log.find((e) => e.what === 'finished').at);
  assert.ok(await page.locator('#timeline rect').count() >= 3);

  const ids = {};
  for (const input of ['audio', 'image'])
    ids[input] = await page.getAttribute(`.upload[data-input=${input}]`, 'data-file-id');
  const answer = await blocking('speech-report', {
    audio: { type: 'audio', transfer_method: 'local_file', upload_file_id: ids.audio },
    image: { type: 'image', transfer_method: 'local_file', upload_file_id: ids.image },
  });
  assert.equal(answer.status, 'succeeded');
  assert.equal(await page.textContent('#report'), answer.outputs.report);
  assert.match(answer.outputs.transcript, /weather/);
  assert.match(await page.textContent('.node[data-node=transcript] .out'), /weather/);
  assert.match(await page.textContent('#run-status'), /answered in/);
  assert.deepEqual(problems, []);
  await page.screenshot({ path: `${output}/speech-report.png`, fullPage: true });
  await page.close();
});

test('image-text-match: both encoders render, the answer matches, a repeat is marked cached', async () => {
  const { page, problems } = await openPlayground('image-text-match');
  await page.setInputFiles('input[name=image]', picture);
  await page.fill('textarea[name=text]', 'a photo of a cat');
  await page.waitForSelector('.upload[data-input=image][data-state=uploaded]');
  const first = await runAndWait(page);
  for (const node of ['image_embedding', 'text_embedding', 'match'])
    assert.match(await page.getAttribute(`.node[data-node=${node}]`, 'data-state'), /succeeded|cached/);

  const answer = await blocking('image-text-match', {
    image: `data:image/png;base64,${readFileSync(picture).toString('base64')}`,
    text: 'a photo of a cat',
  });
  assert.equal(first.outputs.similarity, answer.outputs.similarity);
  assert.equal(await page.textContent('#report'), answer.outputs.report);

  await runAndWait(page);
  assert.equal(await page.getAttribute('.node[data-node=image_embedding]', 'data-cached'), 'true');
  assert.ok(await page.locator('.node[data-cached=true] .badge').count() >= 2);
  assert.deepEqual(problems, []);
  await page.screenshot({ path: `${output}/image-text-match.png`, fullPage: true });
  await page.close();
});

test('the playground transcribes the microphone live: partials while it speaks, a final at Stop', async () => {
  // Chromium's fake microphone plays a fixture (in a loop).
  const listener = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
           `--use-file-for-fake-audio-capture=${speech}`],
  });
  try {
    const page = await listener.newPage({ viewport: { width: 1280, height: 900 } });
    const problems = [];
    page.on('pageerror', (error) => problems.push(error.message));
    await page.goto(`${base}/`);
    await page.click('#listen');
    // Stop once the words have been heard (the first partial may come after
    // a word or two, sooner on a faster machine).
    await page.waitForFunction(
      () => window.braidLive.partials > 0 &&
        /weather|nice|today/.test(document.querySelector('#live-transcript').textContent),
      null, { timeout: 60000 });
    assert.equal(await page.evaluate(() => window.braidLive.state), 'listening');
    assert.ok((await page.textContent('#live-transcript .partial')).length > 0 ||
              (await page.evaluate(() => window.braidLive.finals.length)) > 0);
    await page.click('#listen');
    await page.waitForFunction(() => ['done', 'failed'].includes(window.braidLive.state), null, { timeout: 60000 });
    const live = await page.evaluate(() => window.braidLive);
    assert.equal(live.state, 'done', await page.textContent('#live-status'));
    assert.ok(live.finals.length >= 1);
    assert.match(live.finals.map((f) => f.text).join(' '), /weather|nice|today/);
    assert.match(await page.textContent('#live-transcript'), /weather|nice|today/);
    await page.screenshot({ path: `${output}/live-transcription.png` });
    assert.deepEqual(problems, []);
  } finally {
    await listener.close();
  }
});

test('over TLS the playground loads and runs on HTTP/2: the page, its scripts and the streamed run', async () => {
  const folder = mkdtempSync(join(tmpdir(), 'braid-web-tls-'));
  let secure;
  let trusting;
  try {
    const certs = await makeCertificates(folder);
    secure = await startBraid(binary, ['--tls-cert', certs['server-a.pem'], '--tls-key', certs['server-a.key']]);
    // Chromium trusts the test server's key and nothing else.
    trusting = await chromium.launch({
      executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
      args: [`--ignore-certificate-errors-spki-list=${await spkiHash(certs['server-a.pem'])}`],
    });
    const page = await trusting.newPage({ viewport: { width: 1280, height: 900 } });
    const problems = [];
    page.on('pageerror', (error) => problems.push(error.message));
    await page.goto(`https://localhost:${secure.http}/?workflow=image-text-match`);
    await page.waitForSelector('#run:not([disabled])');
    await page.setInputFiles('input[name=image]', picture);
    await page.fill('textarea[name=text]', 'a line of printed text');
    const run = await runAndWait(page);
    assert.ok(run.log.some((e) => e.what === 'finished'));
    const protocols = await page.evaluate(() => [
      ...performance.getEntriesByType('navigation'),
      ...performance.getEntriesByType('resource'),
    ].map((entry) => [entry.name, entry.nextHopProtocol]));
    assert.ok(protocols.length >= 4, JSON.stringify(protocols));
    for (const [name, protocol] of protocols) assert.equal(protocol, 'h2', name);
    assert.deepEqual(problems, []);
  } finally {
    await trusting?.close();
    await secure?.stop();
    rmSync(folder, { recursive: true, force: true });
  }
});

test('the dashboard figures move under a generated load', async () => {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const problems = [];
  page.on('pageerror', (error) => problems.push(error.message));
  await page.goto(`${base}/dashboard`);
  await page.waitForFunction(() => document.getElementById('updated').textContent === 'live');
  const servedBefore = Number(await page.getAttribute('tr[data-model=clip-text] td:nth-child(5)', 'data-value'));
  const bench = spawn(binary, ['bench', '--url', base, '-m', 'clip-text', '-c', '2', '--warmup', '0.5',
    '--window', '1', '--max-windows', '3'], { stdio: 'ignore' });
  const benchDone = new Promise((resolve) => bench.once('exit', resolve));
  // Throughput, latency and the served count all show the load while it runs.
  await page.waitForFunction(() => Number(document.getElementById('throughput').dataset.value) > 0, null, { timeout: 20000 });
  await page.waitForFunction(() => Number(document.getElementById('p50').dataset.value) > 0, null, { timeout: 20000 });
  await page.screenshot({ path: `${output}/dashboard.png`, fullPage: true });
  assert.equal(await benchDone, 0);
  await page.waitForFunction((before) => Number(document.querySelector('tr[data-model=clip-text] td:nth-child(5)').dataset.value) > before,
    servedBefore, { timeout: 5000 });
  assert.ok(Number(await page.getAttribute('#served', 'data-value')) > 0);
  assert.ok(Number(await page.getAttribute('tr[data-model=clip-text] td:nth-child(3)', 'data-value')) >= 1);
  assert.deepEqual(problems, []);
  await page.close();
});
