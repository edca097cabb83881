//! Calls to other services: catalog (products, stock) and the order half's
//! OrderPlacementService. Every call carries the service credential, a
//! deadline (the incoming call's, capped by the configured timeout) and the
//! incoming call's W3C trace context. Only idempotent calls are retried, and
//! only on UNAVAILABLE.

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable as _};
use shop_platform::auth::ServiceCredentials;
use shop_platform::client::lazy_channel;
use shop_proto::catalog::ReservedLine;
use shop_proto::catalog::catalog_service_client::CatalogServiceClient;
use shop_proto::catalog::inventory_service_client::InventoryServiceClient;
use shop_proto::catalog::{BatchGetProductsRequest, Product, ReleaseStockRequest, ReserveLine, ReserveStockRequest};
use shop_proto::order::order_placement_service_client::OrderPlacementServiceClient;
use shop_proto::order::{FindOrderRequest, Order, PlaceOrderLine, PlaceOrderRequest};
use tokio::time::Instant;
use tonic::metadata::{AsciiMetadataValue, MetadataMap};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

/// Trace-context headers passed from an incoming call to the calls it makes.
const TRACE_HEADERS: [&str; 2] = ["traceparent", "tracestate"];

#[derive(Debug, Clone, Copy)]
pub struct CallPolicy {
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub retries: usize,
}

/// What an incoming call hands on to the calls made for it.
#[derive(Debug, Clone)]
pub struct CallContext {
    deadline: Instant,
    trace: Vec<(&'static str, AsciiMetadataValue)>,
}

impl CallContext {
    /// From an incoming call: its `grpc-timeout` (if any) and trace headers.
    pub fn of(metadata: &MetadataMap, cap: Duration) -> Self {
        let budget = metadata
            .get("grpc-timeout")
            .and_then(|value| value.to_str().ok())
            .and_then(parse_grpc_timeout)
            .map_or(cap, |timeout| timeout.min(cap));
        let trace =
            TRACE_HEADERS.iter().filter_map(|name| metadata.get(*name).map(|value| (*name, value.clone()))).collect();
        Self { deadline: Instant::now() + budget, trace }
    }

    /// Work of our own (recovery, clean-up after a failed call): a fresh
    /// deadline, the same trace.
    pub fn detached(&self, budget: Duration) -> Self {
        Self { deadline: Instant::now() + budget, trace: self.trace.clone() }
    }

    pub fn background(budget: Duration) -> Self {
        Self { deadline: Instant::now() + budget, trace: Vec::new() }
    }
}

/// `grpc-timeout`: up to 8 digits and a unit (H, M, S, m, u, n).
fn parse_grpc_timeout(raw: &str) -> Option<Duration> {
    if raw.len() < 2 || raw.len() > 9 {
        return None;
    }
    let (digits, unit) = raw.split_at(raw.len() - 1);
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[derive(Clone)]
pub struct Calls {
    catalog: Channel,
    orders: Channel,
    credentials: ServiceCredentials,
    policy: CallPolicy,
}

impl Calls {
    pub fn new(
        catalog_url: &str,
        orders_url: &str,
        policy: CallPolicy,
        credentials: ServiceCredentials,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            catalog: lazy_channel(catalog_url, "SHOP_CART_ORDER_CATALOG_URL", policy.connect_timeout)?,
            orders: lazy_channel(orders_url, "SHOP_CART_ORDER_ORDERS_URL", policy.connect_timeout)?,
            credentials,
            policy,
        })
    }

    pub fn timeout(&self) -> Duration {
        self.policy.timeout
    }

    /// Runs one attempt of a call within what is left of the deadline.
    async fn attempt<T, R, F>(&self, context: &CallContext, message: T, call: F) -> Result<R, Status>
    where
        F: AsyncFnOnce(Request<T>) -> Result<tonic::Response<R>, Status>,
    {
        let left = context.deadline.saturating_duration_since(Instant::now()).min(self.policy.timeout);
        if left.is_zero() {
            return Err(Status::deadline_exceeded("deadline exceeded before the call"));
        }
        let mut request = Request::new(message);
        request.set_timeout(left);
        self.credentials.attach(request.metadata_mut());
        // This call's span is the parent when tracing; else the incoming
        // trace context goes on as it came.
        if !shop_platform::telemetry::inject_into_metadata(request.metadata_mut()) {
            for (name, value) in &context.trace {
                request.metadata_mut().insert(*name, value.clone());
            }
        }
        match tokio::time::timeout(left, call(request)).await {
            Ok(response) => response.map(tonic::Response::into_inner),
            Err(_) => Err(Status::deadline_exceeded("deadline exceeded")),
        }
    }

    /// Retries `call` while it answers UNAVAILABLE: for idempotent calls only.
    async fn idempotent<R, Fut>(&self, call: impl FnMut() -> Fut) -> Result<R, Status>
    where
        Fut: Future<Output = Result<R, Status>>,
    {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(50))
            .with_max_delay(Duration::from_secs(1))
            .with_max_times(self.policy.retries)
            .with_jitter();
        call.retry(backoff).when(|status: &Status| status.code() == Code::Unavailable).await
    }

    /// The live products among `ids` (archived and unknown ones are left out).
    pub async fn products(&self, context: &CallContext, ids: &[i64]) -> Result<Vec<Product>, Status> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.idempotent(|| {
            self.attempt(context, BatchGetProductsRequest { ids: ids.to_vec() }, async |request| {
                CatalogServiceClient::new(self.catalog.clone()).batch_get_products(request).await
            })
        })
        .await
        .map(|response| response.products)
    }

    /// Idempotent per order id.
    pub async fn reserve_stock(
        &self,
        context: &CallContext,
        order_id: i64,
        lines: &[(i64, i32)],
    ) -> Result<Vec<ReservedLine>, Status> {
        let lines: Vec<ReserveLine> =
            lines.iter().map(|&(product_id, quantity)| ReserveLine { product_id, quantity }).collect();
        self.idempotent(|| {
            self.attempt(context, ReserveStockRequest { order_id, lines: lines.clone() }, async |request| {
                InventoryServiceClient::new(self.catalog.clone()).reserve_stock(request).await
            })
        })
        .await
        .map(|response| response.lines)
    }

    /// Idempotent per order id.
    pub async fn release_stock(&self, context: &CallContext, order_id: i64) -> Result<bool, Status> {
        self.idempotent(|| {
            self.attempt(context, ReleaseStockRequest { order_id }, async |request| {
                InventoryServiceClient::new(self.catalog.clone()).release_stock(request).await
            })
        })
        .await
        .map(|response| response.released)
    }

    /// Idempotent because it always carries a key (checkout makes one when the
    /// client gave none).
    pub async fn place_order(
        &self,
        context: &CallContext,
        user_id: i64,
        idempotency_key: &str,
        lines: &[(i64, i32)],
    ) -> Result<Order, Status> {
        let lines: Vec<PlaceOrderLine> =
            lines.iter().map(|&(product_id, quantity)| PlaceOrderLine { product_id, quantity }).collect();
        self.idempotent(|| {
            let message =
                PlaceOrderRequest { user_id, idempotency_key: idempotency_key.to_owned(), lines: lines.clone() };
            self.attempt(context, message, async |request| {
                OrderPlacementServiceClient::new(self.orders.clone()).place_order(request).await
            })
        })
        .await
    }

    pub async fn find_order(
        &self,
        context: &CallContext,
        user_id: i64,
        idempotency_key: &str,
    ) -> Result<Order, Status> {
        self.idempotent(|| {
            let message = FindOrderRequest { user_id, idempotency_key: idempotency_key.to_owned() };
            self.attempt(context, message, async |request| {
                OrderPlacementServiceClient::new(self.orders.clone()).find_order(request).await
            })
        })
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
        assert_eq!(parse_grpc_timeout("7u"), Some(Duration::from_micros(7)));
        assert_eq!(parse_grpc_timeout("S"), None);
        assert_eq!(parse_grpc_timeout("123456789S"), None);
        assert_eq!(parse_grpc_timeout("5x"), None);
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
