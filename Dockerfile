# The Kubiya agent server image: `kubiya mcp agent` as a non-root user on slim Debian, with
# bubblewrap for sandboxed workflow steps and tini as PID 1 (forwards SIGTERM so the server
# drains, and reaps step and MCP server processes).
#
#   docker build -t kubiya-agent .
#   docker run --rm -p 8000:8000 -e OPENAI_API_KEY kubiya-agent
#
# Base images are build arguments, so the image builds from a mirror or a local copy where
# Docker Hub cannot be reached. To package a binary built elsewhere instead of compiling it
# here, put it alone in a directory as `kubiya` and build that directory with this file:
#
#   docker build --build-arg BINARY_FROM=prebuilt -f Dockerfile -t kubiya-agent DIR

ARG RUST_IMAGE=docker.io/library/rust:1-slim-bookworm
ARG RUNTIME_IMAGE=docker.io/library/debian:bookworm-slim
ARG BINARY_FROM=build

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin kubiya \
    && install -m 0755 target/release/kubiya /kubiya

FROM scratch AS prebuilt
COPY kubiya /kubiya

# hadolint ignore=DL3006
FROM ${BINARY_FROM} AS binary

# hadolint ignore=DL3006
FROM ${RUNTIME_IMAGE}
# Debian's stable packages; pinning exact versions would break the build at every point release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends bubblewrap ca-certificates curl tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/kubiya --create-home kubiya
COPY --from=binary /kubiya /usr/local/bin/kubiya

USER 10001:10001
WORKDIR /var/lib/kubiya
# The port comes from the environment so the health check follows it; --host 0.0.0.0 because
# with API keys off the server would otherwise listen only inside the container.
ENV KUBIYA_SERVER__PORT=8000 \
    LOG_FORMAT=json
EXPOSE 8000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["sh", "-c", "curl -fsS --max-time 2 http://127.0.0.1:${KUBIYA_SERVER__PORT}/health/live >/dev/null"]
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/kubiya", "mcp", "agent"]
CMD ["--host", "0.0.0.0"]
