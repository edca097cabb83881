-- A reservation line's product is already known to exist: reserve_stock
-- inserts lines only for products whose stock row it holds locked, and a
-- stock row's product is a foreign key of its own (products are archived,
-- never deleted). Checking it again per line took a KEY SHARE lock on the
-- product's wide row: a WAL record for each, with a full-page image of a
-- random products page after every checkpoint, about a quarter of the WAL
-- a checkout wrote.
ALTER TABLE reservation_lines DROP CONSTRAINT reservation_lines_product_id_fkey;
