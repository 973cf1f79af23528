# Builder and runtime share Debian 12 (bookworm), so the glibc the binary links against is
# the one distroless/cc provides.
FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
# --locked: build exactly the versions in Cargo.lock.
RUN cargo build --release --locked \
 && install -D -m 0755 target/release/flink-hpa-bridge /out/flink-hpa-bridge

# distroless/cc: glibc, libgcc and CA certificates, no shell or package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="flink-hpa-bridge" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/flink-hpa-bridge /usr/local/bin/flink-hpa-bridge
# UID/GID 65532; Kubernetes needs runAsUser: 65532 to verify runAsNonRoot for a named user.
USER nonroot
EXPOSE 6443
ENTRYPOINT ["/usr/local/bin/flink-hpa-bridge"]
CMD ["serve"]
