//! Server bootstrap, the same for every service: on a listener bound by
//! [`crate::config::ListenAddr::bind`] (port 0 lets the OS pick), report the
//! real address, serve the given routes plus
//! `grpc.health.v1` and reflection (v1 and v1alpha), one tracing span per RPC,
//! the limits on connections ([`crate::transport::connection`]) and on calls
//! ([`crate::transport::call_limits`]), and a graceful stop when `shutdown` resolves.

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
    for name in &services.names {
        health.set_service_status(*name, ServingStatus::NotServing).await;
    }
    health.set_service_status("", ServingStatus::NotServing).await;
    let names = services.names.clone();
    let warming = health.clone();
    tokio::spawn(async move {
        warm_up.await;
        for name in names {
            warming.set_service_status(name, ServingStatus::Serving).await;
        }
        warming.set_service_status("", ServingStatus::Serving).await;
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
    let incoming = crate::transport::connection::guard(accepted, acceptor, config.connection_limits(), server);
    let web = crate::transport::web::WebLayer::new(services.web);
    let reloader = services.tls.map(|tls| tls.spawn_reloader(server));
    let call_limits = CallLimitsLayer::new(Duration::from_secs(config.request_timeout_secs.max(1)));
    let body_budget = crate::transport::body_budget::BodyBudgetLayer::new(
        services.body_budget,
        Duration::from_secs(config.request_timeout_secs.max(1)),
    );
    let task = tokio::spawn(async move {
        builder
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
            .serve_with_incoming_shutdown(incoming, async move {
                shutdown.await;
                // Probes see NOT_SERVING while in-flight calls drain.
                health.set_service_status("", ServingStatus::NotServing).await;
            })
            .await
            .context("gRPC server failed")
    });
    Ok(with_companions(Running { addr, task, ready }, reloader))
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
