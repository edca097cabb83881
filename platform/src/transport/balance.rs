//! A channel over every address a peer's name resolves to. HTTP/2 keeps one
//! connection to one address, so a channel to `catalog:50053` would send
//! every call to whichever replica the name gave first: a second replica
//! would take nothing. Here the name is looked up again every few seconds
//! and tower's balancer (power of two choices) spreads calls over every
//! address found: a replica that goes away leaves the set, a new one joins.
//! A failed or empty look-up keeps the last set (a stopped replica's calls
//! then fail to connect, quickly, rather than wait for an address).

use std::collections::HashSet;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tonic::transport::channel::Change;
use tonic::transport::{Channel, Endpoint};

/// How often a peer's name is looked up again.
pub const RESOLVE_EVERY: Duration = Duration::from_secs(3);

/// Calls waiting for a replica, per balanced channel.
const BUFFERED_CALLS: usize = 1024;

type Found = Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send>>;

/// Finds the addresses of `host:port` (the system's resolver, or a test's).
pub type Lookup = Arc<dyn Fn(String, u16) -> Found + Send + Sync>;

/// The system's resolver (in a container, the engine's DNS, which answers a
/// service's name with every replica's address).
pub fn system_lookup() -> Lookup {
    Arc::new(|host, port| Box::pin(async move { Ok(tokio::net::lookup_host((host.as_str(), port)).await?.collect()) }))
}

/// A channel over the addresses of `host:port`, looked up every `every`;
/// `endpoint` makes the endpoint of one address (with the peer's settings).
/// The look-ups stop when the channel is dropped.
pub fn balanced(
    host: String,
    port: u16,
    lookup: Lookup,
    every: Duration,
    endpoint: impl Fn(SocketAddr) -> Endpoint + Send + 'static,
) -> Channel {
    let (channel, changes) = Channel::balance_channel::<SocketAddr>(BUFFERED_CALLS);
    tokio::spawn(async move {
        let mut known: HashSet<SocketAddr> = HashSet::new();
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = changes.closed() => return,
                _ = ticks.tick() => {}
            }
            let found: HashSet<SocketAddr> = match lookup(host.clone(), port).await {
                Ok(found) if !found.is_empty() => found.into_iter().collect(),
                Ok(_) => continue,
                Err(error) => {
                    tracing::debug!(host, error = %error, "cannot resolve a peer now; keeping its last addresses");
                    continue;
                }
            };
            for gone in known.difference(&found) {
                tracing::info!(host, addr = %gone, "a peer's replica left");
                if changes.send(Change::Remove(*gone)).await.is_err() {
                    return;
                }
            }
            for new in found.difference(&known) {
                tracing::info!(host, addr = %new, "a peer's replica joined");
                if changes.send(Change::Insert(*new, endpoint(*new))).await.is_err() {
                    return;
                }
            }
            known = found;
        }
    });
    channel
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tonic_health::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{HealthCheckRequest, health_check_response};

    use super::*;

    /// A replica on `addr` whose health says `status` for service "replica".
    async fn replica(addr: SocketAddr, status: ServingStatus) -> tokio::task::JoinHandle<()> {
        let (reporter, service) = tonic_health::server::health_reporter();
        reporter.set_service_status("replica", status).await;
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind the replica");
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        tokio::spawn(async move {
            let _ = tonic::transport::Server::builder().add_service(service).serve_with_incoming(incoming).await;
        })
    }

    async fn answers(channel: &Channel, calls: usize) -> (usize, usize) {
        let mut health = HealthClient::new(channel.clone());
        let (mut first, mut second) = (0, 0);
        for _ in 0..calls {
            let request = HealthCheckRequest { service: "replica".into() };
            let status = health.check(request).await.expect("a replica answers").into_inner().status;
            if status == health_check_response::ServingStatus::Serving as i32 { first += 1 } else { second += 1 }
        }
        (first, second)
    }

    #[tokio::test]
    async fn calls_spread_over_every_address_and_follow_the_set_as_it_changes() {
        // Two replicas on one port, as two containers behind one name.
        let first = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap().local_addr().unwrap();
        let second: SocketAddr = format!("127.0.0.3:{}", first.port()).parse().unwrap();
        let _first = replica(first, ServingStatus::Serving).await;
        let _second = replica(second, ServingStatus::NotServing).await;

        let addresses = Arc::new(Mutex::new(vec![first, second]));
        let seen = addresses.clone();
        let lookup: Lookup = Arc::new(move |host, _port| {
            assert_eq!(host, "catalog");
            let found = seen.lock().unwrap().clone();
            Box::pin(async move { Ok(found) })
        });
        let endpoint = |addr: SocketAddr| Endpoint::from_shared(format!("http://{addr}")).unwrap();
        let channel = balanced("catalog".into(), first.port(), lookup, Duration::from_millis(100), endpoint);
        tokio::time::sleep(Duration::from_millis(300)).await;

        let (by_first, by_second) = answers(&channel, 200).await;
        assert!(by_first >= 40 && by_second >= 40, "both replicas take calls: {by_first} / {by_second}");

        // The second replica leaves the name: it takes no more calls.
        *addresses.lock().unwrap() = vec![first];
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(answers(&channel, 50).await, (50, 0));
        // A failed look-up keeps the set.
        addresses.lock().unwrap().clear();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(answers(&channel, 10).await, (10, 0));
    }
}
