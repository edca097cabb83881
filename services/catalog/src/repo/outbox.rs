//! Catalog's outbox (see `shop_platform::outbox`).

use shop_platform::outbox::Outbox;
use shop_proto::catalog::CatalogEvent;
use shop_proto::catalog::catalog_event::Payload;
use sqlx::PgConnection;

use crate::error::Error;

pub const OUTBOX: Outbox = Outbox::new("catalog_outbox");

/// Appends an event; call it last in the transaction (it serializes writers
/// until commit).
pub async fn append(conn: &mut PgConnection, payload: Payload) -> Result<i64, Error> {
    let event = CatalogEvent { sequence: 0, occurred_at: None, payload: Some(payload) };
    Ok(OUTBOX.append(conn, &event).await?)
}
