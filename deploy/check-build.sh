#!/usr/bin/env bash
# Checks the image's build step without Docker: runs deploy/build.sh into a temporary
# prefix, as the Dockerfile does, then checks what it installed. The server answers
# --version and --help (which names --wt-addr); jam-healthcheck passes against a running
# server and fails once it has stopped; jam-entrypoint, started as another user than root,
# runs the server as that user. After a release build (as in CI) it takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
server=
cleanup() {
    if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
chmod 755 "$work"

bash deploy/build.sh "$work/usr/local"
bin=$work/usr/local/bin

version=$("$bin/jam-server" --version)
case $version in
    'jam-server '*) echo "ok: --version: $version" ;;
    *) echo "--version printed: $version" >&2; exit 1 ;;
esac
"$bin/jam-server" --help | grep -q -- '--wt-addr' || { echo "--help does not name --wt-addr" >&2; exit 1; }
echo "ok: --help names --wt-addr"

# Started as root, the entrypoint would chown /data and become jam; as anyone else it only
# runs the server. Check that path as nobody when this script runs as root.
if [ "$(id -u)" = 0 ]; then
    as_other=(setpriv --reuid=nobody --regid=nogroup --clear-groups --)
else
    as_other=()
fi
entry=$("${as_other[@]}" "$bin/jam-entrypoint" --version)
[ "$entry" = "$version" ] || { echo "jam-entrypoint --version printed: $entry" >&2; exit 1; }
echo "ok: jam-entrypoint runs the server"

# A real server on a free loopback port; the healthcheck finds it through JAM_HTTP_ADDR.
log=$work/server.log
"$bin/jam-server" --http-addr 127.0.0.1:0 --wt-addr off --ephemeral-cert --log-format json >"$log" 2>&1 &
server=$!
addr=
for _ in $(seq 100); do
    addr=$(sed -n 's/.*"message":"listening".*"http":"\([^"]*\)".*/\1/p; s/.*"http":"\([^"]*\)".*"message":"listening".*/\1/p' "$log" | head -n 1)
    [ -n "$addr" ] && break
    kill -0 "$server" 2>/dev/null || { cat "$log" >&2; echo "the server exited" >&2; exit 1; }
    sleep 0.1
done
[ -n "$addr" ] || { cat "$log" >&2; echo "the server did not log its address" >&2; exit 1; }
JAM_HTTP_ADDR=$addr "$bin/jam-healthcheck"
echo "ok: jam-healthcheck passes against $addr"

kill -TERM "$server"
wait "$server" || { echo "the server did not exit cleanly on SIGTERM" >&2; exit 1; }
server=
if JAM_HTTP_ADDR=$addr "$bin/jam-healthcheck" 2>/dev/null; then
    echo "jam-healthcheck passed with no server" >&2
    exit 1
fi
echo "ok: jam-healthcheck fails once the server has stopped"
