//! Calls to other services: catalog (products, stock) and the order half's
//! OrderPlacementService, made through `shop_platform::transport::client::Peer`
//! (credential, deadline, trace, retries of idempotent calls). This is the
//! edge where peers' protobuf becomes domain values: their money is parsed
//! here, once, and a peer that sends a malformed value is a bug (INTERNAL).

use shop_platform::auth::ServiceCredentials;
use shop_platform::kernel::money::Money;
use shop_platform::kernel::order_lines::{OrderLine, OrderLines};
use shop_platform::kernel::time::from_timestamp;
use shop_platform::transport::client::{CallContext, CallPolicy, Peer};
use shop_proto::catalog::catalog_service_client::CatalogServiceClient;
use shop_proto::catalog::inventory_service_client::InventoryServiceClient;
use shop_proto::catalog::{BatchGetProductsRequest, ReleaseStockRequest, ReserveLine, ReserveStockRequest};
use shop_proto::order::order_placement_service_client::OrderPlacementServiceClient;
use shop_proto::order::{FindOrderRequest, PlaceOrderLine, PlaceOrderRequest};
use tonic::Status;

use crate::error::Error;
use crate::model::{Category, Order, OrderItem, Product, Snapshot};

#[derive(Clone)]
pub struct Calls {
    catalog: Peer,
    orders: Peer,
}

/// A peer's money, parsed at the edge.
fn money(service: &'static str, what: &str, raw: &str) -> Result<Money, Error> {
    Money::parse(raw).map_err(|reason| Error::Downstream {
        service,
        status: Status::internal(format!("{what} {raw:?} from {service}: {reason}")),
    })
}

fn product(product: shop_proto::catalog::Product) -> Result<Product, Error> {
    let category = product.category.unwrap_or_default();
    Ok(Product {
        price: money("catalog", "price", &product.price)?,
        id: product.id,
        title: product.title,
        description: product.description,
        stock: product.stock,
        image_url: product.image_url,
        category: Category { id: category.id, name: category.name, slug: category.slug },
        created_at: from_timestamp(product.created_at),
        updated_at: from_timestamp(product.updated_at),
        sold_count: product.sold_count,
    })
}

/// A line with its price snapshot, as a peer sent it.
fn snapshot_item(
    product_id: i64,
    quantity: i32,
    title: String,
    unit_price: Money,
    category_name: String,
    category_slug: String,
) -> OrderItem {
    OrderItem {
        line: OrderLine { product_id, quantity },
        snapshot: Some(Snapshot { title, unit_price, category_name, category_slug }),
    }
}

/// An order as the order half sent it (checkout's answer).
fn order(order: shop_proto::order::Order) -> Result<Order, Error> {
    let status = crate::wire::status_from_proto(order.status)
        .ok_or_else(|| Error::orders(Status::internal(format!("order {} has status {}", order.id, order.status))))?;
    let items = order
        .items
        .into_iter()
        .map(|item| {
            let unit_price = money("orders", "unit_price", &item.unit_price)?;
            Ok(snapshot_item(
                item.product_id,
                item.quantity,
                item.title,
                unit_price,
                item.category_name,
                item.category_slug,
            ))
        })
        .collect::<Result<_, Error>>()?;
    let missing_time = || Error::orders(Status::internal(format!("order {} has no time", order.id)));
    Ok(Order {
        id: order.id,
        user_id: order.user_id,
        status,
        items,
        total_price: money("orders", "total_price", &order.total_price)?,
        total_quantity: order.total_quantity,
        created_at: from_timestamp(order.created_at).ok_or_else(missing_time)?,
        updated_at: from_timestamp(order.updated_at).ok_or_else(missing_time)?,
    })
}

impl Calls {
    pub fn new(
        catalog_url: &str,
        orders_url: &str,
        policy: CallPolicy,
        credentials: ServiceCredentials,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            catalog: Peer::new(catalog_url, "SHOP_CART_ORDER_CATALOG_URL", credentials.clone(), policy)?,
            orders: Peer::new(orders_url, "SHOP_CART_ORDER_ORDERS_URL", credentials, policy)?,
        })
    }

    pub fn timeout(&self) -> std::time::Duration {
        self.catalog.timeout()
    }

    /// The live products among `ids` (archived and unknown ones are left out).
    pub async fn products(&self, context: &CallContext, ids: &[i64]) -> Result<Vec<Product>, Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let request = BatchGetProductsRequest { ids: ids.to_vec() };
        let response = self
            .catalog
            .call_idempotent(context, request, |channel, request| async move {
                CatalogServiceClient::new(channel).batch_get_products(request).await
            })
            .await
            .map_err(Error::catalog)?;
        response.products.into_iter().map(product).collect()
    }

    /// Idempotent per order id: the reserved lines with their snapshots.
    pub async fn reserve_stock(
        &self,
        context: &CallContext,
        order_id: i64,
        lines: &OrderLines,
    ) -> Result<Vec<OrderItem>, Error> {
        let lines = lines
            .lines()
            .iter()
            .map(|line| ReserveLine { product_id: line.product_id, quantity: line.quantity })
            .collect();
        let response = self
            .catalog
            .call_idempotent(context, ReserveStockRequest { order_id, lines }, |channel, request| async move {
                InventoryServiceClient::new(channel).reserve_stock(request).await
            })
            .await
            .map_err(Error::catalog)?;
        response
            .lines
            .into_iter()
            .map(|line| {
                let unit_price = money("catalog", "unit_price", &line.unit_price)?;
                Ok(snapshot_item(
                    line.product_id,
                    line.quantity,
                    line.title,
                    unit_price,
                    line.category_name,
                    line.category_slug,
                ))
            })
            .collect()
    }

    /// Idempotent per order id.
    pub async fn release_stock(&self, context: &CallContext, order_id: i64) -> Result<bool, Error> {
        let response = self
            .catalog
            .call_idempotent(context, ReleaseStockRequest { order_id }, |channel, request| async move {
                InventoryServiceClient::new(channel).release_stock(request).await
            })
            .await
            .map_err(Error::catalog)?;
        Ok(response.released)
    }

    /// Idempotent because it always carries a key (checkout makes one when the
    /// client gave none).
    pub async fn place_order(
        &self,
        context: &CallContext,
        user_id: i64,
        idempotency_key: &str,
        lines: &OrderLines,
    ) -> Result<Order, Error> {
        let lines = lines
            .lines()
            .iter()
            .map(|line| PlaceOrderLine { product_id: line.product_id, quantity: line.quantity })
            .collect();
        let request = PlaceOrderRequest { user_id, idempotency_key: idempotency_key.to_owned(), lines };
        let placed = self
            .orders
            .call_idempotent(context, request, |channel, request| async move {
                OrderPlacementServiceClient::new(channel).place_order(request).await
            })
            .await
            .map_err(Error::orders)?;
        order(placed)
    }

    /// The user's live order placed with this key; `None` when there is none.
    pub async fn find_order(
        &self,
        context: &CallContext,
        user_id: i64,
        idempotency_key: &str,
    ) -> Result<Option<Order>, Error> {
        let request = FindOrderRequest { user_id, idempotency_key: idempotency_key.to_owned() };
        let found = self
            .orders
            .call_idempotent(context, request, |channel, request| async move {
                OrderPlacementServiceClient::new(channel).find_order(request).await
            })
            .await;
        match found {
            Ok(found) => order(found).map(Some),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(status) => Err(Error::orders(status)),
        }
    }
}
