//! Order history and status moves: what a customer sees of their orders,
//! what an admin sees of all, a customer's cancellation and an admin's
//! moves, each move committed with its event.

use shop_platform::kernel::paging::Page;
use shop_platform::transport::client::CallContext;
use sqlx::PgPool;

use crate::domain::placement::Placement;
use crate::error::Error;
use crate::model::{Event, Order, OrderBooks, OrderFilter, Status, Viewer};
use crate::repo;

#[derive(Clone)]
pub struct Orders {
    pool: PgPool,
    /// Gives a cancelled order's stock back.
    placement: Placement,
}

impl Orders {
    pub fn new(pool: PgPool, placement: Placement) -> Self {
        Self { pool, placement }
    }

    pub fn call_timeout(&self) -> std::time::Duration {
        self.placement.call_timeout()
    }

    /// GetOrder. An owner never sees another's order, nor one that never got
    /// placed.
    pub async fn get(&self, id: i64, viewer: Viewer) -> Result<Order, Error> {
        let not_found = || Error::NotFound(format!("order {id}"));
        let order = repo::orders::get(&mut *self.pool.acquire().await?, id).await?.ok_or_else(not_found)?;
        if let Viewer::Owner(user_id) = viewer
            && (order.user_id != user_id || !order.status.is_visible_to_owner())
        {
            return Err(not_found());
        }
        Ok(order)
    }

    /// ListOrders / ListAllOrders: one page, newest first, and how many match.
    pub async fn list(&self, filter: OrderFilter<'_>, page: Page) -> Result<(Vec<Order>, i64), Error> {
        repo::orders::page(&mut *self.pool.acquire().await?, filter, page.limit(), page.offset()).await
    }

    /// CancelOrder (owner) or UpdateOrderStatus (admin): moves the order to
    /// `to` from the one status that allows it, with its event. A
    /// cancellation then gives the stock back; when catalog cannot take it
    /// now, the order owes it and recovery pays later, so cancelling never
    /// waits on catalog.
    pub async fn change_status(
        &self,
        context: &CallContext,
        id: i64,
        to: Status,
        viewer: Viewer,
    ) -> Result<Order, Error> {
        let Some(from) = to.required_before() else {
            // Unknown (or hidden) orders stay NOT_FOUND; known ones cannot get there.
            let current = self.get(id, viewer).await?;
            return Err(Error::FailedPrecondition(format!(
                "order {id} is {}; no order can be moved to {to}",
                current.status
            )));
        };
        let owner = match viewer {
            Viewer::Owner(user_id) => Some(user_id),
            Viewer::Admin => None,
        };
        let mut tx = self.pool.begin().await?;
        let Some(order) = repo::orders::transition(&mut tx, id, from, to, owner).await? else {
            tx.rollback().await?;
            let current = self.get(id, viewer).await?;
            return Err(Error::FailedPrecondition(format!(
                "order {id} is {}; only a {from} order can become {to}",
                current.status
            )));
        };
        repo::orders::append_event(&mut tx, &Event::StatusChanged { from, order: order.clone() }).await?;
        tx.commit().await?;
        if to == Status::Cancelled {
            self.placement.release(context, id).await;
        }
        Ok(order)
    }
}

pub async fn books(pool: &PgPool, key_prefix: &str) -> Result<OrderBooks, Error> {
    repo::orders::books(&mut *pool.acquire().await?, key_prefix).await
}
