-- Catalog's schema (search_path is pinned to it): categories, products,
-- stock reservations and the event outbox.

-- Trigram indexes make "every term, any case, anywhere in title or
-- description" searches fast. pg_trgm is a trusted extension (PG 13+).
CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA catalog;

CREATE TABLE categories (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text        NOT NULL,
    slug       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT categories_slug_key UNIQUE (slug)
);
CREATE UNIQUE INDEX categories_name_key ON categories (lower(name));

CREATE TABLE products (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    title       text          NOT NULL,
    description text          NOT NULL DEFAULT '',
    price       numeric(10,2) NOT NULL CHECK (price >= 0),
    stock       integer       NOT NULL CHECK (stock >= 0),
    image_url   text          NOT NULL DEFAULT '',
    -- No cascade: a category holding products cannot be deleted.
    category_id bigint        NOT NULL CONSTRAINT products_category_fkey REFERENCES categories (id),
    sold_count  bigint        NOT NULL DEFAULT 0 CHECK (sold_count >= 0),
    created_at  timestamptz   NOT NULL DEFAULT now(),
    updated_at  timestamptz   NOT NULL DEFAULT now(),
    -- Archived products leave listings but stay for order history.
    archived_at timestamptz
);

-- Listing indexes cover only live products; each ends in id, the tie-breaker.
CREATE INDEX products_created_idx ON products (created_at, id) WHERE archived_at IS NULL;
CREATE INDEX products_price_idx ON products (price, id) WHERE archived_at IS NULL;
CREATE INDEX products_sold_idx ON products (sold_count, id) WHERE archived_at IS NULL;
CREATE INDEX products_title_idx ON products (title, id) WHERE archived_at IS NULL;
CREATE INDEX products_category_created_idx ON products (category_id, created_at, id) WHERE archived_at IS NULL;
CREATE INDEX products_category_price_idx ON products (category_id, price, id) WHERE archived_at IS NULL;
CREATE INDEX products_category_sold_idx ON products (category_id, sold_count, id) WHERE archived_at IS NULL;
CREATE INDEX products_category_title_idx ON products (category_id, title, id) WHERE archived_at IS NULL;
-- Every product, archived or not, for "does this category hold products?".
CREATE INDEX products_category_idx ON products (category_id);
CREATE INDEX products_search_idx ON products USING gin ((lower(title || ' ' || description)) gin_trgm_ops)
    WHERE archived_at IS NULL;

-- Live products per category, kept in the same transaction as every change,
-- so an unfiltered or category-only listing knows its total without counting.
CREATE TABLE category_product_counts (
    category_id bigint PRIMARY KEY REFERENCES categories (id) ON DELETE CASCADE,
    live_count  bigint NOT NULL DEFAULT 0 CHECK (live_count >= 0)
);

-- One row per order that reserved stock; 'released' also marks an order
-- released before its reservation arrived, so a late ReserveStock fails.
CREATE TABLE reservations (
    order_id    bigint PRIMARY KEY,
    status      text        NOT NULL CHECK (status IN ('reserved', 'released')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    released_at timestamptz
);

-- The snapshot a reservation returns, again on every replay.
CREATE TABLE reservation_lines (
    order_id      bigint        NOT NULL REFERENCES reservations (order_id),
    product_id    bigint        NOT NULL REFERENCES products (id),
    quantity      integer       NOT NULL CHECK (quantity > 0),
    title         text          NOT NULL,
    unit_price    numeric(10,2) NOT NULL,
    category_name text          NOT NULL,
    category_slug text          NOT NULL,
    PRIMARY KEY (order_id, product_id)
);

-- Transactional outbox. `sequence` comes from outbox_head inside the writing
-- transaction, so it is gap-free and in commit order.
CREATE TABLE outbox (
    sequence    bigint PRIMARY KEY,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    -- A shop.catalog.v1.CatalogEvent, protobuf-encoded, without sequence/occurred_at.
    payload     bytea       NOT NULL
);
CREATE TABLE outbox_head (
    only_row      boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    last_sequence bigint  NOT NULL
);
INSERT INTO outbox_head (last_sequence) VALUES (0);
