//! Prometheus metrics: a text endpoint (`/metrics`) on its own address per
//! process when `SHOP_METRICS_ADDR` is set, and what every server records:
//! per-RPC request count, error count by gRPC code and latency histogram, and
//! each Postgres pool's connections. Services add their own (checkout
//! outcomes, outbox and reporting lag) with the `metrics` macros.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tonic::Code;

/// Where the metrics endpoint listens.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Telemetry")]
pub struct MetricsConfig {
    /// Address of the Prometheus endpoint (`GET /metrics`), one per process;
    /// unset: no endpoint.
    #[arg(id = "metrics-addr", long, env = "SHOP_METRICS_ADDR")]
    pub addr: Option<crate::config::ListenAddr>,
}

/// Latency buckets, in seconds: from a cache-hot lookup to a slow checkout.
const RPC_BUCKETS: [f64; 14] = [0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Installs the process-wide recorder and serves `GET /metrics` (and
/// nothing else) on `addr`.
pub async fn serve(addr: &crate::config::ListenAddr) -> anyhow::Result<()> {
    let listener = addr.bind("metrics").await?;
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full("shop_rpc_duration_seconds".into()), &RPC_BUCKETS)
        .context("metrics buckets")?
        .install_recorder()
        .context("a metrics recorder is already installed")?;
    describe();
    let routes = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let handle = handle.clone();
            async move { ([(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()) }
        }),
    );
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, routes).await {
            tracing::warn!(error = %error, "the metrics endpoint stopped");
        }
    });
    Ok(())
}

/// Gives every metric platform records its `# HELP` line. The services
/// describe their own (checkout outcomes, reporting's lag, the gateway's
/// stalled calls) when they start, and set the series a dashboard plots to
/// zero.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "shop_rpc_requests_total",
        "Calls answered, by server, method, gRPC code and protocol (grpc, grpc-web, connect-json, connect-proto)."
    );
    describe_counter!("shop_rpc_errors_total", "Calls answered with an error, by server, method and gRPC code.");
    describe_histogram!("shop_rpc_duration_seconds", metrics::Unit::Seconds, "Time to answer a call.");
    describe_gauge!("shop_db_pool_connections", "Postgres connections of a pool, by schema and state.");
    describe_gauge!("shop_outbox_subscriber_lag_events", "Events an event-stream subscriber is behind.");
    describe_counter!(
        "shop_connections_closed_total",
        "Client connections a server closed, by reason: handshake, idle, per_addr, killed."
    );
}

/// A tower layer recording every RPC a server answers.
#[derive(Debug, Clone, Copy)]
pub struct RpcMetricsLayer {
    pub server: &'static str,
}

impl<S> tower::Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcMetrics { inner, server: self.server }
    }
}

#[derive(Debug, Clone)]
pub struct RpcMetrics<S> {
    inner: S,
    server: &'static str,
}

impl<S, B, R> tower::Service<http::Request<B>> for RpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.uri().path().to_owned();
        let protocol = request
            .extensions()
            .get::<crate::transport::connect::Protocol>()
            .map_or("grpc", |protocol| protocol.as_str());
        let server = self.server;
        let started = Instant::now();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await;
            // A handler's error goes out trailers-only, so its code is in the
            // headers; a success carries it in trailers, after the body.
            let code = match &response {
                Ok(response) => response
                    .headers()
                    .get("grpc-status")
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| value.parse::<i32>().ok())
                    .map_or(Code::Ok, Code::from_i32),
                Err(_) => Code::Unknown,
            };
            // Paths a client made up would make a label per request.
            let method = if code == Code::Unimplemented { "unknown".to_owned() } else { method };
            let code = format!("{code:?}");
            metrics::histogram!("shop_rpc_duration_seconds", "server" => server, "method" => method.clone(), "protocol" => protocol)
                .record(started.elapsed().as_secs_f64());
            if code != "Ok" {
                metrics::counter!("shop_rpc_errors_total", "server" => server, "method" => method.clone(), "code" => code.clone(), "protocol" => protocol)
                    .increment(1);
            }
            metrics::counter!("shop_rpc_requests_total", "server" => server, "method" => method, "code" => code, "protocol" => protocol)
                .increment(1);
            response
        })
    }
}

/// Samples a pool's connections every few seconds (until aborted, as a
/// server companion): `shop_db_pool_connections{schema, state=idle|in_use}`.
pub fn watch_pool(pool: PgPool, schema: &'static str) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_secs(5));
        loop {
            ticks.tick().await;
            let idle = pool.num_idle() as f64;
            let open = f64::from(pool.size());
            metrics::gauge!("shop_db_pool_connections", "schema" => schema, "state" => "idle").set(idle);
            metrics::gauge!("shop_db_pool_connections", "schema" => schema, "state" => "in_use").set(open - idle);
        }
    })
}
