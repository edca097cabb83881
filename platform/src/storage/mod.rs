//! Files that outlive a process ([`files`]: a local directory or S3). Postgres: a pool per schema with its migrations embedded ([`db`]), and
//! the transactional outbox that services publish their event streams from
//! ([`outbox`]). Test databases ([`testing`]) come with the `testing`
//! feature, which only tests turn on.

pub mod db;
pub mod files;
pub mod outbox;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
