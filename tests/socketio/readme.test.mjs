// The Socket.IO snippet of docs/client.md, run as written (only its URL pointed at a real server
// on a free port): it must print the room, Ben's arrival and his note, and exit.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { REPO, startServer } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
let srv;
before(async () => { srv = await startServer(); });
after(async () => { await srv?.stop(); });

/** The first ```js block under the "## Socket.IO" heading of docs/client.md. */
function snippet() {
  const readme = fs.readFileSync(path.join(REPO, 'docs', 'client.md'), 'utf8');
  const at = readme.indexOf('\n## Socket.IO\n');
  assert.ok(at >= 0, 'docs/client.md has a Socket.IO section');
  const block = readme.slice(at).match(/```js\n([\s\S]*?)```/);
  assert.ok(block, 'the section has a js block');
  return block[1];
}

test("the Socket.IO snippet of docs/client.md runs against the real server", async () => {
  const code = snippet();
  assert.ok(code.includes("'http://localhost:3001'"));
  // Written next to node_modules so that `socket.io-client` resolves; not committed.
  const file = path.join(here, '.readme-snippet.mjs');
  fs.writeFileSync(file, code.replace("'http://localhost:3001'", `'${srv.url}'`));
  try {
    const { stdout, stderr } = await new Promise((resolve, reject) => {
      execFile(process.execPath, [file], { timeout: 15_000 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`${err.message}\n${stdout}\n${stderr}`));
        else resolve({ stdout, stderr });
      });
    });
    const lines = stdout.trim().split('\n');
    assert.match(lines[0], /^room [0-9A-Z]{6}$/);
    assert.equal(lines[1], 'Ben joined');
    assert.match(lines[2], /^note \{"note":60,"velocity":100\} from [0-9a-f]+$/);
    assert.equal(lines.length, 3, stdout);
    assert.equal(stderr, '');
  } finally {
    fs.rmSync(file, { force: true });
  }
});
