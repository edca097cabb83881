-- AddCartItem and UpdateCartItem in one round trip: lock the user's cart
-- (one user's changes apply one after another), then, on fresh snapshots
-- (each statement of a function has its own), check the line against the
-- limits the caller passes (units per line, units in stock, lines per
-- cart), set it, and return the cart's lines, oldest first. A refused
-- change returns one row naming the limit (`refusal`) and what was wanted.
CREATE FUNCTION change_cart_line(p_user_id bigint, p_product_id bigint, p_add boolean, p_quantity integer,
                                 p_title text, p_unit_price numeric, p_max_quantity integer,
                                 p_in_stock integer, p_max_lines integer)
RETURNS TABLE (refusal text, wanted bigint, product_id bigint, quantity integer, title text, unit_price numeric)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    v_current integer;
    v_lines bigint;
    v_wanted bigint;
BEGIN
    INSERT INTO carts (user_id) VALUES (p_user_id) ON CONFLICT (user_id) DO UPDATE SET updated_at = now();
    SELECT c.quantity INTO v_current FROM cart_items c WHERE c.user_id = p_user_id AND c.product_id = p_product_id;
    v_wanted := CASE WHEN p_add THEN coalesce(v_current, 0)::bigint + p_quantity ELSE p_quantity END;
    IF v_wanted > p_max_quantity THEN
        RETURN QUERY SELECT 'max_quantity'::text, v_wanted, NULL::bigint, NULL::integer, NULL::text, NULL::numeric;
        RETURN;
    END IF;
    IF v_wanted > p_in_stock THEN
        RETURN QUERY SELECT 'in_stock'::text, v_wanted, NULL::bigint, NULL::integer, NULL::text, NULL::numeric;
        RETURN;
    END IF;
    IF v_current IS NULL THEN
        SELECT count(*) INTO v_lines FROM cart_items c WHERE c.user_id = p_user_id;
        IF v_lines >= p_max_lines THEN
            RETURN QUERY SELECT 'max_lines'::text, v_wanted, NULL::bigint, NULL::integer, NULL::text, NULL::numeric;
            RETURN;
        END IF;
    END IF;
    INSERT INTO cart_items (user_id, product_id, quantity, title, unit_price)
    VALUES (p_user_id, p_product_id, v_wanted, p_title, p_unit_price)
    ON CONFLICT (user_id, product_id)
    DO UPDATE SET quantity = EXCLUDED.quantity, title = EXCLUDED.title, unit_price = EXCLUDED.unit_price;
    RETURN QUERY SELECT NULL::text, v_wanted, c.product_id, c.quantity, c.title, c.unit_price
                   FROM cart_items c WHERE c.user_id = p_user_id ORDER BY c.position;
END
$$;
