//! Channels from one Shop server to another, set up the same way everywhere.

use std::time::Duration;

use anyhow::Context as _;
use tonic::transport::{Channel, Endpoint};

/// A channel to `url` (named by its `setting` in errors) that connects on
/// first use, so a server starts even when the one it calls is not up yet;
/// calls to a server that is down fail with UNAVAILABLE after
/// `connect_timeout`. Idle connections are kept alive with HTTP/2 pings.
pub fn lazy_channel(url: &str, setting: &str, connect_timeout: Duration) -> anyhow::Result<Channel> {
    let endpoint = Endpoint::from_shared(url.to_owned()).with_context(|| format!("{setting} is not a valid URL"))?;
    Ok(endpoint
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true)
        .connect_lazy())
}
