// The documentation runs as written: every shell block of README.md and
// docs/*.md fenced as ```sh run is run, in order, against a real
// `braid serve`, and must exit 0 and print what the ```text output block
// after it says (each line found in what it printed, `...` standing for
// anything). `localhost:8000` (8001, 8002) in a block becomes the test
// server's HTTP (gRPC, metrics) address; each page's blocks share a fresh
// folder, where `build` leads to the build, and find the repository's npm
// packages as a block run from its folder would. Every relative link of the
// pages must lead to a file of the repository, and a `#heading` to a heading
// of it.
//   node --test tests/e2e/docs_test.mjs
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { startBraid } from './serve.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const binary = process.env.BRAID_BINARY;
const pages = ['README.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
const scratch = mkdtempSync(join(tmpdir(), 'braid-docs-'));
let server;

// The runnable blocks of a page: {line, script, expected lines}.
function runnableBlocks(text) {
  const lines = text.split('\n');
  const blocks = [];
  const fenced = (from) => {
    const body = [];
    let i = from;
    while (i < lines.length && lines[i] !== '```') body.push(lines[i++]);
    return { body, end: i };
  };
  for (let i = 0; i < lines.length; ++i) {
    if (lines[i] !== '```sh run') continue;
    const script = fenced(i + 1);
    const block = { line: i + 1, script: script.body.join('\n'), expected: [] };
    i = script.end;
    if (lines[i + 1] === '```text output') {
      const output = fenced(i + 2);
      block.expected = output.body.map((l) => l.trim()).filter((l) => l !== '');
      i = output.end;
    }
    blocks.push(block);
  }
  return blocks;
}

// GitHub's anchor of a heading: lower case, punctuation dropped, spaces to dashes.
const anchor = (heading) => heading.trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replaceAll(' ', '-');

// The anchors of a page's headings, outside fenced blocks.
function anchors(text) {
  const found = new Set();
  let fenced = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    const heading = !fenced && /^#{1,6} (.*)$/.exec(line);
    if (heading) found.add(anchor(heading[1]));
  }
  return found;
}

// The relative links of a page, outside fenced blocks and code spans.
function links(text) {
  const found = [];
  let fenced = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    if (fenced) continue;
    for (const match of line.replace(/`[^`]*`/g, '').matchAll(/\]\(([^)\s]+)\)/g)) {
      if (!/^[a-z]+:/.test(match[1])) found.push(match[1]);
    }
  }
  return found;
}

// A line of expected output as a pattern: literal, `...` matching anything.
const pattern = (line) => new RegExp(line.split('...').map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*'));

before(async () => {
  server = await startBraid(binary, ['--data-dir', join(scratch, 'data')]);
});

after(async () => {
  await server?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

test('the README has runnable blocks', () => {
  assert.ok(runnableBlocks(readFileSync(join(root, 'README.md'), 'utf8')).length >= 5);
});

test('every relative link leads to a file and heading of the repository', () => {
  const broken = [];
  for (const page of pages) {
    for (const link of links(readFileSync(join(root, page), 'utf8'))) {
      const [path, hash] = link.split('#');
      const target = path === '' ? join(root, page) : resolve(root, dirname(page), path);
      if (relative(root, target).startsWith('..') || !existsSync(target)) {
        broken.push(`${page}: ${link} (no such file in the repository)`);
      } else if (hash !== undefined && target.endsWith('.md') && !anchors(readFileSync(target, 'utf8')).has(hash)) {
        broken.push(`${page}: ${link} (no such heading)`);
      }
    }
  }
  assert.deepEqual(broken, []);
});

for (const page of pages) {
  const blocks = runnableBlocks(readFileSync(join(root, page), 'utf8'));
  if (blocks.length === 0) continue;
  test(`${page}: every runnable block runs as written`, async (t) => {
    const folder = mkdtempSync(join(scratch, 'page-'));
    symlinkSync(dirname(binary), join(folder, 'build'));
    for (const block of blocks) {
      await t.test(`${page}:${block.line}`, () => {
        const script = block.script
          .replaceAll('localhost:8000', `127.0.0.1:${server.http}`)
          .replaceAll('localhost:8001', `127.0.0.1:${server.grpc}`)
          .replaceAll('localhost:8002', `127.0.0.1:${server.metrics}`);
        const env = { ...process.env, NODE_PATH: join(root, 'node_modules') };
        const run = spawnSync('bash', ['-e', '-c', script], { cwd: folder, env, encoding: 'utf8', timeout: 120000 });
        const shown = `${page}:${block.line}\n--- script\n${script}\n--- stdout\n${run.stdout}\n--- stderr\n${run.stderr}`;
        assert.equal(run.status, 0, shown);
        for (const line of block.expected) assert.match(run.stdout, pattern(line), shown);
      });
    }
  });
}
