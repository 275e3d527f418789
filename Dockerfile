# The caio router as a minimal container image: built from this repository
# in a Rust image, run from a distroless one (glibc, CA certificates, no
# shell, no package manager) as an unprivileged numeric user. Only
# /var/lib/caio (the SQLite store, when there is one) is meant to be
# writable: run it with a read-only root filesystem,
#
#   docker run --read-only --cap-drop=ALL --security-opt no-new-privileges \
#     -v caio-data:/var/lib/caio -v ./deploy/caio.toml:/etc/caio/caio.toml:ro \
#     -p 8080:8080 caio:local
#
# `docker compose up` (compose.yaml) runs three of them on PostgreSQL and
# Redis with the same restrictions. docs/container.md says more; the tests
# lint this file with hadolint and check the rules above.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p caio \
    && install -D -m 0755 target/release/caio /out/usr/local/bin/caio \
    && install -d -m 0750 /out/var/lib/caio

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/usr/local/bin/caio /usr/local/bin/caio
COPY --from=build --chown=65532:65532 /out/var/lib/caio /var/lib/caio
USER 65532:65532
WORKDIR /var/lib/caio
VOLUME ["/var/lib/caio"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/caio", "health", "--url", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["/usr/local/bin/caio"]
CMD ["serve", "--config", "/etc/caio/caio.toml"]
