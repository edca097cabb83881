-- The cart half of cart-order (search_path is pinned to schema `cart`).

-- One row per user who ever had a cart; cart changes lock it, so one user's
-- concurrent changes apply one after another (the 100-line cap holds).
CREATE TABLE carts (
    user_id    bigint PRIMARY KEY,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE cart_items (
    user_id    bigint        NOT NULL REFERENCES carts (user_id),
    product_id bigint        NOT NULL,
    quantity   integer       NOT NULL CHECK (quantity BETWEEN 1 AND 1000),
    -- Title and price when last added: shown for a product catalog no longer
    -- lists (archived), whose current values are unknown.
    title      text          NOT NULL,
    unit_price numeric(10,2) NOT NULL,
    -- Insertion order, for "oldest added first".
    position   bigint        GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (user_id, product_id)
);

CREATE TABLE wishlist_items (
    user_id    bigint NOT NULL,
    product_id bigint NOT NULL,
    position   bigint GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (user_id, product_id)
);
CREATE INDEX wishlist_items_newest_idx ON wishlist_items (user_id, position DESC);

-- Orders whose lines have been taken out of their cart: a replayed checkout
-- of the same order removes nothing twice.
CREATE TABLE checkouts (
    order_id   bigint PRIMARY KEY,
    user_id    bigint      NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
