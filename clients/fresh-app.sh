#!/usr/bin/env bash
# A React app made from nothing, with jam-client installed the way clients/js/README.md
# says, works. In a temporary folder outside the repository it writes a Vite + React +
# TypeScript app (the versions examples/react pins; no resolve.dedupe, no alias), installs
# its packages, packs clients/js and installs the tarball (the README's two commands),
# runs tsc --noEmit and vite build, checks that the bundle holds one React
# (react-copies.mjs), then serves the build on its own origin and opens it in headless
# Chromium against the real server, which must give it a room whose code it shows, with
# no page error (fresh-app.test.mjs). Two Reacts in one bundle show there as
# "Cannot read properties of null (reading 'useRef')" and a blank page.
#   bash clients/fresh-app.sh
# Starts target/debug/jam-server ($CARGO_TARGET_DIR/debug when set), or $JAM_SERVER_BIN
# (the build still runs). Node 20.19 or newer; Chromium at /usr/bin/chromium
# ($CHROMIUM_BIN), driven by web-demo/e2e's playwright-core; nothing downloads a browser.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
npm_flags=(--prefer-offline --no-audit --no-fund --loglevel=error)
# Every step has a bound: a hung install or build fails the check instead of stalling CI.
bounded() {
  local secs="$1"
  shift
  timeout --kill-after=10 "$secs" "$@"
}

chromium="${CHROMIUM_BIN:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
  echo "fresh-app: no Chromium at $chromium (apt-get install chromium, or set CHROMIUM_BIN)" >&2
  exit 1
fi

(cd "$repo" && cargo build --bin jam-server)
(cd "$repo/web-demo/e2e" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 bounded 180 npm ci "${npm_flags[@]}")

version="$(node -p "require('$repo/clients/js/package.json').version")"
tarball="jam-client-$version.tgz"
echo "== fresh-app: the README's install commands name jam-client $version"
for doc in clients/js/README.md docs/client.md; do
  grep -qF "npm install ./$tarball" "$repo/$doc" || {
    echo "fresh-app: $doc does not say \`npm install ./$tarball\`" >&2
    exit 1
  }
done
grep -qF 'npm pack path/to/jam-server/clients/js' "$repo/clients/js/README.md" || {
  echo 'fresh-app: clients/js/README.md does not say `npm pack path/to/jam-server/clients/js`' >&2
  exit 1
}

app="$(mktemp -d "${TMPDIR:-/tmp}/jam-fresh-app.XXXXXX")"
trap 'rm -rf "$app"' EXIT
case "$app/" in
  "$repo"/*)
    echo "fresh-app: $app is inside the repository; point TMPDIR elsewhere" >&2
    exit 1
    ;;
esac
echo "== fresh-app: a new Vite + React + TypeScript app in $app"

# The versions examples/react pins, so the two never drift apart.
node -e '
  const example = require(process.argv[1]);
  const all = { ...example.dependencies, ...example.devDependencies };
  const pin = (names) => Object.fromEntries(names.map((n) => {
    if (!all[n]) throw new Error(`examples/react pins no ${n}`);
    return [n, all[n]];
  }));
  const pkg = {
    name: "fresh-jam-app",
    private: true,
    version: "0.0.0",
    type: "module",
    scripts: { build: "vite build", typecheck: "tsc --noEmit" },
    dependencies: pin(["react", "react-dom"]),
    devDependencies: pin(["@types/react", "@types/react-dom", "@vitejs/plugin-react", "typescript", "vite"]),
  };
  process.stdout.write(JSON.stringify(pkg, null, 2) + "\n");
' "$repo/examples/react/package.json" >"$app/package.json"

cat >"$app/index.html" <<'EOF'
<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <title>A fresh jam app</title>
    <link rel="icon" href="data:," />
  </head>
  <body>
    <div id="root"></div>
    <script type="module" src="/src/main.tsx"></script>
  </body>
</html>
EOF

cat >"$app/vite.config.ts" <<'EOF'
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

export default defineConfig({
  plugins: [react()],
});
EOF

cat >"$app/tsconfig.json" <<'EOF'
{
  "compilerOptions": {
    "target": "ES2022",
    "lib": ["ES2022", "DOM", "DOM.Iterable"],
    "module": "ESNext",
    "moduleResolution": "Bundler",
    "jsx": "react-jsx",
    "strict": true,
    "noEmit": true,
    "skipLibCheck": true,
    "isolatedModules": true,
    "noUnusedLocals": true,
    "noUnusedParameters": true,
    "types": ["vite/client"]
  },
  "include": ["src"]
}
EOF

mkdir "$app/src"
cat >"$app/src/main.tsx" <<'EOF'
import { StrictMode, useEffect, useRef } from 'react';
import { createRoot } from 'react-dom/client';
import { useJamSession } from 'jam-client/react';

// The jam server: ?server=<url>, else one on this machine.
const baseUrl = new URLSearchParams(location.search).get('server') ?? 'http://localhost:3001';

function App() {
  const jam = useJamSession({ baseUrl });
  const { state, room, create } = jam;
  const asked = useRef(false);

  // Once connected, open a room (once).
  useEffect(() => {
    if (state !== 'connected' || room || asked.current) return;
    asked.current = true;
    void create({ name: 'Fresh', instrument: 'piano' });
  }, [state, room, create]);

  return (
    <main>
      <p>
        <span aria-label="connection">{state}</span> over <span aria-label="transport">{jam.transport ?? 'nothing yet'}</span>
      </p>
      {jam.error && <p role="alert">{jam.error.code}: {jam.error.message}</p>}
      {room && (
        <section>
          <h1>
            Room <output aria-label="room code">{room.roomCode}</output>
          </h1>
          <ul aria-label="participants">
            {room.participants.map((p) => (
              <li key={p.id}>
                {p.name} ({p.instrument ?? 'no instrument'})
              </li>
            ))}
          </ul>
        </section>
      )}
    </main>
  );
}

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
EOF

cd "$app"
echo "== fresh-app: npm install (the app's own packages)"
bounded 240 npm install "${npm_flags[@]}"
echo "== fresh-app: npm pack clients/js, npm install ./$tarball (as clients/js/README.md says)"
packed="$(bounded 60 npm pack --silent "$repo/clients/js" | tail -n 1)"
[ "$packed" = "$tarball" ] || {
  echo "fresh-app: npm pack wrote '$packed', not $tarball" >&2
  exit 1
}
bounded 120 npm install "${npm_flags[@]}" "./$tarball"
if [ -L node_modules/jam-client ] || [ -e node_modules/jam-client/node_modules ]; then
  echo "fresh-app: node_modules/jam-client is a link or has packages of its own" >&2
  exit 1
fi

echo "== fresh-app: tsc --noEmit, vite build"
bounded 120 npx tsc --noEmit
bounded 120 npx vite build --logLevel warn --sourcemap
node "$here/react-copies.mjs" dist

echo "== fresh-app: the build in headless Chromium against the real server"
FRESH_APP_DIST="$app/dist" bounded 150 node --test --test-reporter=spec "$here/fresh-app.test.mjs"
echo "fresh-app: passed in ${SECONDS} s"
