# jam-server tasks. `just --list` shows them all.

# Run the server with the development certificate and debug logs.
dev:
    RUST_LOG=debug,quinn=info,h2=info,hyper=info cargo run -- --cert-dir certs

# Run the server in release mode (the README's first command).
run:
    cargo run --release

# The test suite of every crate (unit + integration on real sockets).
test:
    cargo test --workspace

# Quick checks: cargo fmt --check, clippy with -D warnings, cargo test --workspace.
check:
    cargo fmt --check
    cargo clippy --workspace --all-targets -- -D warnings
    cargo test --workspace

# Everything CI runs (bash .ci/run): checks, Node and browser tests, JS clients, bench smoke.
ci:
    bash .ci/run

# Browser tests in headless Chromium (installs chromium and playwright-core if missing).
e2e:
    bash web-demo/e2e/run.sh

# The npm package and the React example: tsc, node tests and Vitest against the real server.
js:
    bash clients/run-tests.sh

# A new Vite + React app outside the repository installs jam-client as its README says and works in Chromium.
fresh-app:
    bash clients/fresh-app.sh

# Make a fresh development certificate in certs/ and print its SHA-256.
certs:
    cargo run --release -- --make-cert --cert-dir certs

# Benchmark scenarios (release build; pins server and generator to different cores).
bench:
    cargo build --release --workspace --bins
    bash bench/scenarios.sh

# Soak: 30 min of busy load with churn, then checks that resources come back (SOAK_SECONDS=90: short).
soak:
    bash bench/soak.sh

# Run one fuzz target (envelope, lines, session) for ten minutes (nightly, cargo-fuzz).
fuzz target:
    cargo +nightly fuzz run {{target}} --sanitizer none --debug-assertions -- -max_total_time=600 -dict=fuzz/dict/protocol.dict

# Criterion micro-benchmarks of the hot path.
bench-hot:
    cargo bench --bench hot_path

# Format the code.
fmt:
    cargo fmt
