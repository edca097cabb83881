use shop_proto::cart::cart_service_server::CartService;
use shop_proto::cart::{
    AddCartItemRequest, Cart, CartItem, CheckoutRequest, CheckoutResponse, GetCartRequest, RemoveCartItemRequest,
    UpdateCartItemRequest,
};
use tonic::{Request, Response, Status};

use super::CustomerApi;
use crate::error::Error;
use crate::model::Change;
use crate::model::{self, parse_id};
use shop_platform::error::FieldRefusal as _;

/// What `shop_checkouts_total` counts, by outcome.
#[derive(Debug, Clone, Copy)]
pub(super) enum CheckoutOutcome {
    Placed,
    /// Out of stock, an empty cart: the client's to fix.
    Refused,
    /// A service or the database was down or busy: worth a retry.
    Unavailable,
    Error,
}

impl CheckoutOutcome {
    pub(super) const ALL: [Self; 4] = [Self::Placed, Self::Refused, Self::Unavailable, Self::Error];

    fn of<T>(answer: &Result<T, Status>) -> Self {
        match answer {
            Ok(_) => Self::Placed,
            Err(status) if status.code() == tonic::Code::FailedPrecondition => Self::Refused,
            Err(status) if status.code() == tonic::Code::Unavailable => Self::Unavailable,
            Err(_) => Self::Error,
        }
    }

    pub(super) fn label(self) -> &'static str {
        match self {
            Self::Placed => "placed",
            Self::Refused => "refused",
            Self::Unavailable => "unavailable",
            Self::Error => "error",
        }
    }
}

impl From<model::Cart> for Cart {
    fn from(cart: model::Cart) -> Self {
        Cart {
            items: cart
                .items
                .into_iter()
                .map(|item| CartItem {
                    product_id: item.product_id,
                    title: item.title,
                    unit_price: item.unit_price.to_string(),
                    quantity: item.quantity,
                    line_total: item.line_total.to_string(),
                    in_stock: item.in_stock,
                })
                .collect(),
            total_price: cart.total_price.to_string(),
            total_quantity: cart.total_quantity,
        }
    }
}

#[tonic::async_trait]
impl CartService for CustomerApi {
    async fn get_cart(&self, request: Request<GetCartRequest>) -> Result<Response<Cart>, Status> {
        let (user_id, context) = self.call(&request)?;
        Ok(Response::new(self.carts.get(&context, user_id).await?.into()))
    }

    async fn add_cart_item(&self, request: Request<AddCartItemRequest>) -> Result<Response<Cart>, Status> {
        let (user_id, context) = self.call(&request)?;
        let req = request.into_inner();
        let product_id = parse_id(req.product_id).map_err(Error::field("product_id"))?;
        let quantity = model::quantity_to_add(req.quantity).map_err(Error::field("quantity"))?;
        Ok(Response::new(self.carts.change(&context, user_id, product_id, Change::Add(quantity)).await?.into()))
    }

    async fn update_cart_item(&self, request: Request<UpdateCartItemRequest>) -> Result<Response<Cart>, Status> {
        let (user_id, context) = self.call(&request)?;
        let req = request.into_inner();
        let product_id = parse_id(req.product_id).map_err(Error::field("product_id"))?;
        let quantity = model::quantity_to_set(req.quantity).map_err(Error::field("quantity"))?;
        Ok(Response::new(self.carts.change(&context, user_id, product_id, Change::Set(quantity)).await?.into()))
    }

    async fn remove_cart_item(&self, request: Request<RemoveCartItemRequest>) -> Result<Response<Cart>, Status> {
        let (user_id, context) = self.call(&request)?;
        let product_id = parse_id(request.into_inner().product_id).map_err(Error::field("product_id"))?;
        Ok(Response::new(self.carts.remove(&context, user_id, product_id).await?.into()))
    }

    async fn checkout(&self, request: Request<CheckoutRequest>) -> Result<Response<CheckoutResponse>, Status> {
        let (user_id, context) = self.call(&request)?;
        let key =
            model::idempotency_key(&request.into_inner().idempotency_key).map_err(Error::field("idempotency_key"))?;
        let placed = self.carts.checkout(&context, user_id, key).await.map_err(Status::from);
        let outcome = CheckoutOutcome::of(&placed).label();
        metrics::counter!("shop_checkouts_total", "outcome" => outcome).increment(1);
        Ok(Response::new(CheckoutResponse { order: Some(placed?.into()) }))
    }
}
