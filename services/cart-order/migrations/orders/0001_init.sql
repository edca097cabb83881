-- The order half of cart-order (search_path is pinned to schema `orders`).

CREATE TABLE orders (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id         bigint        NOT NULL,
    -- NULL: placed without idempotency.
    idempotency_key text,
    status          text          NOT NULL
        CHECK (status IN ('PENDING', 'PLACED', 'SHIPPED', 'DELIVERED', 'CANCELLED', 'FAILED')),
    -- 100 lines x 1000 units x 99999999.99 fits.
    total_price     numeric(16,2) NOT NULL DEFAULT 0,
    total_quantity  integer       NOT NULL DEFAULT 0,
    -- Stock held in catalog must still be given back (FAILED or CANCELLED
    -- orders whose ReleaseStock has not succeeded yet; the recovery loop retries).
    release_needed  boolean       NOT NULL DEFAULT false,
    created_at      timestamptz   NOT NULL DEFAULT now(),
    updated_at      timestamptz   NOT NULL DEFAULT now()
);
-- One live order per key and user; a FAILED attempt frees its key for a retry.
CREATE UNIQUE INDEX orders_idempotency_key ON orders (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL AND status <> 'FAILED';
CREATE INDEX orders_user_newest_idx ON orders (user_id, created_at DESC, id DESC);
CREATE INDEX orders_newest_idx ON orders (created_at DESC, id DESC);
CREATE INDEX orders_status_newest_idx ON orders (status, created_at DESC, id DESC);
CREATE INDEX orders_repair_idx ON orders (updated_at) WHERE status = 'PENDING' OR release_needed;

-- What was asked for (product, quantity) from the start; the snapshot columns
-- are filled when the order is PLACED.
CREATE TABLE order_lines (
    order_id      bigint  NOT NULL REFERENCES orders (id),
    product_id    bigint  NOT NULL,
    quantity      integer NOT NULL CHECK (quantity BETWEEN 1 AND 1000),
    title         text,
    unit_price    numeric(10,2),
    category_name text,
    category_slug text,
    PRIMARY KEY (order_id, product_id)
);
