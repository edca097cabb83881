//! The transactional outbox. `append` runs inside the writing transaction:
//! the event commits with the change or not at all. Numbers come from the one
//! `outbox_head` row, locked until commit, so they are gap-free and in commit order.

use chrono::{DateTime, Utc};
use prost::Message as _;
use shop_proto::catalog::CatalogEvent;
use shop_proto::catalog::catalog_event::Payload;
use sqlx::PgConnection;

use crate::error::Error;

/// Where catalog processes hear that new events committed.
pub const CHANNEL: &str = "catalog_outbox";

/// Appends an event; call it last in the transaction (it serializes writers
/// until commit).
pub async fn append(conn: &mut PgConnection, payload: Payload) -> Result<i64, Error> {
    let sequence: i64 =
        sqlx::query_scalar("UPDATE outbox_head SET last_sequence = last_sequence + 1 RETURNING last_sequence")
            .fetch_one(&mut *conn)
            .await?;
    let event = CatalogEvent { sequence: 0, occurred_at: None, payload: Some(payload) };
    sqlx::query("INSERT INTO outbox (sequence, payload) VALUES ($1, $2)")
        .bind(sequence)
        .bind(event.encode_to_vec())
        .execute(&mut *conn)
        .await?;
    // Delivered to listeners when (and only if) the transaction commits.
    sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(sequence.to_string()).execute(conn).await?;
    Ok(sequence)
}

/// Up to `limit` events after `after`, in order.
pub async fn after(conn: &mut PgConnection, after: i64, limit: i64) -> Result<Vec<CatalogEvent>, Error> {
    let rows: Vec<(i64, DateTime<Utc>, Vec<u8>)> = sqlx::query_as(
        "SELECT sequence, occurred_at, payload FROM outbox WHERE sequence > $1 ORDER BY sequence LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|(sequence, occurred_at, payload)| {
            let mut event = CatalogEvent::decode(payload.as_slice())
                .map_err(|error| Error::Database(sqlx::Error::Decode(Box::new(error))))?;
            event.sequence = sequence;
            event.occurred_at = Some(shop_platform::time::timestamp(occurred_at));
            Ok(event)
        })
        .collect()
}
