//! gRPC edge, one file per gRPC service: protobuf in, the verified caller
//! and one use-case call, protobuf out. The order conversions several of
//! them (and `calls` and `repo`) share are in [`crate::wire`].

mod cart;
mod events;
mod orders;
mod placement;
mod wishlist;

pub use events::OrderEventsApi;
pub use orders::OrderApi;
pub use placement::PlacementApi;

use shop_platform::auth::{Caller, ServiceCredentials};
use shop_platform::transport::client::CallContext;
use tonic::{Request, Status};

use crate::domain::cart::Carts;

/// CartService (`cart.rs`) and WishlistService (`wishlist.rs`): a
/// customer's own cart and wishlist.
#[derive(Clone)]
pub struct CustomerApi {
    carts: Carts,
    credentials: ServiceCredentials,
}

impl CustomerApi {
    pub fn new(carts: Carts, credentials: ServiceCredentials) -> Self {
        metrics::describe_counter!(
            "shop_checkouts_total",
            "Checkouts, by outcome: placed, refused, unavailable, error."
        );
        // A dashboard's rate over a series that does not exist yet shows
        // nothing, not zero: every outcome is counted from the start.
        for outcome in cart::CheckoutOutcome::ALL {
            metrics::counter!("shop_checkouts_total", "outcome" => outcome.label()).increment(0);
        }
        Self { carts, credentials }
    }

    fn call<T>(&self, request: &Request<T>) -> Result<(i64, CallContext), Status> {
        let (_, user_id, context) = user_call(&self.credentials, self.carts.call_timeout(), request)?;
        Ok((user_id, context))
    }
}

/// The caller the gateway vouched for (a user is required), and what its
/// calls hand on downstream.
fn user_call<T>(
    credentials: &ServiceCredentials,
    timeout: std::time::Duration,
    request: &Request<T>,
) -> Result<(Caller, i64, CallContext), Status> {
    let caller = credentials.caller(request.metadata())?;
    let user_id = caller.require_user()?;
    Ok((caller, user_id, CallContext::of(request.metadata(), timeout)))
}
