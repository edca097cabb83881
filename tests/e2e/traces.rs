//! One checkout is one trace: the gateway starts it (the client sent no
//! trace context), and cart-order's Checkout and PlaceOrder and catalog's
//! ReserveStock join it through the `traceparent` each hop passes on. Spans
//! are captured in memory; the subscriber is process-wide, so only this test
//! installs it (spans of tests running beside it are told apart by trace id).

use opentelemetry::Value;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};

use crate::cart::{add, stocked};
use crate::checkout::checkout;
use crate::harness::TestShop;

fn attribute(span: &opentelemetry_sdk::trace::SpanData, key: &str) -> Option<String> {
    span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| match &kv.value {
        Value::String(value) => value.to_string(),
        other => other.to_string(),
    })
}

#[tokio::test]
async fn one_checkout_is_one_trace_across_gateway_cart_order_and_catalog() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    shop_platform::observability::telemetry::install(
        Some(provider.clone()),
        shop_platform::observability::telemetry::LogFormat::Text,
    );

    let shop = TestShop::start().await;
    let (_, products) = stocked(&shop, &[("Desk lamp", "19.99", 5)]).await;
    let alice = shop.customer("alice").await;
    add(&shop, &alice, products[0].id, 1).await.unwrap();
    let order = checkout(&shop, &alice, "traced").await.unwrap();
    provider.force_flush().unwrap();

    let spans = exporter.get_finished_spans().unwrap();
    let rpc = |server: &str, method: &str| {
        spans.iter().find(|span| {
            attribute(span, "server").as_deref() == Some(server)
                && attribute(span, "rpc.method").as_deref() == Some(method)
        })
    };
    let entry = rpc("gateway", "/shop.cart.v1.CartService/Checkout").expect("the gateway's span of the checkout");
    let trace = entry.span_context.trace_id();
    let hops = [
        ("cart-order", "/shop.cart.v1.CartService/Checkout"),
        ("cart-order", "/shop.order.v1.OrderPlacementService/PlaceOrder"),
        ("catalog", "/shop.catalog.v1.InventoryService/ReserveStock"),
    ];
    for (server, method) in hops {
        let hop = spans.iter().filter(|span| span.span_context.trace_id() == trace).find(|span| {
            attribute(span, "server").as_deref() == Some(server)
                && attribute(span, "rpc.method").as_deref() == Some(method)
        });
        assert!(hop.is_some(), "{server} {method} is not in the checkout's trace {trace} (order {})", order.id);
    }
    let logged = attribute(entry, "trace_id").expect("the span's trace_id field, as logs show it");
    assert_eq!(logged, trace.to_string());
}
