-- Stock moves to a narrow row of its own. A checkout changes only this row:
-- no index covers what changes and every page keeps half its room free, so
-- each update is a HOT update of a few dozen bytes, instead of a new version
-- of the whole product row with an entry in every listing index.
CREATE TABLE stock (
    product_id  bigint  PRIMARY KEY CONSTRAINT stock_product_fkey REFERENCES products (id),
    stock       integer NOT NULL CHECK (stock >= 0),
    sold_count  bigint  NOT NULL DEFAULT 0 CHECK (sold_count >= 0),
    -- Archiving sets it under this row's lock, the lock reservations take:
    -- a reservation and an archive of one product never cross.
    is_archived boolean NOT NULL DEFAULT false
) WITH (fillfactor = 50);

INSERT INTO stock (product_id, stock, sold_count, is_archived)
SELECT id, stock, sold_count, archived_at IS NOT NULL FROM products;

ALTER TABLE products DROP COLUMN stock, DROP COLUMN sold_count;

-- ReserveStock in one round trip. Locks the lines' stock rows in product id
-- order (the caller sorts them: two reservations wait instead of
-- deadlocking); then, on fresh snapshots (each statement of a function has
-- its own), answers a replay from what is stored, or names every line that
-- cannot be had and changes nothing, or takes the stock, stores the price
-- snapshot and appends `event` to the outbox. Rows: outcome 'reserved' (the
-- snapshot), 'released' (the order was released first), or 'short' /
-- 'not_sold' (one per line that cannot be had, with what is available).
CREATE FUNCTION reserve_stock(p_order_id bigint, p_product_ids bigint[], p_quantities integer[], p_event bytea)
RETURNS TABLE (outcome text, product_id bigint, quantity integer, title text, unit_price numeric,
               category_name text, category_slug text, available integer)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    v_status text;
BEGIN
    PERFORM 1 FROM stock s WHERE s.product_id = ANY (p_product_ids) ORDER BY s.product_id FOR UPDATE;

    SELECT r.status INTO v_status FROM reservations r WHERE r.order_id = p_order_id;
    IF v_status = 'released' THEN
        RETURN QUERY SELECT 'released'::text, NULL::bigint, NULL::integer, NULL::text, NULL::numeric,
                            NULL::text, NULL::text, NULL::integer;
        RETURN;
    ELSIF v_status = 'reserved' THEN
        RETURN QUERY SELECT 'reserved'::text, l.product_id, l.quantity, l.title, l.unit_price,
                            l.category_name, l.category_slug, NULL::integer
                       FROM reservation_lines l WHERE l.order_id = p_order_id ORDER BY l.product_id;
        RETURN;
    END IF;

    RETURN QUERY
        SELECT CASE WHEN s.product_id IS NULL OR s.is_archived THEN 'not_sold' ELSE 'short' END,
               w.product_id, w.quantity, p.title, p.price, NULL::text, NULL::text,
               CASE WHEN s.is_archived THEN 0 ELSE coalesce(s.stock, 0) END
          FROM unnest(p_product_ids, p_quantities) AS w(product_id, quantity)
          LEFT JOIN stock s ON s.product_id = w.product_id
          LEFT JOIN products p ON p.id = w.product_id
         WHERE s.product_id IS NULL OR s.is_archived OR s.stock < w.quantity
         ORDER BY w.product_id;
    IF FOUND THEN
        RETURN;
    END IF;

    INSERT INTO reservations (order_id, status) VALUES (p_order_id, 'reserved') ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        -- Released (or reserved by a replay of other lines) meanwhile: answer as above.
        RETURN QUERY SELECT r.status, NULL::bigint, NULL::integer, NULL::text, NULL::numeric,
                            NULL::text, NULL::text, NULL::integer
                       FROM reservations r WHERE r.order_id = p_order_id AND r.status = 'released';
        RETURN QUERY SELECT 'reserved'::text, l.product_id, l.quantity, l.title, l.unit_price,
                            l.category_name, l.category_slug, NULL::integer
                       FROM reservation_lines l WHERE l.order_id = p_order_id ORDER BY l.product_id;
        RETURN;
    END IF;
    UPDATE stock s SET stock = s.stock - w.quantity, sold_count = s.sold_count + w.quantity
      FROM unnest(p_product_ids, p_quantities) AS w(product_id, quantity)
     WHERE s.product_id = w.product_id;
    INSERT INTO reservation_lines (order_id, product_id, quantity, title, unit_price, category_name, category_slug)
    SELECT p_order_id, w.product_id, w.quantity, p.title, p.price, c.name, c.slug
      FROM unnest(p_product_ids, p_quantities) AS w(product_id, quantity)
      JOIN products p ON p.id = w.product_id
      JOIN categories c ON c.id = p.category_id;
    PERFORM outbox_append(p_event, 'catalog_outbox');
    RETURN QUERY SELECT 'reserved'::text, l.product_id, l.quantity, l.title, l.unit_price,
                        l.category_name, l.category_slug, NULL::integer
                   FROM reservation_lines l WHERE l.order_id = p_order_id ORDER BY l.product_id;
END
$$;
