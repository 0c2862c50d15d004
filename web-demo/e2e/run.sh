#!/usr/bin/env bash
# Runs the browser tests of the web demo against a freshly built jam-server.
#   web-demo/e2e/run.sh                        # all tests
#   web-demo/e2e/run.sh --test-name-pattern=restart   # extra arguments go to `node --test`
# The tests start the jam-server this builds ($CARGO_TARGET_DIR/debug, else target/debug),
# or $JAM_SERVER_BIN when set (the build still runs).
# Needs Debian's Chromium (installed here if missing; run as root) and Node 20.19 or newer.
# Never downloads a browser: playwright-core drives /usr/bin/chromium.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

if [ ! -x /usr/bin/chromium ]; then
  echo "run.sh: installing chromium with apt-get" >&2
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
  else
    sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
  fi
fi

cd "$here"
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefer-offline --no-audit --no-fund

(cd "$repo" && cargo build --bin jam-server)

mkdir -p "$repo/target/e2e"
exec node --test --test-concurrency=1 --test-reporter=spec "$@" client.test.mjs timing.test.mjs jam.test.mjs resume.test.mjs origins.test.mjs musician.test.mjs band.test.mjs playout.test.mjs nodes.test.mjs webtransport.test.mjs
