# syntax=docker/dockerfile:1
# flink-hpa-bridge: docker build -t flink-hpa-bridge:$(cargo pkgid | sed 's/.*[#@]//') .
#
# The binary's version is the crate version (Cargo.toml), compiled in and shown by
# `flink-hpa-bridge --version`; the image tag and VERSION below should match it
# (tests/manifests checks the VERSION default and the manifests' image tag).

# Builder and runtime share Debian 12 (bookworm), so the glibc the binary links against is the
# one distroless/cc provides.
FROM rust:1-bookworm AS builder
WORKDIR /src

# Dependencies first, in their own layer: rebuilt only when Cargo.toml or Cargo.lock change,
# not on every source edit. Placeholder sources stand in for the crate's own; the targets
# Cargo.toml declares by name must exist for cargo to read it (tests/manifests checks this
# list against Cargo.toml).
COPY Cargo.toml Cargo.lock ./
COPY benches benches
RUN mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src

COPY . .
# --locked: exactly the versions in Cargo.lock. The touch makes cargo rebuild the crate itself
# over the placeholder's artifacts, whatever the timestamps in the build context.
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --bin flink-hpa-bridge \
 && install -D -m 0755 target/release/flink-hpa-bridge /out/flink-hpa-bridge \
 && /out/flink-hpa-bridge --version

# distroless/cc: glibc, libgcc and CA certificates; no shell, no package manager. The server
# writes nothing (the self-signed certificate lives in memory), so it runs with a read-only
# root filesystem.
FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="flink-hpa-bridge" \
      org.opencontainers.image.description="Kubernetes custom and external metrics APIService serving Flink autoscaling signals from Prometheus" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/flink-hpa-bridge /usr/local/bin/flink-hpa-bridge
# UID/GID 65532; the Deployment repeats it numerically so the kubelet can verify runAsNonRoot.
USER nonroot
EXPOSE 6443
ENTRYPOINT ["/usr/local/bin/flink-hpa-bridge"]
CMD ["serve"]
