# The caio router as a container image: built from this repository, run as
# an unprivileged user. `docker compose up` (compose.yaml) runs three of
# them on PostgreSQL and Redis.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p caio && cp target/release/caio /usr/local/bin/caio

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/caio --create-home caio
COPY --from=build /usr/local/bin/caio /usr/local/bin/caio
USER caio
WORKDIR /var/lib/caio
EXPOSE 8080
ENTRYPOINT ["caio"]
CMD ["serve", "--config", "/etc/caio/caio.toml"]
