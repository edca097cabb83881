-- A category whose products are all archived can be deleted: its archived
-- products let go of it (orders keep their own snapshot of its name), so an
-- archived product may have no category.
ALTER TABLE products ALTER COLUMN category_id DROP NOT NULL;
ALTER TABLE products ADD CONSTRAINT products_live_have_a_category CHECK (archived_at IS NOT NULL OR category_id IS NOT NULL);
