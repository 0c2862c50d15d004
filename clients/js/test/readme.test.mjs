// readme.test.mjs: the snippets of docs/client.md ("Using jam-server from your app") are the ones
// the type checks compile (types-check/usage.ts, types-check/react-usage.tsx),
// word for word, and the npm snippet runs against the real server as written
// (only its server address changed to the test server's). The package's own
// README's snippets compile too.

import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { JamServer, REPO } from './server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const readme = fs.readFileSync(path.join(REPO, 'docs', 'client.md'), 'utf8');

/** The fenced code block of docs/client.md that contains `marker`. */
function readmeBlock(marker) {
  const blocks = [...readme.matchAll(/```(?:js|ts|tsx)\n([\s\S]*?)```/g)].map((m) => m[1]);
  const found = blocks.filter((b) => b.includes(marker));
  assert.equal(found.length, 1, `one docs/client.md block contains ${marker}`);
  return found[0].trimEnd();
}

/** The lines between `// README: NAME` and `// README: end` in a checked file. */
function checkedBlock(file, name) {
  const text = fs.readFileSync(path.join(here, '..', 'types-check', file), 'utf8');
  const start = text.indexOf(`// README: ${name}\n`);
  const end = text.indexOf('// README: end', start);
  assert.ok(start >= 0 && end > start, `${file} has a README: ${name} block`);
  return text.slice(start + `// README: ${name}\n`.length, end).trimEnd();
}

describe('the README snippets', { timeout: 60_000 }, () => {
  let server;
  before(async () => {
    server = await JamServer.start();
  });
  after(async () => {
    if (server) await server.stop();
  });

  test('the npm snippet is the type-checked one', () => {
    assert.equal(readmeBlock("from 'jam-client';"), checkedBlock('usage.ts', 'npm'));
  });

  test('the React snippet is the type-checked one', () => {
    assert.equal(readmeBlock("from 'jam-client/react';"), checkedBlock('react-usage.tsx', 'react'));
  });

  test('the package README\'s snippets compile', () => {
    const text = fs.readFileSync(path.join(here, '..', 'README.md'), 'utf8');
    const blocks = [...text.matchAll(/```(ts|tsx)\n([\s\S]*?)```/g)];
    assert.deepEqual(blocks.map((m) => m[1]), ['ts', 'tsx']);
    const typesCheck = path.join(here, '..', 'types-check');
    const dir = fs.mkdtempSync(path.join(typesCheck, '.readme-'));
    try {
      const files = blocks.map((m, i) => {
        const name = `snippet${i}.${m[1]}`;
        // A module of its own (top-level await), the TSX one exported so it is not unused.
        fs.writeFileSync(path.join(dir, name), `${m[2].replace('function Jam()', 'export function Jam()')}\nexport {};\n`);
        return name;
      });
      const config = JSON.parse(fs.readFileSync(path.join(typesCheck, 'tsconfig.json'), 'utf8'));
      fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({ ...config, files }));
      const tsc = path.join(here, '..', 'node_modules', 'typescript', 'bin', 'tsc');
      try {
        execFileSync(process.execPath, [tsc, '-p', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      } catch (err) {
        assert.fail(`the package README's snippets do not compile:\n${err.stdout}`);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the npm snippet runs against the real server', async () => {
    const snippet = readmeBlock("from 'jam-client';");
    assert.ok(snippet.includes("'http://127.0.0.1:3001'"));
    // Inside the package, so that 'jam-client' and 'ws' resolve as in an app.
    const file = path.join(here, `.readme-snippet-${process.pid}.mjs`);
    fs.writeFileSync(file, snippet.replaceAll("'http://127.0.0.1:3001'", JSON.stringify(server.baseUrl)));
    try {
      const { stdout } = await new Promise((resolve, reject) => {
        execFile(process.execPath, [file], { timeout: 20_000 }, (err, out, errOut) =>
          err ? reject(new Error(`${err.message}\n${out}\n${errOut}`)) : resolve({ stdout: out }),
        );
      });
      const lines = stdout.split('\n');
      assert.ok(lines.includes('connected websocket'), stdout);
      assert.ok(lines.some((l) => /^room [0-9A-Z]{6} over websocket, 1 in it$/.test(l)), stdout);
      assert.ok(lines.includes('room_not_found no room with that code'), stdout);
    } finally {
      fs.rmSync(file, { force: true });
    }
  });
});
