// dev.mjs: `npm run dev`: the token endpoint (token-server.mjs) and Vite's dev server
// together, stopped together. Arguments go to Vite (`npm run dev -- --port 5180`).
// Vite passes `/token` on to the endpoint (vite.config.ts), so the page asks its own
// origin for tokens, as it would ask the app's backend.

import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const example = path.resolve(here, '..');
const children = [];

function run(name, script, args = []) {
  const child = spawn(process.execPath, [script, ...args], { cwd: example, stdio: 'inherit' });
  children.push(child);
  // Either one ending ends the other: a dev server without its tokens is no use.
  child.once('exit', (code, signal) => {
    for (const other of children) if (other !== child && other.exitCode === null) other.kill('SIGTERM');
    if (signal === null && code !== 0) console.error(`${name} exited with ${code}`);
    process.exitCode = code ?? 1;
  });
  return child;
}

run('token endpoint', path.join(here, 'token-server.mjs'));
run('vite', path.join(example, 'node_modules', 'vite', 'bin', 'vite.js'), process.argv.slice(2));

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    for (const child of children) if (child.exitCode === null) child.kill(signal);
  });
}
