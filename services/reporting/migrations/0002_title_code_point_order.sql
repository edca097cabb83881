-- The report breaks ties by title in code-point order, as the catalog orders
-- titles, whatever collation the database was created with. Changing the
-- column's collation rebuilds the indexes that order by it.
ALTER TABLE product_sales ALTER COLUMN title TYPE text COLLATE "C";
