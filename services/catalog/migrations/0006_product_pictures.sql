-- Pictures Shop keeps for products (the file store's key of the current
-- one), and the pictures to delete from the file store: a row is written in
-- the transaction that lets go of a picture, and by an upload before its
-- bytes are stored (due later, and removed when the upload commits), so no
-- picture is ever left in the store with nothing pointing at it.
ALTER TABLE products ADD COLUMN picture_key text;

CREATE TABLE picture_deletions (
    key text PRIMARY KEY,
    due_at timestamptz NOT NULL,
    attempts integer NOT NULL DEFAULT 0
);
CREATE INDEX picture_deletions_due ON picture_deletions (due_at);
