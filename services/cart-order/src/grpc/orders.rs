use shop_platform::auth::ServiceCredentials;
use shop_platform::error::Invalid;
use shop_platform::kernel::paging::{Page, PageProblem};
use shop_platform::transport::client::CallContext;
use shop_proto::order::order_service_server::OrderService;
use shop_proto::order::{
    CancelOrderRequest, GetOrderRequest, ListAllOrdersRequest, ListOrdersRequest, ListOrdersResponse, Order,
    UpdateOrderStatusRequest,
};
use tonic::{Request, Response, Status};

use crate::domain::orders::Orders;
use crate::error::Error;
use crate::model::{OrderFilter, Status as OrderState, Viewer, parse_id};
use shop_platform::error::FieldRefusal as _;

const ORDERS_DEFAULT_PAGE_SIZE: i32 = 10;
const ORDERS_MAX_PAGE_SIZE: i32 = 100;

fn page(page: i32, page_size: i32) -> Result<Page, Error> {
    Page::parse(page, page_size, ORDERS_DEFAULT_PAGE_SIZE, ORDERS_MAX_PAGE_SIZE).map_err(|problem| match problem {
        PageProblem::Page(reason) => Error::field("page")(reason),
        PageProblem::PageSize(reason) => Error::field("page_size")(reason),
    })
}

/// ListAllOrders' filter: unspecified is any status.
fn status_filter(raw: i32) -> Result<Option<OrderState>, Invalid> {
    match raw {
        0 => Ok(None),
        raw => crate::wire::status_from_proto(raw).map(Some).ok_or_else(|| Invalid::new("is not an order status")),
    }
}

/// UpdateOrderStatus' target: a real status (unset or unknown is refused).
/// Only SHIPPED, DELIVERED and CANCELLED can be reached; any other target is
/// a move no order allows, a rule of state the use case answers.
fn status_target(raw: i32) -> Result<OrderState, Invalid> {
    crate::wire::status_from_proto(raw).ok_or_else(|| Invalid::new("must be an order status"))
}

fn list_response(page: Page, (orders, total_count): (Vec<crate::model::Order>, i64)) -> ListOrdersResponse {
    ListOrdersResponse {
        orders: orders.into_iter().map(Order::from).collect(),
        total_count,
        page: page.number,
        page_size: page.size,
    }
}

pub struct OrderApi {
    orders: Orders,
    credentials: ServiceCredentials,
}

impl OrderApi {
    pub fn new(orders: Orders, credentials: ServiceCredentials) -> Self {
        Self { orders, credentials }
    }

    /// The verified user, whether an admin, and what their calls hand on.
    fn call<T>(&self, request: &Request<T>) -> Result<(Viewer, i64, CallContext), Status> {
        let (caller, user_id, context) = super::user_call(&self.credentials, self.orders.call_timeout(), request)?;
        let viewer = if caller.is_admin() { Viewer::Admin } else { Viewer::Owner(user_id) };
        Ok((viewer, user_id, context))
    }

    /// Admin RPCs are guarded by the gateway's policy table; a backend reached
    /// directly checks the vouched-for caller again.
    fn require_admin<T>(&self, request: &Request<T>) -> Result<CallContext, Status> {
        match self.call(request)? {
            (Viewer::Admin, _, context) => Ok(context),
            _ => Err(Status::permission_denied("admins only")),
        }
    }
}

#[tonic::async_trait]
impl OrderService for OrderApi {
    async fn list_orders(&self, request: Request<ListOrdersRequest>) -> Result<Response<ListOrdersResponse>, Status> {
        let (_, user_id, _) = self.call(&request)?;
        let req = request.into_inner();
        let page = page(req.page, req.page_size)?;
        let filter = OrderFilter { user_id: Some(user_id), statuses: Some(&OrderState::VISIBLE_TO_OWNER) };
        Ok(Response::new(list_response(page, self.orders.list(filter, page).await?)))
    }

    async fn get_order(&self, request: Request<GetOrderRequest>) -> Result<Response<Order>, Status> {
        let (viewer, _, _) = self.call(&request)?;
        let id = parse_id(request.into_inner().id).map_err(Error::field("id"))?;
        Ok(Response::new(self.orders.get(id, viewer).await?.into()))
    }

    async fn cancel_order(&self, request: Request<CancelOrderRequest>) -> Result<Response<Order>, Status> {
        let (_, user_id, context) = self.call(&request)?;
        let id = parse_id(request.into_inner().id).map_err(Error::field("id"))?;
        let order = self.orders.change_status(&context, id, OrderState::Cancelled, Viewer::Owner(user_id)).await?;
        Ok(Response::new(order.into()))
    }

    async fn list_all_orders(
        &self,
        request: Request<ListAllOrdersRequest>,
    ) -> Result<Response<ListOrdersResponse>, Status> {
        self.require_admin(&request)?;
        let req = request.into_inner();
        let status = status_filter(req.status).map_err(Error::field("status"))?;
        let user_id = match req.user_id {
            0 => None,
            id => Some(parse_id(id).map_err(Error::field("user_id"))?),
        };
        let page = page(req.page, req.page_size)?;
        let filter = OrderFilter { user_id, statuses: status.as_ref().map(std::slice::from_ref) };
        Ok(Response::new(list_response(page, self.orders.list(filter, page).await?)))
    }

    async fn update_order_status(&self, request: Request<UpdateOrderStatusRequest>) -> Result<Response<Order>, Status> {
        let context = self.require_admin(&request)?;
        let req = request.into_inner();
        let id = parse_id(req.id).map_err(Error::field("id"))?;
        let to = status_target(req.status).map_err(Error::field("status"))?;
        Ok(Response::new(self.orders.change_status(&context, id, to, Viewer::Admin).await?.into()))
    }
}

#[cfg(test)]
mod tests {
    use shop_proto::order::OrderStatus;

    use super::*;

    #[test]
    fn filters_and_targets_are_real_statuses() {
        assert_eq!(status_target(OrderStatus::Shipped as i32), Ok(OrderState::Shipped));
        assert_eq!(status_target(OrderStatus::Placed as i32), Ok(OrderState::Placed));
        assert!(status_target(OrderStatus::Unspecified as i32).is_err());
        assert!(status_target(99).is_err());
        assert_eq!(status_filter(0), Ok(None));
        assert!(status_filter(42).is_err());
    }
}
