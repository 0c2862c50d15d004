# The jam-server image. Two stages:
#
#   build    the official Rust image (Debian bookworm) runs deploy/build.sh, the same script
#            CI runs (deploy/check-build.sh), and installs under /out/usr/local
#   runtime  debian:bookworm-slim with the server, its entry point and its health check;
#            the web demo is inside the binary, so nothing else is copied
#
# The server runs as the user jam (uid 10001), never as root. The container starts as root
# only so that deploy/entrypoint.sh can hand a freshly mounted volume (Fly.io and Railway
# mount theirs owned by root) to jam before it becomes jam for good; `docker run --user
# 10001` skips that step. docs/deploy.md explains every choice below.
#
#   docker build -t jam-server .
#   docker run -p 3001:3001 -p 4433:4433/udp -v jam-data:/data jam-server

ARG RUST_VERSION=1

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
RUN bash deploy/build.sh /out/usr/local

FROM debian:bookworm-slim AS runtime
RUN groupadd --system --gid 10001 jam \
 && useradd --system --uid 10001 --gid jam --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin jam \
 && install -d -o jam -g jam -m 0750 /data
COPY --from=build /out/usr/local/bin/ /usr/local/bin/

# The room store, the development certificate and the resume key live on the volume, so a
# deploy keeps rooms, seats and the certificate hash. Logs are one JSON object a line.
ENV JAM_DATA_DIR=/data \
    JAM_CERT_DIR=/data/certs \
    JAM_LOG_FORMAT=json
VOLUME ["/data"]

# HTTP, WebSocket and Socket.IO on TCP 3001 (a platform's PORT moves it); WebTransport on
# UDP 4433.
EXPOSE 3001/tcp 4433/udp

# SIGTERM closes every client properly, stores the rooms and exits within a few seconds
# (longest waits: 3 s for connections, 2 s for the store); give it 30 s before a SIGKILL
# (`docker stop -t 30`, `stop_grace_period: 30s`).
STOPSIGNAL SIGTERM

# No curl in this image: jam-healthcheck speaks HTTP over bash's /dev/tcp.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 CMD ["jam-healthcheck"]

ENTRYPOINT ["jam-entrypoint"]
