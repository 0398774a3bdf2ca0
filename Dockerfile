# syntax=docker/dockerfile:1
#
# The kafka-backup image: built in the Rust image, run from a distroless one that
# holds the binary and what it loads (glibc, libgcc, OpenSSL's libraries: zlib is
# linked in statically) with the CA certificates, as the non-root user 65532.
#
#   docker build -t kafka-backup:0.1.0 .
#   docker run --rm kafka-backup:0.1.0 backup -c /etc/kafka-backup/backup.yaml
#
# `scripts/container` builds and smoke-tests it where a Docker engine runs;
# `tests/container.rs` checks, without one, that the binary needs no library the
# runtime image lacks. Kubernetes manifests: docs/kubernetes.md.

# the builder's Debian release must be the runtime's (bookworm = debian12):
# the binary loads that release's glibc and libssl3
ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS build
# librdkafka's build (C, with OpenSSL) and aws-lc's
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake pkg-config libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# the whole workspace (its members' manifests are read even for one package);
# .dockerignore leaves out build output, the test ground and backups
COPY . .
# without debug info: a 31 MB binary instead of 142 MB (line tables)
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    CARGO_PROFILE_RELEASE_DEBUG=false \
    cargo build --release --locked -p kafka-backup --bin kafka-backup \
 && install -D -m 0755 target/release/kafka-backup /out/kafka-backup

FROM ${RUNTIME_IMAGE}
LABEL org.opencontainers.image.title="kafka-backup" \
      org.opencontainers.image.description="Back up a Kafka cluster together with its Confluent Schema Registry and restore both" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/kafka-backup /usr/local/bin/kafka-backup
# OpenSSL (librdkafka) and rustls (registry, object stores) read the roots from here
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
WORKDIR /home/nonroot
ENTRYPOINT ["/usr/local/bin/kafka-backup"]
CMD ["--help"]
