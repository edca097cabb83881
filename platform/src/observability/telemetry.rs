//! Logs and traces. Logs go to stderr through `tracing`: human-readable by
//! default, JSON lines when `SHOP_LOG_FORMAT=json`; the level filter comes
//! from `RUST_LOG`. Traces: when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, every
//! span is also exported over OTLP (HTTP/protobuf), and every server joins
//! the W3C trace context (`traceparent`) its caller sent, and passes its own
//! on to the calls it makes, so one client call is one trace across
//! processes.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer, fmt};

/// Flushes and stops trace export when dropped (at the end of `main`).
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            // The exporter's blocking HTTP client must not be dropped on an async thread.
            let _ = std::thread::spawn(move || provider.shutdown()).join();
        }
    }
}

/// How log lines are written (`SHOP_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// For people; coloured only on a terminal.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl LogFormat {
    /// `SHOP_LOG_FORMAT`: `text` (the default) or `json`; anything else is refused.
    pub fn from_env() -> anyhow::Result<Self> {
        match std::env::var("SHOP_LOG_FORMAT") {
            Err(std::env::VarError::NotPresent) => Ok(Self::Text),
            Ok(format) if format == "text" || format.is_empty() => Ok(Self::Text),
            Ok(format) if format == "json" => Ok(Self::Json),
            Ok(other) => anyhow::bail!("SHOP_LOG_FORMAT must be text or json, not {other:?}"),
            Err(std::env::VarError::NotUnicode(_)) => anyhow::bail!("SHOP_LOG_FORMAT must be text or json"),
        }
    }
}

/// Installs the global subscriber once (later calls are no-ops); exports
/// spans when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, as `service_name`
/// unless `OTEL_SERVICE_NAME` says otherwise.
pub fn init(service_name: &str, format: LogFormat) -> Telemetry {
    let provider = std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").and_then(|_| {
        let name = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| service_name.to_owned());
        // Built off the async threads: the blocking HTTP client starts its own runtime.
        let built = std::thread::spawn(move || otlp_provider(name)).join();
        match built {
            Ok(Ok(provider)) => Some(provider),
            Ok(Err(error)) => {
                eprintln!("shop: OTLP trace export is off: {}", crate::error::chain_without_repeats(error.as_ref()));
                None
            }
            Err(_) => None,
        }
    });
    install(provider.clone(), format);
    Telemetry { provider }
}

fn otlp_provider(service_name: String) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_http().build()?;
    let resource = opentelemetry_sdk::Resource::builder().with_service_name(service_name).build();
    Ok(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build())
}

/// The global subscriber: logs, and spans to `provider` when given. Tests use
/// this with an in-memory exporter.
pub fn install(provider: Option<SdkTracerProvider>, format: LogFormat) {
    use std::io::IsTerminal as _;
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = match format {
        LogFormat::Json => fmt::layer().json().with_current_span(true).with_writer(std::io::stderr).boxed(),
        // Escape codes only where a terminal shows them as colours.
        LogFormat::Text => fmt::layer().with_ansi(std::io::stderr().is_terminal()).with_writer(std::io::stderr).boxed(),
    };
    let traces = provider.map(|provider| {
        let tracer = provider.tracer("shop");
        opentelemetry::global::set_tracer_provider(provider);
        tracing_opentelemetry::layer().with_tracer(tracer)
    });
    let _already_set = tracing_subscriber::registry().with(filter).with(logs).with(traces).try_init();
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (http::HeaderName::try_from(key), http::HeaderValue::try_from(value)) {
            self.0.insert(name, value);
        }
    }
}

struct MetadataInjector<'a>(&'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (MetadataKey::from_bytes(key.as_bytes()), MetadataValue::try_from(value)) {
            self.0.insert(key, value);
        }
    }
}

/// Makes `span` a child of the trace context in an incoming call's headers
/// (if any), and returns the trace id it belongs to, for the logs.
pub fn join_trace(span: &tracing::Span, headers: &http::HeaderMap) -> Option<String> {
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    let _ = span.set_parent(parent);
    let context = span.context();
    let trace_id = context.span().span_context().trace_id();
    if trace_id != opentelemetry::trace::TraceId::INVALID {
        return Some(trace_id.to_string());
    }
    // Not exporting: the caller's trace id is still worth logging.
    headers
        .get("traceparent")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split('-').nth(1))
        .map(str::to_owned)
}

/// Whether the current span belongs to a trace (spans are being exported).
fn current_context() -> Option<opentelemetry::Context> {
    let context = tracing::Span::current().context();
    context.span().span_context().is_valid().then_some(context)
}

/// Puts the current span's trace context on an outgoing call's headers (the
/// gateway's forwarded calls); leaves them as they are when not tracing.
pub fn inject_into_headers(headers: &mut http::HeaderMap) {
    if let Some(context) = current_context() {
        TraceContextPropagator::new().inject_context(&context, &mut HeaderInjector(headers));
    }
}

/// The same for an outgoing tonic request; `false` when not tracing (the
/// caller then passes on the incoming trace headers as they came).
pub fn inject_into_metadata(metadata: &mut MetadataMap) -> bool {
    match current_context() {
        Some(context) => {
            TraceContextPropagator::new().inject_context(&context, &mut MetadataInjector(metadata));
            true
        }
        None => false,
    }
}
