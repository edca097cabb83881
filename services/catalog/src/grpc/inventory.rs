use shop_proto::catalog::inventory_service_server::InventoryService;
use shop_proto::catalog::{
    ReleaseStockRequest, ReleaseStockResponse, ReserveStockRequest, ReserveStockResponse, ReservedLine,
};
use tonic::{Request, Response, Status};

use shop_platform::kernel::order_lines::{OrderLine, OrderLines};

use crate::domain::inventory::Inventory;
use crate::error::Error;
use crate::model::parse_id;
use shop_platform::error::FieldRefusal as _;

/// Internal: mounted behind the service-credential interceptor.
pub struct InventoryApi {
    inventory: Inventory,
}

impl InventoryApi {
    pub fn new(inventory: Inventory) -> Self {
        Self { inventory }
    }
}

#[tonic::async_trait]
impl InventoryService for InventoryApi {
    async fn reserve_stock(
        &self,
        request: Request<ReserveStockRequest>,
    ) -> Result<Response<ReserveStockResponse>, Status> {
        let req = request.into_inner();
        let order_id = parse_id(req.order_id).map_err(Error::field("order_id"))?;
        let lines = OrderLines::parse(
            req.lines.iter().map(|line| OrderLine { product_id: line.product_id, quantity: line.quantity }),
        )
        .map_err(Error::field("lines"))?;
        let reserved = self.inventory.reserve(order_id, &lines).await?;
        Ok(Response::new(ReserveStockResponse { lines: reserved.into_iter().map(ReservedLine::from).collect() }))
    }

    async fn release_stock(
        &self,
        request: Request<ReleaseStockRequest>,
    ) -> Result<Response<ReleaseStockResponse>, Status> {
        let order_id = parse_id(request.into_inner().order_id).map_err(Error::field("order_id"))?;
        let released = self.inventory.release(order_id).await?;
        Ok(Response::new(ReleaseStockResponse { released }))
    }
}
