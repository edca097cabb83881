-- Updates move the counts once per statement, not once per row. At a million
-- products most sales are a product's first, which moves the sold counts: the
-- row trigger then ran two upserts of report_counts per row, each writing a
-- lock and a new version of the same few rows. Now a batch of sales makes
-- one upsert per slug whose counts changed, summed from the rows before and
-- after the statement (rows whose counts did not change cancel out).
DROP TRIGGER product_sales_counted_on_update ON product_sales;

CREATE FUNCTION count_report_rows_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO report_counts AS c (slug, listed, sold)
    SELECT slug, sum(change.listed), sum(change.sold)
      FROM (SELECT category_slug, 1 AS listed, (units_sold > 0)::int AS sold FROM new_rows WHERE listed
            UNION ALL
            SELECT category_slug, -1, -(units_sold > 0)::int FROM old_rows WHERE listed) AS change,
           unnest(ARRAY['', change.category_slug]) AS slug
     GROUP BY slug
    HAVING sum(change.listed) <> 0 OR sum(change.sold) <> 0
    ON CONFLICT (slug) DO UPDATE SET listed = c.listed + EXCLUDED.listed, sold = c.sold + EXCLUDED.sold;
    RETURN NULL;
END
$$;

CREATE TRIGGER product_sales_counted_on_update AFTER UPDATE ON product_sales
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_report_rows_updated();
