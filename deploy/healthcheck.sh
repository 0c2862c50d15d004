#!/usr/bin/env bash
# The image's HEALTHCHECK: GET /healthz on the server's own HTTP port and exit 0 on a 200.
#
# The runtime image carries no curl or wget, and the server binary makes no HTTP requests,
# so this uses bash's /dev/tcp. It finds the port by the server's own rule: the port of
# JAM_HTTP_ADDR when set, else the platform's PORT, else 3001. (An address given as the
# --http-addr flag instead is not seen here: give it as JAM_HTTP_ADDR.) A wildcard address
# is checked on loopback.
set -euo pipefail

if [ -n "${JAM_HTTP_ADDR:-}" ]; then
    port=${JAM_HTTP_ADDR##*:}
    host=${JAM_HTTP_ADDR%:*}
    host=${host#[}
    host=${host%]}
else
    port=${PORT:-3001}
    host=
fi
case $host in '' | '::' | '0.0.0.0') host=127.0.0.1 ;; esac

exec 3<>"/dev/tcp/$host/$port"
printf 'GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
IFS= read -r -t 3 status <&3
case $status in
    'HTTP/1.1 200 '*) exit 0 ;;
    *) echo "GET /healthz on $host:$port: ${status%$'\r'}" >&2; exit 1 ;;
esac
