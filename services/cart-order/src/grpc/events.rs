use shop_platform::outbox::EventFeed;
use shop_proto::order::order_event::Payload;
use shop_proto::order::order_events_service_server::OrderEventsService;
use shop_proto::order::{
    OrderCancelled, OrderEvent, OrderPlaced, OrderStatus, OrderStatusChanged, SubscribeOrderEventsRequest,
};
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

use crate::domain::Event;

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
        Ok(Response::new(self.feed.subscription(request.into_inner().after_sequence)?))
    }
}

/// An event as the stream carries it (and the outbox stores it): without
/// its sequence and time, which readers stamp on the way out.
impl From<&Event> for OrderEvent {
    fn from(event: &Event) -> Self {
        let payload = match event {
            Event::Placed(order) => Payload::OrderPlaced(OrderPlaced { order: Some(order.clone().into()) }),
            Event::StatusChanged { from, order } => {
                let (order_id, old_status, new_status) =
                    (order.id, OrderStatus::from(*from).into(), OrderStatus::from(order.status).into());
                let order = Some(order.clone().into());
                if new_status == OrderStatus::Cancelled as i32 {
                    Payload::OrderCancelled(OrderCancelled { order_id, old_status, new_status, order })
                } else {
                    Payload::OrderStatusChanged(OrderStatusChanged { order_id, old_status, new_status, order })
                }
            }
        };
        OrderEvent { sequence: 0, occurred_at: None, payload: Some(payload) }
    }
}
