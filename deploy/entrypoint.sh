#!/bin/sh
# The image's entry point: runs jam-server as the unprivileged user jam, whatever user the
# platform starts the container as, with the arguments it was given.
#
# Fly.io and Railway mount a fresh volume owned by root, where jam could not write the room
# store. Started as root, this script gives the data directory to jam and then becomes jam
# for good (setpriv, with no way to gain privileges back); started as any other user
# (`docker run --user`, a Kubernetes runAsUser), it runs the server as that user. Either
# way `exec` makes jam-server the container's main process, so the platform's SIGTERM
# reaches it directly.
set -eu

bin=$(dirname "$0")
if [ "$(id -u)" = 0 ]; then
    data=${JAM_DATA_DIR:-/data}
    mkdir -p "$data"
    chown -R jam:jam "$data"
    exec setpriv --reuid=jam --regid=jam --init-groups --no-new-privs -- "$bin/jam-server" "$@"
fi
exec "$bin/jam-server" "$@"
