#!/usr/bin/env bash
# Builds the release server and installs what the runtime image takes, under one prefix:
#
#   <prefix>/bin/jam-server       the server; the web demo and the client library it serves
#                                 are built into the binary (rust-embed), so no web files
#                                 are installed beside it
#   <prefix>/bin/jam-entrypoint   runs the server as the user jam (deploy/entrypoint.sh)
#   <prefix>/bin/jam-healthcheck  GET /healthz with bash alone (deploy/healthcheck.sh)
#
# The Dockerfile's build stage runs `deploy/build.sh /out/usr/local`; CI runs it into a
# temporary directory (deploy/check-build.sh) after its own release build. CARGO_TARGET_DIR
# is honoured.
#
# Usage: deploy/build.sh <prefix>
set -euo pipefail

prefix=${1:?usage: deploy/build.sh <prefix>}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

# `--workspace` selects every member for feature resolution (only the jam-server binary and
# what it needs are compiled), so its dependencies get the same features as in CI's
# `cargo build --release --workspace --bins`: the image's binary is the one CI builds, and
# after that build this one has nothing to do.
cargo build --release --locked --workspace --bin jam-server

target=${CARGO_TARGET_DIR:-target}
install -d "$prefix/bin"
install -m 0755 "$target/release/jam-server" "$prefix/bin/jam-server"
install -m 0755 deploy/entrypoint.sh "$prefix/bin/jam-entrypoint"
install -m 0755 deploy/healthcheck.sh "$prefix/bin/jam-healthcheck"
echo "installed jam-server, jam-entrypoint and jam-healthcheck in $prefix/bin"
