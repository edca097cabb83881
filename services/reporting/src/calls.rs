//! The event streams reporting reads (catalog's and the order service's
//! `Subscribe`), through `shop_platform::transport::client::Peer`. This is the edge
//! where their protobuf events become domain changes: money is parsed here,
//! once, and an event that does not decode stops the consumer (which logs it
//! and starts over from its checkpoint).

use std::pin::Pin;

use shop_platform::kernel::money::Money;
use shop_platform::transport::client::Peer;
use shop_proto::StreamEvent;
use shop_proto::catalog::catalog_event::Payload as CatalogPayload;
use shop_proto::catalog::catalog_events_service_client::CatalogEventsServiceClient;
use shop_proto::catalog::{CatalogEvent, SubscribeCatalogEventsRequest};
use shop_proto::order::order_event::Payload as OrderPayload;
use shop_proto::order::order_events_service_client::OrderEventsServiceClient;
use shop_proto::order::{Order, OrderEvent, SubscribeOrderEventsRequest};
use tokio_stream::{Stream, StreamExt as _};
use tonic::Status;

use crate::error::Error;
use crate::model::{CatalogChange, OrderChange, ProductInfo, SoldLine, Stamped};

/// A stream of decoded changes, as long as the peer keeps it open.
pub type Changes<C> = Pin<Box<dyn Stream<Item = Result<Stamped<C>, Error>> + Send>>;

/// One stream's service.
#[derive(Clone)]
pub struct Upstream(pub Peer);

fn stamped<E: StreamEvent, C>(event: &E, change: C) -> Stamped<C> {
    let occurred_at = shop_platform::kernel::time::from_timestamp(event.occurred_at());
    Stamped { sequence: event.sequence(), occurred_at, change }
}

fn catalog_change(event: CatalogEvent) -> Stamped<CatalogChange> {
    let change = match &event.payload {
        Some(CatalogPayload::ProductUpserted(product)) => CatalogChange::ProductUpserted(ProductInfo {
            product_id: product.product_id,
            title: product.title.clone(),
            category_id: product.category_id,
            category_name: product.category_name.clone(),
            category_slug: product.category_slug.clone(),
        }),
        Some(CatalogPayload::ProductArchived(archived)) => {
            CatalogChange::ProductArchived { product_id: archived.product_id }
        }
        Some(CatalogPayload::CategoryUpserted(category)) => CatalogChange::CategoryUpserted {
            category_id: category.category_id,
            name: category.name.clone(),
            slug: category.slug.clone(),
        },
        Some(CatalogPayload::CategoryDeleted(deleted)) => {
            CatalogChange::CategoryDeleted { category_id: deleted.category_id }
        }
        Some(CatalogPayload::StockReserved(_) | CatalogPayload::StockReleased(_)) | None => CatalogChange::Ignored,
    };
    stamped(&event, change)
}

fn sold_lines(order: Option<&Order>) -> Result<Vec<SoldLine>, Status> {
    let Some(order) = order else { return Ok(Vec::new()) };
    order
        .items
        .iter()
        .map(|item| {
            let revenue = Money::parse(&item.line_total).map_err(|reason| {
                Status::internal(format!("line_total {:?} of order {}: {reason}", item.line_total, order.id))
            })?;
            Ok(SoldLine {
                product_id: item.product_id,
                title: item.title.clone(),
                category_name: item.category_name.clone(),
                category_slug: item.category_slug.clone(),
                units: i64::from(item.quantity),
                revenue,
            })
        })
        .collect()
}

fn order_change(event: OrderEvent) -> Result<Stamped<OrderChange>, Status> {
    let change = match &event.payload {
        Some(OrderPayload::OrderPlaced(placed)) => OrderChange::Placed(sold_lines(placed.order.as_ref())?),
        Some(OrderPayload::OrderCancelled(cancelled)) => OrderChange::Cancelled(sold_lines(cancelled.order.as_ref())?),
        Some(OrderPayload::OrderStatusChanged(_)) | None => OrderChange::Ignored,
    };
    Ok(stamped(&event, change))
}

impl Upstream {
    /// Catalog's changes after `after_sequence`.
    pub async fn catalog_after(&self, after_sequence: i64) -> Result<Changes<CatalogChange>, Error> {
        let request = self.0.stream_request(SubscribeCatalogEventsRequest { after_sequence });
        let events = CatalogEventsServiceClient::new(self.0.channel())
            .subscribe(request)
            .await
            .map_err(Error::Stream)?
            .into_inner();
        Ok(Box::pin(events.map(|event| event.map(catalog_change).map_err(Error::Stream))))
    }

    /// The order service's changes after `after_sequence`.
    pub async fn orders_after(&self, after_sequence: i64) -> Result<Changes<OrderChange>, Error> {
        let request = self.0.stream_request(SubscribeOrderEventsRequest { after_sequence });
        let events = OrderEventsServiceClient::new(self.0.channel())
            .subscribe(request)
            .await
            .map_err(Error::Stream)?
            .into_inner();
        Ok(Box::pin(events.map(|event| event.and_then(order_change).map_err(Error::Stream))))
    }
}
