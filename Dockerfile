# syntax=docker/dockerfile:1
# Build stage: compile hanko in release mode.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# The slash command definitions are embedded in the binary at build time.
COPY commands ./commands
COPY benches ./benches
RUN cargo build --release --locked --bin hanko

# Runtime stage: a slim Debian with CA certificates, a non-root user and a volume for the store.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/hanko --create-home hanko
COPY --from=build /src/target/release/hanko /usr/local/bin/hanko
COPY config /etc/hanko/config
USER hanko
VOLUME ["/var/lib/hanko"]
# /healthz and /metrics
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/hanko"]
CMD ["run", "--config", "/etc/hanko/hanko.toml"]
