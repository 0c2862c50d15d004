// react-copies.mjs: how many copies of React a Vite build bundled, read from its source
// maps (`vite build --sourcemap`): `node clients/react-copies.mjs DIST` lists the React
// modules found and exits 1 unless there is exactly one. A second copy is what a package
// that resolves a React of its own brings (a symlinked jam-client beside a checkout with
// its own node_modules): the hook's `useRef` then reads a dispatcher the app's React never
// sets, the page throws "Cannot read properties of null (reading 'useRef')" and stays blank.
//
// Owns: finding React's main module among a build's sources. Does not own: building
// (clients/run-tests.sh, clients/fresh-app.sh) or opening the page (fresh-app.test.mjs).

import fs from 'node:fs';
import path from 'node:path';

/** React's main module in any version (18: `react.production.min.js`; 19: `react.production.js`). */
const REACT_MODULE = /(^|\/)node_modules\/react\/cjs\/react\.(production|development)(\.min)?\.js$/;

/** Every React main module a build in `dist` bundled, as absolute paths, sorted. */
export function reactCopies(dist) {
  const assets = path.join(dist, 'assets');
  const maps = fs.readdirSync(assets).filter((f) => f.endsWith('.js.map'));
  if (maps.length === 0) throw new Error(`no source maps in ${assets}: build with \`vite build --sourcemap\``);
  const found = new Set();
  for (const name of maps) {
    const map = JSON.parse(fs.readFileSync(path.join(assets, name), 'utf8'));
    const root = path.resolve(assets, map.sourceRoot || '');
    for (const source of map.sources) {
      if (REACT_MODULE.test(source.replaceAll('\\', '/'))) found.add(path.resolve(root, source));
    }
  }
  return [...found].sort();
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  const dist = process.argv[2];
  if (!dist) {
    console.error('usage: node clients/react-copies.mjs DIST');
    process.exit(2);
  }
  const copies = reactCopies(dist);
  for (const c of copies) console.log(`  React: ${c}`);
  if (copies.length !== 1) {
    console.error(`react-copies: ${copies.length} copies of React in ${dist}; the app and jam-client/react must share one`);
    process.exit(1);
  }
  console.log(`react-copies: one React in ${dist}`);
}
