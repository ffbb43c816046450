// The documentation runs as written: every shell block of README.md and
// docs/*.md fenced as ```sh run is run, in order, against a real
// `braid serve`, and must exit 0 and print what the ```text output block
// after it says (each line found in what it printed, `...` standing for
// anything). `localhost:8000` in a block becomes the test server's address;
// each page's blocks share a fresh folder, where `build` leads to the build.
//   node --test tests/e2e/docs_test.mjs
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
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

for (const page of pages) {
  const blocks = runnableBlocks(readFileSync(join(root, page), 'utf8'));
  if (blocks.length === 0) continue;
  test(`${page}: every runnable block runs as written`, async (t) => {
    const folder = mkdtempSync(join(scratch, 'page-'));
    symlinkSync(dirname(binary), join(folder, 'build'));
    for (const block of blocks) {
      await t.test(`${page}:${block.line}`, () => {
        const script = block.script.replaceAll('localhost:8000', `127.0.0.1:${server.http}`);
        const run = spawnSync('bash', ['-e', '-c', script], { cwd: folder, encoding: 'utf8', timeout: 120000 });
        const shown = `${page}:${block.line}\n--- script\n${script}\n--- stdout\n${run.stdout}\n--- stderr\n${run.stderr}`;
        assert.equal(run.status, 0, shown);
        for (const line of block.expected) assert.match(run.stdout, pattern(line), shown);
      });
    }
  });
}
