//! The books of a checkout bench. Read from the database before the run and
//! after it, once every order has settled, they must balance:
//! - each checkout answered OK placed exactly one order (none for a refusal);
//! - the units in live orders are the units catalog counts as sold;
//! - `stock + sold` of every product is what it was (a sale moves units from
//!   one to the other, a release moves them back);
//! - no order is left PENDING or owing its stock back.
//!
//! It reads catalog's and the orders' schemas through their owners' own
//! audit functions, in the one database `shop up` keeps them in.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use shop_cart_order::OrderBooks;
use shop_catalog::StockLedger;
use shop_platform::config::DatabaseConfig;
use sqlx::PgPool;

/// How long orders may take to settle after the run: a crashed placement is
/// failed by the recovery loop after its PENDING timeout (60 s by default).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(90);

pub struct Audit {
    catalog: PgPool,
    orders: PgPool,
    key_prefix: &'static str,
    stock_before: StockLedger,
    orders_before: OrderBooks,
}

/// What the run's checkouts came to, as the generator saw them.
pub struct Answers {
    pub ok: u64,
    /// Checkouts that failed in a way that leaves it open whether the order
    /// got placed (anything but a refusal such as FAILED_PRECONDITION).
    pub uncertain: u64,
}

/// A balanced audit, for the report.
#[derive(Debug)]
pub struct Balance {
    pub orders_placed: i64,
    pub checkouts_ok: u64,
    pub units_sold: i64,
    pub products_checked: usize,
    pub settled_after_secs: f64,
}

impl Audit {
    /// Connects and reads the books as they are before the run.
    pub async fn open(database: &DatabaseConfig, key_prefix: &'static str) -> anyhow::Result<Self> {
        let reach = || {
            "the checkout bench balances its books in the database (--database-url, DATABASE_URL); \
             --skip-books runs it without"
        };
        // Read as the running suite keeps them: opened, never migrated. The
        // audit reads every product's stock, slow by nature: not worth a
        // warning in the bench's output.
        let quiet = |service: &str| DatabaseConfig { slow_statement_ms: 0, ..database.for_service(service) };
        let catalog =
            shop_platform::storage::db::open(&quiet("catalog"), &shop_catalog::SCHEMA, 1).await.context(reach())?;
        let orders = shop_platform::storage::db::open(&quiet("cart-order"), &shop_cart_order::ORDERS_SCHEMA, 1)
            .await
            .context(reach())?;
        let stock_before = shop_catalog::stock_ledger(&catalog).await?;
        let orders_before = shop_cart_order::order_books(&orders, key_prefix).await?;
        Ok(Self { catalog, orders, key_prefix, stock_before, orders_before })
    }

    /// Waits for every order to settle, reads the books again and balances
    /// them; an error names every difference found.
    pub async fn close(self, answers: Answers) -> anyhow::Result<Balance> {
        let started = Instant::now();
        let orders_after = loop {
            let books = shop_cart_order::order_books(&self.orders, self.key_prefix).await?;
            if books.unsettled == 0 || started.elapsed() > SETTLE_TIMEOUT {
                break books;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        let settled_after_secs = started.elapsed().as_secs_f64();
        let stock_after = shop_catalog::stock_ledger(&self.catalog).await?;

        let mut differences = Vec::new();
        if orders_after.unsettled != 0 {
            differences.push(format!(
                "{} orders still PENDING or owing stock {SETTLE_TIMEOUT:?} after the run",
                orders_after.unsettled
            ));
        }
        let placed = orders_after.placed_with_key_prefix - self.orders_before.placed_with_key_prefix;
        let (ok, uncertain) = (answers.ok as i64, answers.uncertain as i64);
        if placed < ok || placed > ok + uncertain {
            differences.push(format!(
                "{ok} checkouts answered OK ({uncertain} failed uncertainly) but {placed} orders were placed"
            ));
        }
        if orders_after.units_in_live_orders != stock_after.sold {
            differences.push(format!(
                "{} units in live orders but {} units sold",
                orders_after.units_in_live_orders, stock_after.sold
            ));
        }
        let mut changed: Vec<String> = self
            .stock_before
            .units_by_product
            .iter()
            .filter_map(|(product_id, before)| {
                let after = stock_after.units_by_product.get(product_id).copied().unwrap_or_default();
                (after != *before).then(|| format!("product {product_id}: stock + sold {before} → {after}"))
            })
            .collect();
        if !changed.is_empty() {
            let count = changed.len();
            changed.sort();
            changed.truncate(10);
            differences.push(format!("{count} products changed stock + sold, among them {}", changed.join("; ")));
        }
        anyhow::ensure!(differences.is_empty(), "the books do not balance: {}", differences.join("; "));
        Ok(Balance {
            orders_placed: placed,
            checkouts_ok: answers.ok,
            units_sold: stock_after.sold,
            products_checked: self.stock_before.units_by_product.len(),
            settled_after_secs,
        })
    }
}
