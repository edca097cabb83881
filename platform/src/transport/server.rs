//! Server bootstrap, the same for every service: on a listener bound by
//! [`crate::config::ListenAddr::bind`] (port 0 lets the OS pick), report the
//! real address, serve the given routes plus
//! `grpc.health.v1` and reflection (v1 and v1alpha), one tracing span per RPC,
//! the limits on connections ([`crate::transport::connection`]) and on calls
//! ([`crate::transport::call_limits`]), and a graceful stop when `shutdown`
//! resolves: NOT_SERVING at once, calls still taken for a notice while peers
//! turn away, then GOAWAY and the calls in flight finished within a grace.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;

use crate::auth::ServiceCredentials;
use crate::config::{DatabaseConfig, ServerConfig};
use crate::transport::call_limits::CallLimitsLayer;
use crate::transport::connection::ConnectionGuardLayer;

/// A client that does not answer a keep-alive ping within this is gone.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// TCP keep-alive on accepted sockets, so dead peers are noticed.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// A server that is accepting calls.
pub struct Running {
    /// The address it really listens on.
    pub addr: SocketAddr,
    /// Ends when the server has stopped (after `shutdown` and draining).
    pub task: JoinHandle<anyhow::Result<()>>,
    /// Turns true once the server is warm (health says SERVING).
    pub ready: watch::Receiver<bool>,
}

impl Running {
    /// Resolves once the server is warm.
    pub async fn wait_ready(&mut self) {
        let _ = self.ready.wait_for(|ready| *ready).await;
    }
}

/// What the suite hands a backend service besides its own settings.
pub struct Launch<'a> {
    pub database: &'a DatabaseConfig,
    /// The limits every server keeps.
    pub server: &'a ServerConfig,
    pub credentials: ServiceCredentials,
    /// Resolves when the service must stop.
    pub shutdown: Pin<Box<dyn Future<Output = ()> + Send>>,
}

/// What one server exposes: its routes and the fully qualified names of the
/// gRPC services among them (for health and reflection).
pub struct Services {
    /// The server's name in metrics (`server` label): identity, catalog, …
    pub server: &'static str,
    pub routes: Routes,
    pub names: Vec<&'static str>,
    /// What must finish before the server takes traffic (catalog's search
    /// index): until then health answers NOT_SERVING. `None`: ready at once.
    pub warm_up: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// TLS on the server's port (`None`: plaintext).
    pub tls: Option<crate::transport::tls::ServerTls>,
    /// gRPC-Web (and HTTP/1.1) beside native gRPC: the gateway's, for browsers.
    pub web: Option<crate::transport::web::WebAccess>,
    /// What unfinished request bodies may hold (the gateway's, for its
    /// clients; backends hear only from Shop's own services, whose calls the
    /// gateway has already counted).
    pub body_budget: Option<crate::transport::body_budget::BodyBudget>,
}

/// Serves `services` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    services: Services,
    config: &ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Running> {
    let addr = listener.local_addr()?;
    let (health, health_service) = tonic_health::server::health_reporter();
    let (ready_sender, ready) = watch::channel(false);
    let warm_up = services.warm_up.unwrap_or_else(|| Box::pin(std::future::ready(())));
    set_status(&health, &services.names, ServingStatus::NotServing).await;
    // True from the moment the server is told to stop.
    let (stopping_sender, stopping) = watch::channel(false);
    let names = services.names.clone();
    let warming = health.clone();
    let stopped_while_warming = stopping.clone();
    tokio::spawn(async move {
        warm_up.await;
        if *stopped_while_warming.borrow() {
            return;
        }
        set_status(&warming, &names, ServingStatus::Serving).await;
        let _ = ready_sender.send(true);
    });

    let reflection =
        Arc::new(crate::transport::reflection::Index::new(&descriptors_serving(&services.names)?, &services.names));
    let routes = services
        .routes
        .add_service(health_service)
        .add_service(crate::transport::reflection::v1::service(reflection.clone()))
        .add_service(crate::transport::reflection::v1alpha::service(reflection));

    let server = services.server;
    let mut builder = Server::builder()
        .max_concurrent_streams(config.max_streams_per_connection.max(1))
        .http2_max_header_list_size(config.max_header_list_bytes)
        // tonic turns off h2's guards against reset floods; these are h2's own defaults.
        .http2_max_local_error_reset_streams(Some(1024))
        .http2_max_pending_accept_reset_streams(Some(20))
        .http2_keepalive_interval(
            (config.http2_keepalive_secs > 0).then(|| Duration::from_secs(config.http2_keepalive_secs)),
        )
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .trace_fn(move |request| {
            let span = tracing::info_span!(
                "rpc",
                server,
                rpc.method = %request.uri().path(),
                // The caller's, or the one RequestIdLayer makes up.
                request_id = caller_request_id(request.headers()),
                trace_id = tracing::field::Empty,
                user_id = tracing::field::Empty,
            );
            if let Some(trace_id) = crate::observability::telemetry::join_trace(&span, request.headers()) {
                span.record("trace_id", trace_id);
            }
            span
        });
    if config.concurrency_per_connection > 0 {
        builder = builder.concurrency_limit_per_connection(config.concurrency_per_connection);
    }
    // Browsers speak gRPC-Web over HTTP/1.1 as well as HTTP/2.
    builder = builder.accept_http1(services.web.is_some());
    let accepted = TcpIncoming::from(listener).with_nodelay(Some(true)).with_keepalive(Some(TCP_KEEPALIVE));
    let acceptor = services.tls.as_ref().map(|tls| tls.acceptor().clone());
    let cut_connections = tokio_util::sync::CancellationToken::new();
    let incoming = crate::transport::connection::guard(
        accepted,
        acceptor,
        config.connection_limits(),
        server,
        cut_connections.clone(),
    );
    let web = crate::transport::web::WebLayer::new(services.web);
    let reloader = services.tls.map(|tls| tls.spawn_reloader(server));
    let call_limits = CallLimitsLayer::new(Duration::from_secs(config.request_timeout_secs.max(1)));
    let body_budget = crate::transport::body_budget::BodyBudgetLayer::new(
        services.body_budget,
        Duration::from_secs(config.request_timeout_secs.max(1)),
    );
    let notice = Duration::from_millis(config.shutdown_notice_ms);
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    let names = services.names.clone();
    // Told to stop: NOT_SERVING at once (peers' balancers watch it and stop
    // sending calls here), still answering through the notice; only then
    // GOAWAY to every client and the wait for the calls in flight.
    let stop_after_notice = async move {
        shutdown.await;
        let _ = stopping_sender.send(true);
        tracing::info!(server, notice_ms = notice.as_millis() as u64, "stopping: NOT_SERVING, then draining");
        set_status(&health, &names, ServingStatus::NotServing).await;
        tokio::time::sleep(notice).await;
    };
    let serving = builder
        // Outermost first: every face's request body is counted as it
        // arrives (a Connect body is read whole before it is
        // translated), calls count on their connection from the start
        // (a Connect call's reading and answering too), gRPC-Web and
        // Connect become native gRPC before anything else looks at them,
        // metrics see the final code, the call's limits sit closest to
        // the service.
        .layer(body_budget)
        .layer(ConnectionGuardLayer)
        .layer(web)
        .layer(RequestIdLayer)
        .layer(crate::observability::metrics::RpcMetricsLayer { server })
        .layer(call_limits)
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, stop_after_notice);
    let task = tokio::spawn(async move {
        let grace_over = async move {
            let mut stopping = stopping;
            if stopping.wait_for(|stopping| *stopping).await.is_err() {
                return std::future::pending().await;
            }
            tokio::time::sleep(notice + grace).await;
        };
        tokio::select! {
            served = serving => served.context("gRPC server failed"),
            () = grace_over => {
                // The calls still running are cut (their clients see the
                // connection close); the stop itself is still a clean one.
                tracing::warn!(server, grace_secs = grace.as_secs(), "calls still in flight at the end of the shutdown grace: cut");
                cut_connections.cancel();
                Ok(())
            }
        }
    });
    Ok(with_companions(Running { addr, task, ready }, reloader))
}

/// Every service of the server, and the server as a whole (""), at `status`.
async fn set_status(health: &tonic_health::server::HealthReporter, names: &[&'static str], status: ServingStatus) {
    for name in names {
        health.set_service_status(*name, status).await;
    }
    health.set_service_status("", status).await;
}

/// The contract's descriptors cut down to what this server serves: its own
/// services, the messages and enums their calls reach (field by field), and
/// the google.rpc error details clients decode. `describe` cannot reveal
/// another server's service or an internal message such as
/// `PlaceOrderRequest`. Files stay, emptied if need be, so every import
/// still resolves.
fn descriptors_serving(names: &[&str]) -> anyhow::Result<prost_types::FileDescriptorSet> {
    use prost::Message as _;
    let mut set = prost_types::FileDescriptorSet::decode(shop_proto::FILE_DESCRIPTOR_SET)?;
    for file in &mut set.file {
        let package = file.package().to_owned();
        file.service.retain(|service| names.contains(&format!("{package}.{}", service.name()).as_str()));
        // Shop's own method options (the gateway's access levels) are for
        // the gateway; served, they would drag in descriptor.proto whole.
        file.extension.clear();
    }
    let reached = reachable_types(&set);
    for file in &mut set.file {
        let package = file.package().to_owned();
        file.message_type.retain(|message| reached.contains(&format!(".{package}.{}", message.name())));
        file.enum_type.retain(|enumeration| reached.contains(&format!(".{package}.{}", enumeration.name())));
    }
    Ok(set)
}

/// Full names (".pkg.Type") of the top-level messages and enums reached from
/// the set's services or from package google.rpc.
fn reachable_types(set: &prost_types::FileDescriptorSet) -> HashSet<String> {
    use prost_types::DescriptorProto;
    // Every type name, nested ones included, to its top-level type.
    let mut top_level: HashMap<String, (String, Option<&DescriptorProto>)> = HashMap::new();
    fn index_nested<'a>(
        prefix: &str,
        message: &'a DescriptorProto,
        top: &(String, Option<&'a DescriptorProto>),
        into: &mut HashMap<String, (String, Option<&'a DescriptorProto>)>,
    ) {
        let name = format!("{prefix}.{}", message.name());
        for nested in &message.nested_type {
            index_nested(&name, nested, top, into);
        }
        for nested in &message.enum_type {
            into.insert(format!("{name}.{}", nested.name()), top.clone());
        }
        into.insert(name, top.clone());
    }
    let mut pending: Vec<String> = Vec::new();
    for file in &set.file {
        let package = format!(".{}", file.package());
        for message in &file.message_type {
            let top = (format!("{package}.{}", message.name()), Some(message));
            index_nested(&package, message, &top, &mut top_level);
            if file.package() == "google.rpc" {
                pending.push(top.0);
            }
        }
        for enumeration in &file.enum_type {
            let name = format!("{package}.{}", enumeration.name());
            top_level.insert(name.clone(), (name, None));
        }
        for method in file.service.iter().flat_map(|service| &service.method) {
            pending.extend([method.input_type().to_owned(), method.output_type().to_owned()]);
        }
    }
    fn field_types(message: &DescriptorProto, into: &mut Vec<String>) {
        into.extend(message.field.iter().filter_map(|field| field.type_name.clone()));
        for nested in &message.nested_type {
            field_types(nested, into);
        }
    }
    let mut reached = HashSet::new();
    while let Some(name) = pending.pop() {
        let Some((top, message)) = top_level.get(&name) else { continue };
        if reached.insert(top.clone())
            && let Some(message) = message
        {
            field_types(message, &mut pending);
        }
    }
    reached
}

/// Ends `companions` (a service's background tasks) when its server stops.
pub fn with_companions(running: Running, companions: impl IntoIterator<Item = JoinHandle<()>>) -> Running {
    let companions: Vec<JoinHandle<()>> = companions.into_iter().collect();
    let server = running.task;
    let task = tokio::spawn(async move {
        let result = server.await;
        for companion in &companions {
            companion.abort();
        }
        // Gone for good before the server counts as stopped: what they hold
        // (a search index's lock, say) is free for a restart.
        for companion in companions {
            let _ = companion.await;
        }
        result?
    });
    Running { addr: running.addr, task, ready: running.ready }
}

const REQUEST_ID_HEADER: &str = "x-request-id";

/// The caller's `x-request-id`, when it sent a usable one.
fn caller_request_id(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get(REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|value| !value.is_empty() && value.len() <= 128)
}

/// Every call has a request id, the caller's or a new one: it is in the
/// call's log lines, goes on to the services the call reaches (the gateway
/// forwards it), and comes back in the answer's headers for the client to
/// quote.
#[derive(Debug, Clone, Copy)]
pub struct RequestIdLayer;

impl<S> tower::Layer<S> for RequestIdLayer {
    type Service = RequestId<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestId { inner }
    }
}

#[derive(Debug, Clone)]
pub struct RequestId<S> {
    inner: S,
}

impl<S, B, R> tower::Service<http::Request<B>> for RequestId<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let (id, made_up) = match caller_request_id(request.headers()) {
            Some(id) => (http::HeaderValue::from_str(id).ok(), false),
            None => (http::HeaderValue::from_str(&uuid::Uuid::new_v4().simple().to_string()).ok(), true),
        };
        if made_up && let Some(id) = &id {
            request.headers_mut().insert(REQUEST_ID_HEADER, id.clone());
        }
        let answer = self.inner.call(request);
        Box::pin(async move {
            // Polled inside the call's span.
            if made_up && let Some(id) = id.as_ref().and_then(|id| id.to_str().ok()) {
                tracing::Span::current().record("request_id", id);
            }
            let mut response = answer.await?;
            if let Some(id) = id {
                response.headers_mut().insert(REQUEST_ID_HEADER, id);
            }
            Ok(response)
        })
    }
}

/// Resolves on Ctrl-C or SIGTERM: how binaries stop.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; draining in-flight calls");
}

#[cfg(test)]
pub(crate) mod tests {
    use std::convert::Infallible;
    use std::task::{Context, Poll};
    use std::time::Instant;

    use tonic::transport::{Channel, Endpoint};
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{HealthCheckRequest, health_check_response};

    use super::*;

    /// A gRPC method, `/test.Slow/Call`, that answers after `delay` with its
    /// replica's name in the `replica` header.
    #[derive(Clone)]
    pub(crate) struct Slow {
        pub replica: &'static str,
        pub delay: Duration,
    }

    impl tonic::server::NamedService for Slow {
        const NAME: &'static str = "test.Slow";
    }

    struct Answer(Slow);

    impl tonic::server::UnaryService<()> for Answer {
        type Response = ();
        type Future = Pin<Box<dyn Future<Output = Result<tonic::Response<()>, tonic::Status>> + Send>>;

        fn call(&mut self, _request: tonic::Request<()>) -> Self::Future {
            let Slow { replica, delay } = self.0.clone();
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                let mut answer = tonic::Response::new(());
                answer.metadata_mut().insert("replica", replica.parse().expect("a header value"));
                Ok(answer)
            })
        }
    }

    impl tower::Service<http::Request<tonic::body::Body>> for Slow {
        type Response = http::Response<tonic::body::Body>;
        type Error = Infallible;
        type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
            let slow = self.clone();
            Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::<(), ()>::default());
                Ok(grpc.unary(Answer(slow), request).await)
            })
        }
    }

    /// Calls `/test.Slow/Call`: the name of the replica that answered.
    pub(crate) async fn call_slow(channel: Channel) -> Result<String, tonic::Status> {
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.map_err(|error| tonic::Status::unavailable(error.to_string()))?;
        let path = http::uri::PathAndQuery::from_static("/test.Slow/Call");
        let answer = grpc.unary(tonic::Request::new(()), path, tonic_prost::ProstCodec::<(), ()>::default()).await?;
        Ok(answer.metadata().get("replica").and_then(|value| value.to_str().ok()).unwrap_or_default().to_owned())
    }

    /// `slow` served on `addr` with the given notice and grace, until `stop`.
    pub(crate) async fn serve_slow(
        addr: &str,
        slow: Slow,
        notice: Duration,
        grace_secs: u64,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> Running {
        let listener = TcpListener::bind(addr).await.expect("bind");
        let services = Services {
            server: "test",
            routes: Routes::new(slow),
            names: vec![],
            warm_up: None,
            tls: None,
            web: None,
            body_budget: None,
        };
        let config = ServerConfig {
            shutdown_notice_ms: notice.as_millis() as u64,
            shutdown_grace_secs: grace_secs,
            ..ServerConfig::default()
        };
        let mut running = serve(listener, services, &config, stop).await.expect("serve");
        running.wait_ready().await;
        running
    }

    async fn health_of(channel: Channel) -> Result<i32, tonic::Status> {
        let answer = HealthClient::new(channel).check(HealthCheckRequest { service: String::new() }).await?;
        Ok(answer.into_inner().status)
    }

    #[tokio::test]
    async fn a_stopping_server_says_not_serving_answers_through_the_notice_then_finishes_its_calls() {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let slow = Slow { replica: "a", delay: Duration::from_millis(1500) };
        let running = serve_slow("127.0.0.1:0", slow, Duration::from_millis(600), 10, async {
            let _ = stopped.await;
        })
        .await;
        let url = format!("http://{}", running.addr);
        let channel = Endpoint::from_shared(url.clone()).unwrap().connect().await.expect("connect");
        assert_eq!(health_of(channel.clone()).await.unwrap(), health_check_response::ServingStatus::Serving as i32);

        let in_flight = tokio::spawn(call_slow(channel.clone()));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let told = Instant::now();
        stop.send(()).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Within the notice: NOT_SERVING, and still answering on the open
        // connection and on new ones.
        assert_eq!(health_of(channel.clone()).await.unwrap(), health_check_response::ServingStatus::NotServing as i32);
        let fresh = Endpoint::from_shared(url.clone()).unwrap().connect().await.expect("a connection in the notice");
        assert_eq!(health_of(fresh).await.unwrap(), health_check_response::ServingStatus::NotServing as i32);

        // The call begun before the stop finishes, after the GOAWAY.
        assert_eq!(in_flight.await.unwrap().expect("the call in flight finishes"), "a");
        running.task.await.unwrap().expect("a clean stop");
        let took = told.elapsed();
        assert!(took < Duration::from_secs(5), "stopped once its call was done, not at the grace's end: {took:?}");
        assert!(took >= Duration::from_millis(600), "the notice was kept: {took:?}");
        assert!(Endpoint::from_shared(url).unwrap().connect().await.is_err(), "no new connection after the stop");
    }

    #[tokio::test]
    async fn calls_still_running_at_the_end_of_the_grace_are_cut_and_the_stop_is_clean() {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let slow = Slow { replica: "a", delay: Duration::from_secs(60) };
        let running = serve_slow("127.0.0.1:0", slow, Duration::from_millis(100), 1, async {
            let _ = stopped.await;
        })
        .await;
        let channel = Endpoint::from_shared(format!("http://{}", running.addr)).unwrap().connect().await.unwrap();
        let in_flight = tokio::spawn(call_slow(channel));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let told = Instant::now();
        stop.send(()).unwrap();
        running.task.await.unwrap().expect("a clean stop after the grace");
        let took = told.elapsed();
        assert!(took >= Duration::from_millis(1100) && took < Duration::from_secs(10), "notice + grace: {took:?}");
        let cut = tokio::time::timeout(Duration::from_secs(10), in_flight).await.expect("the client hears").unwrap();
        assert!(cut.is_err(), "the call past the grace was cut: {cut:?}");
    }
}
