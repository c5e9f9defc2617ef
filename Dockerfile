# Skuld container image (README, "Containers and clusters").
#
#   docker build -t skuld .
#   docker run --rm -p 8080:8080 skuld        # the example config: demo model and echo
#   docker stop -t 45 CONTAINER              # SIGTERM; give it more than drain_timeout (30 s)
#
# Build stage: a fresh Debian 12 with only what the README's "Set up" asks for
# beforehand, then the same install step as on a machine: `make install`
# (scripts/install-deps.sh with apt and npm, configure, build, cmake --install).
FROM debian:12 AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends git make sudo ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN make install PREFIX=/opt/skuld

# Runtime stage: the shared libraries bin/skuld and lib/skuld/*.so link (their
# Debian 12 runtime packages; libc6 is essential), CA certificates for https
# upstreams, curl for HEALTHCHECK. Runs as the unprivileged user skuld, uid
# 10001, given as a number so Kubernetes' runAsNonRoot can verify it.
FROM debian:12-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates curl \
      libevent-core-2.1-7 libevent-pthreads-2.1-7 libcurl4 libjansson4 libyaml-0-2 \
      libsqlite3-0 libpq5 libhiredis0.14 libjwt0 libxxhash0 libssl3 libstdc++6 libgcc-s1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/skuld --shell /usr/sbin/nologin skuld \
 && install -d -o skuld -g skuld -m 0750 /var/lib/skuld
COPY --from=build /opt/skuld /opt/skuld
COPY deploy/skuld.yaml /etc/skuld/skuld.yaml
ENV PATH=/opt/skuld/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# The store (sqlite://skuld.db in the example config) and the demo model live
# in the working directory, a volume.
WORKDIR /var/lib/skuld
VOLUME /var/lib/skuld
EXPOSE 8080
USER 10001:10001
# SIGTERM drains (server.drain_timeout); SIGHUP reloads the config.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD curl -fsS -o /dev/null --max-time 2 http://127.0.0.1:8080/healthz || exit 1
# Like the systemd unit's ExecStartPre: write the demo model on first start,
# then exec the gateway (PID 1, so it gets the signals itself).
CMD ["/bin/sh", "-c", "test -e skuld-data/demo.gguf || /opt/skuld/bin/skuld demo-model -o skuld-data/demo.gguf || exit 1; exec /opt/skuld/bin/skuld serve -c /etc/skuld/skuld.yaml"]
