// must-fail.mjs: proves that the types catch the mistakes in must-fail.ts.
//
// `tsc -p types-check` already fails when a line marked `@ts-expect-error`
// compiles. This goes further: it checks the same file with the markers taken
// out and requires an error on every marked line and nowhere else, so a
// marker cannot be satisfied by some unrelated mistake on another line.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const pkg = path.resolve(here, '..');
const source = fs.readFileSync(path.join(here, 'must-fail.ts'), 'utf8').split('\n');

const expected = new Set();
const bare = source.map((line, i) => {
  if (!line.includes('// @ts-expect-error')) return line;
  expected.add(i + 2); // 1-based number of the line after the marker
  return line.replace('// @ts-expect-error', '//');
});
if (expected.size === 0) throw new Error('must-fail.ts has no @ts-expect-error lines');

// Beside the original, so 'jam-client' resolves to this package as it does there.
const dir = fs.mkdtempSync(path.join(here, '.must-fail-'));
try {
  fs.writeFileSync(path.join(dir, 'bare.ts'), bare.join('\n'));
  const config = JSON.parse(fs.readFileSync(path.join(here, 'tsconfig.json'), 'utf8'));
  config.files = ['bare.ts'];
  fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify(config));
  let output = '';
  try {
    execFileSync(process.execPath, [path.join(pkg, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (err) {
    output = String(err.stdout);
  }
  const failed = new Map();
  for (const m of output.matchAll(/bare\.ts\((\d+),\d+\): error (TS\d+): ([^\n]*)/g)) {
    failed.set(Number(m[1]), `${m[2]} ${m[3]}`);
  }
  const missing = [...expected].filter((n) => !failed.has(n));
  const stray = [...failed.keys()].filter((n) => !expected.has(n));
  for (const n of [...expected].sort((a, b) => a - b)) {
    console.log(`${failed.has(n) ? 'caught' : 'MISSED'} line ${n}: ${source[n - 1].trim()}`);
    if (failed.has(n)) console.log(`  ${failed.get(n)}`);
  }
  if (missing.length || stray.length) {
    console.error(output);
    throw new Error(`must-fail: not caught on lines ${missing.join(', ') || '-'}; errors elsewhere on ${stray.join(', ') || '-'}`);
  }
  console.log(`must-fail: all ${expected.size} mistakes caught by tsc`);
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
