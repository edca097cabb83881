//! Catalog's outbox (see `shop_platform::storage::outbox`): events are stored as the
//! stream's protobuf messages, the form `CatalogEventsService` sends (that
//! form is [`crate::wire`]'s).

use shop_platform::storage::outbox::Outbox;
use shop_proto::catalog::CatalogEvent;
use sqlx::PgConnection;

use crate::error::Error;
use crate::model::Event;
use crate::wire;

/// The channel is named in SQL too: `reserve_stock` (migration 0003)
/// appends with `outbox_append(event, 'catalog_outbox')`; a new name needs a
/// migration that replaces that function.
pub const OUTBOX: Outbox = Outbox::new("catalog_outbox");

/// Appends an event; call it last in the transaction (it serializes writers
/// until commit).
pub async fn append(conn: &mut PgConnection, event: &Event) -> Result<i64, Error> {
    Ok(OUTBOX.append(conn, &CatalogEvent::from(event)).await?)
}

/// The last outbox sequence handed out.
pub async fn head(conn: &mut PgConnection) -> Result<i64, Error> {
    Ok(OUTBOX.head(conn).await?)
}

/// Names this database's outbox: a search index built from another database
/// (or from one dropped and created again) is not resumed.
pub async fn database_identity(conn: &mut PgConnection) -> Result<String, Error> {
    Ok(sqlx::query_scalar!(
        r#"SELECT current_database() || '/' || d.oid || '/' || 'outbox'::regclass::oid AS "identity!"
           FROM pg_database d WHERE d.datname = current_database()"#,
    )
    .fetch_one(conn)
    .await?)
}

/// Up to `limit` events after `after`: each one's sequence and the products
/// it touched.
pub async fn product_changes_after(
    conn: &mut PgConnection,
    after: i64,
    limit: i64,
) -> Result<Vec<(i64, Vec<i64>)>, Error> {
    let events: Vec<CatalogEvent> = OUTBOX.after(conn, after, limit).await?;
    Ok(events.iter().map(|event| (event.sequence, wire::touched_products(event))).collect())
}

/// An event as the outbox stores it, for a statement that appends it itself.
pub fn encode(event: &Event) -> Vec<u8> {
    wire::encode(event)
}

/// Appends a bulk load's events in one go; returns the last sequence.
pub async fn append_many(conn: &mut PgConnection, events: &[Event]) -> Result<i64, Error> {
    let events: Vec<CatalogEvent> = events.iter().map(CatalogEvent::from).collect();
    Ok(OUTBOX.append_many(conn, &events).await?)
}
