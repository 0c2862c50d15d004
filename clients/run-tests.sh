#!/usr/bin/env bash
# Checks and tests of the JavaScript clients against the real server:
#   clients/js        (npm package jam-client): tsc over the typed usage files, the
#                     must-fail check, node:test (the room reducer on its own, then the
#                     package against target/debug/jam-server, with sign-in on and off)
#   examples/react    (a sign-in screen and JamSession.tsx on useJamSession, jam-client
#                     installed from ../../clients/js with install-links): tsc, vite build
#                     with one React in the bundle, Vitest against the real server (one
#                     with --jwt-secret-file beside the dev token endpoint), then the build
#                     signing in and creating a room in headless Chromium
#   fresh-app.sh      a new Vite + React app outside the repository installs jam-client as
#                     clients/js/README.md says, builds, and works in headless Chromium
# The tests start target/debug/jam-server ($CARGO_TARGET_DIR/debug when set), or
# $JAM_SERVER_BIN when set (the build still runs). Node 20.19 or newer; the Chromium checks
# need Debian's Chromium (/usr/bin/chromium), driven by web-demo/e2e's playwright-core;
# nothing downloads a browser.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
npm_ci() { npm ci --prefer-offline --no-audit --no-fund --loglevel=error; }

(cd "$repo" && cargo build --bin jam-server)

echo "== clients/js: npm ci, tsc --noEmit (typed usage), must-fail check"
cd "$repo/clients/js"
npm_ci
npx tsc -p types-check/tsconfig.json
node types-check/must-fail.mjs

echo "== clients/js: node tests against the real server"
node --test --test-concurrency=1 --test-reporter=spec test/room.test.mjs test/real-server.test.mjs test/sign-in.test.mjs test/readme.test.mjs test/nodes.test.mjs

echo "== examples/react: npm ci, tsc --noEmit, vite build (one React), vitest against the real server"
cd "$repo/examples/react"
npm_ci
npx tsc --noEmit
npx vite build --logLevel warn --sourcemap
node "$here/react-copies.mjs" dist
npx vitest run

echo "== examples/react: the build signs in and creates a room in headless Chromium"
(cd "$repo/web-demo/e2e" && export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 && npm_ci)
node --test --test-reporter=spec test/signin.browser.test.mjs

echo "== the web demo signs in through the example's dev token endpoint (?tokenUrl=) in headless Chromium"
(cd "$repo/web-demo/e2e" && node --test --test-reporter=spec signin.test.mjs)

echo "== a fresh React app with jam-client installed as its README says"
bash "$here/fresh-app.sh"
