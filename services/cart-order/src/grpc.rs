//! gRPC edge: proto in, the verified caller and one use-case call, proto out.

use shop_platform::auth::{Caller, ServiceCredentials};
use shop_platform::error::Invalid;
use shop_platform::outbox::EventFeed;
use shop_platform::paging::{Page, PageProblem};
use shop_proto::cart::cart_service_server::CartService;
use shop_proto::cart::wishlist_service_server::WishlistService;
use shop_proto::cart::{
    AddCartItemRequest, AddToWishlistRequest, Cart, CheckoutRequest, CheckoutResponse, GetCartRequest,
    GetWishlistRequest, RemoveCartItemRequest, RemoveFromWishlistRequest, UpdateCartItemRequest, Wishlist,
};
use shop_proto::order::order_events_service_server::OrderEventsService;
use shop_proto::order::order_placement_service_server::OrderPlacementService;
use shop_proto::order::order_service_server::OrderService;
use shop_proto::order::{
    CancelOrderRequest, FindOrderRequest, GetOrderRequest, ListAllOrdersRequest, ListOrdersRequest, ListOrdersResponse,
    Order, OrderEvent, PlaceOrderRequest, SubscribeOrderEventsRequest, UpdateOrderStatusRequest,
};
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

use crate::calls::CallContext;
use crate::cart::{Carts, Change};
use crate::domain::{self, OrderLines, Status as OrderState, parse_id};
use crate::error::Error;
use crate::orders::{Orders, Viewer};
use crate::repo::orders::Filter;

const ORDERS_DEFAULT_PAGE_SIZE: i32 = 10;
const ORDERS_MAX_PAGE_SIZE: i32 = 100;

fn page(page: i32, page_size: i32) -> Result<Page, Error> {
    Page::parse(page, page_size, ORDERS_DEFAULT_PAGE_SIZE, ORDERS_MAX_PAGE_SIZE).map_err(|problem| match problem {
        PageProblem::Page(reason) => Error::field("page")(reason),
        PageProblem::PageSize(reason) => Error::field("page_size")(reason),
    })
}

/// The caller the gateway vouched for, and what its calls hand on downstream.
fn user_call<T>(
    credentials: &ServiceCredentials,
    timeout: std::time::Duration,
    request: &Request<T>,
) -> Result<(Caller, i64, CallContext), Status> {
    let caller = credentials.caller(request.metadata())?;
    let user_id = caller.require_user()?;
    Ok((caller, user_id, CallContext::of(request.metadata(), timeout)))
}

/// CartService and WishlistService: a customer's own cart and wishlist.
#[derive(Clone)]
pub struct CustomerApi {
    carts: Carts,
    credentials: ServiceCredentials,
}

impl CustomerApi {
    pub fn new(carts: Carts, credentials: ServiceCredentials) -> Self {
        Self { carts, credentials }
    }

    fn call<T>(&self, request: &Request<T>) -> Result<(i64, CallContext), Status> {
        let (_, user_id, context) = user_call(&self.credentials, self.carts.call_timeout(), request)?;
        Ok((user_id, context))
    }
}

#[tonic::async_trait]
impl CartService for CustomerApi {
    async fn get_cart(&self, request: Request<GetCartRequest>) -> Result<Response<Cart>, Status> {
        let (user_id, context) = self.call(&request)?;
        Ok(Response::new(self.carts.get(&context, user_id).await?))
    }

    async fn add_cart_item(&self, request: Request<AddCartItemRequest>) -> Result<Response<Cart>, Status> {
        let (user_id, context) = self.call(&request)?;
        let req = request.into_inner();
        let product_id = parse_id(req.product_id).map_err(Error::field("product_id"))?;
        let quantity = domain::quantity_to_add(req.quantity).map_err(Error::field("quantity"))?;
        Ok(Response::new(self.carts.change(&context, user_id, product_id, Change::Add(quantity)).await?))
    }

    async fn update_cart_item(&self, request: Request<UpdateCartItemRequest>) -> Result<Response<Cart>, Status> {
        let (user_id, context) = self.call(&request)?;
        let req = request.into_inner();
        let product_id = parse_id(req.product_id).map_err(Error::field("product_id"))?;
        let quantity = domain::quantity_to_set(req.quantity).map_err(Error::field("quantity"))?;
        Ok(Response::new(self.carts.change(&context, user_id, product_id, Change::Set(quantity)).await?))
    }

    async fn remove_cart_item(&self, request: Request<RemoveCartItemRequest>) -> Result<Response<Cart>, Status> {
        let (user_id, context) = self.call(&request)?;
        let product_id = parse_id(request.into_inner().product_id).map_err(Error::field("product_id"))?;
        Ok(Response::new(self.carts.remove(&context, user_id, product_id).await?))
    }

    async fn checkout(&self, request: Request<CheckoutRequest>) -> Result<Response<CheckoutResponse>, Status> {
        let (user_id, context) = self.call(&request)?;
        let key =
            domain::idempotency_key(&request.into_inner().idempotency_key).map_err(Error::field("idempotency_key"))?;
        let placed = self.carts.checkout(&context, user_id, key).await.map_err(Status::from);
        let outcome = match &placed {
            Ok(_) => "placed",
            Err(status) if status.code() == tonic::Code::FailedPrecondition => "refused",
            Err(status) if status.code() == tonic::Code::Unavailable => "unavailable",
            Err(_) => "error",
        };
        metrics::counter!("shop_checkouts_total", "outcome" => outcome).increment(1);
        Ok(Response::new(CheckoutResponse { order: Some(placed?) }))
    }
}

#[tonic::async_trait]
impl WishlistService for CustomerApi {
    async fn get_wishlist(&self, request: Request<GetWishlistRequest>) -> Result<Response<Wishlist>, Status> {
        let (user_id, context) = self.call(&request)?;
        Ok(Response::new(self.carts.wishlist(&context, user_id).await?))
    }

    async fn add_to_wishlist(&self, request: Request<AddToWishlistRequest>) -> Result<Response<Wishlist>, Status> {
        let (user_id, context) = self.call(&request)?;
        let product_id = parse_id(request.into_inner().product_id).map_err(Error::field("product_id"))?;
        Ok(Response::new(self.carts.wish(&context, user_id, product_id).await?))
    }

    async fn remove_from_wishlist(
        &self,
        request: Request<RemoveFromWishlistRequest>,
    ) -> Result<Response<Wishlist>, Status> {
        let (user_id, context) = self.call(&request)?;
        let product_id = parse_id(request.into_inner().product_id).map_err(Error::field("product_id"))?;
        Ok(Response::new(self.carts.unwish(&context, user_id, product_id).await?))
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

    /// Admin RPCs are guarded by the gateway's policy table; a backend reached
    /// directly checks the vouched-for caller again.
    fn require_admin<T>(&self, request: &Request<T>) -> Result<CallContext, Status> {
        let (caller, _, context) = user_call(&self.credentials, self.orders.call_timeout(), request)?;
        if caller.is_admin() { Ok(context) } else { Err(Status::permission_denied("admins only")) }
    }
}

#[tonic::async_trait]
impl OrderService for OrderApi {
    async fn list_orders(&self, request: Request<ListOrdersRequest>) -> Result<Response<ListOrdersResponse>, Status> {
        let (_, user_id, _) = user_call(&self.credentials, self.orders.call_timeout(), &request)?;
        let req = request.into_inner();
        let page = page(req.page, req.page_size)?;
        let filter = Filter { user_id: Some(user_id), statuses: &OrderState::VISIBLE_TO_OWNER };
        let (orders, total_count) = self.orders.list(filter, page).await?;
        Ok(Response::new(ListOrdersResponse { orders, total_count }))
    }

    async fn get_order(&self, request: Request<GetOrderRequest>) -> Result<Response<Order>, Status> {
        let (caller, user_id, _) = user_call(&self.credentials, self.orders.call_timeout(), &request)?;
        let id = parse_id(request.into_inner().id).map_err(Error::field("id"))?;
        let viewer = if caller.is_admin() { Viewer::Admin } else { Viewer::Owner(user_id) };
        Ok(Response::new(self.orders.get(id, viewer).await?))
    }

    async fn cancel_order(&self, request: Request<CancelOrderRequest>) -> Result<Response<Order>, Status> {
        let (_, user_id, context) = user_call(&self.credentials, self.orders.call_timeout(), &request)?;
        let id = parse_id(request.into_inner().id).map_err(Error::field("id"))?;
        let order = self.orders.change_status(&context, id, OrderState::Cancelled, Viewer::Owner(user_id)).await?;
        Ok(Response::new(order))
    }

    async fn list_all_orders(
        &self,
        request: Request<ListAllOrdersRequest>,
    ) -> Result<Response<ListOrdersResponse>, Status> {
        self.require_admin(&request)?;
        let req = request.into_inner();
        let status = OrderState::parse_filter(req.status).map_err(Error::field("status"))?;
        let user_id = match req.user_id {
            0 => None,
            id => Some(parse_id(id).map_err(Error::field("user_id"))?),
        };
        let page = page(req.page, req.page_size)?;
        let statuses = status.map_or(OrderState::ALL.to_vec(), |status| vec![status]);
        let (orders, total_count) = self.orders.list(Filter { user_id, statuses: &statuses }, page).await?;
        Ok(Response::new(ListOrdersResponse { orders, total_count }))
    }

    async fn update_order_status(&self, request: Request<UpdateOrderStatusRequest>) -> Result<Response<Order>, Status> {
        let context = self.require_admin(&request)?;
        let req = request.into_inner();
        let id = parse_id(req.id).map_err(Error::field("id"))?;
        let to = OrderState::parse_target(req.status).map_err(Error::field("status"))?;
        Ok(Response::new(self.orders.change_status(&context, id, to, Viewer::Admin).await?))
    }
}

/// Internal: mounted behind the service-credential interceptor.
pub struct PlacementApi {
    orders: Orders,
}

impl PlacementApi {
    pub fn new(orders: Orders) -> Self {
        Self { orders }
    }
}

#[tonic::async_trait]
impl OrderPlacementService for PlacementApi {
    async fn place_order(&self, request: Request<PlaceOrderRequest>) -> Result<Response<Order>, Status> {
        let context = CallContext::of(request.metadata(), self.orders.call_timeout());
        let req = request.into_inner();
        let user_id = parse_id(req.user_id).map_err(Error::field("user_id"))?;
        let key = domain::idempotency_key(&req.idempotency_key).map_err(Error::field("idempotency_key"))?;
        let lines = OrderLines::parse(req.lines.iter().map(|line| (line.product_id, line.quantity)))
            .map_err(Error::field("lines"))?;
        Ok(Response::new(self.orders.place(&context, user_id, key.as_deref(), &lines).await?))
    }

    async fn find_order(&self, request: Request<FindOrderRequest>) -> Result<Response<Order>, Status> {
        let req = request.into_inner();
        let user_id = parse_id(req.user_id).map_err(Error::field("user_id"))?;
        let key = domain::idempotency_key(&req.idempotency_key)
            .map_err(Error::field("idempotency_key"))?
            .ok_or_else(|| Error::field("idempotency_key")(Invalid::new("is required")))?;
        Ok(Response::new(self.orders.find(user_id, &key).await?))
    }
}

/// Internal: mounted behind the service-credential interceptor.
pub struct OrderEventsApi {
    feed: EventFeed<OrderEvent>,
}

impl OrderEventsApi {
    pub fn new(feed: EventFeed<OrderEvent>) -> Self {
        Self { feed }
    }
}

#[tonic::async_trait]
impl OrderEventsService for OrderEventsApi {
    async fn subscribe(
        &self,
        request: Request<SubscribeOrderEventsRequest>,
    ) -> Result<Response<BoxStream<OrderEvent>>, Status> {
        let after = request.into_inner().after_sequence;
        if after < 0 {
            return Err(Error::field("after_sequence")(Invalid::new("must not be negative")).into());
        }
        Ok(Response::new(Box::pin(ReceiverStream::new(self.feed.subscribe(after)))))
    }
}
