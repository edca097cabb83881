//! Calls from one Shop server to another, made the same way everywhere: a
//! channel that connects on first use, the service credential on every call,
//! a deadline (what is left of the incoming call's, capped by the caller's
//! own timeout), the W3C trace context, and retries only for idempotent calls
//! and only on UNAVAILABLE.

use std::future::Future;
use std::time::Duration;

use anyhow::Context as _;
use backon::{ExponentialBuilder, Retryable as _};
use tokio::time::Instant;
use tonic::metadata::{AsciiMetadataValue, MetadataMap};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Request, Response, Status};

use crate::auth::ServiceCredentials;

/// Trace-context headers passed from an incoming call to the calls it makes.
const TRACE_HEADERS: [&str; 2] = ["traceparent", "tracestate"];

/// What one call may hold of a shared connection's receive window: all
/// callers of a peer share one connection, and bytes not read yet stay
/// charged to it, so one call must never be able to take it all.
const STREAM_WINDOW_BYTES: u32 = 128 * 1024;
/// The connection's window: 512 calls' worth.
const CONNECTION_WINDOW_BYTES: u32 = 64 * 1024 * 1024;
/// The largest answer header block taken from a peer. Past it HTTP/2 tears
/// down the whole shared connection, not the one call: far above what our
/// servers send (their statuses are bounded by `call_limits`).
const MAX_ANSWER_HEADER_LIST_BYTES: u32 = 256 * 1024;

/// A channel to `url` (named by its `setting` in errors) that connects on
/// first use, so a server starts even when the one it calls is not up yet;
/// calls to a server that is down fail with UNAVAILABLE after
/// `connect_timeout`. Idle connections are kept alive with HTTP/2 pings.
///
/// A URL whose host is a name (not an IP address) gets a channel over every
/// address the name resolves to, looked up again every few seconds
/// ([`crate::transport::balance`]): replicas behind one name share the calls.
///
/// With `tls` (internal TLS) the connection is TLS whatever the URL's scheme
/// says, and the server's certificate must name the URL's host.
pub fn lazy_channel(
    url: &str,
    setting: &str,
    connect_timeout: Duration,
    tls: Option<&ClientTlsConfig>,
) -> anyhow::Result<Channel> {
    let parsed: http::Uri = url.parse().with_context(|| format!("{setting} is not a valid URL"))?;
    let scheme = if tls.is_some() { "https" } else { parsed.scheme_str().unwrap_or("http") }.to_owned();
    let host = parsed.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_owned();
    let tls = tls.map(|tls| tls.clone().domain_name(host.clone()));
    let settings = move |endpoint: Endpoint| -> anyhow::Result<Endpoint> {
        let endpoint = peer_settings(endpoint, connect_timeout);
        Ok(match &tls {
            Some(tls) => endpoint.tls_config(tls.clone())?,
            None => endpoint,
        })
    };
    let port = parsed.port_u16().unwrap_or(if scheme == "https" { 443 } else { 80 });
    if host.is_empty() || host.parse::<std::net::IpAddr>().is_ok() {
        let url = match parsed.authority() {
            Some(authority) => format!("{scheme}://{authority}"),
            None => url.to_owned(),
        };
        let endpoint = Endpoint::from_shared(url).with_context(|| format!("{setting} is not a valid URL"))?;
        return Ok(settings(endpoint).with_context(|| format!("{setting}: TLS"))?.connect_lazy());
    }
    // Checked once here, so making each replica's endpoint cannot fail.
    settings(Endpoint::from_static("http://127.0.0.1")).with_context(|| format!("{setting}: TLS"))?;
    let replica = move |addr: std::net::SocketAddr| {
        let endpoint = Endpoint::from_shared(format!("{scheme}://{addr}")).expect("an address makes a valid URL");
        settings(endpoint).expect("checked when the channel was made")
    };
    Ok(crate::transport::balance::balanced(
        host.to_owned(),
        port,
        crate::transport::balance::system_lookup(),
        crate::transport::balance::RESOLVE_EVERY,
        replica,
    ))
}

/// What every connection to a peer is set up with.
fn peer_settings(endpoint: Endpoint, connect_timeout: Duration) -> Endpoint {
    endpoint
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true)
        .initial_stream_window_size(STREAM_WINDOW_BYTES)
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
        .http2_max_header_list_size(MAX_ANSWER_HEADER_LIST_BYTES)
}

/// `grpc-timeout`: up to 8 digits and a unit (H, M, S, m, u, n).
pub fn parse_grpc_timeout(raw: &str) -> Option<Duration> {
    if raw.len() < 2 || raw.len() > 9 {
        return None;
    }
    let (digits, unit) = raw.split_at(raw.len() - 1);
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.checked_mul(3600)?),
        "M" => Duration::from_secs(amount.checked_mul(60)?),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// The deadline an incoming call's `grpc-timeout` header sets, if any.
pub fn incoming_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    headers.get("grpc-timeout").and_then(|value| value.to_str().ok()).and_then(parse_grpc_timeout)
}

/// How calls to one peer behave.
#[derive(Debug, Clone, Copy)]
pub struct CallPolicy {
    /// Longest one call may take (a shorter incoming deadline wins).
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Retries of an idempotent call that found the peer UNAVAILABLE.
    pub retries: usize,
}

/// What an incoming call hands on to the calls made for it: its deadline and
/// its trace context.
#[derive(Debug, Clone)]
pub struct CallContext {
    deadline: Instant,
    trace: Vec<(&'static str, AsciiMetadataValue)>,
}

impl CallContext {
    /// From an incoming call: its `grpc-timeout` capped by `cap`, and its trace headers.
    pub fn of(metadata: &MetadataMap, cap: Duration) -> Self {
        let budget = incoming_timeout(metadata.as_ref()).map_or(cap, |timeout| timeout.min(cap));
        let trace =
            TRACE_HEADERS.iter().filter_map(|name| metadata.get(*name).map(|value| (*name, value.clone()))).collect();
        Self { deadline: Instant::now() + budget, trace }
    }

    /// Work of our own on behalf of a call (clean-up after it failed): a
    /// fresh deadline, the same trace.
    pub fn detached(&self, budget: Duration) -> Self {
        Self { deadline: Instant::now() + budget, trace: self.trace.clone() }
    }

    /// Work no client asked for (recovery loops, key refreshes).
    pub fn background(budget: Duration) -> Self {
        Self { deadline: Instant::now() + budget, trace: Vec::new() }
    }

    fn time_left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// Another Shop server this one calls: its channel, our credential, and the
/// policy its calls follow.
#[derive(Clone)]
pub struct Peer {
    channel: Channel,
    credentials: ServiceCredentials,
    policy: CallPolicy,
}

impl Peer {
    /// A peer at `url` (named by its `setting` in errors), connected on first use.
    pub fn new(url: &str, setting: &str, credentials: ServiceCredentials, policy: CallPolicy) -> anyhow::Result<Self> {
        let channel = lazy_channel(url, setting, policy.connect_timeout, credentials.client_tls())?;
        Ok(Self::on(channel, credentials, policy))
    }

    /// A peer over a channel that already exists.
    pub fn on(channel: Channel, credentials: ServiceCredentials, policy: CallPolicy) -> Self {
        Self { channel, credentials, policy }
    }

    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    pub fn timeout(&self) -> Duration {
        self.policy.timeout
    }

    /// A request carrying the credential and the trace: for a long-lived
    /// stream, which has no deadline.
    pub fn stream_request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        self.credentials.attach(request.metadata_mut());
        request
    }

    /// One attempt of a call within what is left of the deadline. `call`
    /// gets the peer's channel and the request, e.g.
    /// `|channel, request| async move { Client::new(channel).rpc(request).await }`.
    pub async fn call<T, R, F, Fut>(&self, context: &CallContext, message: T, call: F) -> Result<R, Status>
    where
        F: FnOnce(Channel, Request<T>) -> Fut,
        Fut: Future<Output = Result<Response<R>, Status>>,
    {
        let left = context.time_left().min(self.policy.timeout);
        if left.is_zero() {
            return Err(Status::deadline_exceeded("deadline exceeded before the call"));
        }
        let mut request = self.stream_request(message);
        request.set_timeout(left);
        // This call's span is the parent when tracing; else the incoming
        // trace context goes on as it came.
        if !crate::observability::telemetry::inject_into_metadata(request.metadata_mut()) {
            for (name, value) in &context.trace {
                request.metadata_mut().insert(*name, value.clone());
            }
        }
        let expires = Instant::now() + left;
        match tokio::time::timeout(left, call(self.channel.clone(), request)).await {
            // tonic's own timer on the same deadline answers CANCELLED
            // ("Timeout expired"); whichever fires first, it is a deadline.
            Ok(Err(status)) if status.code() == Code::Cancelled && Instant::now() >= expires => {
                Err(Status::deadline_exceeded("deadline exceeded"))
            }
            Ok(response) => response.map(Response::into_inner),
            Err(_) => Err(Status::deadline_exceeded("deadline exceeded")),
        }
    }

    /// An idempotent call: tried again while the peer answers UNAVAILABLE
    /// (exponential backoff from 50 ms, with jitter), within the deadline.
    pub async fn call_idempotent<T, R, F, Fut>(&self, context: &CallContext, message: T, call: F) -> Result<R, Status>
    where
        T: Clone,
        F: Fn(Channel, Request<T>) -> Fut,
        Fut: Future<Output = Result<Response<R>, Status>>,
    {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(50))
            .with_max_delay(Duration::from_secs(1))
            .with_max_times(self.policy.retries)
            .with_jitter();
        (|| self.call(context, message.clone(), &call))
            .retry(backoff)
            .when(|status: &Status| status.code() == Code::Unavailable)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_in_every_unit() {
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse_grpc_timeout("7u"), Some(Duration::from_micros(7)));
        assert_eq!(parse_grpc_timeout("9n"), Some(Duration::from_nanos(9)));
        for bad in ["S", "123456789S", "5x", "abc", "-5S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_call_context_takes_the_shorter_deadline_and_the_trace() {
        let mut metadata = MetadataMap::new();
        metadata.insert("grpc-timeout", "100m".parse().unwrap());
        metadata.insert("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".parse().unwrap());
        let context = CallContext::of(&metadata, Duration::from_secs(5));
        assert!(context.deadline <= Instant::now() + Duration::from_millis(100));
        assert_eq!(context.trace.len(), 1);
        let uncapped = CallContext::of(&MetadataMap::new(), Duration::from_secs(5));
        assert!(uncapped.deadline > Instant::now() + Duration::from_secs(4));
    }
}
