//! Catalog's outbox (see `shop_platform::outbox`): events are stored as the
//! stream's protobuf messages, the form `CatalogEventsService` sends.

use shop_platform::outbox::Outbox;
use shop_proto::catalog::CatalogEvent;
use sqlx::PgConnection;

use crate::domain::Event;
use crate::error::Error;

pub const OUTBOX: Outbox = Outbox::new("catalog_outbox");

/// Appends an event; call it last in the transaction (it serializes writers
/// until commit).
pub async fn append(conn: &mut PgConnection, event: &Event) -> Result<i64, Error> {
    Ok(OUTBOX.append(conn, &CatalogEvent::from(event)).await?)
}

/// Appends a bulk load's events in one go; returns the last sequence.
pub async fn append_many(conn: &mut PgConnection, events: &[Event]) -> Result<i64, Error> {
    let events: Vec<CatalogEvent> = events.iter().map(CatalogEvent::from).collect();
    Ok(OUTBOX.append_many(conn, &events).await?)
}
