use shop_platform::error::Invalid;
use shop_platform::kernel::order_lines::{OrderLine, OrderLines};
use shop_platform::transport::client::CallContext;
use shop_proto::order::order_placement_service_server::OrderPlacementService;
use shop_proto::order::{FindOrderRequest, Order, PlaceOrderRequest};
use tonic::{Request, Response, Status};

use crate::domain::placement::Placement;
use crate::error::Error;
use crate::model::{self, parse_id};
use shop_platform::error::FieldRefusal as _;

/// Internal: mounted behind the service-credential interceptor.
pub struct PlacementApi {
    placement: Placement,
}

impl PlacementApi {
    pub fn new(placement: Placement) -> Self {
        Self { placement }
    }
}

#[tonic::async_trait]
impl OrderPlacementService for PlacementApi {
    async fn place_order(&self, request: Request<PlaceOrderRequest>) -> Result<Response<Order>, Status> {
        let context = CallContext::of(request.metadata(), self.placement.call_timeout());
        let req = request.into_inner();
        let user_id = parse_id(req.user_id).map_err(Error::field("user_id"))?;
        let key = model::idempotency_key(&req.idempotency_key).map_err(Error::field("idempotency_key"))?;
        let lines = OrderLines::parse(
            req.lines.iter().map(|line| OrderLine { product_id: line.product_id, quantity: line.quantity }),
        )
        .map_err(Error::field("lines"))?;
        Ok(Response::new(self.placement.place(&context, user_id, key.as_deref(), &lines).await?.into()))
    }

    async fn find_order(&self, request: Request<FindOrderRequest>) -> Result<Response<Order>, Status> {
        let req = request.into_inner();
        let user_id = parse_id(req.user_id).map_err(Error::field("user_id"))?;
        let key = model::idempotency_key(&req.idempotency_key)
            .map_err(Error::field("idempotency_key"))?
            .ok_or_else(|| Error::field("idempotency_key")(Invalid::new("is required")))?;
        Ok(Response::new(self.placement.find(user_id, &key).await?.into()))
    }
}
