-- Reporting's read model (search_path is pinned to schema `reporting`), fed
-- only by the catalog and order event streams.

-- How far each stream has been applied. Advanced in the same transaction as
-- the events it covers, so a restart neither loses nor double-counts.
CREATE TABLE checkpoints (
    stream           text PRIMARY KEY CHECK (stream IN ('catalog', 'orders')),
    last_sequence    bigint NOT NULL DEFAULT 0,
    -- When the last applied event committed at its source (the report's as_of).
    last_occurred_at timestamptz
);
INSERT INTO checkpoints (stream) VALUES ('catalog'), ('orders');

CREATE TABLE categories (
    category_id bigint PRIMARY KEY,
    name        text NOT NULL,
    slug        text NOT NULL
);
CREATE INDEX categories_slug_idx ON categories (slug);

-- One row per product either stream has mentioned, with its sales from
-- order snapshots (cancelled orders taken back out).
CREATE TABLE product_sales (
    product_id    bigint PRIMARY KEY,
    title         text          NOT NULL,
    -- NULL while the product is known only from an order's snapshot.
    category_id   bigint,
    category_name text          NOT NULL,
    category_slug text          NOT NULL,
    archived      boolean       NOT NULL DEFAULT false,
    units_sold    bigint        NOT NULL DEFAULT 0 CHECK (units_sold >= 0),
    order_count   bigint        NOT NULL DEFAULT 0 CHECK (order_count >= 0),
    revenue       numeric(18,2) NOT NULL DEFAULT 0,
    -- In the report: live products, and archived ones that still count sales.
    listed        boolean       GENERATED ALWAYS AS (NOT archived OR units_sold > 0) STORED
);
CREATE INDEX product_sales_category_idx ON product_sales (category_id);
-- One per report ordering, with and without the category filter.
CREATE INDEX product_sales_most_idx ON product_sales (units_sold DESC, title, product_id) WHERE listed;
CREATE INDEX product_sales_least_idx ON product_sales (units_sold, title, product_id) WHERE listed;
CREATE INDEX product_sales_category_most_idx ON product_sales (category_slug, units_sold DESC, title, product_id)
    WHERE listed;
CREATE INDEX product_sales_category_least_idx ON product_sales (category_slug, units_sold, title, product_id)
    WHERE listed;

-- Listed and sold rows per category slug ('' = all), kept by trigger in the
-- same transaction as every change, so a report's total_count is one lookup.
CREATE TABLE report_counts (
    slug   text PRIMARY KEY,
    listed bigint NOT NULL DEFAULT 0,
    sold   bigint NOT NULL DEFAULT 0
);

CREATE FUNCTION count_report_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.listed THEN
        INSERT INTO report_counts AS c (slug, listed, sold)
        VALUES ('', -1, -(OLD.units_sold > 0)::int), (OLD.category_slug, -1, -(OLD.units_sold > 0)::int)
        ON CONFLICT (slug) DO UPDATE SET listed = c.listed + EXCLUDED.listed, sold = c.sold + EXCLUDED.sold;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.listed THEN
        INSERT INTO report_counts AS c (slug, listed, sold)
        VALUES ('', 1, (NEW.units_sold > 0)::int), (NEW.category_slug, 1, (NEW.units_sold > 0)::int)
        ON CONFLICT (slug) DO UPDATE SET listed = c.listed + EXCLUDED.listed, sold = c.sold + EXCLUDED.sold;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER product_sales_counted_on_insert_or_delete AFTER INSERT OR DELETE ON product_sales
    FOR EACH ROW EXECUTE FUNCTION count_report_rows();
-- Most updates (another sale of a product already sold) change no count.
CREATE TRIGGER product_sales_counted_on_update AFTER UPDATE ON product_sales
    FOR EACH ROW WHEN (OLD.listed IS DISTINCT FROM NEW.listed
                       OR OLD.category_slug IS DISTINCT FROM NEW.category_slug
                       OR (OLD.units_sold > 0) IS DISTINCT FROM (NEW.units_sold > 0))
    EXECUTE FUNCTION count_report_rows();
