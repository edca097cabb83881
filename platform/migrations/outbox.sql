-- Transactional outbox of one schema (see shop_platform::outbox). `sequence`
-- comes from outbox_head inside the writing transaction, so it is gap-free
-- and in commit order.
CREATE TABLE outbox (
    sequence    bigint PRIMARY KEY,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    -- The stream's event message, protobuf-encoded, without sequence/occurred_at.
    payload     bytea       NOT NULL
);
CREATE TABLE outbox_head (
    only_row      boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    last_sequence bigint  NOT NULL
);
INSERT INTO outbox_head (last_sequence) VALUES (0);
