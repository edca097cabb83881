//! A channel over every address a peer's name resolves to. HTTP/2 keeps one
//! connection to one address, so a channel to `catalog:50053` would send
//! every call to whichever replica the name gave first: a second replica
//! would take nothing. Here the name is looked up again every few seconds
//! and tower's balancer (power of two choices) spreads calls over every
//! address found: a replica that goes away leaves the set, a new one joins.
//! A failed or empty look-up keeps the last set (a stopped replica's calls
//! then fail to connect, quickly, rather than wait for an address).
//!
//! Each address's health is watched too (`grpc.health.v1.Health/Watch`):
//! calls go only to replicas that said SERVING. A new one (not listening
//! yet, or still warming up) joins when it says so; one that says
//! NOT_SERVING (stopping) or whose watch broke (crashed, cut off) leaves at
//! once, so a replica being stopped drains without a failed call. The name
//! still answers with a stopping replica's address until it is gone, which
//! is why health decides. With none serving (the channel just made, or
//! every replica down), calls go to every address and fail fast, as they
//! would without the watch.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tonic::transport::channel::Change;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response};

/// How often a peer's name is looked up again.
pub const RESOLVE_EVERY: Duration = Duration::from_secs(3);

/// How soon a replica's health is asked again after its watch ended (the
/// replica stopping, starting or unreachable).
const WATCH_AGAIN_AFTER: Duration = Duration::from_secs(1);

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
/// The look-ups and health watches stop when the channel is dropped.
pub fn balanced(
    host: String,
    port: u16,
    lookup: Lookup,
    every: Duration,
    endpoint: impl Fn(SocketAddr) -> Endpoint + Send + 'static,
) -> Channel {
    let (channel, changes) = Channel::balance_channel::<SocketAddr>(BUFFERED_CALLS);
    tokio::spawn(async move {
        let (health_sender, mut health_reports) = mpsc::channel(64);
        let mut replicas = Replicas::default();
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = changes.closed() => return,
                _ = ticks.tick() => {
                    match lookup(host.clone(), port).await {
                        Ok(found) if !found.is_empty() => {
                            let found: HashSet<SocketAddr> = found.into_iter().collect();
                            replicas.found(&host, found, |addr| watch_health(addr, endpoint(addr), health_sender.clone()));
                        }
                        Ok(_) => {}
                        Err(error) => {
                            tracing::debug!(host, error = %error, "cannot resolve a peer now; keeping its last addresses");
                        }
                    }
                }
                Some((addr, serving)) = health_reports.recv() => replicas.reported(&host, addr, serving),
            }
            for change in replicas.changes(&endpoint) {
                if changes.send(change).await.is_err() {
                    return;
                }
            }
        }
    });
    channel
}

/// The addresses a name gave, each with its health watch and what it last
/// said, and which of them the balancer sends calls to.
#[derive(Default)]
struct Replicas {
    known: HashMap<SocketAddr, Replica>,
    in_balancer: HashSet<SocketAddr>,
}

struct Replica {
    watch: JoinHandle<()>,
    /// `None` until its watch first reports.
    serving: Option<bool>,
}

impl Replicas {
    fn found(&mut self, host: &str, found: HashSet<SocketAddr>, watch: impl Fn(SocketAddr) -> JoinHandle<()>) {
        self.known.retain(|addr, replica| {
            let stays = found.contains(addr);
            if !stays {
                tracing::info!(host, addr = %addr, "a peer's replica left");
                replica.watch.abort();
            }
            stays
        });
        for addr in found {
            self.known.entry(addr).or_insert_with(|| {
                tracing::info!(host, addr = %addr, "a peer's replica joined");
                Replica { watch: watch(addr), serving: None }
            });
        }
    }

    fn reported(&mut self, host: &str, addr: SocketAddr, serving: bool) {
        if let Some(replica) = self.known.get_mut(&addr)
            && replica.serving.replace(serving) != Some(serving)
        {
            tracing::info!(host, addr = %addr, serving, "a peer's replica changed its health");
        }
    }

    /// What the balancer must add and drop: every known address whose
    /// last word was SERVING, or every known address when none is.
    fn changes(&mut self, endpoint: &impl Fn(SocketAddr) -> Endpoint) -> Vec<Change<SocketAddr, Endpoint>> {
        let mut wanted: HashSet<SocketAddr> =
            self.known.iter().filter(|(_, replica)| replica.serving == Some(true)).map(|(addr, _)| *addr).collect();
        if wanted.is_empty() {
            wanted = self.known.keys().copied().collect();
        }
        let mut changes: Vec<_> = self.in_balancer.difference(&wanted).map(|addr| Change::Remove(*addr)).collect();
        changes.extend(wanted.difference(&self.in_balancer).map(|addr| Change::Insert(*addr, endpoint(*addr))));
        self.in_balancer = wanted;
        changes
    }
}

/// Reports every health status `addr` announces, for as long as the task
/// lives, and not serving when the watch cannot be had or breaks. A
/// NOT_SERVING ends the watch from this side (a stopping server waits for
/// its open calls, this one too), asked again shortly after.
fn watch_health(addr: SocketAddr, endpoint: Endpoint, reports: mpsc::Sender<(SocketAddr, bool)>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut health = HealthClient::new(endpoint.connect_lazy());
        loop {
            let request = HealthCheckRequest { service: String::new() };
            let mut serving = false;
            if let Ok(answer) = health.watch(request).await {
                let mut statuses = answer.into_inner();
                while let Ok(Some(status)) = statuses.message().await {
                    serving = status.status == health_check_response::ServingStatus::Serving as i32;
                    if reports.send((addr, serving)).await.is_err() {
                        return;
                    }
                    if !serving {
                        break;
                    }
                }
            }
            if serving {
                tracing::debug!(addr = %addr, "a peer replica's health watch broke");
                if reports.send((addr, false)).await.is_err() {
                    return;
                }
            }
            tokio::time::sleep(WATCH_AGAIN_AFTER).await;
        }
    })
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

    #[tokio::test]
    async fn a_new_replica_takes_calls_only_once_it_says_serving() {
        use crate::transport::server::tests::{Slow, call_slow, serve_slow};
        let first = tokio::net::TcpListener::bind("127.0.0.6:0").await.unwrap().local_addr().unwrap();
        let second: SocketAddr = format!("127.0.0.7:{}", first.port()).parse().unwrap();
        let quick = Duration::from_millis(1);
        let notice = Duration::from_millis(100);
        let _a = serve_slow(&first.to_string(), Slow { replica: "a", delay: quick }, notice, 1, std::future::pending())
            .await;
        // The name gives the second address before anything listens there,
        // as a container's does while its process starts.
        let lookup: Lookup = Arc::new(move |_host, _port| Box::pin(async move { Ok(vec![first, second]) }));
        let endpoint = |addr: SocketAddr| Endpoint::from_shared(format!("http://{addr}")).unwrap();
        let channel = balanced("catalog".into(), first.port(), lookup, Duration::from_millis(100), endpoint);
        tokio::time::sleep(Duration::from_millis(300)).await;
        for _ in 0..100 {
            assert_eq!(call_slow(channel.clone()).await.expect("no call goes where nothing listens"), "a");
        }
        let _b =
            serve_slow(&second.to_string(), Slow { replica: "b", delay: quick }, notice, 1, std::future::pending())
                .await;
        let mut by_b = 0;
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if call_slow(channel.clone()).await.expect("a call") == "b" {
                by_b += 1;
            }
        }
        assert!(by_b > 0, "the new replica takes calls once it serves");
    }

    #[tokio::test]
    async fn a_replica_that_stops_drains_without_a_failed_call_though_its_name_still_answers() {
        use crate::transport::server::tests::{Slow, call_slow, serve_slow};
        let first = tokio::net::TcpListener::bind("127.0.0.4:0").await.unwrap().local_addr().unwrap();
        let second: SocketAddr = format!("127.0.0.5:{}", first.port()).parse().unwrap();
        let (stop_first, first_stopped) = tokio::sync::oneshot::channel::<()>();
        let quick = Duration::from_millis(20);
        let notice = Duration::from_millis(500);
        let replica_a = serve_slow(&first.to_string(), Slow { replica: "a", delay: quick }, notice, 10, async {
            let _ = first_stopped.await;
        })
        .await;
        let _replica_b =
            serve_slow(&second.to_string(), Slow { replica: "b", delay: quick }, notice, 10, std::future::pending())
                .await;

        // The name keeps giving both addresses, as a stopping container's does.
        let lookup: Lookup = Arc::new(move |_host, _port| Box::pin(async move { Ok(vec![first, second]) }));
        let endpoint = |addr: SocketAddr| Endpoint::from_shared(format!("http://{addr}")).unwrap();
        let channel = balanced("catalog".into(), first.port(), lookup, Duration::from_millis(100), endpoint);

        // Callers that never stop, noting who answered and what failed.
        let answered = Arc::new(Mutex::new(Vec::<(std::time::Instant, String)>::new()));
        let failed = Arc::new(Mutex::new(Vec::<String>::new()));
        let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let mut callers = Vec::new();
        for _ in 0..8 {
            let (channel, answered, failed, running) =
                (channel.clone(), answered.clone(), failed.clone(), running.clone());
            callers.push(tokio::spawn(async move {
                while running.load(std::sync::atomic::Ordering::SeqCst) {
                    match call_slow(channel.clone()).await {
                        Ok(replica) => answered.lock().unwrap().push((std::time::Instant::now(), replica)),
                        Err(status) => failed.lock().unwrap().push(format!("{status:?}")),
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(800)).await;
        let before: Vec<String> = answered.lock().unwrap().iter().map(|(_, replica)| replica.clone()).collect();
        assert!(before.contains(&"a".to_owned()) && before.contains(&"b".to_owned()), "both replicas took calls");

        stop_first.send(()).unwrap();
        replica_a.task.await.unwrap().expect("the first replica stops cleanly");
        let first_gone = std::time::Instant::now();
        tokio::time::sleep(Duration::from_millis(800)).await;
        running.store(false, std::sync::atomic::Ordering::SeqCst);
        for caller in callers {
            caller.await.unwrap();
        }

        assert_eq!(*failed.lock().unwrap(), Vec::<String>::new(), "no call failed while a replica stopped");
        let after: Vec<String> = answered
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, _)| *at > first_gone)
            .map(|(_, replica)| replica.clone())
            .collect();
        assert!(after.len() >= 20 && after.iter().all(|replica| *replica == "b"), "then only b answers: {after:?}");
    }
}
