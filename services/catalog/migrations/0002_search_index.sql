-- Search and the sold-count orderings moved to the search index each
-- catalog replica keeps (see domain::listing): the trigram index and the
-- indexes on sold_count go, so the stock updates of checkouts no longer
-- rewrite them. Plain listings stay on the remaining (key, id) indexes; the
-- title ones now order by code point (COLLATE "C"), as the search index does,
-- whatever the database's collation.
DROP INDEX products_search_idx;
DROP INDEX products_sold_idx;
DROP INDEX products_category_sold_idx;
DROP EXTENSION IF EXISTS pg_trgm;

DROP INDEX products_title_idx;
DROP INDEX products_category_title_idx;
CREATE INDEX products_title_idx ON products ((title COLLATE "C"), id) WHERE archived_at IS NULL;
CREATE INDEX products_category_title_idx ON products (category_id, (title COLLATE "C"), id) WHERE archived_at IS NULL;
