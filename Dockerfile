# syntax=docker/dockerfile:1
# One image for every Shop service: `shop serve <service>` (see docker-compose.yml
# and deploy/k8s). Base images are build arguments so a registry mirror can be used:
#   docker build --build-arg RUST_IMAGE=mirror.example/rust:1.88-bookworm .
ARG RUST_IMAGE=rust:1.88-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
WORKDIR /src
# Dependencies first: this layer is rebuilt only when a manifest or the lock
# file changes, not when Shop's own code does.
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
# The compiled dependencies are kept between builds in a cache mount.
RUN --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin shop \
    && cp target/release/shop /usr/local/bin/shop

FROM ${RUNTIME_IMAGE}
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin shop \
    # The catalog's search index lives here (a volume in compose, an emptyDir in Kubernetes).
    && mkdir -p /var/lib/shop/catalog-index && chown -R 10001:10001 /var/lib/shop
COPY --from=build /usr/local/bin/shop /usr/local/bin/shop
USER 10001:10001
# Listen on every interface inside the container; ports are set per service.
ENV SHOP_LOG_FORMAT=json
ENTRYPOINT ["/usr/local/bin/shop"]
CMD ["--help"]
