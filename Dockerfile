# One image for every Shop service: `shop serve <service>` (see docker-compose.yml
# and deploy/k8s). Base images are build arguments so a registry mirror can be used:
#   docker build --build-arg RUST_IMAGE=mirror.example/rust:1.90-slim-bookworm .
# Plain Dockerfile syntax: it builds with BuildKit and with the classic builder
# (older engines, Compose v1) alike.
ARG RUST_IMAGE=rust:1.90-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# What every final image has: the user, the index directory, the entry point.
FROM ${RUNTIME_IMAGE} AS runtime-base
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin shop \
    # The catalog's search index lives here, and docker-compose's secrets; a
    # fresh named volume takes this owner.
    && mkdir -p /var/lib/shop/catalog-index /var/lib/shop/secrets /var/lib/shop/files \
    && chown -R 10001:10001 /var/lib/shop && chmod 700 /var/lib/shop/secrets
USER 10001:10001
# Listen on every interface inside the container; ports are set per service.
ENV SHOP_LOG_FORMAT=json
ENTRYPOINT ["/usr/local/bin/shop"]
CMD ["--help"]

# `--target prebuilt`: the image around a `shop` binary already built on this
# machine's Debian (put at deploy/prebuilt/shop), for machines whose build
# containers cannot reach a Rust toolchain or the crate registry (CI).
FROM runtime-base AS prebuilt
COPY deploy/prebuilt/ /usr/local/bin/

FROM ${RUST_IMAGE} AS build
WORKDIR /src
# Dependencies first, in a layer of their own: rebuilt only when a manifest
# or the lock file changes, not when Shop's own code does.
COPY Cargo.toml Cargo.lock ./
COPY proto/Cargo.toml proto/
COPY platform/Cargo.toml platform/
COPY gateway/Cargo.toml gateway/
COPY services/identity/Cargo.toml services/identity/
COPY services/catalog/Cargo.toml services/catalog/
COPY services/cart-order/Cargo.toml services/cart-order/
COPY services/reporting/Cargo.toml services/reporting/
# Cargo needs a target per package to read the workspace; empty ones do.
RUN for crate in . proto platform gateway services/identity services/catalog services/cart-order services/reporting; do \
        mkdir -p "$crate/src" && touch "$crate/src/lib.rs"; \
    done \
    && echo 'fn main() {}' > src/main.rs \
    && cargo fetch --locked
COPY . .
RUN cargo build --release --locked --bin shop && cp target/release/shop /usr/local/bin/shop

# The default: Shop built from source.
FROM runtime-base AS runtime
COPY --from=build /usr/local/bin/shop /usr/local/bin/shop
